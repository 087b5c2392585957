"""The SQLite outbox: one file, one process writing, nothing acknowledged before it is on disk.

Selected by ``[outbox] url = "sqlite:///rc-clevertap.db"`` (the default).  The standard library's
:mod:`sqlite3` runs on one dedicated thread that owns the connection; the event loop hands it
work and awaits the answer, so a slow disk never blocks the loop.

Durability and throughput:

- ``journal_mode=WAL`` and ``synchronous=FULL``: a commit returns only once the WAL is fsync'd,
  so :meth:`SQLiteOutbox.enqueue` returning means the webhook survives a crash or power loss.
  https://www.sqlite.org/pragma.html#pragma_synchronous
- Group commit (``_group_commit.py``, shared with the PostgreSQL outbox): enqueues that
  arrive while a commit is in progress queue up and the next transaction carries them all (at
  most ``group_commit_max``), so one fsync serves many webhooks.
- Checkpoints (copying the WAL into the database file) run on a thread and connection of
  their own (``_sqlite_checkpoint.py``), not inside the commit that crosses SQLite's threshold,
  which would make the webhooks sharing that commit wait tens of milliseconds.
- Every write runs in ``BEGIN IMMEDIATE``; ``busy_timeout`` lets an operator's ``rc-clevertap
  dlq retry`` (another process) wait its turn instead of failing.

Tables (schema version in ``PRAGMA user_version``, see ``_sqlite_schema.py``)::

    events           one row per RevenueCat event id (UNIQUE: a retried webhook is not stored
                     twice); state, due time or lease expiry, lease token, attempts
    event_bodies     the raw body of each event row, apart so that leasing and settling
                     rewrite small rows only, with its mapped form and that form's
                     fingerprint (schema 8, integration/premap.py)
    quarantine       authenticated bodies that were not valid events, capped
    delivery_ledger  one row per upload attempt

``events.due_at`` means "due from" for a pending row and "lease expires at" for a leased one,
as in the PostgreSQL outbox, so one query finds both kinds of due row.  A row waits (pending or
leased) exactly when ``settled_at`` is NULL, which is what the waiting rows' indexes select
(schema 9: a lease then rewrites none of their entries).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import orjson

from integration._exceptions import SQLiteOutboxError
from integration.outbox._group_commit import GroupCommitter, PendingRow
from integration.outbox._lifecycle import Lifecycle
from integration.outbox._sqlite_checkpoint import JOURNAL_SIZE_LIMIT, Checkpointer
from integration.outbox._sqlite_schema import (
    ATTEMPT_COLUMNS,
    EVENT_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    attempt_from_row,
    event_from_row,
    transaction,
)
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

__all__ = ["SQLiteOutbox", "SQLiteOutboxError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Rows per multi-row INSERT: 9 parameters a row stays far below SQLite's 32,766.
_INSERT_CHUNK = 1000


class SQLiteOutbox(Lifecycle):
    """A durable outbox in one SQLite file.

    Example::

        outbox = SQLiteOutbox("rc-clevertap.db")
        await outbox.open()  # creates or migrates the schema
        try:
            stored = await outbox.enqueue(event_id, "PRODUCTION", body, now=time.time())
        finally:
            await outbox.close()

    Parameters:
        path: the database file, created when missing (its folder must exist).
        create: ``False`` makes ``open`` fail when the file does not exist yet, instead of
            creating an empty outbox (the operator commands: a mistyped path is an error, not
            a queue of zeros).
        quarantine_cap: invalid bodies kept; the oldest are dropped past it.
        group_commit_max: most webhooks one enqueue transaction carries.
        busy_timeout_s: how long a write waits for another process's write to finish.
        checkpoint_interval_s: how often the WAL is copied into the database file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        quarantine_cap: int = 10_000,
        group_commit_max: int = 500,
        busy_timeout_s: float = 5.0,
        checkpoint_interval_s: float = 0.5,
        create: bool = True,
    ) -> None:
        if quarantine_cap < 1:
            raise SQLiteOutboxError(f"quarantine_cap must be at least 1, got {quarantine_cap}")
        if group_commit_max < 1:
            raise SQLiteOutboxError(f"group_commit_max must be at least 1, got {group_commit_max}")
        if not busy_timeout_s >= 0:
            raise SQLiteOutboxError(f"busy_timeout_s must be at least 0, got {busy_timeout_s}")
        if not checkpoint_interval_s > 0:
            raise SQLiteOutboxError(
                f"checkpoint_interval_s must be more than 0, got {checkpoint_interval_s}"
            )
        self.path = Path(path)
        self._create = create
        self._quarantine_cap = quarantine_cap
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._checkpoint_interval_s = checkpoint_interval_s
        self.checkpointer: Checkpointer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._committer = GroupCommitter(self._insert_rows, max_batch=group_commit_max)
        self.commits = 0  # enqueue transactions committed, for group-commit checks
        self._health = WriteHealth()
        # depths() reads on a thread and read-only connection of their own, so that probes
        # never queue behind (or hold up) the group commits on the outbox thread.
        self._reader: ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteOutbox(path={str(self.path)!r})"

    # -- life cycle --------------------------------------------------------------------------

    _error = SQLiteOutboxError

    async def _open(self) -> None:
        """Open the file on the outbox thread, then create or migrate the schema."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rc-outbox")
        try:
            applied = await self._run(self._open_sync, check=False)
        except BaseException as exc:
            self._executor.shutdown(wait=True)
            self._executor = None
            if isinstance(exc, sqlite3.Error):
                raise _translate(exc, "open", self.path) from None
            raise
        logger.info(
            "outbox open at %s%s",
            self.path,
            f" (migrated to schema version {applied})" if applied else "",
        )

    def _open_sync(self) -> int | None:
        if not self.path.parent.is_dir():
            raise SQLiteOutboxError(f"cannot open {self.path}: folder {self.path.parent} missing")
        if not self._create and not self.path.is_file():
            raise SQLiteOutboxError(
                f"no outbox at {self.path}: check the path, or run rc-clevertap serve once to "
                "create it"
            )
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SQLiteOutboxError(f"cannot use WAL mode on {self.path} (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            # Checkpoints run on the checkpointer's thread, never inside an enqueue's commit.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            applied = self._migrate(conn)
            checkpointer = Checkpointer(
                self.path,
                interval_s=self._checkpoint_interval_s,
                busy_timeout_ms=self._busy_timeout_ms,
            )
        except BaseException:
            conn.close()
            raise
        checkpointer.start()
        self.checkpointer = checkpointer
        self._conn = conn
        return applied

    def _migrate(self, conn: sqlite3.Connection) -> int | None:
        conn.execute("BEGIN IMMEDIATE")  # one migrator at a time, even across processes
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise SQLiteOutboxError(
                    f"{self.path} has schema version {version}, newer than this release's "
                    f"{SCHEMA_VERSION}: upgrade rc-clevertap"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (a full disk) may already have ended the transaction: a blind
            # ROLLBACK would raise "no transaction is active" and hide the real error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION if version < SCHEMA_VERSION else None

    async def _close(self) -> None:
        """Finish pending group commits, then close the file and its thread."""
        await self._committer.drain()
        if self.checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.checkpointer.stop)
            self.checkpointer = None
        if self._reader is not None:
            await _close_on(self._reader, self._reader_conn)
            self._reader, self._reader_conn = None, None
        if self._executor is not None:
            await _close_on(self._executor, self._conn)
            self._executor, self._conn = None, None

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
        row = PendingRow(
            event_id, environment, bytes(body), now, source, app_user_id, event_type,
            transaction_id, route, mapped, mapped_fp,
        )  # fmt: skip
        return await self._committer.submit(row)

    async def _insert_rows(self, rows: Sequence[PendingRow]) -> set[str]:
        return await self._call(functools.partial(self._insert_sync, rows), "store events in")

    def _insert_sync(self, rows: Sequence[PendingRow], conn: sqlite3.Connection) -> set[str]:
        """Insert one group (no two rows share an event id) in a few statements, whatever its
        size, on the outbox thread; returns the event ids that were new.

        Each statement the sqlite3 module steps releases the GIL and takes it back, and taking
        it back waits for the event loop thread whenever that thread is busy (up to the 5 ms
        switch interval each time): one INSERT per row made a 16-row group commit take
        3.5 ms under load instead of 1.  So rows go in as multi-row INSERTs, and which of
        them were new is read back as one JSON array: row ids only grow (AUTOINCREMENT) and
        BEGIN IMMEDIATE keeps other writers out, so the new rows are those above the
        highest id seen before.
        """
        with transaction(conn):
            (before,) = conn.execute("SELECT coalesce(max(row_id), 0) FROM events").fetchone()
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                conn.execute(
                    _insert_events_sql(len(chunk)),
                    [
                        v
                        for e, env, _, at, src, user, kind, txn, route, _, _ in chunk
                        for v in (e, env, at, at, at, src, user, kind, txn, route)
                    ],
                )
                conn.execute(
                    _insert_bodies_sql(len(chunk)),
                    [
                        *(v for r in chunk for v in (r.event_id, r.body, r.mapped, r.mapped_fp)),
                        before,
                    ],
                )
            (new_ids,) = conn.execute(
                "SELECT json_group_array(event_id) FROM events WHERE row_id > ?", (before,)
            ).fetchone()
        self.commits += 1
        return set(orjson.loads(new_ids))

    async def quarantine(self, body: bytes, reason: str, *, now: float) -> None:
        """Keep an authenticated but invalid body, bounded (oldest dropped past the cap)."""
        cap = self._quarantine_cap

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO quarantine (reason, body, received_at) VALUES (?, ?, ?)",
                    (reason, bytes(body), now),
                )
                conn.execute(
                    "DELETE FROM quarantine WHERE quarantine_id <= (SELECT quarantine_id"
                    " FROM quarantine ORDER BY quarantine_id DESC LIMIT 1 OFFSET ?)",
                    (cap,),
                )

        await self._call(work, "quarantine a body in")

    # -- leasing and settling ----------------------------------------------------------------

    async def lease(
        self, environment: str, limit: int, *, now: float, lease_s: float, route: str = "default"
    ) -> Lease | None:
        """Take up to ``limit`` due rows (pending and due, or leased and expired), oldest first,
        live webhooks before backfilled rows (issue 18: a backfill never starves live events)."""
        if limit < 1 or not lease_s > 0:
            raise ValueError(f"need limit >= 1 and lease_s > 0, got {limit}, {lease_s}")
        token = uuid.uuid4().hex
        expires_at = now + lease_s

        def work(conn: sqlite3.Connection) -> list[OutboxEvent]:
            with transaction(conn):
                rows = conn.execute(_DUE_LIVE, (route, environment, now, limit)).fetchall()
                if len(rows) < limit:
                    rest = (route, environment, now, limit - len(rows))
                    rows += conn.execute(_DUE_REST, rest).fetchall()
                conn.execute(_LEASE, (token, expires_at, _id_list(row[0] for row in rows)))
            return [event_from_row(row) for row in rows]

        events = await self._call(work, "lease events from")
        if not events:
            return None
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
        token = lease.token
        ids = _id_list(delivered) if delivered else None
        params = [(RowState.SKIPPED.value, why, now, 0, row_id, token) for row_id, why in skipped]
        params += [(RowState.DEAD.value, why, now, 0, row_id, token) for row_id, why in dead]
        params += [(RowState.DEAD.value, why, now, 1, row_id, token) for row_id, why in dead_tried]
        if ids is None and not params and attempt is None:
            self._require_open()
            return 0

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                settled = 0
                if ids is not None:
                    settled += conn.execute(_SETTLE_DELIVERED, (now, token, ids)).rowcount
                if params:
                    settled += conn.executemany(_SETTLE, params).rowcount
                if attempt is not None:
                    _insert_attempt(conn, attempt)
                return settled

        return await self._call(work, "settle events in")

    async def confirm_records(self, lease: Lease, confirmed: Mapping[int, Sequence[str]]) -> int:
        """Store, per row this lease holds, the record keys CleverTap confirmed so far."""
        params = [
            (json.dumps(sorted(keys)), row_id, lease.token) for row_id, keys in confirmed.items()
        ]
        if not params:
            self._require_open()
            return 0

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return conn.executemany(
                    "UPDATE events SET confirmed = ?"
                    " WHERE row_id = ? AND lease_token = ? AND state = 'leased'",
                    params,
                ).rowcount

        return await self._call(work, "remember confirmed records in")

    async def release(
        self, lease: Lease, row_ids: Sequence[int], *, retry_at: float, error: str, count: bool
    ) -> int:
        """Give rows back as pending, due at ``retry_at``; ``count`` adds one to ``attempts``."""
        ids = list(row_ids)
        if not ids:
            self._require_open()
            return 0
        add = 1 if count else 0

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                cur = conn.executemany(
                    "UPDATE events SET state = 'pending', due_at = ?, last_error = ?,"
                    " lease_token = NULL, attempts = attempts + ?"
                    " WHERE row_id = ? AND lease_token = ? AND state = 'leased'",
                    [(retry_at, error, add, row_id, lease.token) for row_id in ids],
                )
                return cur.rowcount

        return await self._call(work, "release events in")

    # -- ledger and reports ------------------------------------------------------------------

    async def attempts(self, *, limit: int = 100) -> list[DeliveryAttempt]:
        """The latest ledger entries, newest first."""

        def work(conn: sqlite3.Connection) -> list[DeliveryAttempt]:
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM delivery_ledger"  # noqa: S608 (constant)
                " ORDER BY at DESC, entry_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [attempt_from_row(row) for row in rows]

        return await self._call(work, "read the ledger from")

    async def stats(self) -> OutboxStats:
        """Counts by state and the facts ``rc-clevertap status`` shows."""

        def work(conn: sqlite3.Connection) -> OutboxStats:
            with transaction(conn, "BEGIN"):  # one consistent snapshot
                counts = dict(
                    conn.execute("SELECT state, count(*) FROM events GROUP BY state").fetchall()
                )
                oldest = conn.execute(
                    "SELECT min(received_at) FROM events WHERE settled_at IS NULL"
                ).fetchone()[0]
                skipped = conn.execute(
                    "SELECT coalesce(reason, ''), count(*) FROM events WHERE state = 'skipped'"
                    " GROUP BY 1"
                ).fetchall()
                quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
                last = conn.execute(
                    f"SELECT {ATTEMPT_COLUMNS} FROM delivery_ledger"  # noqa: S608 (constant)
                    " ORDER BY at DESC, entry_id DESC LIMIT 1"
                ).fetchone()
            return OutboxStats(
                pending=int(counts.get(RowState.PENDING.value, 0)),
                leased=int(counts.get(RowState.LEASED.value, 0)),
                delivered=int(counts.get(RowState.DELIVERED.value, 0)),
                skipped=int(counts.get(RowState.SKIPPED.value, 0)),
                dead=int(counts.get(RowState.DEAD.value, 0)),
                quarantined=int(quarantined),
                oldest_pending_at=None if oldest is None else float(oldest),
                skipped_by_reason={str(reason): int(n) for reason, n in skipped},
                last_attempt=None if last is None else attempt_from_row(last),
            )

        return await self._call(work, "read stats from")

    async def depths(self) -> QueueDepths:
        """Pending, leased and dead counts from indexes, on the reader thread and connection.

        The counts read the ``(state, settled_at)`` index over the live and dead rows only,
        and the oldest waiting row is one seek per environment in ``events_live``: the cost
        follows the backlog, never the settled rows kept for ``retention_s``.
        """
        self._require_open()
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rc-outbox-read")

        def work() -> QueueDepths:
            if self._reader_conn is None:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._reader_conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn = self._reader_conn
            counts = dict(conn.execute(_DEPTHS).fetchall())
            oldest = [
                row[0]
                for environment in ENVIRONMENTS
                if (row := conn.execute(_OLDEST_LIVE, (environment,)).fetchone())[0] is not None
            ]
            return QueueDepths(
                pending=int(counts.get(RowState.PENDING.value, 0)),
                leased=int(counts.get(RowState.LEASED.value, 0)),
                dead=int(counts.get(RowState.DEAD.value, 0)),
                oldest_pending_at=float(min(oldest)) if oldest else None,
            )

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, work)
        except sqlite3.Error as exc:
            raise _translate(exc, "read queue depths from", self.path) from None

    def health(self) -> OutboxHealth:
        """Whether the last write committed; no I/O (``/healthz`` asks on every probe)."""
        return self._health.state()

    async def probe_write(self) -> None:
        """Commit one tiny write, so that :meth:`health` learns the outbox takes writes again.

        It rewrites the AUTOINCREMENT high-water mark of ``events`` with its own value, which
        SQLite allows (https://www.sqlite.org/autoinc.html) and which changes nothing.
        """

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', 0"
                    " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')"
                )
                conn.execute("UPDATE sqlite_sequence SET seq = seq WHERE name = 'events'")

        await self._call(work, "write to")

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Dead rows, oldest first."""

        def work(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                "SELECT row_id, event_id, environment, coalesce(reason, ''), attempts,"
                " received_at, settled_at FROM events WHERE state = 'dead'"
                " ORDER BY settled_at, row_id LIMIT ?",
                (limit,),
            ).fetchall()
            return [
                DeadLetter(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), r[5], r[6])
                for r in rows
            ]

        return await self._call(work, "read dead letters from")

    async def quarantined(self, *, limit: int = 100) -> list[QuarantinedBody]:
        """Quarantined bodies, newest first."""

        def work(conn: sqlite3.Connection) -> list[QuarantinedBody]:
            rows = conn.execute(
                "SELECT quarantine_id, reason, body, received_at FROM quarantine"
                " ORDER BY quarantine_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [QuarantinedBody(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

        return await self._call(work, "read quarantine from")

    async def quarantined_by_id(self, quarantine_ids: Sequence[int]) -> list[QuarantinedBody]:
        """The quarantined bodies with these ids (those that exist), by id."""
        ids = _id_list(quarantine_ids)

        def work(conn: sqlite3.Connection) -> list[QuarantinedBody]:
            rows = conn.execute(
                "SELECT quarantine_id, reason, body, received_at FROM quarantine"
                " WHERE quarantine_id IN (SELECT value FROM json_each(?)) ORDER BY quarantine_id",
                (ids,),
            ).fetchall()
            return [QuarantinedBody(int(r[0]), str(r[1]), bytes(r[2]), float(r[3])) for r in rows]

        return await self._call(work, "read quarantine from")

    # -- operator actions --------------------------------------------------------------------

    async def requeue_quarantined(self, rows: Sequence[Requeue], *, now: float) -> int:
        """Move quarantined bodies into the queue in one transaction; returns how many moved."""
        items = list(rows)

        def work(conn: sqlite3.Connection) -> int:
            moved = 0
            with transaction(conn):
                for r in items:
                    cur = conn.execute(
                        _REQUEUE_EVENT,
                        (r.event_id, r.environment, now, now, r.app_user_id, r.event_type,
                         r.transaction_id, r.route, r.quarantine_id),
                    )  # fmt: skip
                    if cur.rowcount:
                        conn.execute(_REQUEUE_BODY, (cur.lastrowid, r.quarantine_id))
                    moved += conn.execute(
                        "DELETE FROM quarantine WHERE quarantine_id = ?", (r.quarantine_id,)
                    ).rowcount
            return moved

        return await self._call(work, "requeue quarantined bodies in")

    async def discard_quarantined(self, quarantine_ids: Sequence[int]) -> int:
        """Delete quarantined bodies; returns how many there were."""
        ids = _id_list(quarantine_ids)

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return conn.execute(
                    "DELETE FROM quarantine"
                    " WHERE quarantine_id IN (SELECT value FROM json_each(?))",
                    (ids,),
                ).rowcount

        return await self._call(work, "discard quarantined bodies in")

    async def discard_dead(self, row_ids: Sequence[int]) -> int:
        """Delete dead rows and their bodies (the trigger) for good; returns how many."""
        ids = _id_list(row_ids)

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return conn.execute(
                    "DELETE FROM events WHERE state = 'dead'"
                    " AND row_id IN (SELECT value FROM json_each(?))",
                    (ids,),
                ).rowcount

        return await self._call(work, "discard dead letters in")

    async def retry_dead(self, row_ids: Sequence[int] | None, *, now: float) -> int:
        """Move dead rows (all when ``None``) back to pending with fresh attempts."""
        ids = None if row_ids is None else list(row_ids)
        # The dead reason becomes the row's last error, so the history is not lost on retry.
        update = (
            "UPDATE events SET state = 'pending', due_at = ?, queued_at = ?, attempts = 0,"
            " last_error = reason, reason = NULL, settled_at = NULL WHERE state = 'dead'"
        )

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                if ids is None:
                    return conn.execute(update, (now, now)).rowcount
                cur = conn.executemany(update + " AND row_id = ?", [(now, now, i) for i in ids])
                return cur.rowcount

        return await self._call(work, "retry dead letters in")

    async def replay(self, *, since: float, now: float, until: float | None = None) -> int:
        """Move rows delivered at or after ``since`` and before ``until`` back to pending."""
        end = math.inf if until is None else until  # half open: [since, until)

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return conn.execute(
                    "UPDATE events SET state = 'pending', due_at = ?, queued_at = ?, attempts = 0,"
                    " last_error = NULL, reason = NULL, settled_at = NULL, confirmed = NULL"
                    " WHERE state = 'delivered' AND settled_at >= ? AND settled_at < ?",
                    (now, now, since, end),
                ).rowcount

        return await self._call(work, "replay events in")

    async def delivered_since(
        self, *, since: float, limit: int = 100, until: float | None = None
    ) -> list[OutboxEvent]:
        """Rows delivered at or after ``since`` and before ``until``, oldest first; changes
        nothing."""
        end = math.inf if until is None else until

        def work(conn: sqlite3.Connection) -> list[OutboxEvent]:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS}"  # noqa: S608 (constant columns)
                " FROM events AS e JOIN event_bodies AS b USING (row_id)"
                " WHERE e.state = 'delivered' AND e.settled_at >= ? AND e.settled_at < ?"
                " ORDER BY e.settled_at, e.row_id LIMIT ?",
                (since, end, limit),
            ).fetchall()
            return [event_from_row(row) for row in rows]

        return await self._call(work, "read delivered events from")

    async def prune(self, *, delivered_before: float) -> int:
        """Delete delivered and skipped rows settled before the given time.

        Ledger entries older than ``delivered_before`` go too, so the ledger stays bounded by
        the same retention.  Returns the number of event rows deleted.
        """

        def work(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                deleted = conn.execute(
                    "DELETE FROM events WHERE state IN ('delivered', 'skipped') AND settled_at < ?",
                    (delivered_before,),
                ).rowcount
                conn.execute("DELETE FROM delivery_ledger WHERE at < ?", (delivered_before,))
                return deleted

        return await self._call(work, "prune")

    # -- the dashboard's reads (issue 17) ----------------------------------------------------
    # On the reader thread and its read-only connection, like depths(): a page view never
    # queues behind the group commits.  The index each query reads is named beside it.

    async def event_feed(self, query: FeedQuery) -> list[EventRow]:
        """Events matching ``query``, newest first.

        One filter picks the index, in this order: ``app_user_id`` (events_user), then
        ``event_type`` (events_type), then a rare ``state`` (events_outcome: skipped, dead),
        else the primary key; the other filters are checked on the rows that index yields.
        """
        where, params, index = _feed_filters(query)

        def work(conn: sqlite3.Connection) -> list[EventRow]:
            rows = conn.execute(
                f"SELECT {_FEED_COLUMNS} FROM events {index}"  # noqa: S608 (constants)
                f" WHERE {where} ORDER BY row_id DESC LIMIT ?",
                (*params, query.limit),
            ).fetchall()
            return [EventRow(*row) for row in rows]

        return await self._read(work, "read events from")

    async def event_detail(self, row_id: int, *, attempts_limit: int = 50) -> EventDetail | None:
        """One row by primary key; its ledger entries through ledger_rows (row id seek)."""

        def work(conn: sqlite3.Connection) -> EventDetail | None:
            row = conn.execute(
                f"SELECT {_FEED_COLUMNS}, b.body FROM events"  # noqa: S608 (constant)
                " JOIN event_bodies AS b USING (row_id) WHERE row_id = ?",
                (row_id,),
            ).fetchone()
            if row is None:
                return None
            event = EventRow(*row[:-1])
            entries = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM delivery_ledger"  # noqa: S608 (constant)
                " WHERE entry_id IN (SELECT entry_id FROM ledger_rows WHERE row_id = ?)"
                " ORDER BY at DESC, entry_id DESC LIMIT ?",
                (row_id, attempts_limit),
            ).fetchall()
            return EventDetail(event, bytes(row[-1]), tuple(attempt_from_row(e) for e in entries))

        return await self._read(work, "read an event from")

    async def window_counts(self, *, since: float, until: float | None = None) -> WindowCounts:
        """Counts from covering index ranges: events_received, events_settled (state,
        settled_at), events_live for the retrying rows, and the capped quarantine table."""
        end = math.inf if until is None else until

        def work(conn: sqlite3.Connection) -> WindowCounts:
            def one(sql: str, *args: object) -> int:
                return int(conn.execute(sql, args).fetchone()[0])

            settled = "SELECT count(*) FROM events WHERE state = ? AND settled_at >= ?"
            settled += " AND settled_at < ?"
            with transaction(conn, "BEGIN"):  # one snapshot for all of them
                received = one(
                    "SELECT count(*) FROM events WHERE received_at >= ? AND received_at < ?",
                    since,
                    end,
                )
                delivered = one(settled, "delivered", since, end)
                dead = one(settled, "dead", since, end)
                backfill_received = one(
                    "SELECT count(*) FROM events INDEXED BY events_received"
                    " WHERE received_at >= ? AND received_at < ? AND source = 'backfill'",
                    since,
                    end,
                )
                backfill_delivered = one(
                    "SELECT count(*) FROM events INDEXED BY events_settled WHERE state = ?"
                    " AND settled_at >= ? AND settled_at < ? AND source = 'backfill'",
                    "delivered",
                    since,
                    end,
                )
                skipped = conn.execute(
                    "SELECT coalesce(reason, ''), count(*) FROM events"
                    " WHERE state = 'skipped' AND settled_at >= ? AND settled_at < ? GROUP BY 1"
                    " ORDER BY 2 DESC, 1 LIMIT ?",
                    (since, end, MAX_SKIP_REASONS),
                ).fetchall()
                retrying = one(
                    "SELECT count(*) FROM events WHERE settled_at IS NULL AND attempts > 0"
                )
                quarantined = one(
                    "SELECT count(*) FROM quarantine WHERE received_at >= ? AND received_at < ?",
                    since,
                    end,
                )
            return WindowCounts(
                received=received,
                delivered=delivered,
                dead=dead,
                skipped_by_reason={str(reason): int(n) for reason, n in skipped},
                retrying=retrying,
                quarantined=quarantined,
                backfill_received=backfill_received,
                backfill_delivered=backfill_delivered,
            )

        return await self._read(work, "count events in")

    async def uploads_since(self, *, since: float, limit: int = 10_000) -> list[UploadSample]:
        """A range of delivery_ledger_at, newest first; the event ids are not read."""

        def work(conn: sqlite3.Connection) -> list[UploadSample]:
            rows = conn.execute(
                "SELECT account_id, environment, outcome, records, latency_ms, at"
                " FROM delivery_ledger WHERE at >= ? ORDER BY at DESC LIMIT ?",
                (since, limit),
            ).fetchall()
            return [UploadSample(*row) for row in rows]

        return await self._read(work, "read the ledger from")

    async def _read(self, work: Callable[[sqlite3.Connection], T], action: str) -> T:
        """``work`` on the reader thread and read-only connection (opened on first use)."""
        self._require_open()
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rc-outbox-read")

        def run() -> T:
            if self._reader_conn is None:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._reader_conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            return work(self._reader_conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, run)
        except sqlite3.Error as exc:
            raise _translate(exc, action, self.path) from None

    # -- the property budget (issue 15, integration/budget.py) ----------------------------

    async def event_properties(self) -> list[EventProperties]:
        """Every stored (account, event name): its confirmed keys and learned limit."""

        def work(conn: sqlite3.Connection) -> list[EventProperties]:
            keys = conn.execute(
                "SELECT account_id, event_name, key FROM event_property_keys"
                " ORDER BY account_id, event_name, key"
            ).fetchall()
            limits = conn.execute(
                "SELECT account_id, event_name, learned_limit, learned_under"
                " FROM event_property_limits"
            ).fetchall()
            return event_properties_from(keys, limits)

        return await self._call(work, "read the property budget from")

    async def add_event_properties(self, entries: Sequence[EventProperties], *, now: float) -> None:
        """Store newly confirmed keys and learned limits, in one transaction."""
        keys, limits = budget_params(entries, now)
        if not keys and not limits:
            return

        def work(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO event_property_keys (account_id, event_name, key, accepted_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    keys,
                )
                conn.executemany(
                    "INSERT INTO event_property_limits (account_id, event_name, learned_limit,"
                    " learned_under, learned_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (account_id, event_name) DO UPDATE SET"
                    " learned_limit = excluded.learned_limit,"
                    " learned_under = excluded.learned_under, learned_at = excluded.learned_at",
                    limits,
                )

        await self._call(work, "store the property budget in")

    # -- the backfill (issue 18, integration/backfill/) ------------------------------------

    async def stored_events(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` the outbox holds, from the UNIQUE index on ``event_id``."""
        if not event_ids:
            return set()
        ids = orjson.dumps(list(event_ids)).decode()

        def work(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
                (ids,),
            ).fetchall()
            return {row[0] for row in rows}

        return await self._read(work, "look up events in")

    async def stored_transaction_events(
        self, pairs: Sequence[tuple[str, str]], *, source: str = "webhook"
    ) -> set[tuple[str, str]]:
        """Which ``(transaction_id, event_type)`` pairs rows of ``source`` hold (the
        ``events_transaction`` index, named so the planner cannot pick another)."""
        if not pairs:
            return set()
        wanted = orjson.dumps([list(pair) for pair in pairs]).decode()

        def work(conn: sqlite3.Connection) -> set[tuple[str, str]]:
            rows = conn.execute(
                "SELECT DISTINCT e.transaction_id, e.event_type FROM json_each(?) AS j"
                " JOIN events AS e INDEXED BY events_transaction"
                " ON e.transaction_id = json_extract(j.value, '$[0]')"
                " AND e.event_type = json_extract(j.value, '$[1]')"
                " WHERE e.source = ?",
                (wanted, source),
            ).fetchall()
            return {(row[0], row[1]) for row in rows}

        return await self._read(work, "look up transactions in")

    async def backfill_counts(self) -> dict[str, int]:
        """Backfilled rows by state (a scan, as :meth:`stats`'s counts are)."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT state, count(*) FROM events WHERE source = 'backfill' GROUP BY state"
            ).fetchall()
            return {str(state): int(n) for state, n in rows}

        return await self._read(work, "count backfilled events in")

    async def waiting_by_route(self) -> dict[str, int]:
        """Pending and leased rows by route (the partial ``events_due`` index)."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT route, count(*) FROM events WHERE settled_at IS NULL GROUP BY route"
            ).fetchall()
            return {str(route): int(n) for route, n in rows}

        return await self._read(work, "count waiting events in")

    # -- plumbing ----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        assert self._conn is not None  # only called on the outbox thread after open
        return self._conn

    async def _call(self, work: Callable[[sqlite3.Connection], T], action: str) -> T:
        self._require_open()

        def run() -> T:
            conn = self._connection()
            changed = conn.total_changes
            result = work(conn)
            if conn.total_changes != changed:  # a write committed (reads change nothing)
                self._health.committed()
            return result

        try:
            return await self._run(run)
        except sqlite3.Error as exc:
            error = _translate(exc, action, self.path)
            self._health.failed(str(error))
            raise error from None

    async def _run(self, fn: Callable[[], T], *, check: bool = True) -> T:
        if check:
            self._require_open()
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)


# The dashboard's feed (issue 17): the columns of an EventRow, and the filters of a FeedQuery
# with the index each one reads (SQLite's planner is told, not left to guess between them).
_FEED_COLUMNS = (
    "row_id, event_id, environment, source, app_user_id, event_type, state, attempts, reason,"
    " last_error, received_at, settled_at"
)


def _feed_filters(query: FeedQuery) -> tuple[str, list[object], str]:
    """The WHERE clause, its parameters and the INDEXED BY clause for ``query``."""
    clauses: list[str] = []
    params: list[object] = []
    index = ""
    # events_outcome holds only the rare outcomes and events_live the backlog; delivered rows
    # are most rows, so the primary key, newest first, finds a page of them at once.
    for column, value, name in (
        ("app_user_id", query.app_user_id, "events_user"),
        ("event_type", query.event_type, "events_type"),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
            index = index or f"INDEXED BY {name}"
    if query.state in ("skipped", "dead"):
        # SQLite uses a partial index only when the query's WHERE holds the index's own terms
        # (https://www.sqlite.org/partialindex.html): the IN term is repeated as it is.
        clauses.append("state = ? AND state IN ('skipped', 'dead')")
        params.append(query.state)
        index = index or "INDEXED BY events_outcome"
    elif query.state in ("pending", "leased"):
        # The backlog, through events_live (as lease reads it), sorted: as many as are waiting.
        clauses.append("state = ? AND settled_at IS NULL")
        params.append(query.state)
        index = index or "INDEXED BY events_live"
    elif query.state is not None:
        clauses.append("state = ?")
        params.append(query.state)
    if query.environments is not None:
        clauses.append(f"environment IN ({', '.join('?' * len(query.environments))})")
        params.extend(query.environments)
    if query.before is not None:
        clauses.append("row_id < ?")
        params.append(query.before)
    if query.at_least is not None:
        clauses.append("row_id >= ?")
        params.append(query.at_least)
    if query.lanes is not None:
        if not query.lanes:
            clauses.append("0")
        else:  # row values: https://www.sqlite.org/rowvalue.html
            pairs = ", ".join(["(?, ?)"] * len(query.lanes))
            clauses.append(f"(route, environment) IN (VALUES {pairs})")
            params.extend(value for lane in query.lanes for value in lane)
    return " AND ".join(clauses) or "1", params, index


# Due rows of one route and environment, oldest first: live webhooks' (leased first), then
# backfilled ones, so that a backfill never starves live events (issue 18).  Equalities on
# route, environment and source, so that events_due (schema 6) serves each in its order.
_DUE = (
    f"SELECT {EVENT_COLUMNS}"  # noqa: S608 (constant columns)
    " FROM events AS e INDEXED BY events_due JOIN event_bodies AS b USING (row_id)"
    " WHERE e.route = ? AND e.environment = ? AND e.settled_at IS NULL"
    " AND e.due_at <= ?"
)
_DUE_LIVE = _DUE + " AND e.source = 'webhook' ORDER BY e.received_at, e.row_id LIMIT ?"
_DUE_REST = _DUE + " AND e.source = 'backfill' ORDER BY e.received_at, e.row_id LIMIT ?"

# Many row ids go as one parameter, a JSON array, so one statement does what one statement per
# row did at about half the cost (https://www.sqlite.org/json1.html#jeach; JSON is built into
# SQLite since 3.38).
_LEASE = (
    "UPDATE events SET state = 'leased', lease_token = ?, due_at = ?"
    " WHERE row_id IN (SELECT value FROM json_each(?))"
)
_SETTLE_DELIVERED = (
    "UPDATE events SET state = 'delivered', reason = NULL, settled_at = ?, lease_token = NULL,"
    " due_at = NULL WHERE lease_token = ? AND state = 'leased'"
    " AND row_id IN (SELECT value FROM json_each(?))"
)


def _id_list(row_ids: Iterable[int]) -> bytes:
    return orjson.dumps(list(row_ids))


# Settling names the lease token: rows re-leased by someone else are not touched.
# A quarantined body back in the queue: received when it was quarantined, queued now.  (The
# WHERE makes the SELECT's ON CONFLICT unambiguous: https://www.sqlite.org/lang_upsert.html.)
_REQUEUE_EVENT = (
    "INSERT INTO events (event_id, environment, received_at, queued_at, state, due_at, source,"
    " app_user_id, event_type, transaction_id, route)"
    " SELECT ?, ?, received_at, ?, 'pending', ?, 'webhook', ?, ?, ?, ? FROM quarantine"
    " WHERE quarantine_id = ? ON CONFLICT (event_id) DO NOTHING"
)
_REQUEUE_BODY = (
    "INSERT INTO event_bodies (row_id, body) SELECT ?, body FROM quarantine WHERE quarantine_id = ?"
)

_SETTLE = (
    "UPDATE events SET state = ?, reason = ?, settled_at = ?, attempts = attempts + ?,"
    " lease_token = NULL, due_at = NULL WHERE row_id = ? AND lease_token = ? AND state = 'leased'"
)


def _insert_attempt(conn: sqlite3.Connection, attempt: DeliveryAttempt) -> None:
    conn.execute(
        f"INSERT INTO delivery_ledger ({ATTEMPT_COLUMNS})"  # noqa: S608 (constant)
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            attempt.batch_id,
            attempt.account_id,
            attempt.environment,
            attempt.records,
            json.dumps(list(attempt.event_ids)),
            attempt.status,
            attempt.outcome,
            attempt.latency_ms,
            attempt.summary,
            attempt.at,
        ),
    )


# Multi-row INSERTs for a group commit: "{}" becomes that many "?" placeholder tuples, never a
# value (values are always bound).
_INSERT_EVENTS = (
    "INSERT INTO events (event_id, environment, received_at, queued_at, state, due_at,"
    " source, app_user_id, event_type, transaction_id, route)"
    " VALUES {} ON CONFLICT (event_id) DO NOTHING"
)
# The bodies of the rows just inserted (row_id above the last parameter), matched by id.
_INSERT_BODIES = (
    "INSERT INTO event_bodies (row_id, body, mapped, mapped_fp)"
    " SELECT events.row_id, v.column2, v.column3, v.column4"
    " FROM (VALUES {}) AS v JOIN events ON events.event_id = v.column1 WHERE events.row_id > ?"
)


@functools.lru_cache(maxsize=64)
def _insert_events_sql(rows: int) -> str:
    return _INSERT_EVENTS.format(",".join(["(?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)"] * rows))


@functools.lru_cache(maxsize=64)
def _insert_bodies_sql(rows: int) -> str:
    return _INSERT_BODIES.format(",".join(["(?, ?, ?, ?)"] * rows))


# Probes' queries (see depths): covering-index counts, one index seek per environment.
_DEPTHS = (
    "SELECT state, count(*) FROM events WHERE state IN ('pending', 'leased', 'dead') GROUP BY state"
)
_OLDEST_LIVE = (
    "SELECT min(received_at) FROM events INDEXED BY events_live"
    " WHERE settled_at IS NULL AND environment = ?"
)


async def _close_on(executor: ThreadPoolExecutor, conn: sqlite3.Connection | None) -> None:
    """Close ``conn`` on the thread that owns it, then end that thread."""
    if conn is not None:
        await asyncio.get_running_loop().run_in_executor(executor, conn.close)
    executor.shutdown(wait=True)


def _translate(exc: sqlite3.Error, action: str, path: Path) -> SQLiteOutboxError:
    detail = str(exc)
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        detail += f" (no space left on the disk holding {path.resolve().parent})"
    return SQLiteOutboxError(f"cannot {action} {path}: {detail}")
