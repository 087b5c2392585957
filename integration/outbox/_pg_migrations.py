"""The PostgreSQL outbox schema, as numbered migrations applied once each.

``migrate`` runs in one transaction holding a transaction-level advisory lock keyed on the
schema name, so several instances starting at once apply each migration exactly once: the
first takes the lock and migrates, the others wait for it, then find nothing left to do.
Applied versions are recorded in ``<schema>.schema_migrations``.

Times are epoch seconds in ``double precision``, as the :mod:`integration.outbox.base`
contract passes them; ``events.due_at`` means "due from" for a pending row and "lease
expires at" for a leased one, so a single index finds both kinds of due row.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]  # each uses ``{s}`` for the schema identifier


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, quarantine and delivery ledger",
        (
            """
            CREATE TABLE {s}.events (
                row_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id    text NOT NULL UNIQUE,
                environment text NOT NULL,
                body        bytea NOT NULL,
                received_at double precision NOT NULL,
                state       text NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'leased', 'delivered', 'skipped', 'dead')),
                due_at      double precision,
                lease_token text,
                attempts    integer NOT NULL DEFAULT 0,
                last_error  text,
                reason      text,
                settled_at  double precision
            )
            """,
            # What lease() scans: live rows of one environment, oldest first.
            """
            CREATE INDEX events_live ON {s}.events (environment, received_at, row_id)
            WHERE state IN ('pending', 'leased')
            """,
            # What prune(), replay() and dead_letters() scan.
            """
            CREATE INDEX events_settled ON {s}.events (state, settled_at)
            WHERE state IN ('delivered', 'skipped', 'dead')
            """,
            """
            CREATE TABLE {s}.quarantine (
                quarantine_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                reason        text NOT NULL,
                body          bytea NOT NULL,
                received_at   double precision NOT NULL
            )
            """,
            """
            CREATE TABLE {s}.delivery_ledger (
                entry_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                batch_id    text NOT NULL,
                account_id  text NOT NULL,
                environment text NOT NULL,
                records     integer NOT NULL,
                event_ids   text[] NOT NULL,
                status      text NOT NULL,
                outcome     text NOT NULL,
                latency_ms  double precision NOT NULL,
                summary     text NOT NULL,
                at          double precision NOT NULL
            )
            """,
            "CREATE INDEX delivery_ledger_at ON {s}.delivery_ledger (at)",
        ),
    ),
    # When a row last entered the queue (enqueue, retry_dead, replay), for the dispatcher's
    # maximum age.  Nullable, read as coalesce(queued_at, received_at): adding a column with
    # no default rewrites no rows, so a big table migrates at once, and a row of version 1
    # has been queued since it was received, as far as the table can tell.
    Migration(
        2,
        "events.queued_at",
        ("ALTER TABLE {s}.events ADD COLUMN queued_at double precision",),
    ),
    # What a row is and whose it is, for lookups without reading bodies: where it came from (a
    # live webhook or a backfill), and the event's app_user_id, type and transaction_id.  A
    # constant default and nullable columns rewrite no rows (PostgreSQL 11 and later).
    Migration(
        3,
        "events.source, app_user_id, event_type, transaction_id",
        (
            "ALTER TABLE {s}.events ADD COLUMN source text NOT NULL DEFAULT 'webhook'",
            "ALTER TABLE {s}.events ADD COLUMN app_user_id text",
            "ALTER TABLE {s}.events ADD COLUMN event_type text",
            "ALTER TABLE {s}.events ADD COLUMN transaction_id text",
            # One user's events, newest first (the dashboard's feed filtered by user).
            """
            CREATE INDEX events_user ON {s}.events (app_user_id, row_id)
            WHERE app_user_id IS NOT NULL
            """,
            # Has this transaction's event of this type been stored already (the backfill's
            # check against live webhooks)?
            """
            CREATE INDEX events_transaction ON {s}.events (transaction_id, event_type)
            WHERE transaction_id IS NOT NULL
            """,
        ),
    ),
    # The property budget (issue 15, integration/budget.py): the evtData keys CleverTap
    # confirmed per account and event name, and the limit a 522 taught, with the configured
    # budget it was learned under.  Small: at most the budget's keys per event name.
    Migration(
        4,
        "property budget",
        (
            """
            CREATE TABLE {s}.event_property_keys (
                account_id  text NOT NULL,
                event_name  text NOT NULL,
                key         text NOT NULL,
                accepted_at double precision NOT NULL,
                PRIMARY KEY (account_id, event_name, key)
            )
            """,
            """
            CREATE TABLE {s}.event_property_limits (
                account_id    text NOT NULL,
                event_name    text NOT NULL,
                learned_limit integer NOT NULL,
                learned_under integer NOT NULL,
                learned_at    double precision NOT NULL,
                PRIMARY KEY (account_id, event_name)
            )
            """,
        ),
    ),
    # The dashboard's reads (issue 17), each an index range instead of a scan of a million
    # rows: the feed filtered by event type or by outcome, newest first; the events received
    # in a window; and which ledger entries carried an event (a GIN index answers
    # ``event_ids @> ARRAY[id]``: https://www.postgresql.org/docs/current/gin.html).
    Migration(
        5,
        "dashboard indexes",
        (
            """
            CREATE INDEX events_type ON {s}.events (event_type, row_id)
            WHERE event_type IS NOT NULL
            """,
            # Only the rare outcomes: the index changes when a row ends skipped or dead, never
            # on lease or delivery; the feed finds the others newest first by primary key.
            """
            CREATE INDEX events_outcome ON {s}.events (state, row_id)
            WHERE state IN ('skipped', 'dead')
            """,
            "CREATE INDEX events_received ON {s}.events (received_at)",
            "CREATE INDEX delivery_ledger_events ON {s}.delivery_ledger USING gin (event_ids)",
        ),
    ),
    # The route each row was received on (issue 16, [[routes]]): leases are per (route,
    # environment), live rows before backfilled ones, each one range of events_due.  Rows
    # before it were all the one account's.  A constant default rewrites no rows (PG 11+).
    Migration(
        6,
        "routes",
        (
            "ALTER TABLE {s}.events ADD COLUMN route text NOT NULL DEFAULT 'default'",
            """
            CREATE INDEX events_due ON {s}.events (route, environment, source, received_at, row_id)
            WHERE state IN ('pending', 'leased')
            """,
        ),
    ),
    # The records of an event CleverTap already confirmed, when another record of the same
    # event failed and the event waits to be retried: a JSON array of record keys
    # (integration.mapping.record_key), so the retry sends only what is missing.  CleverTap
    # documents no deduplication of uploaded events (clevertap.md, "De-duplication").
    Migration(7, "events.confirmed", ("ALTER TABLE {s}.events ADD COLUMN confirmed text",)),
    # Each body's mapped form, made when it was stored, and the fingerprint of the
    # configuration and code that made it (issue 21, integration/premap.py); NULL for rows
    # stored before, or without one.
    Migration(
        8,
        "events.mapped, events.mapped_fp",
        (
            "ALTER TABLE {s}.events ADD COLUMN mapped bytea",
            "ALTER TABLE {s}.events ADD COLUMN mapped_fp text",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


def qualify(schema: str, text: str) -> sql.Composed:
    """``text`` with ``{s}`` replaced by the quoted schema name."""
    return sql.SQL(text).format(s=sql.Identifier(schema))


async def migrate(conn: AsyncConnection[TupleRow], schema: str) -> list[int]:
    """Bring ``schema`` to :data:`LATEST_VERSION`; returns the versions this call applied."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"rc-clevertap outbox migrate {schema}",),
        )
        # CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists,
        # so a locked-down role that was handed a ready schema must not run it.
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cur.fetchone() is None:
            await conn.execute(qualify(schema, "CREATE SCHEMA {s}"))
        await conn.execute(
            qualify(
                schema,
                """
                CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
                    version     integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """,
            )
        )
        cur = await conn.execute(qualify(schema, "SELECT version FROM {s}.schema_migrations"))
        done = {int(row[0]) for row in await cur.fetchall()}
        if done and max(done) > LATEST_VERSION:
            raise SchemaTooNew(
                f"schema {schema!r} is at version {max(done)}, newer than this release's "
                f"{LATEST_VERSION}: upgrade rc-clevertap on every instance"
            )
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:
                await conn.execute(qualify(schema, statement))
            await conn.execute(
                qualify(
                    schema,
                    "INSERT INTO {s}.schema_migrations (version, description) VALUES (%s, %s)",
                ),
                (migration.version, migration.description),
            )
            applied_now.append(migration.version)
    return applied_now
