"""The concurrency limit: 15 uploads and 3 reads in flight per account (reference §3.4)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mockserver.app import create_app
from mockserver.clevertap import Account, CleverTapBackend, CleverTapError
from mockserver.clevertap.backend import READ_APIS, Api
from tests.mockserver.clevertap.conftest import ACCOUNT_ID, HEADERS, PASSCODE, event

TOO_MANY = {"status": "fail", "error": "Too many concurrent requests", "code": 429}


class Gate:
    """Holds uploads in flight until opened, counting how many are held."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.held = 0

    async def __call__(self, account_id: str) -> None:
        self.held += 1
        await self.open.wait()


async def test_uploads_beyond_15_in_flight_get_429() -> None:
    """Of 20 concurrent uploads held in flight, exactly the 5 beyond 15 are refused with 429."""
    gate = Gate()
    backend = CleverTapBackend(accounts=[Account(ACCOUNT_ID, (PASSCODE,))], on_upload=gate)
    transport = httpx.ASGITransport(app=create_app(clevertap_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        tasks = [
            asyncio.create_task(
                client.post("/1/upload", headers=HEADERS, json={"d": [event(f"u{i}")]})
            )
            for i in range(20)
        ]
        refused: list[int] = []
        while len(refused) < 5:
            await asyncio.wait(
                [t for t in tasks if not t.done()] or tasks,
                return_when=asyncio.FIRST_COMPLETED,
            )
            refused = [i for i, t in enumerate(tasks) if t.done()]
        assert gate.held == 15
        assert refused == [15, 16, 17, 18, 19]
        assert all(tasks[i].result().json() == TOO_MANY for i in refused)
        assert all(tasks[i].result().status_code == 429 for i in refused)
        assert backend.in_flight(ACCOUNT_ID, "upload") == 15
        gate.open.set()
        statuses = [(await t).status_code for t in tasks]
    assert statuses.count(200) == 15 and statuses.count(429) == 5
    assert len(backend.events(ACCOUNT_ID)) == 15
    assert backend.counters(ACCOUNT_ID)["refused_concurrency"] == 5
    assert backend.in_flight(ACCOUNT_ID, "upload") == 0


def test_slots_are_per_account_and_per_api() -> None:
    """A full upload limit leaves reads and other accounts free; leaving frees the slot."""
    backend = CleverTapBackend(
        accounts=[Account(ACCOUNT_ID, (PASSCODE,)), Account("OTHER", ("p",))],
        max_concurrent_uploads=1,
        max_concurrent_reads=1,
    )
    apis: list[Api] = ["upload", "events"]
    with backend.slot(ACCOUNT_ID, "upload"):
        for account, api in [(ACCOUNT_ID, apis[1]), ("OTHER", apis[0])]:
            with backend.slot(account, api):
                pass
        with pytest.raises(CleverTapError) as refused, backend.slot(ACCOUNT_ID, "upload"):
            pass
        assert refused.value.status == 429
    with backend.slot(ACCOUNT_ID, "upload"):
        assert backend.in_flight(ACCOUNT_ID, "upload") == 1


@pytest.mark.parametrize("api", READ_APIS)
def test_each_read_api_allows_3_by_default(api: Api) -> None:
    """Three requests of one read API may be in flight; a fourth is refused with 429."""
    backend = CleverTapBackend(accounts=[Account(ACCOUNT_ID, (PASSCODE,))])
    with (
        backend.slot(ACCOUNT_ID, api),
        backend.slot(ACCOUNT_ID, api),
        backend.slot(ACCOUNT_ID, api),
    ):
        with pytest.raises(CleverTapError) as refused, backend.slot(ACCOUNT_ID, api):
            pass
        assert refused.value.status == 429


async def test_three_event_reads_in_flight_leave_the_other_read_apis_free() -> None:
    """With Get Events' three slots held, a fourth events.json request gets 429 while Get User
    Profile, Get User Profiles and both counts still answer 200 (limits are per read API)."""
    backend = CleverTapBackend(accounts=[Account(ACCOUNT_ID, (PASSCODE,))])
    transport = httpx.ASGITransport(app=create_app(clevertap_backend=backend))
    query = {"event_name": "Subscribed", "from": 20231114, "to": 20231114}
    size = {"batch_size": "10"}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/1/upload", headers=HEADERS, json={"d": [event("u1")]})
        with (
            backend.slot(ACCOUNT_ID, "events"),
            backend.slot(ACCOUNT_ID, "events"),
            backend.slot(ACCOUNT_ID, "events"),
        ):
            fourth = await client.post("/1/events.json", params=size, headers=HEADERS, json=query)
            others = [
                await client.get("/1/profile.json?identity=u1", headers=HEADERS),
                await client.post("/1/profiles.json", params=size, headers=HEADERS, json=query),
                await client.post("/1/counts/events.json", headers=HEADERS, json=query),
                await client.post("/1/counts/profiles.json", headers=HEADERS, json=query),
            ]
            assert backend.counters(ACCOUNT_ID)["reads_in_flight"] == 3
        after = await client.post("/1/events.json", params=size, headers=HEADERS, json=query)
    assert (fourth.status_code, fourth.json()) == (429, TOO_MANY)
    assert [r.status_code for r in others] == [200, 200, 200, 200]
    assert after.status_code == 200
