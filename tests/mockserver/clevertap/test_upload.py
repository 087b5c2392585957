"""POST /1/upload: auth, the answer's shape, storage and the request-level refusals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mockserver.app import create_app
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


async def test_more_than_1000_records_is_refused_whole(
    client: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """1001 records: 400 with a message naming the limit, and nothing stored."""
    response = await upload(client, [event()] * 1001)
    assert response.status_code == 400
    assert response.json() == {
        "status": "fail",
        "error": "Malformed request. At most 1000 records per request, got 1001",
        "code": 400,
    }
    assert backend.events(ACCOUNT_ID) == []


async def test_exactly_1000_records_are_accepted(client: httpx.AsyncClient) -> None:
    """1000 records is the documented maximum and is accepted."""
    response = await upload(client, [event(f"u{i}") for i in range(1000)])
    assert response.json()["processed"] == 1000


async def test_missing_d_is_refused(client: httpx.AsyncClient) -> None:
    """A body without a "d" array: 400 saying what the body must be."""
    for body in ({"data": []}, {"d": {"type": "event"}}, [1, 2]):
        response = await client.post("/1/upload", headers=HEADERS, json=body)
        assert response.status_code == 400
        assert response.json()["error"] == 'Malformed request. The body must be {"d": [records]}'


async def test_empty_batch_is_success(client: httpx.AsyncClient) -> None:
    """An empty d processes nothing and answers success."""
    response = await upload(client, [])
    assert response.json() == {"status": "success", "processed": 0, "unprocessed": []}


async def test_dry_run_validates_without_storing(
    client: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """?dryRun=1 answers as usual but stores nothing."""
    response = await upload(client, [event(), event(ts=0)], params={"dryRun": "1"})
    assert response.json()["status"] == "partial"
    assert backend.events(ACCOUNT_ID) == []
    assert backend.profiles(ACCOUNT_ID) == []


async def test_dry_run_zero_stores(client: httpx.AsyncClient, backend: CleverTapBackend) -> None:
    """?dryRun=0, as the Ruby gem sends it, stores normally."""
    await upload(client, [event()], params={"dryRun": "0"})
    assert len(backend.events(ACCOUNT_ID)) == 1


async def test_python_client_shape_is_accepted(client: httpx.AsyncClient) -> None:
    """CleverTap's Python client sends Content-Type application/json;charset=utf-8."""
    headers = {**HEADERS, "Content-Type": "application/json;charset=utf-8"}
    body = b'{"d": [{"type": "event", "identity": "u1", "evtName": "X", "evtData": {}}]}'
    response = await client.post("/1/upload", params={"dryRun": "0"}, headers=headers, content=body)
    assert response.json()["status"] == "success"


async def test_node_client_mixed_batch_is_accepted(
    client: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """clevertap-node's README batch, events and profiles mixed with ts in seconds, is stored."""
    records = [
        {
            "type": "event",
            "identity": "6264372124",
            "ts": 1468308340,
            "evtName": "choseNewFavoriteFood",
            "evtData": {"value": "sushi"},
        },
        {
            "type": "profile",
            "identity": "6264372124",
            "ts": 1468308340,
            "profileData": {"favoriteColor": "blue", "Age": 30, "Phone": "+14155551234"},
        },
        {
            "type": "event",
            "FBID": "34322423",
            "ts": 1468308340,
            "evtName": "Charged",
            "evtData": {
                "Amount": 300,
                "Currency": "USD",
                "Payment mode": "Credit Card",
                "Items": [{"Category": "books", "Book name": "The millionaire next door"}],
            },
        },
    ]
    response = await upload(client, records)
    assert response.json() == {"status": "success", "processed": 3, "unprocessed": []}
    assert (
        backend.profile(ACCOUNT_ID, identity="6264372124")["profileData"]["favoriteColor"] == "blue"
    )  # type: ignore[index]


async def test_segment_shape_with_source_field_is_accepted(client: httpx.AsyncClient) -> None:
    """Segment's profile record with only the X- headers and a top-level source is accepted."""
    headers = {k: v for k, v in HEADERS.items() if k.startswith("X-")}
    record = {
        "type": "profile",
        "source": "Segment",
        "identity": "u9",
        "profileData": {"Name": "A"},
    }
    response = await client.post("/1/upload", headers=headers, json={"d": [record]})
    assert response.json()["status"] == "success"


async def test_host_of_another_region_is_refused(client: httpx.AsyncClient) -> None:
    """An eu1 account called on us1's host gets 401, as the wrong regional host does."""
    headers = {**HEADERS, "Host": "us1.api.clevertap.com"}
    response = await client.post("/1/upload", headers=headers, json={"d": [event()]})
    assert response.status_code == 401
    assert response.json()["error"] == "Account ID is not valid"


async def test_host_of_own_region_and_bare_host_are_accepted(client: httpx.AsyncClient) -> None:
    """eu1.api.clevertap.com and api.clevertap.com (Europe) both serve an eu1 account."""
    for host in ("eu1.api.clevertap.com", "api.clevertap.com"):
        headers = {**HEADERS, "Host": host}
        response = await client.post("/1/upload", headers=headers, json={"d": [event()]})
        assert response.status_code == 200, host


async def test_passcode_never_reaches_journal_or_answers(
    client: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """Neither the journal nor a 401 answer contains a passcode."""
    await upload(client, [event()])
    bad = await client.post(
        "/1/upload", headers={**HEADERS, "X-CleverTap-Passcode": "leaked-guess"}, json={"d": []}
    )
    text = repr(backend.journal()) + bad.text + repr(backend.counters())
    assert "test-passcode-1" not in text
    assert "leaked-guess" not in text


async def test_get_on_upload_is_405(client: httpx.AsyncClient) -> None:
    """The upload route takes POST only; GET is 405 Method Not Allowed."""
    response = await client.get("/1/upload", headers=HEADERS)
    assert response.status_code == 405


def test_inspection_of_unknown_account_is_a_lookup_error(backend: CleverTapBackend) -> None:
    """Asking for an account the mock does not serve raises LookupError naming it."""
    with pytest.raises(LookupError, match="NOPE"):
        backend.events("NOPE")


def test_sync_test_client_uploads(backend: CleverTapBackend) -> None:
    """The mock serves synchronous callers through Starlette's TestClient too."""
    with TestClient(create_app(clevertap_backend=backend)) as client:
        response = client.post("/1/upload", headers=HEADERS, json={"d": [event()]})
    assert response.json()["status"] == "success"
