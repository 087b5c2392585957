"""Read APIs: profile lookup, the cursor flow, counts and deletion (reference §4)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from mockserver.clevertap import CleverTapBackend, CleverTapError
from tests.mockserver.clevertap.conftest import ACCOUNT_ID, HEADERS, event, profile

TS = 1_700_000_000  # 2023-11-14 22:13:20 UTC
QUERY = {"event_name": "Charged", "from": 20231114, "to": 20231114}


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    records = [
        profile("u1", Email="ann@example.com", Name="Ann"),
        event("u1", "Charged", ts=TS, evtData={"Amount": 1}),
        event("u2", "Charged", ts=TS + 1, evtData={"Amount": 2}),
        event("u1", "Charged", ts=TS + 2, evtData={"Amount": 3}),
        event("u3", "Charged", ts=TS + 86_400, evtData={"Amount": 4}),  # the next day
        event("u1", "Other", ts=TS),
    ]
    response = await client.post("/1/upload", headers=HEADERS, json={"d": records})
    assert response.json()["status"] == "success"
    return client


async def read_all(client: httpx.AsyncClient, first: httpx.Response) -> list[dict[str, Any]]:
    cursor = first.json()["cursor"]
    records: list[dict[str, Any]] = []
    while cursor:
        page = (
            await client.get("/1/events.json", params={"cursor": cursor}, headers=HEADERS)
        ).json()
        records += page["records"]
        cursor = page.get("next_cursor")
    return records


async def test_profile_by_identity(seeded: httpx.AsyncClient) -> None:
    """GET /1/profile.json?identity= answers success with the profile record."""
    response = await seeded.get("/1/profile.json", params={"identity": "u1"}, headers=HEADERS)
    body = response.json()
    assert body["status"] == "success"
    assert body["record"]["email"] == "ann@example.com"
    assert body["record"]["profileData"]["Name"] == "Ann"


async def test_profile_by_email_and_object_id(seeded: httpx.AsyncClient) -> None:
    """The same profile is found by email and by its CleverTap ID (objectId)."""
    by_email = await seeded.get(
        "/1/profile.json", params={"email": "ann@example.com"}, headers=HEADERS
    )
    object_id = by_email.json()["record"]["platformInfo"][0]["objectId"]
    by_id = await seeded.get("/1/profile.json", params={"objectId": object_id}, headers=HEADERS)
    assert by_id.json()["record"]["identity"] == "u1"


async def test_unknown_profile_is_404(seeded: httpx.AsyncClient) -> None:
    """An unknown identity answers 404 with CleverTap's fail body."""
    response = await seeded.get("/1/profile.json", params={"identity": "ghost"}, headers=HEADERS)
    assert response.status_code == 404
    assert response.json() == {"status": "fail", "error": "Profile not found", "code": 404}


async def test_events_cursor_pages_through_matches(seeded: httpx.AsyncClient) -> None:
    """POST events.json returns a cursor; GET ?cursor= pages with next_cursor until the end."""
    first = await seeded.post(
        "/1/events.json", params={"batch_size": "2"}, headers=HEADERS, json=QUERY
    )
    assert first.json()["status"] == "success"
    records = await read_all(seeded, first)
    assert [r["event_props"]["Amount"] for r in records] == [1, 2, 3]
    assert records[0]["profile"]["identity"] == "u1"
    assert records[0]["ts"] == 20231114221320


async def test_events_query_as_get_parameter(seeded: httpx.AsyncClient) -> None:
    """GET events.json?batch_size=&query=<JSON>, as NODE and PYCT send it, gives a cursor."""
    first = await seeded.get(
        "/1/events.json",
        params={"batch_size": "10", "query": json.dumps(QUERY)},
        headers=HEADERS,
    )
    assert len(await read_all(seeded, first)) == 3


async def test_last_page_has_no_next_cursor(seeded: httpx.AsyncClient) -> None:
    """A page that holds the rest leaves next_cursor out."""
    first = await seeded.post(
        "/1/events.json", params={"batch_size": "5"}, headers=HEADERS, json=QUERY
    )
    page = await seeded.get(
        "/1/events.json", params={"cursor": first.json()["cursor"]}, headers=HEADERS
    )
    assert "next_cursor" not in page.json()


async def test_profiles_by_event(seeded: httpx.AsyncClient) -> None:
    """profiles.json lists each profile that did the event in range, once."""
    first = await seeded.post(
        "/1/profiles.json", params={"batch_size": "23"}, headers=HEADERS, json=QUERY
    )
    page = await seeded.get(
        "/1/profiles.json", params={"cursor": first.json()["cursor"]}, headers=HEADERS
    )
    assert [r["identity"] for r in page.json()["records"]] == ["u1", "u2"]


async def test_event_and_profile_counts(seeded: httpx.AsyncClient) -> None:
    """counts/events.json counts events, counts/profiles.json distinct profiles."""
    events = await seeded.post("/1/counts/events.json", headers=HEADERS, json=QUERY)
    profiles = await seeded.post("/1/counts/profiles.json", headers=HEADERS, json=QUERY)
    assert events.json() == {"status": "success", "count": 3}
    assert profiles.json() == {"status": "success", "count": 2}


async def test_deferred_counts_are_polled_by_req_id(
    seeded: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """With counts_deferred, a count answers partial with req_id, then success when polled."""
    backend.counts_deferred = True
    first = await seeded.post("/1/counts/events.json", headers=HEADERS, json=QUERY)
    assert first.json()["status"] == "partial"
    req_id = first.json()["req_id"]
    polled = await seeded.get(
        "/1/counts/events.json", params={"req_id": str(req_id)}, headers=HEADERS
    )
    assert polled.json() == {"status": "success", "count": 3}


@pytest.mark.parametrize(
    "query",
    [
        {"from": 20231114, "to": 20231114},
        {"event_name": "X", "from": "yesterday", "to": 20231114},
        {"event_name": "X", "from": 20231115, "to": 20231114},
        ["not", "an", "object"],
    ],
)
async def test_bad_query_is_400(seeded: httpx.AsyncClient, query: Any) -> None:
    """A query without event_name, with bad dates or of the wrong type answers 400 fail."""
    response = await seeded.post("/1/events.json", headers=HEADERS, json=query)
    assert response.status_code == 400
    assert response.json()["status"] == "fail"


async def test_bad_batch_size_and_cursor_are_400(seeded: httpx.AsyncClient) -> None:
    """batch_size above 5000 and an unknown cursor each answer 400."""
    too_big = await seeded.post(
        "/1/events.json", params={"batch_size": "5001"}, headers=HEADERS, json=QUERY
    )
    unknown = await seeded.get("/1/events.json", params={"cursor": "nope"}, headers=HEADERS)
    assert (too_big.status_code, unknown.status_code) == (400, 400)
    assert unknown.json()["error"] == "Invalid cursor"


async def test_delete_by_identity_list(
    seeded: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """delete/profiles.json with {"identity": [...]} removes those profiles and their events."""
    response = await seeded.post(
        "/1/delete/profiles.json", headers=HEADERS, json={"identity": ["u1", "u2"]}
    )
    assert response.json() == {"status": "success"}
    assert backend.profile(ACCOUNT_ID, identity="u1") is None
    assert {e["identity"] for e in backend.events(ACCOUNT_ID)} == {"u3"}


async def test_delete_by_guid(seeded: httpx.AsyncClient, backend: CleverTapBackend) -> None:
    """delete/profiles.json with {"guid": <CleverTap ID>}, as NODE sends it, removes it."""
    found = backend.profile(ACCOUNT_ID, identity="u3")
    assert found is not None
    await seeded.post("/1/delete/profiles.json", headers=HEADERS, json={"guid": found["objectId"]})
    assert backend.profile(ACCOUNT_ID, identity="u3") is None


async def test_delete_without_ids_is_400(seeded: httpx.AsyncClient) -> None:
    """A delete body with neither identity nor guid answers 400."""
    response = await seeded.post("/1/delete/profiles.json", headers=HEADERS, json={"email": "x"})
    assert response.status_code == 400


async def test_reads_need_credentials(seeded: httpx.AsyncClient) -> None:
    """Read APIs answer 401 without the account headers."""
    response = await seeded.get("/1/profile.json", params={"identity": "u1"})
    assert response.status_code == 401


async def test_oldest_cursor_is_forgotten_beyond_the_cap() -> None:
    """With max_cursors open cursors, opening one more forgets the oldest (400 on use)."""
    backend = CleverTapBackend(max_cursors=2)
    cursors = [
        backend.cursors.open("TEST-RCC-MOCK", [1, 2], 1, lambda n: {"n": n}) for _ in range(3)
    ]
    assert backend.cursors.step("TEST-RCC-MOCK", cursors[2])["records"] == [{"n": 1}]
    with pytest.raises(CleverTapError, match="Invalid cursor"):
        backend.cursors.step("TEST-RCC-MOCK", cursors[0])


async def test_python_client_read_sequence(seeded: httpx.AsyncClient) -> None:
    """CleverTap's Python client's read calls, headers and URL encoding as it sends them, work."""
    ids = {k: v for k, v in HEADERS.items() if k.startswith("X-")}
    typed = {**ids, "Content-Type": "application/json;charset=utf-8"}
    query = urlencode({"query": json.dumps(QUERY), "batch_size": 10})
    first = (await seeded.get(f"/1/profiles.json?{query}", headers=typed)).json()
    assert "error" not in first
    page = (await seeded.get(f"/1/profiles.json?cursor={first['cursor']}", headers=ids)).json()
    assert [r["identity"] for r in page["records"]] == ["u1", "u2"]
    assert page.get("next_cursor") is None
    one = await seeded.get(
        "/1/profile.json?email=ann@example.com",
        headers={**ids, "Content-Type": "application/json"},
    )
    assert one.json()["record"]["identity"] == "u1"
