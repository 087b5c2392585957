"""Cheap probes: ``/healthz`` from held state, ``/metrics`` depths from indexes off the commit
path, a full disk seen by ``/healthz``, and the bearer token on ``/metrics``."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from engine_helpers import AUTH, make_config, webhook

from integration.config import Config, MetricsConfig, Secret
from integration.engine import Engine
from integration.outbox import SQLiteOutbox, SQLiteOutboxError


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine whose outbox is open and intake open, with no dispatcher running: every
    statement on the outbox's connections comes from the requests the test makes."""
    built = Engine(make_config(tmp_path))
    await built.outbox.open()
    built.receiver.open_intake()
    try:
        yield built
    finally:
        await built.outbox.close()


def http(engine: Engine) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=engine.app), base_url="http://e")


def sqlite_outbox(engine: Engine) -> SQLiteOutbox:
    assert isinstance(engine.outbox, SQLiteOutbox)
    return engine.outbox


def traced(conn: sqlite3.Connection | None) -> list[str]:
    assert conn is not None
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    return statements


async def test_healthz_runs_no_sql(engine: Engine) -> None:
    """A hundred /healthz probes run not one SQL statement."""
    async with http(engine) as client:
        await client.post(
            "/webhooks/revenuecat", content=webhook("e1"), headers={"Authorization": AUTH}
        )
        statements = traced(sqlite_outbox(engine)._conn)
        for _ in range(100):
            assert (await client.get("/healthz")).status_code == 200
    assert statements == []


async def test_metrics_depths_use_indexes_off_the_commit_path(engine: Engine) -> None:
    """Scrapes read queue depths on the reader connection only, by index (no table scan),
    and scrapes within a few seconds share one read."""
    outbox = sqlite_outbox(engine)
    await outbox.depths()  # opens the reader connection
    committing = traced(outbox._conn)
    reading = traced(outbox._reader_conn)
    async with http(engine) as client:
        for _ in range(20):
            text = (await client.get("/metrics")).text
    assert 'rc_clevertap_queue_depth{state="pending"} 0' in text
    assert committing == []
    assert 1 <= len(reading) <= 3  # one snapshot: the counts and one seek per environment
    plan_conn = sqlite3.connect(outbox.path)
    try:
        for statement in reading:
            plan = plan_conn.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
            assert all("SCAN" not in str(step[3]) for step in plan), plan
    finally:
        plan_conn.close()


async def test_depths_count_live_and_dead_rows(engine: Engine) -> None:
    """depths() counts pending, leased and dead rows and the oldest waiting arrival."""
    outbox = engine.outbox
    for n in range(3):
        await outbox.enqueue(f"e{n}", "PRODUCTION", webhook(f"e{n}"), now=10.0 + n)
    lease = await outbox.lease("PRODUCTION", 1, now=20.0, lease_s=60.0)
    assert lease is not None
    await outbox.settle(lease, dead=[(lease.events[0].row_id, "bad")], now=21.0)
    await outbox.lease("PRODUCTION", 1, now=22.0, lease_s=60.0)
    depths = await outbox.depths()
    assert (depths.pending, depths.leased, depths.dead) == (1, 1, 1)
    assert depths.oldest_pending_at == 11.0


async def test_healthz_is_503_while_writes_fail_and_ok_once_one_commits(engine: Engine) -> None:
    """With the database full, a webhook gets 503 and /healthz says 503 until a write commits
    again (the engine's write probe), then 200."""
    outbox = sqlite_outbox(engine)
    conn = outbox._conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL from the next page on
    async with http(engine) as client:
        body = webhook("e1", note="x" * 20_000)
        answer = await client.post(
            "/webhooks/revenuecat", content=body, headers={"Authorization": AUTH}
        )
        assert answer.status_code == 503
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (503, {"status": "outbox not writable"})
        assert "disk is full" in str(outbox.health().reason)
        conn.execute("PRAGMA max_page_count = 1073741823")
        await outbox.probe_write()
        assert (await client.get("/healthz")).status_code == 200


async def test_a_full_database_error_names_the_disk(engine: Engine) -> None:
    """The error for a full database says which disk has no space left."""
    outbox = sqlite_outbox(engine)
    assert outbox._conn is not None
    (pages,) = outbox._conn.execute("PRAGMA page_count").fetchone()
    outbox._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(SQLiteOutboxError, match="no space left on the disk holding"):
        await outbox.enqueue("e1", "PRODUCTION", b"x" * 50_000, now=1.0)


def with_token(config: Config) -> Config:
    return dataclasses.replace(config, metrics=MetricsConfig(token=Secret("metrics-s3cr3t")))


async def test_metrics_token_guards_metrics_only(tmp_path: Path) -> None:
    """With metrics.token set, /metrics is 401 without the bearer token and 200 with it;
    /healthz stays open."""
    engine = Engine(with_token(make_config(tmp_path)))
    await engine.outbox.open()
    engine.receiver.open_intake()
    try:
        async with http(engine) as client:
            refused = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
            assert refused.status_code == 401
            assert "metrics-s3cr3t" not in refused.text
            assert (await client.get("/metrics")).status_code == 401
            good = await client.get("/metrics", headers={"Authorization": "Bearer metrics-s3cr3t"})
            assert good.status_code == 200
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await engine.outbox.close()
