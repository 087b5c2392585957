"""The outbox contract: every accepted webhook, durably, until it is delivered, skipped or dead.

Each backend (``sqlite.py``, ``postgres.py``) implements :class:`Outbox`.  The receiver only
calls :meth:`Outbox.enqueue` and :meth:`Outbox.quarantine`; the dispatcher leases, and
settles what it leased.

The life of one row::

                 enqueue
                    |
                    v
    +---------> PENDING ----lease----> LEASED ---settle delivered---> DELIVERED --prune--> (gone)
    |              ^                    |  |
    |   release    |  lease expired     |  +--------settle skipped----> SKIPPED  --prune--> (gone)
    |  (retry_at)  +--------------------+  |
    |                                      +--------settle dead-------> DEAD
    |                                                                    |
    +-------------------------- retry_dead (operator) -------------------+
    +-------------------------- replay (operator) ------- DELIVERED -----+

- A lease carries a token.  Settling calls name the token, so a worker whose lease expired
  (and whose rows another worker took) cannot settle rows it no longer holds: those calls
  change nothing and report how many rows they did settle.
- ``enqueue`` returns only once the row is on disk (fsync'd); concurrent calls share one
  transaction (group commit).  A repeated ``event_id`` is acknowledged and not stored twice.
- ``settle`` moves an upload's rows to their states and appends its attempt to the delivery
  ledger in one transaction: the dispatcher settles each upload with one commit, since every
  commit waits for the disk.
- Raw bodies are stored and mapped at delivery time, so configuration changes apply to the
  backlog and ``replay`` re-sends with the current configuration.
- All times are epoch seconds as floats, passed in by the caller (injected clocks).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol


class RowState(enum.StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    DEAD = "dead"


class OutboxEvent(NamedTuple):
    """One stored webhook, as the dispatcher sees it.

    A named tuple, not a frozen dataclass: one is made for every row leased, and a frozen
    dataclass of these 13 fields took 2.8 µs to make against 0.5 µs (issue 21's profile).
    """

    row_id: int
    event_id: str
    environment: str  # "PRODUCTION" | "SANDBOX", from the event itself
    body: bytes  # the webhook body exactly as received
    received_at: float
    # When the row last entered the queue: at enqueue, and again at retry_dead and replay.
    # The dispatcher's maximum age counts from here, so a retried dead letter or a replayed
    # event gets the whole max_age_s again, even across restarts.
    queued_at: float
    attempts: int  # delivery attempts that failed so far (retryable, or the final refusal)
    last_error: str | None
    source: str = "webhook"  # "webhook" (received live) or "backfill" (derived from an export)
    # The route the receiver gave it (issue 16, schema 6): its CleverTap account and rules.
    route: str = "default"
    # Records of this event CleverTap already confirmed on an earlier try (schema 7), as the
    # stored JSON array of record keys; None when none was (see :attr:`confirmed_records`).
    confirmed: str | None = None
    # The body mapped when it was stored, and the fingerprint of the configuration and code
    # that mapped it (schema 8, integration/premap.py); None for rows stored without one.
    mapped: bytes | None = None
    mapped_fp: str | None = None

    @property
    def confirmed_records(self) -> frozenset[str]:
        """Keys (``integration.mapping.record_key``) of the records not to send again."""
        if not self.confirmed:
            return frozenset()
        return frozenset(str(key) for key in json.loads(self.confirmed))


@dataclass(frozen=True, slots=True)
class Lease:
    """Rows handed to one worker until ``expires_at``."""

    token: str
    environment: str
    events: tuple[OutboxEvent, ...]
    expires_at: float
    route: str = "default"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    row_id: int
    event_id: str
    environment: str
    reason: str  # e.g. "clevertap 513: Trying to raise ..." or "max age exceeded: ..."
    attempts: int
    received_at: float
    dead_at: float


@dataclass(frozen=True, slots=True)
class QuarantinedBody:
    quarantine_id: int
    reason: str
    body: bytes
    received_at: float


@dataclass(frozen=True, slots=True)
class Requeue:
    """A quarantined body to move into the queue, as the event it turned out to be (read by
    the caller: the outbox never parses bodies)."""

    quarantine_id: int
    event_id: str
    environment: str
    app_user_id: str | None = None
    event_type: str | None = None
    transaction_id: str | None = None
    route: str = "default"  # the route its app_id takes on the shared path (issue 16)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One upload attempt, for the delivery ledger."""

    batch_id: str
    account_id: str
    environment: str
    records: int
    event_ids: tuple[str, ...]
    status: str  # HTTP status as text ("200", "429", ...) or "connection-error" / "timeout"
    outcome: str  # "delivered" | "partial" | "retry" | "paused" | "dead"
    latency_ms: float
    summary: str  # short, secret-free response summary
    at: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    leased: int
    delivered: int
    skipped: int
    dead: int
    quarantined: int
    oldest_pending_at: float | None
    skipped_by_reason: dict[str, int]
    last_attempt: DeliveryAttempt | None


@dataclass(frozen=True, slots=True)
class QueueDepths:
    """Rows waiting, in flight and dead, and the oldest waiting: what ``/metrics`` shows.

    Read from indexes (never a scan of the settled rows), off the connection that commits."""

    pending: int
    leased: int
    dead: int
    oldest_pending_at: float | None


@dataclass(frozen=True, slots=True)
class OutboxHealth:
    """Whether the outbox takes writes, as its last write found (no I/O to ask)."""

    writable: bool
    reason: str | None = None  # why the last write failed, as the backend's error says


class WriteHealth:
    """The outcome of a backend's latest write: failed from a failed write until one commits.

    ``/healthz`` reads it on every probe, so it is state kept as writes happen, not a query.
    """

    __slots__ = ("_reason",)

    def __init__(self) -> None:
        self._reason: str | None = None

    def committed(self) -> None:
        self._reason = None

    def failed(self, reason: str) -> None:
        self._reason = reason

    def state(self) -> OutboxHealth:
        reason = self._reason
        return OutboxHealth(writable=reason is None, reason=reason)


@dataclass(frozen=True, slots=True)
class EventProperties:
    """What the property budget (integration/budget.py) keeps for one event name of one
    account: ``evtData`` keys CleverTap confirmed, and the limit a 522 taught it with the
    configured budget it was learned under (``None`` before any 522)."""

    account_id: str
    event_name: str
    keys: tuple[str, ...] = ()
    learned_limit: int | None = None
    learned_under: int | None = None


def event_properties_from(
    key_rows: Iterable[Sequence[Any]], limit_rows: Iterable[Sequence[Any]]
) -> list[EventProperties]:
    """:class:`EventProperties` from ``(account_id, event_name, key)`` rows and
    ``(account_id, event_name, learned_limit, learned_under)`` rows (both backends)."""
    keys: dict[tuple[str, str], list[str]] = {}
    for account_id, event_name, key in key_rows:
        keys.setdefault((str(account_id), str(event_name)), []).append(str(key))
    limits = {(str(r[0]), str(r[1])): (int(r[2]), int(r[3])) for r in limit_rows}
    entries: list[EventProperties] = []
    for name in sorted(keys.keys() | limits.keys()):
        learned_limit, learned_under = limits.get(name, (None, None))
        entries.append(
            EventProperties(*name, tuple(keys.get(name, ())), learned_limit, learned_under)
        )
    return entries


def budget_params(
    entries: Sequence[EventProperties], now: float
) -> tuple[list[tuple[str, str, str, float]], list[tuple[str, str, int, int, float]]]:
    """The rows :meth:`Outbox.add_event_properties` writes (both backends): one per new key,
    ``(account_id, event_name, key, now)``, and one per learned limit, ``(account_id,
    event_name, learned_limit, learned_under, now)``."""
    keys = [(e.account_id, e.event_name, key, now) for e in entries for key in e.keys]
    limits = [
        (e.account_id, e.event_name, e.learned_limit, e.learned_under, now)
        for e in entries
        if e.learned_limit is not None and e.learned_under is not None
    ]
    return keys, limits


# Environments a row can have (the webhook parser accepts only these): the oldest waiting row
# is looked up once per environment, each an index seek.
ENVIRONMENTS = ("PRODUCTION", "SANDBOX")


# -- what the dashboard reads (issue 17) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event as the dashboard's feed lists it: its columns, not its body."""

    row_id: int
    event_id: str
    environment: str
    source: str
    app_user_id: str | None
    event_type: str | None
    state: str  # a RowState value
    attempts: int
    reason: str | None  # why it was skipped or dead-lettered
    last_error: str | None
    received_at: float
    settled_at: float | None


@dataclass(frozen=True, slots=True)
class FeedQuery:
    """Which events :meth:`Outbox.event_feed` returns: newest first, below ``before``.

    Each filter is exact; ``environments`` selects the accounts (an account serves one or both
    environments).  ``before`` is the cursor: the smallest row id of the previous page;
    ``at_least`` bounds the rows looked at from below, for filters no index narrows;
    ``lanes`` keeps the rows of these ``(route, environment)`` pairs (one account's events
    when routes send to several accounts).
    """

    limit: int = 50
    before: int | None = None
    at_least: int | None = None
    app_user_id: str | None = None
    event_type: str | None = None
    state: str | None = None
    environments: tuple[str, ...] | None = None
    lanes: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class EventDetail:
    """One event with its body as received and the ledger entries that carried it."""

    event: EventRow
    body: bytes
    attempts: tuple[DeliveryAttempt, ...]  # newest first


#: Most skip reasons :meth:`Outbox.window_counts` returns (the commonest).
MAX_SKIP_REASONS = 100


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What happened to events from ``since`` until ``until``, read from indexes (the
    dashboard's overview); ``retrying`` is always now."""

    received: int  # stored rows received since then (still in the outbox: not yet pruned)
    delivered: int  # settled as delivered since then
    dead: int  # dead-lettered since then, still dead
    skipped_by_reason: dict[str, int]  # skipped since then, the MAX_SKIP_REASONS commonest
    retrying: int  # now: waiting or in flight after at least one failed attempt
    quarantined: int  # invalid bodies quarantined since then, still kept
    # Of ``received`` and ``delivered``: the rows a backfill stored (issue 18).  No index
    # holds ``source`` beside these times (schema 7), so each is the time range of its
    # index with the rows looked up: cheap for the WindowCache's small slices, the bulk of a
    # window's first read.  UNFINISHED: partial indexes WHERE source = 'backfill' in a
    # schema version after the performance work's would make that read index-only.
    backfill_received: int = 0
    backfill_delivered: int = 0


@dataclass(frozen=True, slots=True)
class UploadSample:
    """One ledger entry without its event ids: an upload's account, outcome and latency."""

    account_id: str
    environment: str
    outcome: str
    records: int
    latency_ms: float
    at: float


class Outbox(Protocol):
    """What every outbox backend offers.  See the module docstring for the row life cycle."""

    async def open(self) -> None:
        """Create or migrate the schema (versioned); safe to call from several processes."""

    async def close(self) -> None:
        """Flush pending group commits and release connections."""

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
        """Store one webhook durably; ``False`` when ``event_id`` was already stored.

        ``route`` names the route it was received on (issue 16): leases are per route and
        environment, so a retry or a replay goes where the event first went.
        ``source`` says where the row came from (``"webhook"`` or ``"backfill"``);
        ``app_user_id``, ``event_type`` and ``transaction_id`` are the event's own, kept for
        lookups (the dashboard's feed, the backfill's check against live events).
        ``mapped`` is the body's mapped form and ``mapped_fp`` the fingerprint of the
        configuration that made it (schema 8, :mod:`integration.premap`); both or neither."""

    async def quarantine(self, body: bytes, reason: str, *, now: float) -> None:
        """Keep an authenticated but invalid body, bounded (oldest dropped past the cap)."""

    async def lease(
        self, environment: str, limit: int, *, now: float, lease_s: float, route: str = "default"
    ) -> Lease | None:
        """Take up to ``limit`` due rows of ``route`` and ``environment`` (pending and due, or
        leased and expired), oldest first, live webhooks before backfilled rows."""

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
        """Settle rows as delivered, skipped ``(row_id, reason)`` or dead ``(row_id, reason)``
        and append ``attempt`` to the ledger, all in one transaction (one commit for a whole
        upload); returns how many rows this lease still held.

        ``dead`` rows died before any try (their stored body could not be mapped);
        ``dead_tried`` rows died on a try (CleverTap refused them, or a failed try found them
        past the maximum age), so their ``attempts`` goes up by one, counting that try: a
        record refused on its first upload shows one attempt, not zero."""

    async def confirm_records(self, lease: Lease, confirmed: Mapping[int, Sequence[str]]) -> int:
        """Remember, per row this lease holds, the keys of the records CleverTap confirmed
        (the whole set so far, replacing what was stored), so that retrying the row sends only
        its other records; returns how many rows were updated."""

    async def release(
        self, lease: Lease, row_ids: Sequence[int], *, retry_at: float, error: str, count: bool
    ) -> int:
        """Give rows back as pending, due at ``retry_at``; ``count`` adds one to ``attempts``."""

    async def attempts(self, *, limit: int = 100) -> list[DeliveryAttempt]:
        """The latest ledger entries, newest first."""

    async def stats(self) -> OutboxStats:
        """Counts by state and the facts ``rc-clevertap status`` shows."""

    async def depths(self) -> QueueDepths:
        """Pending, leased and dead counts from indexes, on a connection that does not commit."""

    def health(self) -> OutboxHealth:
        """Whether the last write committed; no I/O (``/healthz`` asks on every probe)."""

    async def probe_write(self) -> None:
        """Commit one tiny write, so that :meth:`health` learns the outbox takes writes again."""

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Dead rows, oldest first."""

    async def retry_dead(self, row_ids: Sequence[int] | None, *, now: float) -> int:
        """Move dead rows (all when ``None``) back to pending with fresh attempts."""

    async def replay(self, *, since: float, now: float, until: float | None = None) -> int:
        """Move rows delivered at or after ``since`` (and before ``until``, when given) back
        to pending."""

    async def delivered_since(
        self, *, since: float, limit: int = 100, until: float | None = None
    ) -> list[OutboxEvent]:
        """Rows delivered at or after ``since`` and before ``until`` (no end when ``None``),
        oldest first: what :meth:`replay` would send (``rc-clevertap replay --dry-run``).
        Changes nothing."""

    async def quarantined(self, *, limit: int = 100) -> list[QuarantinedBody]:
        """Quarantined bodies, newest first."""

    async def quarantined_by_id(self, quarantine_ids: Sequence[int]) -> list[QuarantinedBody]:
        """The quarantined bodies with these ids (those that exist), by id."""

    async def requeue_quarantined(self, rows: Sequence[Requeue], *, now: float) -> int:
        """Move quarantined bodies into the queue, all in one transaction: each becomes a
        pending event (received when it was quarantined, queued ``now``; an event id already
        stored is not stored again) and leaves the quarantine.  Returns how many left it."""

    async def discard_quarantined(self, quarantine_ids: Sequence[int]) -> int:
        """Delete quarantined bodies; returns how many there were."""

    async def discard_dead(self, row_ids: Sequence[int]) -> int:
        """Delete dead rows (and their bodies) for good; returns how many were dead."""

    async def prune(self, *, delivered_before: float) -> int:
        """Delete delivered and skipped rows settled before the given time."""

    # -- the dashboard's reads (issue 17); each says which index it reads ------------------

    async def event_feed(self, query: FeedQuery) -> list[EventRow]:
        """Events matching ``query``, newest (highest row id) first, at most ``query.limit``."""

    async def event_detail(self, row_id: int, *, attempts_limit: int = 50) -> EventDetail | None:
        """One event, its body and its latest ledger entries; ``None`` when no such row."""

    async def window_counts(self, *, since: float, until: float | None = None) -> WindowCounts:
        """Received, delivered, skipped, dead and quarantined at or after ``since`` and before
        ``until`` (no end when ``None``); retrying now."""

    async def uploads_since(self, *, since: float, limit: int = 10_000) -> list[UploadSample]:
        """Ledger entries at or after ``since``, newest first, at most ``limit``."""

    # -- the property budget (issue 15, integration/budget.py) ----------------------------

    async def event_properties(self) -> list[EventProperties]:
        """Every stored (account, event name): its confirmed keys and learned limit."""

    async def add_event_properties(self, entries: Sequence[EventProperties], *, now: float) -> None:
        """Store newly confirmed keys (each key once) and, for an entry that has one, its
        learned limit (replacing the stored one), in one transaction."""

    # -- the backfill (issue 18, integration/backfill/) ------------------------------------

    async def stored_events(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` the outbox holds (any state), from the event id index: a
        resumed or repeated backfill skips them without writing."""

    async def stored_transaction_events(
        self, pairs: Sequence[tuple[str, str]], *, source: str = "webhook"
    ) -> set[tuple[str, str]]:
        """Which ``(transaction_id, event_type)`` pairs rows of ``source`` hold, from the
        ``events_transaction`` index: the backfill's check against live webhooks."""

    async def backfill_counts(self) -> dict[str, int]:
        """Rows from backfills (``source = 'backfill'``) by state, the states with none left
        out: what ``rc-clevertap status`` shows apart from live events."""

    async def waiting_by_route(self) -> dict[str, int]:
        """Pending and leased rows by route, from the ``events_due`` index (route first, the
        live rows only): how ``status`` and the engine's start find rows whose route is no
        longer configured (issue 16)."""
