"""Senders for the benchmarks: a paced webhook sender, a job pool, the client figure.

The paced sender uses :mod:`benchmarks.rawhttp` (httpx's pool costs more CPU than the engine
spends on a webhook once hundreds of requests queue on it); the client figure compares our
async client with raw httpx on the same requests.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks.procs import beside_ceiling
from benchmarks.rawhttp import Connection, SendError
from benchmarks.workload import WEBHOOK_AUTH, WebhookFactory
from client import AsyncRevenueCat
from integration.receiver import WEBHOOK_PATH
from mockserver.revenuecat.keys import DEFAULT_SECRET_KEY

__all__ = ["client_figures", "paced", "pool"]


async def client_figures(base: str, users_n: int, concurrency: int, runs: int) -> dict[str, Any]:
    """``set_clevertap_id`` for ``users_n`` new users with :class:`AsyncRevenueCat` against
    the RevenueCat mock at ``base``, beside raw httpx sending the same requests."""
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)

    async def with_client() -> float:
        users = [f"bench-client-{time.monotonic_ns()}-{i}" for i in range(users_n)]
        async with AsyncRevenueCat(
            api_key=DEFAULT_SECRET_KEY,
            base_url=base,
            http_client=httpx.AsyncClient(limits=limits),
        ) as rc:
            started = time.perf_counter()
            jobs = [functools.partial(rc.set_clevertap_id, u, f"ct-{u}") for u in users]
            await pool(jobs, concurrency)
            return time.perf_counter() - started

    async def raw() -> float:
        users = [f"bench-raw-{time.monotonic_ns()}-{i}" for i in range(users_n)]
        headers = {
            "Authorization": f"Bearer {DEFAULT_SECRET_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:

            async def one(user: str) -> None:
                stamp = int(time.time() * 1000)
                body = {"attributes": {"$clevertapId": {"value": f"ct-{user}",
                                                       "updated_at_ms": stamp}}}  # fmt: skip
                answer = await http.post(
                    f"{base}/v1/subscribers/{user}/attributes",
                    content=json.dumps(body).encode(),
                    headers=headers,
                )
                answer.raise_for_status()

            started = time.perf_counter()
            await pool([functools.partial(one, u) for u in users], concurrency)
            return time.perf_counter() - started

    # Alternating, best of each: the machine is shared and noise only slows.
    client_s = raw_s = float("inf")
    for _ in range(runs):
        raw_s = min(raw_s, await raw())
        client_s = min(client_s, await with_client())
    return {
        **beside_ceiling("set_id_per_s", users_n, client_s, raw_s),
        "users": users_n,
        "concurrency": concurrency,
    }


async def pool(jobs: Sequence[Callable[[], Awaitable[object]]], concurrency: int) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def paced(
    url: str, factory: WebhookFactory, run: str, rate: int, duration_s: float
) -> tuple[dict[str, float], int, float]:
    """Offer ``rate`` webhooks per second for ``duration_s`` over 32 keep-alive connections.

    Returns the time of each 200 (epoch seconds) by event id, the failures, and the rate of
    200s achieved."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    n = int(rate * duration_s)
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    acks: dict[str, float] = {}
    failures = 0
    headers = {"content-type": "application/json", "authorization": WEBHOOK_AUTH}

    async def worker() -> None:
        nonlocal failures
        conn = Connection(host, port)
        while (event_id := await queue.get()) is not None:
            try:
                status, _ = await conn.post(WEBHOOK_PATH, factory.body(event_id), headers)
            except SendError:
                failures += 1
                continue
            if status == 200:
                acks[event_id] = time.time()
            else:
                failures += 1
        await conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(32)]
    started = time.perf_counter()
    for i in range(n):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the offered load, not synchronisation
        queue.put_nowait(f"{run}-{i}")
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    return acks, failures, len(acks) / elapsed if elapsed else 0.0
