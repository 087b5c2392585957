"""Inspection and reset under /_mock/clevertap: journal, events, profiles, counters."""

from __future__ import annotations

import httpx

from mockserver.app import create_app
from mockserver.clevertap import Account, CleverTapBackend
from tests.mockserver.clevertap.conftest import ACCOUNT_ID, HEADERS, PASSCODE, event, profile


async def upload(client: httpx.AsyncClient, records: list[object]) -> None:
    response = await client.post("/1/upload", headers=HEADERS, json={"d": records})
    assert response.status_code == 200


async def test_events_of_one_user(client: httpx.AsyncClient) -> None:
    """GET /events?identity= lists that user's events in arrival order."""
    await upload(client, [event("u1", "A"), event("u2", "B"), event("u1", "C")])
    response = await client.get("/_mock/clevertap/events", params={"identity": "u1"})
    assert [e["evtName"] for e in response.json()["events"]] == ["A", "C"]


async def test_all_events_and_profiles(client: httpx.AsyncClient) -> None:
    """GET /events and /profiles list everything of the (single) account."""
    await upload(client, [event("u1"), profile("u2", Name="B")])
    events = (await client.get("/_mock/clevertap/events")).json()["events"]
    profiles = (await client.get("/_mock/clevertap/profiles")).json()["profiles"]
    assert len(events) == 1
    assert [p["identity"] for p in profiles] == ["u1", "u2"]


async def test_profile_lookup(client: httpx.AsyncClient) -> None:
    """GET /profile?identity= answers the profile, or null when unknown."""
    await upload(client, [profile("u1", Plan="pro")])
    found = (await client.get("/_mock/clevertap/profile", params={"identity": "u1"})).json()
    missing = (await client.get("/_mock/clevertap/profile", params={"identity": "zz"})).json()
    assert found["profile"]["profileData"] == {"Plan": "pro"}
    assert missing == {"profile": None}


async def test_counters_count_codes(client: httpx.AsyncClient) -> None:
    """GET /counters reports uploads, processed records and rejections by code."""
    await upload(client, [event(), event(ts=0), event(ts=0)])
    counters = (
        await client.get("/_mock/clevertap/counters", params={"account_id": ACCOUNT_ID})
    ).json()
    assert counters["uploads"] == 1
    assert counters["records_processed"] == 1
    assert counters["rejected_by_code"] == {"525": 2}


async def test_journal_is_bounded() -> None:
    """The journal keeps the newest journal_size requests only."""
    backend = CleverTapBackend(accounts=[Account(ACCOUNT_ID, (PASSCODE,))], journal_size=2)
    transport = httpx.ASGITransport(app=create_app(clevertap_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for name in ("A", "B", "C"):
            await upload(client, [event(name=name)])
        journal = (await client.get("/_mock/clevertap/journal")).json()
    assert journal["cap"] == 2
    assert [e["id"] for e in journal["entries"]] == [2, 3]


async def test_journal_limit_parameter(client: httpx.AsyncClient) -> None:
    """GET /journal?limit=1 gives the newest entry; a bad limit is 400."""
    await upload(client, [event()])
    await client.post("/1/upload", json={"d": []})
    newest = (await client.get("/_mock/clevertap/journal", params={"limit": "1"})).json()
    bad = await client.get("/_mock/clevertap/journal", params={"limit": "x"})
    assert [e["status"] for e in newest["entries"]] == [401]
    assert bad.status_code == 400


async def test_reset_forgets_everything(
    client: httpx.AsyncClient, backend: CleverTapBackend
) -> None:
    """POST /reset empties events, profiles, journal and counters."""
    await upload(client, [event()])
    response = await client.post("/_mock/clevertap/reset")
    assert response.json() == {"status": "reset"}
    assert backend.events(ACCOUNT_ID) == [] and backend.profiles(ACCOUNT_ID) == []
    assert backend.journal() == []
    assert backend.counters(ACCOUNT_ID)["uploads"] == 0


async def test_accounts_route_hides_passcodes(client: httpx.AsyncClient) -> None:
    """GET /accounts shows ids, regions and how many passcodes, never the passcodes."""
    response = await client.get("/_mock/clevertap/accounts")
    assert response.json() == {
        "accounts": [{"account_id": ACCOUNT_ID, "region": "eu1", "passcodes": 2}]
    }
    assert PASSCODE not in response.text


async def test_unknown_account_parameter_is_400(client: httpx.AsyncClient) -> None:
    """An account_id the mock does not serve is a 400 naming it."""
    response = await client.get("/_mock/clevertap/events", params={"account_id": "NOPE"})
    assert response.status_code == 400
    assert "NOPE" in response.json()["error"]


async def test_account_required_with_several_accounts() -> None:
    """With two accounts, leaving account_id out is a 400."""
    backend = CleverTapBackend(accounts=[Account("A", ("p",)), Account("B", ("q",))])
    transport = httpx.ASGITransport(app=create_app(clevertap_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/_mock/clevertap/events")
    assert response.status_code == 400
