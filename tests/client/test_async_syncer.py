"""The async syncer: bounded concurrency, background flush, flush on close."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from rc_helpers import API_KEY, Sleeps

from client import CLEVERTAP_ID, AsyncAttributeSyncer, AsyncRevenueCat, RevenueCat


class AsyncServer:
    """Answers attribute POSTs with 200, counting how many are in flight at once."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[tuple[str, dict[str, object]]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.sent = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(5):  # let the other tasks run: overlap shows up here
            await asyncio.sleep(0)
        self.in_flight -= 1
        user = request.url.path.split("/")[3]
        self.posts.append((user, json.loads(await request.aread())["attributes"]))
        self.sent.set()
        return httpx.Response(self.status, json={})


def _client(server: AsyncServer, http: httpx.AsyncClient) -> AsyncRevenueCat:
    return AsyncRevenueCat(
        api_key=API_KEY, http_client=http, sleep=Sleeps().async_sleep, max_retries=0
    )


async def test_concurrency_across_users_is_bounded() -> None:
    """With max_concurrency=2, at most two users' POSTs are in flight at once."""
    server = AsyncServer()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        syncer = AsyncAttributeSyncer(_client(server, http), max_concurrency=2)
        for i in range(6):
            await syncer.set_clevertap_id(f"u{i}", f"ct-{i}")
        report = await syncer.sync()
        await syncer.aclose()
    assert len(report.synced) == 6
    assert server.most_in_flight == 2


async def test_close_always_flushes() -> None:
    """aclose() sends what is staged even without a background flush."""
    server = AsyncServer()
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(server)) as http,
        AsyncAttributeSyncer(_client(server, http)) as syncer,
    ):
        await syncer.set_clevertap_id("u1", "ct-1")
        assert server.posts == []
    assert [user for user, _ in server.posts] == ["u1"]


async def test_background_flush_runs_on_the_interval() -> None:
    """With flush_interval set, staged attributes go out without calling sync()."""
    server = AsyncServer()
    waits: list[float] = []
    release = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 1:
            await release.wait()  # park the loop after one flush; close() cancels it

    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        syncer = AsyncAttributeSyncer(_client(server, http), flush_interval=30, sleep=sleep)
        await syncer.set_clevertap_id("u1", "ct-1")
        syncer.start()
        await asyncio.wait_for(server.sent.wait(), timeout=5)
        assert await syncer.pending() == {}
        await syncer.aclose()
    assert waits[:2] == [30, 30]
    assert len(server.posts) == 1


async def test_async_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    """Attributes left unsynced by a 503 are sent by a new async syncer on the same file."""
    path = tmp_path / "attrs.sqlite3"
    down = AsyncServer(status=503)
    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
        syncer = AsyncAttributeSyncer(_client(down, http), path=path, clock=lambda: 1000.0)
        await syncer.set_clevertap_id("u1", "ct-1")
        await syncer.aclose()
    up = AsyncServer()
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(up)) as http,
        AsyncAttributeSyncer(_client(up, http), path=path) as syncer,
    ):
        assert CLEVERTAP_ID in (await syncer.pending())["u1"]
    assert up.posts == [("u1", {CLEVERTAP_ID: {"value": "ct-1", "updated_at_ms": 1_000_000}})]


async def test_bad_async_syncer_arguments_are_refused() -> None:
    """A sync client or a non-positive interval raises at construction."""
    with RevenueCat(api_key=API_KEY) as sync_rc, pytest.raises(TypeError):
        AsyncAttributeSyncer(sync_rc)  # type: ignore[arg-type]
    async with AsyncRevenueCat(api_key=API_KEY) as rc:
        with pytest.raises(ValueError):
            AsyncAttributeSyncer(rc, flush_interval=0)
