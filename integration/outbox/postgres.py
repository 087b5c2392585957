"""The PostgreSQL outbox: one durable queue that several engine instances share.

Selected by ``[outbox] url = "postgresql://..."``.  Each instance keeps its own connection pool
(psycopg 3, :class:`psycopg_pool.AsyncConnectionPool`); everything they share lives in one
schema (``rc_clevertap`` by default)::

    events            one row per RevenueCat event id (the unique key deduplicates across
                      instances); state, due time or lease expiry, lease token, attempts
    quarantine        authenticated bodies that were not valid events, capped
    delivery_ledger   one row per upload attempt
    schema_migrations versions applied, see ``_pg_migrations.py``

How the shared queue stays safe:

- ``enqueue`` inserts with ``ON CONFLICT (event_id) DO NOTHING``: a RevenueCat retry that lands
  on another instance is acknowledged and not stored twice.  Concurrent calls in one process
  share one transaction (``_group_commit.py``), committed with ``synchronous_commit`` on,
  so the WAL is flushed before any caller answers 200.
- ``lease`` picks due rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and marks them leased
  with a fresh token and an expiry in the same statement: two instances never take the same
  row, and a dead instance's rows become due again when the lease expires.
- Every settling call names the lease token.  A worker whose lease expired and whose rows
  another worker re-leased settles nothing (the call reports 0 for those rows).
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from integration._exceptions import PostgresOutboxError
from integration.outbox import _pg_conninfo as conninfo
from integration.outbox import _pg_queries as q
from integration.outbox._group_commit import GroupCommitter, PendingRow
from integration.outbox._lifecycle import Lifecycle
from integration.outbox._pg_migrations import SchemaTooNew, migrate, qualify
from integration.outbox.base import (
    ENVIRONMENTS,
    MAX_SKIP_REASONS,
    DeadLetter,
    DeliveryAttempt,
    EventDetail,
    EventProperties,
    EventRow,
    FeedQuery,
    Lease,
    OutboxEvent,
    OutboxHealth,
    OutboxStats,
    QuarantinedBody,
    QueueDepths,
    Requeue,
    RowState,
    UploadSample,
    WindowCounts,
    WriteHealth,
    budget_params,
    event_properties_from,
)

logger = logging.getLogger(__name__)

DEFAULT_SCHEMA = "rc_clevertap"
# Unquoted PostgreSQL identifiers: lower case, at most 63 bytes.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresOutbox(Lifecycle):
    """A durable outbox in PostgreSQL, shared safely by several engine instances.

    Example::

        outbox = PostgresOutbox("postgresql://forwarder:secret@db.internal/rc")
        await outbox.open()  # creates or migrates the schema
        try:
            await outbox.enqueue(event_id, "PRODUCTION", body, now=time.time())
        finally:
            await outbox.close()

    Parameters:
        url: a ``postgresql://`` URL (or a libpq key/value string).  It may name the schema
            as ``?schema=...``, an rc-clevertap parameter taken off before connecting.
        schema: the schema holding the tables, created when missing; by default the URL's
            ``schema`` parameter, else ``rc_clevertap``.  Instances that share a queue must
            name the same schema; a throwaway schema isolates a test.
        min_size, max_size: connections this instance's pool keeps and may open.
        quarantine_cap: invalid bodies kept; the oldest are dropped past it.
        group_commit_max: most webhooks one enqueue transaction carries.
        connect_timeout: seconds ``open`` waits to connect.
        pool_timeout: seconds a request waits for a pooled connection before it fails (and
            the webhook is answered 503), well below RevenueCat's 60 s (revenuecat.md §4.1).
        create: ``False`` makes ``open`` fail when the schema holds no outbox yet, instead of
            creating one (the operator commands: a mistyped schema is an error, not zeros).
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        quarantine_cap: int = 10_000,
        group_commit_max: int = 500,
        connect_timeout: float = 10.0,
        pool_timeout: float = 5.0,
        create: bool = True,
    ) -> None:
        url, url_schema = conninfo.pop_schema(url)
        if schema is None:
            schema = DEFAULT_SCHEMA if url_schema is None else url_schema
        try:
            self._password = conninfo.password_of(url)
        except conninfo.ConninfoError as exc:
            raise PostgresOutboxError(str(exc)) from None
        if not _SCHEMA_NAME.fullmatch(schema):
            raise PostgresOutboxError(
                f"schema must be a lower-case PostgreSQL identifier, got {schema!r}"
            )
        if not 1 <= min_size <= max_size:
            raise PostgresOutboxError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")
        if quarantine_cap < 1:
            raise PostgresOutboxError(f"quarantine_cap must be at least 1, got {quarantine_cap}")
        if group_commit_max < 1:
            raise PostgresOutboxError(
                f"group_commit_max must be at least 1, got {group_commit_max}"
            )
        if not connect_timeout > 0:
            raise PostgresOutboxError(f"connect_timeout must be positive, got {connect_timeout}")
        if not pool_timeout > 0:
            raise PostgresOutboxError(f"pool_timeout must be positive, got {pool_timeout}")
        self._url = url
        self.schema = schema
        self.redacted_url = conninfo.redact(url)
        self._quarantine_cap = quarantine_cap
        self._timeout = connect_timeout
        self._create = create
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            url,
            kwargs={"autocommit": True, "application_name": "rc-clevertap"},
            min_size=min_size,
            max_size=max_size,
            open=False,
            configure=_configure_connection,
            check=AsyncConnectionPool.check_connection,
            name=f"rc-clevertap-outbox-{schema}",
            timeout=pool_timeout,
        )
        self._health = WriteHealth()
        self._committer = GroupCommitter(self._insert_rows, max_batch=group_commit_max)
        self.commits = 0  # enqueue transactions committed by this instance, for group-commit checks

    def __repr__(self) -> str:
        return f"PostgresOutbox(url={self.redacted_url!r}, schema={self.schema!r})"

    # -- life cycle --------------------------------------------------------------------------

    _error = PostgresOutboxError

    async def _open(self) -> None:
        """Connect, then create or migrate the schema; safe from several instances at once."""
        # Migrate over one direct connection first: a wrong host or credentials fail here at
        # once with libpq's own reason, instead of as a pool time-out.
        with self._translate("connect to"):
            conn = await AsyncConnection.connect(
                self._url,
                autocommit=True,
                application_name="rc-clevertap",
                connect_timeout=max(2, round(self._timeout)),  # libpq's minimum is 2 s
            )
            async with conn:
                if not self._create:
                    await self._require_schema(conn)
                applied = await migrate(conn, self.schema)
                cur = await conn.execute("SHOW fsync")
                fsync = await cur.fetchone()
        try:
            with self._translate("connect to"):
                await self._pool.open(wait=True, timeout=self._timeout)
        except BaseException:
            await self._pool.close()
            raise
        if fsync is not None and fsync[0] == "off":
            logger.warning(
                "PostgreSQL at %s runs with fsync=off: commits are not durable", self.redacted_url
            )
        logger.info(
            "outbox open at %s, schema %s%s",
            self.redacted_url,
            self.schema,
            f" (applied migrations {applied})" if applied else "",
        )

    async def _require_schema(self, conn: AsyncConnection[TupleRow]) -> None:
        cur = await conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.schema_migrations",))
        row = await cur.fetchone()
        if row is None or row[0] is None:
            raise PostgresOutboxError(
                f"no outbox in schema {self.schema} at {self.redacted_url}: check the URL and "
                "schema, or run rc-clevertap serve once to create it"
            )

    async def _close(self) -> None:
        """Finish pending group commits, then close this instance's connections."""
        await self._committer.drain()
        await self._pool.close()

    # -- intake ------------------------------------------------------------------------------

    async def enqueue(
        self,
        event_id: str,
        environment: str,
        body: bytes,
        *,
        now: float,
        source: str = "webhook",
        app_user_id: str | None = None,
        event_type: str | None = None,
        transaction_id: str | None = None,
        route: str = "default",
        mapped: bytes | None = None,
        mapped_fp: str | None = None,
    ) -> bool:
        """Store one webhook durably; ``False`` when ``event_id`` was already stored."""
        self._require_open()
        # Checked here, alone: a value PostgreSQL cannot store would otherwise fail the whole
        # group commit, and every webhook sharing it, each time RevenueCat retried it.
        for name, value in (("event id", event_id), ("environment", environment)):
            if _storable(value) != value:
                raise PostgresOutboxError(
                    f"{name} {value!r} cannot be stored: NUL or unpaired surrogate characters"
                )
        # The lookup columns are the event's own text, which may hold what PostgreSQL cannot
        # store: kept cleaned (they serve lookups; the body keeps the exact values).
        row = PendingRow(
            event_id, environment, bytes(body), now, source, _storable_or_none(app_user_id),
            _storable_or_none(event_type), _storable_or_none(transaction_id), route, mapped,
            mapped_fp,
        )  # fmt: skip
        return await self._committer.submit(row)

    async def _insert_rows(self, rows: Sequence[PendingRow]) -> set[str]:
        params = (
            [r.event_id for r in rows],
            [r.environment for r in rows],
            [r.body for r in rows],
            [r.received_at for r in rows],
            [r.source for r in rows],
            [r.app_user_id for r in rows],
            [r.event_type for r in rows],
            [r.transaction_id for r in rows],
            [r.route for r in rows],
            [r.mapped for r in rows],
            [r.mapped_fp for r in rows],
        )
        # One statement in autocommit mode is one transaction: a single commit for the batch.
        async with self._connection("store events in", write=True) as conn:
            cur = await conn.execute(self._sql(q.INSERT_EVENTS), params)
            inserted = {str(row[0]) for row in await cur.fetchall()}
        self.commits += 1
        return inserted

    async def quarantine(self, body: bytes, reason: str, *, now: float) -> None:
        """Keep an authenticated but invalid body, bounded (oldest dropped past the cap)."""
        self._require_open()
        async with self._connection("quarantine a body in", write=True) as conn, conn.transaction():
            params = (_storable(reason), bytes(body), now)
            await conn.execute(self._sql(q.INSERT_QUARANTINE), params)
            await conn.execute(self._sql(q.TRIM_QUARANTINE), (self._quarantine_cap,))

    # -- leasing and settling ----------------------------------------------------------------

    async def lease(
        self, environment: str, limit: int, *, now: float, lease_s: float, route: str = "default"
    ) -> Lease | None:
        """Take up to ``limit`` due rows (pending and due, or leased and expired), oldest first,
        live webhooks before backfilled rows (issue 18: a backfill never starves live events)."""
        self._require_open()
        if limit < 1 or lease_s <= 0:
            raise ValueError(f"need limit >= 1 and lease_s > 0, got {limit}, {lease_s}")
        token = uuid.uuid4().hex
        expires_at = now + lease_s
        params = {
            "env": environment,
            "route": route,
            "now": now,
            "limit": limit,
            "token": token,
            "expires": expires_at,
        }
        async with self._connection("lease events from") as conn:
            # Live rows first, then backfilled ones (issue 18; sources as in schema 3).
            cur = await conn.execute(self._sql(q.LEASE), {**params, "source": "webhook"})
            rows = await cur.fetchall()
            if len(rows) < limit:
                rest = {**params, "source": "backfill", "limit": limit - len(rows)}
                cur = await conn.execute(self._sql(q.LEASE), rest)
                rows += await cur.fetchall()
        if not rows:
            return None
        # RETURNING does not keep the CTE's order.
        events = sorted(
            map(q.event_from_row, rows),
            key=lambda e: (e.source != "webhook", e.received_at, e.row_id),
        )
        return Lease(token, environment, tuple(events), expires_at, route)

    async def settle(
        self,
        lease: Lease,
        *,
        delivered: Sequence[int] = (),
        skipped: Sequence[tuple[int, str]] = (),
        dead: Sequence[tuple[int, str]] = (),
        dead_tried: Sequence[tuple[int, str]] = (),
        attempt: DeliveryAttempt | None = None,
        now: float,
    ) -> int:
        """Settle rows and append ``attempt`` to the ledger in one transaction; returns how
        many rows this lease still held."""
        self._require_open()
        ids = list(delivered)
        states = [RowState.DELIVERED.value] * len(ids)
        reasons: list[str | None] = [None] * len(ids)
        tries = [0] * len(ids)
        kinds = ((RowState.SKIPPED, skipped, 0), (RowState.DEAD, dead, 0))
        for state, rows, tried in (*kinds, (RowState.DEAD, dead_tried, 1)):
            for row_id, reason in rows:
                ids.append(row_id)
                states.append(state.value)
                reasons.append(_storable(reason))
                tries.append(tried)
        if not ids and attempt is None:
            return 0
        params = {
            "ids": ids,
            "states": states,
            "reasons": reasons,
            "tries": tries,
            "now": now,
            "token": lease.token,
        }
        settled = 0
        async with self._connection("settle events in", write=True) as conn, conn.transaction():
            if ids:
                cur = await conn.execute(self._sql(q.SETTLE_EACH), params)
                settled = cur.rowcount
            if attempt is not None:
                await conn.execute(self._sql(q.INSERT_ATTEMPT), _attempt_params(attempt))
        return settled

    async def confirm_records(self, lease: Lease, confirmed: Mapping[int, Sequence[str]]) -> int:
        """Store, per row this lease holds, the record keys CleverTap confirmed so far."""
        self._require_open()
        if not confirmed:
            return 0
        params = {
            "ids": list(confirmed),
            "confirmed": [json.dumps(sorted(keys)) for keys in confirmed.values()],
            "token": lease.token,
        }
        async with self._connection("remember confirmed records in", write=True) as conn:
            cur = await conn.execute(self._sql(q.CONFIRM_RECORDS), params)
            return cur.rowcount

    async def release(
        self, lease: Lease, row_ids: Sequence[int], *, retry_at: float, error: str, count: bool
    ) -> int:
        """Give rows back as pending, due at ``retry_at``; ``count`` adds one to ``attempts``."""
        self._require_open()
        if not row_ids:
            return 0
        params = {
            "retry_at": retry_at,
            "error": _storable(error),
            "add": 1 if count else 0,
            "ids": list(row_ids),
            "token": lease.token,
        }
        async with self._connection("release events in", write=True) as conn:
            cur = await conn.execute(self._sql(q.RELEASE), params)
            return cur.rowcount

    # -- ledger and reports ------------------------------------------------------------------

    async def attempts(self, *, limit: int = 100) -> list[DeliveryAttempt]:
        """The latest ledger entries, newest first."""
        self._require_open()
        async with self._connection("read the ledger from") as conn:
            cur = await conn.execute(self._sql(q.LATEST_ATTEMPTS), (limit,))
            return [q.attempt_from_row(row) for row in await cur.fetchall()]

    async def stats(self) -> OutboxStats:
        """Counts by state and the facts ``rc-clevertap status`` shows."""
        self._require_open()
        async with self._connection("read stats from") as conn, conn.transaction():
            # One snapshot for all four reads, as a status report should be.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur = await conn.execute(self._sql(q.COUNT_BY_STATE))
            counts: dict[str, int] = {}
            oldest: list[float] = []
            for state, count, oldest_live in await cur.fetchall():
                counts[str(state)] = int(count)
                if oldest_live is not None:
                    oldest.append(float(oldest_live))
            cur = await conn.execute(self._sql(q.SKIPPED_BY_REASON))
            skipped = {str(reason): int(n) for reason, n in await cur.fetchall()}
            cur = await conn.execute(self._sql(q.COUNT_QUARANTINE))
            quarantined = await cur.fetchone()
            cur = await conn.execute(self._sql(q.LATEST_ATTEMPTS), (1,))
            last = await cur.fetchone()
        return OutboxStats(
            pending=counts.get(RowState.PENDING.value, 0),
            leased=counts.get(RowState.LEASED.value, 0),
            delivered=counts.get(RowState.DELIVERED.value, 0),
            skipped=counts.get(RowState.SKIPPED.value, 0),
            dead=counts.get(RowState.DEAD.value, 0),
            quarantined=int(quarantined[0]) if quarantined else 0,
            oldest_pending_at=min(oldest) if oldest else None,
            skipped_by_reason=skipped,
            last_attempt=q.attempt_from_row(last) if last else None,
        )

    async def depths(self) -> QueueDepths:
        """Pending, leased and dead counts from the partial indexes, on a pooled connection
        (group commits have their own): the cost follows the backlog, not retention."""
        self._require_open()
        async with self._connection("read queue depths from") as conn:
            cur = await conn.execute(self._sql(q.DEPTHS))
            counts = {str(state): int(n) for state, n in await cur.fetchall()}
            oldest: list[float] = []
            for environment in ENVIRONMENTS:
                cur = await conn.execute(self._sql(q.OLDEST_LIVE), (environment,))
                row = await cur.fetchone()
                if row is not None and row[0] is not None:
                    oldest.append(float(row[0]))
        return QueueDepths(
            pending=counts.get(RowState.PENDING.value, 0),
            leased=counts.get(RowState.LEASED.value, 0),
            dead=counts.get(RowState.DEAD.value, 0),
            oldest_pending_at=min(oldest) if oldest else None,
        )

    def health(self) -> OutboxHealth:
        """Whether the last write committed; no I/O (``/healthz`` asks on every probe)."""
        return self._health.state()

    async def probe_write(self) -> None:
        """Commit one write that changes nothing, so that :meth:`health` learns the database
        takes writes again."""
        self._require_open()
        async with self._connection("write to", write=True) as conn:
            await conn.execute(self._sql(q.PROBE_WRITE))

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Dead rows, oldest first."""
        self._require_open()
        async with self._connection("read dead letters from") as conn:
            cur = await conn.execute(self._sql(q.DEAD_LETTERS), (limit,))
            rows = await cur.fetchall()
        return [
            DeadLetter(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), r[5], r[6])
            for r in rows
        ]

    async def quarantined(self, *, limit: int = 100) -> list[QuarantinedBody]:
        """Quarantined bodies, newest first."""
        self._require_open()
        async with self._connection("read quarantine from") as conn:
            cur = await conn.execute(self._sql(q.QUARANTINED), (limit,))
            rows = await cur.fetchall()
        return [QuarantinedBody(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

    async def quarantined_by_id(self, quarantine_ids: Sequence[int]) -> list[QuarantinedBody]:
        """The quarantined bodies with these ids (those that exist), by id."""
        self._require_open()
        async with self._connection("read quarantine from") as conn:
            cur = await conn.execute(self._sql(q.QUARANTINED_BY_ID), (list(quarantine_ids),))
            rows = await cur.fetchall()
        return [QuarantinedBody(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

    # -- operator actions --------------------------------------------------------------------

    async def requeue_quarantined(self, rows: Sequence[Requeue], *, now: float) -> int:
        """Move quarantined bodies into the queue in one transaction; returns how many moved."""
        self._require_open()
        moved = 0
        async with (
            self._connection("requeue quarantined bodies in", write=True) as conn,
            conn.transaction(),
        ):
            for r in rows:
                params = {
                    "qid": r.quarantine_id,
                    "event_id": _storable(r.event_id),
                    "env": r.environment,
                    "now": now,
                    "user": _storable_or_none(r.app_user_id),
                    "type": _storable_or_none(r.event_type),
                    "txn": _storable_or_none(r.transaction_id),
                    "route": r.route,
                }
                await conn.execute(self._sql(q.REQUEUE_QUARANTINED), params)
                cur = await conn.execute(self._sql(q.DELETE_QUARANTINED), ([r.quarantine_id],))
                moved += cur.rowcount
        return moved

    async def discard_quarantined(self, quarantine_ids: Sequence[int]) -> int:
        """Delete quarantined bodies; returns how many there were."""
        self._require_open()
        async with self._connection("discard quarantined bodies in", write=True) as conn:
            cur = await conn.execute(self._sql(q.DELETE_QUARANTINED), (list(quarantine_ids),))
            return cur.rowcount

    async def discard_dead(self, row_ids: Sequence[int]) -> int:
        """Delete dead rows for good; returns how many were dead."""
        self._require_open()
        async with self._connection("discard dead letters in", write=True) as conn:
            cur = await conn.execute(self._sql(q.DISCARD_DEAD), (list(row_ids),))
            return cur.rowcount

    async def retry_dead(self, row_ids: Sequence[int] | None, *, now: float) -> int:
        """Move dead rows (all when ``None``) back to pending with fresh attempts."""
        self._require_open()
        params = {"now": now, "ids": None if row_ids is None else list(row_ids)}
        async with self._connection("retry dead letters in", write=True) as conn:
            cur = await conn.execute(self._sql(q.RETRY_DEAD), params)
            return cur.rowcount

    async def replay(self, *, since: float, now: float, until: float | None = None) -> int:
        """Move rows delivered at or after ``since`` and before ``until`` back to pending."""
        self._require_open()
        params = {"now": now, "since": since, "until": math.inf if until is None else until}
        async with self._connection("replay events in", write=True) as conn:
            cur = await conn.execute(self._sql(q.REPLAY), params)
            return cur.rowcount

    async def delivered_since(
        self, *, since: float, limit: int = 100, until: float | None = None
    ) -> list[OutboxEvent]:
        """Rows delivered at or after ``since`` and before ``until``, oldest first; changes
        nothing."""
        self._require_open()
        end = math.inf if until is None else until  # double precision holds Infinity
        async with self._connection("read delivered events from") as conn:
            cur = await conn.execute(self._sql(q.DELIVERED_SINCE), (since, end, limit))
            rows = await cur.fetchall()
        return [q.event_from_row(row) for row in rows]

    async def prune(self, *, delivered_before: float) -> int:
        """Delete delivered and skipped rows settled before the given time.

        Ledger entries older than ``delivered_before`` go too, so the ledger stays bounded by
        the same retention.  Returns the number of event rows deleted.
        """
        self._require_open()
        async with self._connection("prune", write=True) as conn, conn.transaction():
            cur = await conn.execute(self._sql(q.PRUNE_EVENTS), (delivered_before,))
            deleted = cur.rowcount
            await conn.execute(self._sql(q.PRUNE_LEDGER), (delivered_before,))
        return deleted

    # -- the dashboard's reads (issue 17); _pg_queries names the index each one reads -------

    async def event_feed(self, query: FeedQuery) -> list[EventRow]:
        """Events matching ``query``, newest first."""
        self._require_open()
        clauses: list[str] = []
        params: dict[str, object] = {"limit": query.limit}
        for column in ("app_user_id", "event_type", "state"):
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"{column} = %({column})s")
                params[column] = value
        if query.environments is not None:
            clauses.append("environment = ANY(%(environments)s)")
            params["environments"] = list(query.environments)
        if query.before is not None:
            clauses.append("row_id < %(before)s")
            params["before"] = query.before
        if query.at_least is not None:
            clauses.append("row_id >= %(at_least)s")
            params["at_least"] = query.at_least
        if query.lanes is not None:
            clauses.append(
                "(route, environment) IN"
                " (SELECT * FROM unnest(%(lane_routes)s::text[], %(lane_envs)s::text[]))"
            )
            params["lane_routes"] = [route for route, _ in query.lanes]
            params["lane_envs"] = [environment for _, environment in query.lanes]
        where = sql.SQL(" AND ".join(clauses) or "true")
        statement = sql.SQL(q.EVENT_FEED).format(s=sql.Identifier(self.schema), where=where)
        async with self._connection("read events from") as conn:
            # Unprepared: a generic plan for "state = $1" cannot use the partial indexes
            # (events_outcome, events_live) and reads the table newest first instead.
            cur = await conn.execute(statement, params, prepare=False)
            return [_event_row(row) for row in await cur.fetchall()]

    async def event_detail(self, row_id: int, *, attempts_limit: int = 50) -> EventDetail | None:
        """One row by primary key, and its ledger entries."""
        self._require_open()
        async with self._connection("read an event from") as conn:
            cur = await conn.execute(self._sql(q.EVENT_DETAIL), (row_id,))
            row = await cur.fetchone()
            if row is None:
                return None
            event = _event_row(row[:-1])
            bounds = {
                "event_id": event.event_id,
                "received_at": event.received_at,
                "settled_at": math.inf if event.settled_at is None else event.settled_at,
                "limit": attempts_limit,
            }
            cur = await conn.execute(self._sql(q.EVENT_ATTEMPTS), bounds, prepare=False)
            entries = tuple(q.attempt_from_row(entry) for entry in await cur.fetchall())
        return EventDetail(event, bytes(row[-1]), entries)

    async def window_counts(self, *, since: float, until: float | None = None) -> WindowCounts:
        """Received, delivered, skipped, dead and quarantined in ``[since, until)``; retrying
        now."""
        self._require_open()
        end = math.inf if until is None else until
        async with self._connection("count events in") as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Unprepared: each range gets a plan for its own width (see _pg_queries).
            window = {"since": since, "until": end}
            cur = await conn.execute(self._sql(q.WINDOW_COUNTS), window, prepare=False)
            counts = await cur.fetchone()
            cur = await conn.execute(
                self._sql(q.SKIPPED_SINCE), (since, end, MAX_SKIP_REASONS), prepare=False
            )
            skipped = {str(reason): int(n) for reason, n in await cur.fetchall()}
        assert counts is not None  # one row of scalar subqueries
        received, delivered, dead, retrying, quarantined, backfill_received, backfill_delivered = (
            int(n) for n in counts
        )
        return WindowCounts(
            received=received,
            delivered=delivered,
            dead=dead,
            skipped_by_reason=skipped,
            retrying=retrying,
            quarantined=quarantined,
            backfill_received=backfill_received,
            backfill_delivered=backfill_delivered,
        )

    async def uploads_since(self, *, since: float, limit: int = 10_000) -> list[UploadSample]:
        """Ledger entries at or after ``since``, newest first; the event ids are not read."""
        self._require_open()
        async with self._connection("read the ledger from") as conn:
            cur = await conn.execute(self._sql(q.UPLOADS_SINCE), (since, limit))
            rows = await cur.fetchall()
        return [
            UploadSample(str(r[0]), str(r[1]), str(r[2]), int(r[3]), float(r[4]), float(r[5]))
            for r in rows
        ]

    # -- the property budget (issue 15, integration/budget.py) ----------------------------

    async def event_properties(self) -> list[EventProperties]:
        """Every stored (account, event name): its confirmed keys and learned limit."""
        self._require_open()
        async with self._connection("read the property budget from") as conn:
            cur = await conn.execute(self._sql(q.PROPERTY_KEYS))
            keys = await cur.fetchall()
            cur = await conn.execute(self._sql(q.PROPERTY_LIMITS))
            limits = await cur.fetchall()
        return event_properties_from(keys, limits)

    async def add_event_properties(self, entries: Sequence[EventProperties], *, now: float) -> None:
        """Store newly confirmed keys and learned limits, in one transaction."""
        keys, limits = budget_params(entries, now)
        if not keys and not limits:
            return
        self._require_open()
        async with (
            self._connection("store the property budget in", write=True) as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            if keys:
                await cur.executemany(self._sql(q.ADD_PROPERTY_KEY), keys)
            if limits:
                await cur.executemany(self._sql(q.SET_PROPERTY_LIMIT), limits)

    # -- the backfill (issue 18, integration/backfill/) ------------------------------------

    async def stored_events(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` the outbox holds, from the UNIQUE index on ``event_id``."""
        if not event_ids:
            return set()
        self._require_open()
        async with self._connection("look up events in") as conn:
            cur = await conn.execute(self._sql(q.STORED_EVENTS), {"ids": list(event_ids)})
            return {str(row[0]) for row in await cur.fetchall()}

    async def stored_transaction_events(
        self, pairs: Sequence[tuple[str, str]], *, source: str = "webhook"
    ) -> set[tuple[str, str]]:
        """Which ``(transaction_id, event_type)`` pairs rows of ``source`` hold."""
        if not pairs:
            return set()
        self._require_open()
        params = {
            "transactions": [pair[0] for pair in pairs],
            "types": [pair[1] for pair in pairs],
            "source": source,
        }
        async with self._connection("look up transactions in") as conn:
            cur = await conn.execute(self._sql(q.STORED_TRANSACTION_EVENTS), params)
            return {(str(row[0]), str(row[1])) for row in await cur.fetchall()}

    async def backfill_counts(self) -> dict[str, int]:
        """Backfilled rows by state (a scan, as :meth:`stats`'s counts are)."""
        self._require_open()
        async with self._connection("count backfilled events in") as conn:
            cur = await conn.execute(self._sql(q.BACKFILL_COUNTS))
            return {str(state): int(n) for state, n in await cur.fetchall()}

    async def waiting_by_route(self) -> dict[str, int]:
        """Pending and leased rows by route (the partial ``events_due`` index)."""
        self._require_open()
        async with self._connection("count waiting events in") as conn:
            cur = await conn.execute(self._sql(q.WAITING_BY_ROUTE))
            return {str(route): int(n) for route, n in await cur.fetchall()}

    # -- plumbing ----------------------------------------------------------------------------

    def _sql(self, text: str) -> sql.Composed:
        return qualify(self.schema, text)

    @asynccontextmanager
    async def _connection(
        self, action: str, *, write: bool = False
    ) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """A pooled connection; every failure, and every ``write`` that commits, is what
        :meth:`health` reports."""
        try:
            with self._translate(action):
                async with self._pool.connection() as conn:
                    yield conn
        except PostgresOutboxError as exc:
            self._health.failed(str(exc))
            raise
        if write:
            self._health.committed()

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except SchemaTooNew as exc:
            raise PostgresOutboxError(str(exc)) from None
        except psycopg.Error as exc:
            detail = conninfo.scrub(str(exc).strip(), self._password)
            # Not chained: the driver's own exception could quote connection settings, and the
            # scrubbed text above already carries everything it said.
            raise PostgresOutboxError(
                f"cannot {action} {self.redacted_url}: {detail}", sqlstate=exc.sqlstate
            ) from None


def _event_row(row: Sequence[object]) -> EventRow:
    """An :class:`EventRow` from a row in ``FEED_COLUMNS`` order."""
    return EventRow(
        row_id=int(row[0]),  # type: ignore[call-overload]  # bigint
        event_id=str(row[1]),
        environment=str(row[2]),
        source=str(row[3]),
        app_user_id=None if row[4] is None else str(row[4]),
        event_type=None if row[5] is None else str(row[5]),
        state=str(row[6]),
        attempts=int(row[7]),  # type: ignore[call-overload]  # integer
        reason=None if row[8] is None else str(row[8]),
        last_error=None if row[9] is None else str(row[9]),
        received_at=float(row[10]),  # type: ignore[arg-type]  # double precision
        settled_at=None if row[11] is None else float(row[11]),  # type: ignore[arg-type]
    )


def _attempt_params(attempt: DeliveryAttempt) -> tuple[object, ...]:
    return (
        attempt.batch_id,
        attempt.account_id,
        attempt.environment,
        attempt.records,
        [_storable(e) for e in attempt.event_ids],
        attempt.status,
        attempt.outcome,
        attempt.latency_ms,
        _storable(attempt.summary),
        attempt.at,
    )


def _storable(text: str) -> str:
    """``text`` as PostgreSQL can hold it: no NUL, no unpaired surrogates (both replaced).

    Reasons and errors may quote what a webhook carried; storing them must never fail.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


async def _configure_connection(conn: AsyncConnection[TupleRow]) -> None:
    # Commits must reach disk before enqueue returns; a server or role default of
    # synchronous_commit=off would lose acknowledged webhooks on a crash.  Stronger settings
    # (remote_write, remote_apply, on) are kept as they are.
    cur = await conn.execute("SHOW synchronous_commit")
    row = await cur.fetchone()
    if row is not None and row[0] == "off":
        await conn.execute("SET synchronous_commit TO on")


def _storable_or_none(text: str | None) -> str | None:
    return None if text is None else _storable(text)
