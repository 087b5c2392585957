"""The PostgreSQL outbox against a real database: what only a shared, multi-instance queue needs.

Behaviour every backend shares is covered by the parametrised suite beside this file.

These tests exist only when ``RC_CLEVERTAP_TEST_POSTGRES_URL`` names a database (``.ci/run``
sets it).  Without it pytest collects nothing from this module (``__test__`` is false), so a run
without PostgreSQL reports no skipped tests instead of passing ones that never ran.  Each test
works in its own throwaway schema, dropped afterwards, so several runs can share the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from outbox_helpers import mark_dead, mark_delivered, mark_skipped
from psycopg import sql

from integration.outbox._pg_migrations import MIGRATIONS, qualify
from integration.outbox.postgres import PostgresOutbox, PostgresOutboxError

URL = os.environ.get("RC_CLEVERTAP_TEST_POSTGRES_URL", "")
__test__ = bool(URL)


@pytest.fixture
async def instances(schema: str) -> AsyncIterator[list[PostgresOutbox]]:
    """Two opened outboxes on the same schema, each with its own pool, like two processes."""
    outboxes = [PostgresOutbox(URL, schema=schema, max_size=3) for _ in range(2)]
    for outbox in outboxes:
        await outbox.open()
    yield outboxes
    for outbox in outboxes:
        await outbox.close()


async def fetch(schema: str, query: str) -> list[tuple[object, ...]]:
    """Run ``query`` (``{s}`` is the schema) on a connection of its own."""
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        cur = await conn.execute(sql.SQL(query).format(s=sql.Identifier(schema)))
        return await cur.fetchall()


async def enqueue_many(outbox: PostgresOutbox, n: int, *, env: str = "PRODUCTION") -> None:
    for i in range(n):
        assert await outbox.enqueue(f"{env}-{i}", env, b"{}", now=float(i))


# -- schema and migrations ---------------------------------------------------------------------


async def test_open_records_the_schema_version(instances: list[PostgresOutbox]) -> None:
    """After open the migrations table lists each version exactly once."""
    rows = await fetch(
        instances[0].schema, "SELECT version FROM {s}.schema_migrations ORDER BY version"
    )
    assert rows == [(m.version,) for m in MIGRATIONS]


async def test_concurrent_opens_migrate_once(schema: str) -> None:
    """Four instances opening a fresh schema at once all succeed and migrate it once."""
    outboxes = [PostgresOutbox(URL, schema=schema, min_size=1, max_size=1) for _ in range(4)]
    await asyncio.gather(*(o.open() for o in outboxes))
    try:
        rows = await fetch(schema, "SELECT version FROM {s}.schema_migrations ORDER BY version")
        assert rows == [(m.version,) for m in MIGRATIONS]
    finally:
        await asyncio.gather(*(o.close() for o in outboxes))


async def test_reopening_keeps_the_data(schema: str) -> None:
    """Opening an already migrated schema changes nothing and keeps queued rows."""
    async with PostgresOutbox(URL, schema=schema, max_size=1) as first:
        assert await first.enqueue("e1", "PRODUCTION", b"{}", now=1.0)
    async with PostgresOutbox(URL, schema=schema, max_size=1) as second:
        assert (await second.stats()).pending == 1
        assert not await second.enqueue("e1", "PRODUCTION", b"{}", now=2.0)


async def test_a_version_1_schema_is_migrated_and_its_rows_queued_since_received(
    schema: str,
) -> None:
    """A schema left at version 1 gets queued_at on open; its rows read it as received_at."""
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        await conn.execute(qualify(schema, "CREATE SCHEMA {s}"))
        await conn.execute(
            qualify(
                schema,
                "CREATE TABLE {s}.schema_migrations (version integer PRIMARY KEY,"
                " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            )
        )
        for statement in MIGRATIONS[0].statements:
            await conn.execute(qualify(schema, statement))
        await conn.execute(
            qualify(schema, "INSERT INTO {s}.schema_migrations VALUES (1, 'v1', now())")
        )
        await conn.execute(
            qualify(
                schema,
                "INSERT INTO {s}.events (event_id, environment, body, received_at, due_at)"
                " VALUES ('old', 'PRODUCTION', '\\x7b7d', 5.0, 5.0)",
            )
        )
    async with PostgresOutbox(URL, schema=schema, max_size=1) as outbox:
        lease = await outbox.lease("PRODUCTION", 10, now=10.0, lease_s=30.0)
        assert lease is not None
        assert [(e.event_id, e.received_at, e.queued_at) for e in lease.events] == [
            ("old", 5.0, 5.0)
        ]
    rows = await fetch(schema, "SELECT version FROM {s}.schema_migrations ORDER BY version")
    assert rows == [(m.version,) for m in MIGRATIONS]


async def test_a_newer_schema_is_refused(schema: str) -> None:
    """A schema migrated by a newer release makes open fail with an upgrade hint."""
    async with PostgresOutbox(URL, schema=schema, max_size=1):
        pass
    await fetch(schema, "INSERT INTO {s}.schema_migrations VALUES (99, 'future') RETURNING 1")
    outbox = PostgresOutbox(URL, schema=schema, max_size=1)
    with pytest.raises(PostgresOutboxError, match="upgrade"):
        await outbox.open()
    await outbox.close()


# -- intake --------------------------------------------------------------------------------------


async def test_concurrent_enqueues_share_transactions(instances: list[PostgresOutbox]) -> None:
    """Two hundred concurrent enqueues are all stored, in far fewer transactions than rows."""
    outbox = instances[0]
    results = await asyncio.gather(
        *(outbox.enqueue(f"e{i}", "PRODUCTION", b"{}", now=float(i)) for i in range(200))
    )
    assert all(results)
    # Rows written by one transaction share its id (xmin); read on a fresh connection, so
    # what enqueue acknowledged is committed, not just visible inside a session.
    rows = await fetch(outbox.schema, "SELECT count(*), count(DISTINCT xmin::text) FROM {s}.events")
    stored, transactions = rows[0]
    assert stored == 200
    assert isinstance(transactions, int)
    assert transactions <= 20
    assert outbox.commits == transactions


async def test_duplicates_across_instances_are_acknowledged_once(
    instances: list[PostgresOutbox],
) -> None:
    """The same event ids sent to two instances at once are stored and reported new once."""
    calls = [
        outbox.enqueue(f"e{i}", "PRODUCTION", b"{}", now=0.0)
        for i in range(100)
        for outbox in instances
    ]
    results = await asyncio.gather(*calls)
    assert sum(results) == 100
    rows = await fetch(instances[0].schema, "SELECT count(*) FROM {s}.events")
    assert rows == [(100,)]


async def test_an_unstorable_event_id_fails_alone(instances: list[PostgresOutbox]) -> None:
    """An event id PostgreSQL cannot hold fails its own call, not the group it arrived with."""
    outbox = instances[0]
    results = await asyncio.gather(
        outbox.enqueue("ok-1", "PRODUCTION", b"{}", now=1.0),
        outbox.enqueue("bad\x00id", "PRODUCTION", b"{}", now=1.0),
        outbox.enqueue("bad\ud800id", "PRODUCTION", b"{}", now=1.0),
        outbox.enqueue("ok-2", "PRODUCTION", b"{}", now=1.0),
        return_exceptions=True,
    )
    assert results[0] is True
    assert results[3] is True
    assert isinstance(results[1], PostgresOutboxError)
    assert isinstance(results[2], PostgresOutboxError)
    assert (await outbox.stats()).pending == 2


async def test_reasons_that_quote_odd_text_are_stored(instances: list[PostgresOutbox]) -> None:
    """Reasons with NUL or unpaired surrogates are stored with those characters replaced."""
    outbox = instances[0]
    await enqueue_many(outbox, 1)
    lease = await outbox.lease("PRODUCTION", 10, now=100.0, lease_s=30.0)
    assert lease is not None
    assert await mark_dead(outbox, lease, lease.events[0].row_id, "bad\x00\ud800", now=101.0) == 1
    await outbox.quarantine(b"\x00", "type 'X\x00' unknown", now=102.0)
    [dead] = await outbox.dead_letters()
    [kept] = await outbox.quarantined()
    assert dead.reason == "bad\ufffd?"
    assert kept.reason == "type 'X\ufffd' unknown"
    assert kept.body == b"\x00"


async def test_synchronous_commit_off_is_overridden(schema: str) -> None:
    """A connection default of synchronous_commit=off is turned back on for the outbox."""
    url = URL + ("&" if "?" in URL else "?") + "options=-csynchronous_commit%3Doff"
    async with (
        PostgresOutbox(url, schema=schema, max_size=1) as outbox,
        outbox._pool.connection() as conn,
    ):
        cur = await conn.execute("SHOW synchronous_commit")
        assert await cur.fetchone() == ("on",)


# -- leasing across instances ------------------------------------------------------------------


async def test_two_instances_never_lease_the_same_row(instances: list[PostgresOutbox]) -> None:
    """Instances leasing concurrently split the rows between them without overlap."""
    await enqueue_many(instances[0], 120)

    async def drain(outbox: PostgresOutbox) -> list[int]:
        taken: list[int] = []
        while (lease := await outbox.lease("PRODUCTION", 7, now=500.0, lease_s=60.0)) is not None:
            taken.extend(e.row_id for e in lease.events)
        return taken

    taken = await asyncio.gather(*(drain(o) for o in instances for _ in range(3)))
    every = [row_id for part in taken for row_id in part]
    assert len(every) == 120
    assert len(set(every)) == 120


async def test_lease_skips_rows_locked_by_another_transaction(
    instances: list[PostgresOutbox],
) -> None:
    """A row locked by another transaction is skipped, not waited for."""
    outbox = instances[0]
    await enqueue_many(outbox, 3)
    async with await psycopg.AsyncConnection.connect(URL) as blocker:
        await blocker.execute(
            sql.SQL(
                "SELECT row_id FROM {}.events WHERE event_id = 'PRODUCTION-0' FOR UPDATE"
            ).format(sql.Identifier(outbox.schema))
        )
        lease = await asyncio.wait_for(
            outbox.lease("PRODUCTION", 10, now=100.0, lease_s=30.0), timeout=10
        )
        await blocker.rollback()
    assert lease is not None
    assert [e.event_id for e in lease.events] == ["PRODUCTION-1", "PRODUCTION-2"]


async def test_expired_lease_comes_back_to_another_instance(
    instances: list[PostgresOutbox],
) -> None:
    """Rows leased by a dead instance are leased again elsewhere once the lease expires."""
    first, second = instances
    await enqueue_many(first, 3)
    lease = await first.lease("PRODUCTION", 10, now=100.0, lease_s=30.0)
    assert lease is not None
    assert await second.lease("PRODUCTION", 10, now=129.0, lease_s=30.0) is None
    again = await second.lease("PRODUCTION", 10, now=130.0, lease_s=30.0)
    assert again is not None
    assert [e.row_id for e in again.events] == [e.row_id for e in lease.events]
    assert again.token != lease.token


async def test_stale_lease_token_settles_nothing(instances: list[PostgresOutbox]) -> None:
    """A worker whose expired rows were re-leased elsewhere cannot settle or release them."""
    first, second = instances
    await enqueue_many(first, 2)
    stale = await first.lease("PRODUCTION", 10, now=100.0, lease_s=30.0)
    fresh = await second.lease("PRODUCTION", 10, now=200.0, lease_s=30.0)
    assert stale is not None
    assert fresh is not None
    ids = [e.row_id for e in stale.events]
    assert await mark_delivered(first, stale, ids, now=201.0) == 0
    assert await mark_dead(first, stale, ids[0], "late", now=201.0) == 0
    assert await mark_skipped(first, stale, ids[0], "late", now=201.0) == 0
    assert await first.release(stale, ids, retry_at=300.0, error="late", count=True) == 0
    assert await mark_delivered(second, fresh, ids, now=202.0) == 2
    stats = await first.stats()
    assert (stats.delivered, stats.dead, stats.pending, stats.leased) == (2, 0, 0, 0)


async def test_expired_lease_nobody_took_can_still_settle(instances: list[PostgresOutbox]) -> None:
    """A slow worker past its expiry still settles rows no other worker has taken."""
    outbox = instances[0]
    await enqueue_many(outbox, 1)
    lease = await outbox.lease("PRODUCTION", 10, now=100.0, lease_s=30.0)
    assert lease is not None
    assert await mark_delivered(outbox, lease, [lease.events[0].row_id], now=500.0) == 1


async def test_lease_is_per_environment_and_oldest_first(instances: list[PostgresOutbox]) -> None:
    """A lease holds only its environment's rows, ordered by receipt time not insertion."""
    outbox = instances[0]
    assert await outbox.enqueue("late", "PRODUCTION", b"{}", now=20.0)
    assert await outbox.enqueue("sandbox", "SANDBOX", b"{}", now=5.0)
    assert await outbox.enqueue("early", "PRODUCTION", b"{}", now=10.0)
    lease = await outbox.lease("PRODUCTION", 10, now=100.0, lease_s=30.0)
    assert lease is not None
    assert [e.event_id for e in lease.events] == ["early", "late"]
    assert lease.environment == "PRODUCTION"


# -- bounds and secrets ------------------------------------------------------------------------


async def test_quarantine_keeps_only_the_newest_up_to_the_cap(schema: str) -> None:
    """Past the cap the oldest quarantined bodies are dropped."""
    async with PostgresOutbox(URL, schema=schema, max_size=1, quarantine_cap=3) as outbox:
        for i in range(5):
            await outbox.quarantine(f"body {i}".encode(), "not json", now=float(i))
        kept = await outbox.quarantined()
    assert [q.body for q in kept] == [b"body 4", b"body 3", b"body 2"]


async def test_logs_never_show_the_password(schema: str, caplog: pytest.LogCaptureFixture) -> None:
    """Opening with a password in the URL logs the database with the password masked."""
    secret = "hunter2-" + uuid.uuid4().hex
    parts = urlsplit(URL)
    netloc = f"{parts.username or ''}:{secret}@{parts.netloc.rpartition('@')[2]}"
    url = urlunsplit(parts._replace(netloc=netloc))
    caplog.set_level(logging.DEBUG)
    async with PostgresOutbox(url, schema=schema, max_size=1) as outbox:
        assert secret not in repr(outbox)
    assert "***" in caplog.text
    assert secret not in caplog.text


async def test_a_request_waits_for_a_pooled_connection_no_longer_than_pool_timeout(
    schema: str,
) -> None:
    """With every pooled connection busy, a request fails after pool_timeout (not the 10 s
    connect timeout) and health() reports the failure."""
    async with PostgresOutbox(URL, schema=schema, max_size=1, pool_timeout=0.2) as outbox:
        async with outbox._pool.connection():  # the only connection, held
            async with asyncio.timeout(5.0):
                with pytest.raises(PostgresOutboxError):
                    await outbox.enqueue("e1", "PRODUCTION", b"{}", now=1.0)
        assert not outbox.health().writable
        await outbox.probe_write()
        assert outbox.health().writable
