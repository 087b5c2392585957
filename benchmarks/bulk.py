"""The ``set_id_bulk`` section: a bulk identity migration, beside its two ceilings.

* Throughput with the rate limit off (the benchmark mock serves API v1, which has no limit):
  :meth:`client.AttributeSyncer.set_clevertap_ids` on a SQLite state file, ``users`` new
  users, 8 in flight, beside raw httpx sending the same v1 POSTs from 8 threads; the async
  syncer beside raw async httpx the same way.  Each ceiling skips everything the bulk job
  adds: the state file (two fsyncs per 64 users), validation, retries and the rate gate.
* Wall time with API v2's 480 a minute on: the RevenueCat mock in process on a virtual
  clock, whose time only the client's sleeps move, so the figure is the migration's wall
  time on RevenueCat's clock (``limited_wall_s``) beside the limit's own floor, users / 8 per
  second (``floor_s``).  The mock's window is fixed per minute, so a run that starts
  mid-minute can use that window's full 480 and finish under the floor.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from starlette.exceptions import StarletteDeprecationWarning

import mockserver
from benchmarks.procs import beside_ceiling
from client import AsyncAttributeSyncer, AsyncRevenueCat, AttributeSyncer, RevenueCat
from mockserver import RevenueCatBackend
from mockserver.revenuecat.backend import DEFAULT_PROJECT_ID
from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.keys import DEFAULT_SECRET_KEY, DEFAULT_V2_KEY

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["set_id_bulk_figures"]

CONCURRENCY = 8
LIMIT_PER_MINUTE = 480
LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10)


def _pairs(run: str, n: int) -> list[tuple[str, str]]:
    return [(f"bulk-{run}-{i}", f"ct-{run}-{i}") for i in range(n)]


def _bulk_sync(base: str, pairs: list[tuple[str, str]], state: Path) -> float:
    with (
        httpx.Client(limits=LIMITS, timeout=30.0) as http,
        RevenueCat(api_key=DEFAULT_SECRET_KEY, base_url=base, http_client=http) as rc,
        AttributeSyncer(rc, path=state, max_concurrency=CONCURRENCY) as syncer,
    ):
        started = time.perf_counter()
        report = syncer.set_clevertap_ids(pairs)
        elapsed = time.perf_counter() - started
    if report.progress.sent != len(pairs):
        raise RuntimeError(f"set_id_bulk: {report.progress} for {len(pairs)} users")
    return elapsed


def _raw_sync(base: str, pairs: list[tuple[str, str]]) -> float:
    headers = {
        "Authorization": f"Bearer {DEFAULT_SECRET_KEY}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    with httpx.Client(limits=LIMITS, timeout=30.0) as http:

        def one(pair: tuple[str, str]) -> None:
            body = {
                "attributes": {
                    "$clevertapId": {"value": pair[1], "updated_at_ms": int(time.time() * 1000)}
                }
            }
            answer = http.post(
                f"{base}/v1/subscribers/{pair[0]}/attributes",
                content=json.dumps(body).encode(),
                headers=headers,
            )
            answer.raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            list(pool.map(one, pairs))
        return time.perf_counter() - started


async def _bulk_async(base: str, pairs: list[tuple[str, str]], state: Path) -> float:
    async with (
        httpx.AsyncClient(limits=LIMITS, timeout=30.0) as http,
        AsyncRevenueCat(api_key=DEFAULT_SECRET_KEY, base_url=base, http_client=http) as rc,
        AsyncAttributeSyncer(rc, path=state, max_concurrency=CONCURRENCY) as syncer,
    ):
        started = time.perf_counter()
        report = await syncer.set_clevertap_ids(pairs)
        elapsed = time.perf_counter() - started
    if report.progress.sent != len(pairs):
        raise RuntimeError(f"set_id_bulk async: {report.progress} for {len(pairs)} users")
    return elapsed


async def _raw_async(base: str, pairs: list[tuple[str, str]]) -> float:
    headers = {
        "Authorization": f"Bearer {DEFAULT_SECRET_KEY}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    async with httpx.AsyncClient(limits=LIMITS, timeout=30.0) as http:
        queue = list(reversed(pairs))

        async def worker() -> None:
            while queue:
                user, ct = queue.pop()
                body = {
                    "attributes": {
                        "$clevertapId": {"value": ct, "updated_at_ms": int(time.time() * 1000)}
                    }
                }
                answer = await http.post(
                    f"{base}/v1/subscribers/{user}/attributes",
                    content=json.dumps(body).encode(),
                    headers=headers,
                )
                answer.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


def _limited(users: int, state: Path) -> dict[str, float]:
    """API v2 at 480 a minute, on the mock's virtual clock (the client's sleep moves it)."""
    clock = VirtualClock(time_scale=0, start_ms=1_700_000_000_000)
    backend = RevenueCatBackend(
        seed=1, clock=clock, v2_rate_limit=LIMIT_PER_MINUTE, max_customers=users
    )
    pairs = _pairs("limited", users)
    for user, _ in pairs:
        backend.create_customer(user)

    def now() -> float:
        return clock.now_ms() / 1000

    app = mockserver.create_app(revenuecat_backend=backend)
    with TestClient(app, base_url="http://revenuecat.mock") as http:
        rc = RevenueCat(
            api_key=DEFAULT_V2_KEY,
            base_url="http://revenuecat.mock",
            http_client=http,
            sleep=clock.advance,
            clock=now,
        )
        started_real, started = time.perf_counter(), now()
        with AttributeSyncer(rc, path=state, clock=now, max_concurrency=CONCURRENCY) as syncer:
            report = syncer.set_clevertap_ids(pairs, project_id=DEFAULT_PROJECT_ID)
        real = time.perf_counter() - started_real
    if report.progress.sent != users:
        raise RuntimeError(f"set_id_bulk limited: {report.progress} for {users} users")
    return {
        "limited_users": users,
        "limited_wall_s": round(now() - started, 1),
        "floor_s": round(users / (LIMIT_PER_MINUTE / 60), 1),
        "limited_waits": report.progress.rate_limit_waits,
        "limited_real_s": round(real, 2),
    }


async def set_id_bulk_figures(base: str, *, quick: bool) -> dict[str, Any]:
    """The section's figures against the benchmark's RevenueCat mock at ``base``."""
    users = 1000 if quick else 5000
    runs = 1 if quick else 2
    sync_s = raw_s = async_s = raw_async_s = float("inf")
    with tempfile.TemporaryDirectory(prefix="rc-clevertap-bulk-") as tmp:
        work = Path(tmp)
        # Alternating, best of each: the machine is shared and noise only slows.
        for run in range(runs):
            raw_s = min(raw_s, await asyncio.to_thread(_raw_sync, base, _pairs(f"r{run}", users)))
            state = work / f"sync-{run}.sqlite3"
            sync_s = min(
                sync_s, await asyncio.to_thread(_bulk_sync, base, _pairs(f"s{run}", users), state)
            )
            raw_async_s = min(raw_async_s, await _raw_async(base, _pairs(f"ra{run}", users)))
            state = work / f"async-{run}.sqlite3"
            async_s = min(async_s, await _bulk_async(base, _pairs(f"a{run}", users), state))
        limited = await asyncio.to_thread(
            _limited, 2000 if quick else 10_000, work / "limited.sqlite3"
        )
    unlimited = beside_ceiling("users_per_s", users, sync_s, raw_s)
    async_figures = beside_ceiling("async_users_per_s", users, async_s, raw_async_s)
    return {
        **unlimited,
        "async_users_per_s": async_figures["async_users_per_s"],
        "async_ceiling_per_s": async_figures["ceiling_per_s"],
        "async_ratio": async_figures["ratio"],
        "users": users,
        "concurrency": CONCURRENCY,
        **limited,
    }
