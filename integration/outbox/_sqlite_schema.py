"""The SQLite outbox's schema, its migrations, and conversions of its rows (outbox thread only).

The schema version lives in ``PRAGMA user_version``; :data:`MIGRATIONS` entry ``i`` brings a file
from version ``i`` to ``i + 1``.  Times are epoch seconds (REAL), as the contract passes them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from integration.outbox.base import DeliveryAttempt, OutboxEvent

# Each entry brings the schema from version i to i + 1 (``PRAGMA user_version``).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE events (
            row_id      INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id    TEXT NOT NULL UNIQUE,
            environment TEXT NOT NULL,
            body        BLOB NOT NULL,
            received_at REAL NOT NULL,
            state       TEXT NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'leased', 'delivered', 'skipped', 'dead')),
            due_at      REAL,
            lease_token TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            last_error  TEXT,
            reason      TEXT,
            settled_at  REAL
        )
        """,
        """
        CREATE INDEX events_live ON events (environment, received_at, row_id)
        WHERE state IN ('pending', 'leased')
        """,
        "CREATE INDEX events_settled ON events (state, settled_at)",
        """
        CREATE TABLE quarantine (
            quarantine_id INTEGER PRIMARY KEY AUTOINCREMENT,
            reason        TEXT NOT NULL,
            body          BLOB NOT NULL,
            received_at   REAL NOT NULL
        )
        """,
        """
        CREATE TABLE delivery_ledger (
            entry_id    INTEGER PRIMARY KEY AUTOINCREMENT,
            batch_id    TEXT NOT NULL,
            account_id  TEXT NOT NULL,
            environment TEXT NOT NULL,
            records     INTEGER NOT NULL,
            event_ids   TEXT NOT NULL,
            status      TEXT NOT NULL,
            outcome     TEXT NOT NULL,
            latency_ms  REAL NOT NULL,
            summary     TEXT NOT NULL,
            at          REAL NOT NULL
        )
        """,
        "CREATE INDEX delivery_ledger_at ON delivery_ledger (at)",
    ),
    # Version 2: bodies move to their own table, and rows get ``queued_at``.  A lease or a
    # settle rewrites every page holding one of its rows: with the bodies (about 1.5 kB each)
    # in the rows, that was two or three rows a page, and leasing and settling 1000 rows wrote
    # some 1.5 MB to the WAL each; rows without bodies fit dozens to a page.  SQLite cannot
    # drop a column without rebuilding the table, so the table is rebuilt
    # (https://www.sqlite.org/lang_altertable.html#otheralter).
    (
        """
        CREATE TABLE events_v2 (
            row_id      INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id    TEXT NOT NULL UNIQUE,
            environment TEXT NOT NULL,
            received_at REAL NOT NULL,
            queued_at   REAL NOT NULL,
            state       TEXT NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'leased', 'delivered', 'skipped', 'dead')),
            due_at      REAL,
            lease_token TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            last_error  TEXT,
            reason      TEXT,
            settled_at  REAL
        )
        """,
        "CREATE TABLE event_bodies (row_id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        # queued_at: a row of version 1 has been queued since it was received, as far as the
        # file can tell (retry_dead and replay kept no time).
        """
        INSERT INTO events_v2 (row_id, event_id, environment, received_at, queued_at, state,
            due_at, lease_token, attempts, last_error, reason, settled_at)
        SELECT row_id, event_id, environment, received_at, received_at, state, due_at,
            lease_token, attempts, last_error, reason, settled_at
        FROM events
        """,
        "INSERT INTO event_bodies (row_id, body) SELECT row_id, body FROM events",
        # AUTOINCREMENT never reuses the id of a pruned row: keep its high-water mark.
        """
        INSERT INTO sqlite_sequence (name, seq)
        SELECT 'events_v2', 0 WHERE NOT EXISTS
            (SELECT 1 FROM sqlite_sequence WHERE name = 'events_v2')
        """,
        """
        UPDATE sqlite_sequence SET seq = max(seq, coalesce(
            (SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))
        WHERE name = 'events_v2'
        """,
        "DROP TABLE events",
        "ALTER TABLE events_v2 RENAME TO events",
        """
        CREATE INDEX events_live ON events (environment, received_at, row_id)
        WHERE state IN ('pending', 'leased')
        """,
        "CREATE INDEX events_settled ON events (state, settled_at)",
        # A body goes with its row, whichever statement deletes the row (prune).
        """
        CREATE TRIGGER events_delete_body AFTER DELETE ON events
        BEGIN DELETE FROM event_bodies WHERE row_id = old.row_id; END
        """,
    ),
    # Version 3: what a row is and whose it is, for lookups without reading bodies: where it
    # came from (a live webhook or a backfill), and the event's app_user_id, type and
    # transaction_id.  Rows of version 2 were all received live; their other columns stay
    # NULL (the bodies still hold them).  ADD COLUMN rewrites no rows.
    (
        "ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook'",
        "ALTER TABLE events ADD COLUMN app_user_id TEXT",
        "ALTER TABLE events ADD COLUMN event_type TEXT",
        "ALTER TABLE events ADD COLUMN transaction_id TEXT",
        # One user's events, newest first (the dashboard's feed filtered by user).
        "CREATE INDEX events_user ON events (app_user_id, row_id) WHERE app_user_id IS NOT NULL",
        # Has this transaction's event of this type been stored already (the backfill's check
        # against live webhooks)?
        """
        CREATE INDEX events_transaction ON events (transaction_id, event_type)
        WHERE transaction_id IS NOT NULL
        """,
    ),
    # Version 4: the property budget (issue 15, integration/budget.py): the evtData keys
    # CleverTap confirmed per account and event name, and the limit a 522 taught, with the
    # configured budget it was learned under.  Small: at most the budget's keys per event name.
    (
        """
        CREATE TABLE event_property_keys (
            account_id  TEXT NOT NULL,
            event_name  TEXT NOT NULL,
            key         TEXT NOT NULL,
            accepted_at REAL NOT NULL,
            PRIMARY KEY (account_id, event_name, key)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE event_property_limits (
            account_id    TEXT NOT NULL,
            event_name    TEXT NOT NULL,
            learned_limit INTEGER NOT NULL,
            learned_under INTEGER NOT NULL,
            learned_at    REAL NOT NULL,
            PRIMARY KEY (account_id, event_name)
        ) WITHOUT ROWID
        """,
    ),
    # Version 5: the dashboard's reads (issue 17), each an index range instead of a scan of a
    # million rows: the feed filtered by event type, or by the rare outcomes (skipped, dead:
    # the index changes only when a row ends there, never on lease or delivery), newest
    # first; the events received in a window; and which ledger entries carried a row.  The
    # ledger keeps its event ids as one JSON array per upload, so its triggers keep a table
    # of (row_id, entry_id): an upload's rows are the newest, so their entries go in at the
    # end of its B-tree, where keys by event id would land on a random page each.
    (
        "CREATE INDEX events_type ON events (event_type, row_id) WHERE event_type IS NOT NULL",
        """
        CREATE INDEX events_outcome ON events (state, row_id)
        WHERE state IN ('skipped', 'dead')
        """,
        "CREATE INDEX events_received ON events (received_at)",
        """
        CREATE TABLE ledger_rows (
            row_id   INTEGER NOT NULL,
            entry_id INTEGER NOT NULL,
            PRIMARY KEY (row_id, entry_id)
        ) WITHOUT ROWID
        """,
        """
        INSERT OR IGNORE INTO ledger_rows (row_id, entry_id)
        SELECT e.row_id, l.entry_id
        FROM delivery_ledger AS l, json_each(l.event_ids) AS j
        JOIN events AS e ON e.event_id = j.value
        """,
        """
        CREATE TRIGGER delivery_ledger_link AFTER INSERT ON delivery_ledger
        BEGIN
            INSERT OR IGNORE INTO ledger_rows (row_id, entry_id)
            SELECT e.row_id, new.entry_id
            FROM json_each(new.event_ids) AS j JOIN events AS e ON e.event_id = j.value;
        END
        """,
        # Pruned ledger entries of rows still kept (dead letters), and pruned rows' entries.
        """
        CREATE TRIGGER delivery_ledger_unlink AFTER DELETE ON delivery_ledger
        BEGIN
            DELETE FROM ledger_rows
            WHERE entry_id = old.entry_id AND row_id IN (
                SELECT e.row_id
                FROM json_each(old.event_ids) AS j JOIN events AS e ON e.event_id = j.value
            );
        END
        """,
        """
        CREATE TRIGGER events_unlink AFTER DELETE ON events
        BEGIN DELETE FROM ledger_rows WHERE row_id = old.row_id; END
        """,
    ),
    # Version 6: the route each row was received on (issue 16, [[routes]]): leases are per
    # (route, environment), live rows before backfilled ones, each one range of events_due
    # (equalities on route, environment and source, then the order).  Rows of version 5 were
    # all the one account's: route "default".  ADD COLUMN with a constant rewrites no rows.
    (
        "ALTER TABLE events ADD COLUMN route TEXT NOT NULL DEFAULT 'default'",
        """
        CREATE INDEX events_due ON events (route, environment, source, received_at, row_id)
        WHERE state IN ('pending', 'leased')
        """,
    ),
    # Version 7: the records of an event CleverTap already confirmed, when another record of
    # the same event failed and the event waits to be retried: a JSON array of record keys
    # (integration.mapping.record_key), so the retry sends only what is missing.  CleverTap
    # documents no deduplication of uploaded events (clevertap.md, "De-duplication").
    ("ALTER TABLE events ADD COLUMN confirmed TEXT",),
    # Version 8 (issue 21): each body's mapped form, made when it was stored, and the
    # fingerprint of the configuration and code that made it (integration/premap.py), beside
    # the body, so leasing reads both in one row.  NULL for rows stored before, or without one.
    (
        "ALTER TABLE event_bodies ADD COLUMN mapped BLOB",
        "ALTER TABLE event_bodies ADD COLUMN mapped_fp TEXT",
    ),
    # Version 9 (issue 21): the waiting rows' indexes select them by ``settled_at IS NULL``
    # instead of ``state IN ('pending', 'leased')``.  The two say the same (settling sets
    # settled_at, and every way back to the queue clears it; the UPDATEs first make rows of
    # any older release agree), but a lease changes ``state`` and not ``settled_at``: SQLite
    # rewrites a partial index's entry whenever a column of its WHERE clause changes
    # (https://www.sqlite.org/partialindex.html), so leasing 1000 rows rewrote 2000 entries of
    # these two indexes for nothing, and now rewrites none (measured: 11 to 4 µs a row).
    (
        "UPDATE events SET settled_at = NULL WHERE state IN ('pending', 'leased')",
        "UPDATE events SET settled_at = coalesce(queued_at, received_at)"
        " WHERE state NOT IN ('pending', 'leased') AND settled_at IS NULL",
        "DROP INDEX events_live",
        """
        CREATE INDEX events_live ON events (environment, received_at, row_id)
        WHERE settled_at IS NULL
        """,
        "DROP INDEX events_due",
        """
        CREATE INDEX events_due ON events (route, environment, source, received_at, row_id)
        WHERE settled_at IS NULL
        """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# Read from ``events AS e JOIN event_bodies AS b USING (row_id)``, in event_from_row's order.
EVENT_COLUMNS = (
    "e.row_id, e.event_id, e.environment, b.body, e.received_at, e.queued_at, e.attempts,"
    " e.last_error, e.source, e.route, e.confirmed, b.mapped, b.mapped_fp"
)
ATTEMPT_COLUMNS = (
    "batch_id, account_id, environment, records, event_ids, status, outcome, latency_ms, "
    "summary, at"
)


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error (outbox thread only)."""

    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> None:
        self._conn = conn
        self._begin = begin

    def __enter__(self) -> None:
        self._conn.execute(self._begin)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


def event_from_row(row: Any) -> OutboxEvent:
    """An :class:`OutboxEvent` from a row in :data:`EVENT_COLUMNS` order.

    The columns' declared types make SQLite hand back the right Python types (INTEGER, TEXT,
    BLOB, REAL), so the row is taken as it is: this runs for every event leased.
    """
    return OutboxEvent(*row)


def attempt_from_row(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        batch_id=str(row[0]),
        account_id=str(row[1]),
        environment=str(row[2]),
        records=int(row[3]),
        event_ids=tuple(json.loads(str(row[4]))),
        status=str(row[5]),
        outcome=str(row[6]),
        latency_ms=float(row[7]),
        summary=str(row[8]),
        at=float(row[9]),
    )
