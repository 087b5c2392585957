"""The ``dashboard`` section: each dashboard page's p99 on an outbox of 1,000,000 events.

Beside each page, its ceiling: the outbox reads that page makes, timed alone (the same
queries, no Starlette, no templates).  The outbox is filled directly with SQL (SQLite rows, or
PostgreSQL's COPY), as a week of traffic: 95 % delivered, 3 % skipped, 1 % dead, the newest
1 % pending, 50,000 users, one ledger entry per 1,000 delivered events; bodies are short
(about 300 bytes) so that the file stays small.  Requests go through httpx's ASGI transport
with a logged-in session, one at a time (``--quick``: 100,000 events, fewer requests).

Keys: ``events``, ``p99_ms`` (the slowest page's p99), ``query_p99_ms`` (that page's
queries alone), then ``<page>_p99_ms`` and ``<page>_query_p99_ms`` for every page.
"""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from integration.app.dashboard import with_dashboard
from integration.app.dashboard.queries import WindowCache
from integration.config import (
    AdminConfig,
    CleverTapConfig,
    Config,
    OutboxConfig,
    Secret,
)
from integration.engine import Engine
from integration.outbox.base import FeedQuery

__all__ = ["dashboard_figures"]

TOKEN = "benchmark-admin-token-0123456789"  # noqa: S105 (the benchmark's own)
WEEK_S = 7 * 86_400.0
USERS = 50_000
TYPES = ("RENEWAL", "RENEWAL", "RENEWAL", "INITIAL_PURCHASE", "CANCELLATION", "EXPIRATION",
         "BILLING_ISSUE", "PRODUCT_CHANGE", "UNCANCELLATION", "NON_RENEWING_PURCHASE")  # fmt: skip
UPLOAD_RECORDS = 1000
MEDIAN = "median_page_p99_ms"
PROD, SANDBOX = "LOCAL-PROD-0001", "LOCAL-SBOX-0001"


def _rows(n: int, now: float) -> list[tuple[Any, ...]]:
    """(event_id, environment, body, received_at, state, attempts, reason, settled_at, user,
    type, transaction_id) for ``n`` events over the week before ``now``, oldest first."""
    rows = []
    start = now - WEEK_S
    for i in range(n):
        at = start + i * WEEK_S / n
        kind = TYPES[i % len(TYPES)]
        user = f"user-{(i * 7919) % USERS}"
        environment = "SANDBOX" if i % 20 == 0 else "PRODUCTION"
        event_id = f"evt-{i:08d}"
        body = json.dumps(
            {
                "api_version": "1.0",
                "event": {
                    "id": event_id,
                    "type": kind,
                    "app_user_id": user,
                    "environment": environment,
                    "event_timestamp_ms": int(at * 1000),
                    "product_id": "pro_monthly",
                    "price": 9.99,
                    "currency": "USD",
                    "transaction_id": f"tx-{i}",
                    "store": "APP_STORE",
                },
            }
        ).encode()
        if i >= n * 0.99:
            state, reason, settled = "pending", None, None
        elif i % 100 == 0:
            state, reason, settled = "dead", "clevertap 513: refused", at + 1.0
        elif i % 100 < 4:
            state, reason, settled = "skipped", "event type TEST is not forwarded", at + 1.0
        else:
            state, reason, settled = "delivered", None, at + 1.0
        rows.append(
            (event_id, environment, body, at, state, 0, reason, settled, user, kind, f"tx-{i}")
        )
    return rows


def _ledger(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One upload per 1,000 delivered events: (batch, account, env, records, ids, at)."""
    delivered = [r for r in rows if r[4] == "delivered"]
    entries = []
    for start in range(0, len(delivered), UPLOAD_RECORDS):
        chunk = delivered[start : start + UPLOAD_RECORDS]
        entries.append((uuid.uuid4().hex, PROD, "PRODUCTION", len(chunk),
                        [r[0] for r in chunk], chunk[-1][7]))  # fmt: skip
    return entries


def _fill_sqlite(path: Path, rows: list[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        conn.executemany(
            "INSERT INTO events (row_id, event_id, environment, received_at, queued_at, state,"
            " due_at, attempts, reason, settled_at, source, app_user_id, event_type,"
            " transaction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'webhook', ?, ?, ?)",
            (
                (
                    i + 1,
                    r[0],
                    r[1],
                    r[3],
                    r[3],
                    r[4],
                    r[3] if r[4] == "pending" else None,
                    r[5],
                    r[6],
                    r[7],
                    r[8],
                    r[9],
                    r[10],
                )
                for i, r in enumerate(rows)
            ),
        )
        conn.executemany(
            "INSERT INTO event_bodies (row_id, body) VALUES (?, ?)",
            ((i + 1, r[2]) for i, r in enumerate(rows)),
        )
        conn.executemany(
            "INSERT INTO delivery_ledger (batch_id, account_id, environment, records, event_ids,"
            " status, outcome, latency_ms, summary, at)"
            " VALUES (?, ?, ?, ?, ?, '200', 'delivered', 80.0, 'processed', ?)",
            ((e[0], e[1], e[2], e[3], json.dumps(e[4]), e[5]) for e in _ledger(rows)),
        )
    conn.execute("ANALYZE")
    conn.close()


def _fill_postgres(url: str, schema: str, rows: list[tuple[Any, ...]]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        table = sql.SQL("{}.events").format(sql.Identifier(schema))
        with conn.cursor().copy(
            sql.SQL(
                "COPY {} (event_id, environment, body, received_at, queued_at, state, due_at,"
                " attempts, reason, settled_at, app_user_id, event_type, transaction_id)"
                " FROM STDIN"
            ).format(table)
        ) as copy:
            for r in rows:
                copy.write_row((r[0], r[1], r[2], r[3], r[3], r[4],
                                r[3] if r[4] == "pending" else None, r[5], r[6], r[7], r[8],
                                r[9], r[10]))  # fmt: skip
        conn.cursor().executemany(
            sql.SQL(
                "INSERT INTO {}.delivery_ledger (batch_id, account_id, environment, records,"
                " event_ids, status, outcome, latency_ms, summary, at)"
                " VALUES (%s, %s, %s, %s, %s, '200', 'delivered', 80.0, 'processed', %s)"
            ).format(sql.Identifier(schema)),
            _ledger(rows),
        )
        # What autovacuum does on a live table: statistics, and the visibility map that lets
        # counts read the index alone.
        for table_name in ("events", "delivery_ledger"):
            name = sql.Identifier(schema, table_name)
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(name))


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[max(0, int(len(ordered) * 0.99 + 0.5) - 1)] * 1000, 2)


async def _time(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    for _ in range(min(5, n)):  # warm caches and prepared statements
        await call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return samples


async def dashboard_figures(tmp: Path, *, events: int, requests: int, outbox: str | None) -> dict:
    """Fill an outbox with ``events`` events, then time each page and its queries alone."""
    now = time.time()
    schema = f"rc_bench_dash_{uuid.uuid4().hex[:8]}"
    if outbox and outbox.startswith("postgres"):
        url = f"{outbox}{'&' if '?' in outbox else '?'}schema={schema}"
    else:
        url = f"sqlite:///{tmp / 'dashboard.db'}"
    config = Config(
        clevertap=CleverTapConfig(
            account_id=PROD,
            passcode=Secret("unused"),
            base_url="http://127.0.0.1:9",
            sandbox_account_id=SANDBOX,
            sandbox_passcode=Secret("unused"),
        ),
        outbox=OutboxConfig(url=url),
        admin=AdminConfig(token=Secret(TOKEN)),
    )
    rows = _rows(events, now)
    engine = Engine(config)
    await engine.outbox.open()  # the schema; the engine itself is not started (no uploads)
    try:
        fill_started = time.perf_counter()
        if url.startswith("sqlite"):
            await engine.outbox.close()
            _fill_sqlite(tmp / "dashboard.db", rows)
            engine = Engine(config)
            await engine.outbox.open()
        else:
            assert outbox is not None
            _fill_postgres(outbox, schema, rows)
        fill_s = time.perf_counter() - fill_started
        figures = await _measure(engine, rows, now, requests)
    finally:
        await engine.outbox.close()
        if not url.startswith("sqlite"):
            import psycopg
            from psycopg import sql

            assert outbox is not None
            with psycopg.connect(outbox, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    slowest = max(
        (k for k in figures if k.endswith("_p99_ms") and "_query_" not in k and k != MEDIAN),
        key=lambda k: figures[k],
    )
    return {
        "events": events,
        "p99_ms": figures[slowest],
        "query_p99_ms": figures[slowest.replace("_p99_ms", "_query_p99_ms")],
        "slowest_page": slowest.removesuffix("_p99_ms"),
        "fill_s": round(fill_s, 1),
        **figures,
    }


async def _measure(
    engine: Engine, rows: list[tuple[Any, ...]], now: float, n: int
) -> dict[str, float]:
    outbox = engine.outbox
    middle = len(rows) // 2
    while rows[middle][4] != "delivered":
        middle += 1
    user = rows[middle][8]
    first = await outbox.event_feed(FeedQuery(limit=50))
    second_page = first[-1].row_id
    # The first overview of a window reads it whole; later ones slide (WindowCache).
    t0 = time.perf_counter()
    await outbox.window_counts(since=now - WEEK_S)
    cold_7d_ms = round((time.perf_counter() - t0) * 1000, 2)

    ceiling_cache = WindowCache(outbox)

    async def overview_queries(length_s: float) -> None:
        # The page's reads: the sliding window counts (a few small ranges once warm), the
        # queue depths and the window's ledger entries.
        now = time.time()
        await ceiling_cache.counts(length_s, now=now)
        await outbox.depths()
        await outbox.uploads_since(since=now - length_s, limit=10_000)

    # The overview page reads queue depths through the engine's snapshot (at most 2 s old, as
    # /metrics does); its ceiling reads them every time.
    pages: dict[str, tuple[str, Callable[[], Awaitable[Any]]]] = {
        "overview_1h": ("/ui/overview/live?w=1h", lambda: overview_queries(3600.0)),
        "overview_7d": ("/ui/overview/live?w=7d", lambda: overview_queries(WEEK_S)),
        "feed": ("/ui/events", lambda: outbox.event_feed(FeedQuery())),
        "feed_page_2": (
            f"/ui/events?before={second_page}",
            lambda: outbox.event_feed(FeedQuery(before=second_page)),
        ),
        "feed_user": (
            f"/ui/events?user={user}",
            lambda: outbox.event_feed(FeedQuery(app_user_id=user)),
        ),
        "feed_type": (
            "/ui/events?type=CANCELLATION",
            lambda: outbox.event_feed(FeedQuery(event_type="CANCELLATION")),
        ),
        "feed_dead": (
            "/ui/events?outcome=dead",
            lambda: outbox.event_feed(FeedQuery(state="dead")),
        ),
        "feed_leased": (  # none are: the whole backlog is read to find that out
            "/ui/events?outcome=leased",
            lambda: outbox.event_feed(FeedQuery(state="leased")),
        ),
        "feed_account": (
            f"/ui/events?account={SANDBOX}",
            lambda: outbox.event_feed(FeedQuery(environments=("SANDBOX",))),
        ),
        "event": (f"/ui/events/{middle + 1}", lambda: outbox.event_detail(middle + 1)),
        "dead_letters": ("/ui/dead", lambda: outbox.dead_letters(limit=500)),
    }
    figures: dict[str, float] = {"overview_7d_first_read_ms": cold_7d_ms}
    app = with_dashboard(engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench.test"
    ) as client:
        assert (await client.post("/ui/login", data={"token": TOKEN})).status_code == 303
        for name, (path, queries) in pages.items():
            response = await client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            assert re.search(r"<(dl|table)", response.text), path

            async def get(path: str = path) -> None:
                (await client.get(path)).raise_for_status()

            figures[f"{name}_p99_ms"] = _p99(await _time(get, n))
            figures[f"{name}_query_p99_ms"] = _p99(await _time(queries, n))
    pages_p99 = [v for k, v in figures.items() if k.endswith("_p99_ms") and "_query_" not in k]
    figures[MEDIAN] = round(statistics.median(pages_p99), 2)
    return figures
