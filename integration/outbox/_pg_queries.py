"""The SQL the PostgreSQL outbox runs, and the conversions of its rows.

``{s}`` stands for the quoted schema name (see ``_pg_migrations.qualify``).  Each statement
runs alone in autocommit mode unless ``postgres.py`` opens a transaction around several.
"""

from __future__ import annotations

from psycopg.rows import TupleRow

from integration.outbox.base import DeliveryAttempt, OutboxEvent

# Group commit: one statement for many webhooks.  Rows whose event id is already stored (by
# this or any other instance) are left alone and missing from RETURNING.
INSERT_EVENTS = """
    INSERT INTO {s}.events (event_id, environment, body, received_at, queued_at, state, due_at,
                            source, app_user_id, event_type, transaction_id, route, mapped,
                            mapped_fp)
    SELECT e, v, b, t, t, 'pending', t, src, u, k, x, rt, m, mf
    FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::float8[], %s::text[], %s::text[],
                %s::text[], %s::text[], %s::text[], %s::bytea[], %s::text[])
         WITH ORDINALITY AS r(e, v, b, t, src, u, k, x, rt, m, mf, n)
    ORDER BY n
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
"""

# Locking the chosen rows and marking them in one statement: a row locked by a concurrent
# lease is skipped, not waited for, and a row another lease has just committed fails the
# re-checked WHERE clause, so no row is ever in two leases.
# https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE
LEASE = """
    WITH due AS (
        SELECT row_id FROM {s}.events
        WHERE route = %(route)s AND environment = %(env)s AND state IN ('pending', 'leased')
          AND due_at <= %(now)s AND source = %(source)s
        ORDER BY received_at, row_id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {s}.events AS e
    SET state = 'leased', lease_token = %(token)s, due_at = %(expires)s
    FROM due WHERE e.row_id = due.row_id
    RETURNING e.row_id, e.event_id, e.environment, e.body, e.received_at,
              coalesce(e.queued_at, e.received_at), e.attempts, e.last_error, e.source,
              e.route, e.confirmed, e.mapped, e.mapped_fp
"""

# Many rows, each with its own state and reason, in one statement.  Settling names the lease
# token: rows re-leased by someone else are not touched.
SETTLE_EACH = """
    UPDATE {s}.events AS e
    SET state = u.state, reason = u.reason, settled_at = %(now)s, lease_token = NULL,
        due_at = NULL, attempts = e.attempts + u.tried
    FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(reasons)s::text[], %(tries)s::int[])
         AS u(row_id, state, reason, tried)
    WHERE e.row_id = u.row_id AND e.lease_token = %(token)s AND e.state = 'leased'
"""

# Record keys already confirmed, per row, for rows this lease still holds.
CONFIRM_RECORDS = """
    UPDATE {s}.events AS e SET confirmed = u.confirmed
    FROM unnest(%(ids)s::bigint[], %(confirmed)s::text[]) AS u(row_id, confirmed)
    WHERE e.row_id = u.row_id AND e.lease_token = %(token)s AND e.state = 'leased'
"""

RELEASE = """
    UPDATE {s}.events
    SET state = 'pending', due_at = %(retry_at)s, last_error = %(error)s, lease_token = NULL,
        attempts = attempts + %(add)s
    WHERE row_id = ANY(%(ids)s) AND lease_token = %(token)s AND state = 'leased'
"""

INSERT_QUARANTINE = """
    INSERT INTO {s}.quarantine (reason, body, received_at) VALUES (%s, %s, %s)
"""

TRIM_QUARANTINE = """
    DELETE FROM {s}.quarantine WHERE quarantine_id <= (
        SELECT quarantine_id FROM {s}.quarantine ORDER BY quarantine_id DESC OFFSET %s LIMIT 1)
"""

INSERT_ATTEMPT = """
    INSERT INTO {s}.delivery_ledger (batch_id, account_id, environment, records, event_ids,
        status, outcome, latency_ms, summary, at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

LATEST_ATTEMPTS = """
    SELECT batch_id, account_id, environment, records, event_ids, status, outcome, latency_ms,
           summary, at
    FROM {s}.delivery_ledger ORDER BY at DESC, entry_id DESC LIMIT %s
"""

COUNT_BY_STATE = """
    SELECT state, count(*), min(received_at) FILTER (WHERE state IN ('pending', 'leased'))
    FROM {s}.events GROUP BY state
"""

SKIPPED_BY_REASON = """
    SELECT coalesce(reason, ''), count(*) FROM {s}.events WHERE state = 'skipped' GROUP BY 1
"""

COUNT_QUARANTINE = "SELECT count(*) FROM {s}.quarantine"

# Probes' counts (PostgresOutbox.depths): the live rows through the partial index events_live,
# the dead ones through events_settled; never the settled rows kept for retention.
DEPTHS = """
    SELECT state, count(*) FROM {s}.events WHERE state IN ('pending', 'leased') GROUP BY state
    UNION ALL
    SELECT 'dead', count(*) FROM {s}.events WHERE state = 'dead'
"""

# One index seek in events_live per environment.
OLDEST_LIVE = """
    SELECT min(received_at) FROM {s}.events
    WHERE state IN ('pending', 'leased') AND environment = %s
"""

# A write that changes nothing, to learn whether the database takes writes again.
PROBE_WRITE = """
    UPDATE {s}.schema_migrations SET version = version
    WHERE version = (SELECT max(version) FROM {s}.schema_migrations)
"""

DEAD_LETTERS = """
    SELECT row_id, event_id, environment, coalesce(reason, ''), attempts, received_at,
           settled_at
    FROM {s}.events WHERE state = 'dead' ORDER BY settled_at, row_id LIMIT %s
"""

QUARANTINED = """
    SELECT quarantine_id, reason, body, received_at FROM {s}.quarantine
    ORDER BY quarantine_id DESC LIMIT %s
"""

QUARANTINED_BY_ID = """
    SELECT quarantine_id, reason, body, received_at FROM {s}.quarantine
    WHERE quarantine_id = ANY(%s::bigint[]) ORDER BY quarantine_id
"""

# A quarantined body back in the queue: received when it was quarantined, queued now.
REQUEUE_QUARANTINED = """
    INSERT INTO {s}.events (event_id, environment, body, received_at, queued_at, state, due_at,
                            source, app_user_id, event_type, transaction_id, route)
    SELECT %(event_id)s, %(env)s, body, received_at, %(now)s, 'pending', %(now)s, 'webhook',
           %(user)s, %(type)s, %(txn)s, %(route)s
    FROM {s}.quarantine WHERE quarantine_id = %(qid)s
    ON CONFLICT (event_id) DO NOTHING
"""

DELETE_QUARANTINED = "DELETE FROM {s}.quarantine WHERE quarantine_id = ANY(%s::bigint[])"

DISCARD_DEAD = "DELETE FROM {s}.events WHERE state = 'dead' AND row_id = ANY(%s::bigint[])"

# The dead reason becomes the row's last error, so the history is not lost on retry.
RETRY_DEAD = """
    UPDATE {s}.events
    SET state = 'pending', due_at = %(now)s, queued_at = %(now)s, attempts = 0,
        last_error = reason, reason = NULL, settled_at = NULL
    WHERE state = 'dead' AND (%(ids)s::bigint[] IS NULL OR row_id = ANY(%(ids)s::bigint[]))
"""

DELIVERED_SINCE = """
    SELECT row_id, event_id, environment, body, received_at, coalesce(queued_at, received_at),
           attempts, last_error, source, route, confirmed, mapped, mapped_fp
    FROM {s}.events WHERE state = 'delivered' AND settled_at >= %s AND settled_at < %s
    ORDER BY settled_at, row_id LIMIT %s
"""

REPLAY = """
    UPDATE {s}.events
    SET state = 'pending', due_at = %(now)s, queued_at = %(now)s, attempts = 0,
        last_error = NULL, reason = NULL, settled_at = NULL, confirmed = NULL
    WHERE state = 'delivered' AND settled_at >= %(since)s AND settled_at < %(until)s
"""

PRUNE_EVENTS = """
    DELETE FROM {s}.events WHERE state IN ('delivered', 'skipped') AND settled_at < %s
"""

PRUNE_LEDGER = "DELETE FROM {s}.delivery_ledger WHERE at < %s"

# -- the property budget (issue 15, integration/budget.py) ------------------------------------

PROPERTY_KEYS = """
    SELECT account_id, event_name, key FROM {s}.event_property_keys
    ORDER BY account_id, event_name, key
"""

PROPERTY_LIMITS = """
    SELECT account_id, event_name, learned_limit, learned_under FROM {s}.event_property_limits
"""

ADD_PROPERTY_KEY = """
    INSERT INTO {s}.event_property_keys (account_id, event_name, key, accepted_at)
    VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING
"""

SET_PROPERTY_LIMIT = """
    INSERT INTO {s}.event_property_limits
        (account_id, event_name, learned_limit, learned_under, learned_at)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (account_id, event_name) DO UPDATE SET
        learned_limit = excluded.learned_limit, learned_under = excluded.learned_under,
        learned_at = excluded.learned_at
"""


# -- the dashboard's reads (issue 17); the index each reads is named beside it ---------------

FEED_COLUMNS = """
    row_id, event_id, environment, source, app_user_id, event_type, state, attempts, reason,
    last_error, received_at, settled_at
"""

# Newest first below a cursor; the planner picks events_user (app_user_id), events_type
# (event_type), events_outcome (state) or the primary key, then checks the other filters.
# {where} is built from fixed clauses only (postgres.py), never from values.
EVENT_FEED = (
    "SELECT" + FEED_COLUMNS + "FROM {s}.events WHERE {where} ORDER BY row_id DESC LIMIT %(limit)s"
)

# The primary key.
EVENT_DETAIL = "SELECT" + FEED_COLUMNS + ", body FROM {s}.events WHERE row_id = %s"

# delivery_ledger_events (GIN on event_ids), or delivery_ledger_at over the event's life:
# every attempt is recorded between its receipt and its last settling (the ledger entry and
# the row's settled_at share one timestamp).  With a few hundred ledger rows the planner
# reads the table instead, not knowing that each row holds up to 1,000 ids to unpack; the
# time range keeps that read short too.
EVENT_ATTEMPTS = """
    SELECT batch_id, account_id, environment, records, event_ids, status, outcome, latency_ms,
           summary, at
    FROM {s}.delivery_ledger
    WHERE event_ids @> ARRAY[%(event_id)s]::text[]
      AND at >= %(received_at)s AND at <= %(settled_at)s
    ORDER BY at DESC, entry_id DESC LIMIT %(limit)s
"""

# events_received, events_settled (state, settled_at), events_outcome and the capped
# quarantine.  Run unprepared (postgres.py): a generic plan cannot tell a ten-second range
# from a week and counts the whole index.
WINDOW_COUNTS = """
    SELECT
        (SELECT count(*) FROM {s}.events
         WHERE received_at >= %(since)s AND received_at < %(until)s),
        (SELECT count(*) FROM {s}.events
         WHERE state = 'delivered' AND settled_at >= %(since)s AND settled_at < %(until)s),
        (SELECT count(*) FROM {s}.events
         WHERE state = 'dead' AND settled_at >= %(since)s AND settled_at < %(until)s),
        (SELECT count(*) FROM {s}.events
         WHERE state IN ('pending', 'leased') AND attempts > 0),
        (SELECT count(*) FROM {s}.quarantine
         WHERE received_at >= %(since)s AND received_at < %(until)s),
        (SELECT count(*) FROM {s}.events
         WHERE received_at >= %(since)s AND received_at < %(until)s AND source = 'backfill'),
        (SELECT count(*) FROM {s}.events
         WHERE state = 'delivered' AND settled_at >= %(since)s AND settled_at < %(until)s
           AND source = 'backfill')
"""

# events_settled (state, settled_at).
SKIPPED_SINCE = """
    SELECT coalesce(reason, ''), count(*) FROM {s}.events
    WHERE state = 'skipped' AND settled_at >= %s AND settled_at < %s
    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s
"""

# delivery_ledger_at.
UPLOADS_SINCE = """
    SELECT account_id, environment, outcome, records, latency_ms, at FROM {s}.delivery_ledger
    WHERE at >= %s ORDER BY at DESC LIMIT %s
"""


# The backfill (issue 18): which event ids are stored (the UNIQUE index on event_id), and
# which (transaction_id, event_type) pairs rows of one source hold (events_transaction).
STORED_EVENTS = """
    SELECT event_id FROM {s}.events WHERE event_id = ANY(%(ids)s::text[])
"""
STORED_TRANSACTION_EVENTS = """
    SELECT DISTINCT e.transaction_id, e.event_type
    FROM unnest(%(transactions)s::text[], %(types)s::text[]) AS p(transaction_id, event_type)
    JOIN {s}.events AS e
      ON e.transaction_id = p.transaction_id AND e.event_type = p.event_type
    WHERE e.source = %(source)s
"""
BACKFILL_COUNTS = """
    SELECT state, count(*) FROM {s}.events WHERE source = 'backfill' GROUP BY state
"""

WAITING_BY_ROUTE = """
    SELECT route, count(*) FROM {s}.events WHERE state IN ('pending', 'leased') GROUP BY route
"""


def event_from_row(row: TupleRow) -> OutboxEvent:
    """An :class:`OutboxEvent` from a row in :data:`LEASE`'s RETURNING order."""
    return OutboxEvent(
        row_id=int(row[0]),
        event_id=str(row[1]),
        environment=str(row[2]),
        body=bytes(row[3]),
        received_at=float(row[4]),
        queued_at=float(row[5]),
        attempts=int(row[6]),
        last_error=row[7],
        source=str(row[8]),
        route=str(row[9]),
        confirmed=row[10],
        mapped=None if row[11] is None else bytes(row[11]),
        mapped_fp=row[12],
    )


def attempt_from_row(row: TupleRow) -> DeliveryAttempt:
    """A :class:`DeliveryAttempt` from a row in :data:`LATEST_ATTEMPTS`' column order."""
    return DeliveryAttempt(
        batch_id=str(row[0]),
        account_id=str(row[1]),
        environment=str(row[2]),
        records=int(row[3]),
        event_ids=tuple(str(e) for e in row[4]),
        status=str(row[5]),
        outcome=str(row[6]),
        latency_ms=float(row[7]),
        summary=str(row[8]),
        at=float(row[9]),
    )
