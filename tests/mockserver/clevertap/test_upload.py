"""POST /1/upload: auth, the answer's shape, storage and the request-level refusals."""

from __future__ import annotations

from typing import Any

import httpx

from mockserver.clevertap import CleverTapBackend
from tests.mockserver.clevertap.conftest import ACCOUNT_ID, HEADERS, NOW, event, profile


async def upload(client: httpx.AsyncClient, records: list[Any], **kwargs: Any) -> httpx.Response:
    return await client.post("/1/upload", headers=HEADERS, json={"d": records}, **kwargs)


async def test_valid_batch_answers_success(client: httpx.AsyncClient) -> None:
    """A batch of valid records answers 200 success with every record processed."""
    response = await upload(client, [event("u1"), profile("u1", Name="Ann"), event("u2")])
    assert response.status_code == 200
    assert response.json() == {"status": "success", "processed": 3, "unprocessed": []}


async def test_answer_has_clevertaps_content_type(client: httpx.AsyncClient) -> None:
    """Answers carry the content type CleverTap's recorded answers carry."""
    response = await upload(client, [event()])
    assert response.headers["content-type"] == "application/json;charset=utf-8"


async def test_stored_event_keeps_record_and_adds_mock_fields(
    client: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """A stored event is the record as uploaded, ts defaulted to now, plus _object_id etc."""
    await upload(client, [event("u1", evtData={"price": 9.99})])
    (stored,) = backend.events(ACCOUNT_ID)
    assert stored["evtData"] == {"price": 9.99}
    assert stored["ts"] == int(NOW)
    assert stored["_received_at"] == NOW
    assert stored["_object_id"] == backend.profile(ACCOUNT_ID, identity="u1")["objectId"]  # type: ignore[index]


async def test_events_for_finds_one_users_events(
    client: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """events_for returns the events of one identity, in arrival order."""
    await upload(client, [event("u1", "A"), event("u2", "B"), event("u1", "C")])
    names = [e["evtName"] for e in backend.events_for(ACCOUNT_ID, identity="u1")]
    assert names == ["A", "C"]


async def test_missing_credentials_get_401(client: httpx.AsyncClient) -> None:
    """No account headers: 401 with CleverTap's recorded body."""
    response = await client.post("/1/upload", json={"d": [event()]})
    assert response.status_code == 401
    assert response.json() == {"status": "fail", "error": "Account ID is not valid", "code": 401}


async def test_wrong_passcode_gets_401_passcode_invalid(client: httpx.AsyncClient) -> None:
    """A known account with a wrong passcode: 401 Passcode Invalid, nothing stored."""
    headers = {**HEADERS, "X-CleverTap-Passcode": "nope"}
    response = await client.post("/1/upload", headers=headers, json={"d": [event()]})
    assert response.status_code == 401
    assert response.json()["error"] == "Passcode Invalid"


async def test_second_passcode_is_accepted(client: httpx.AsyncClient) -> None:
    """An account may have several passcodes; each one authenticates."""
    headers = {**HEADERS, "X-CleverTap-Passcode": "test-passcode-2"}
    response = await client.post("/1/upload", headers=headers, json={"d": [event()]})
    assert response.status_code == 200


async def test_malformed_json_gets_400(client: httpx.AsyncClient) -> None:
    """An unparseable body: 400 Malformed request (reference §3.3)."""
    response = await client.post("/1/upload", headers=HEADERS, content=b'{"d": [')
    assert response.status_code == 400
    assert response.json() == {"status": "fail", "error": "Malformed request", "code": 400}
