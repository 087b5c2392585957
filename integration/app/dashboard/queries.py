"""What the dashboard's pages show, read from a running engine: its outbox, metrics, accounts.

Each function returns plain data (dataclasses and dicts) that the templates render and the
JSON API returns as it is.  Every outbox read goes through the :class:`~integration.outbox.Outbox`
interface, so the pages work the same on SQLite and PostgreSQL; the index each read uses is
named where the backend runs it (``integration/outbox/sqlite.py``, ``_pg_queries.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from integration.app.dashboard.auth import number
from integration.engine import Engine
from integration.mapping import Skipped, map_event
from integration.outbox.base import (
    EventRow,
    FeedQuery,
    Outbox,
    RowState,
    UploadSample,
    WindowCounts,
)
from integration.webhook import InvalidWebhook, parse_event

__all__ = [
    "OUTCOMES",
    "REFUSAL_REASONS",
    "WINDOWS",
    "AccountView",
    "EventView",
    "FeedPage",
    "Overview",
    "WindowCache",
    "event_view",
    "feed",
    "overview",
]

#: The overview's windows, by the name the page's picker sends.
WINDOWS: dict[str, float] = {"15m": 900.0, "1h": 3600.0, "24h": 86_400.0, "7d": 604_800.0}
#: The feed's outcome filter: an outbox row's state.
OUTCOMES = tuple(state.value for state in RowState)
#: ``webhooks_rejected_total``'s reasons (integration/metrics.py), in the order shown.
REFUSAL_REASONS = ("unauthorized", "too_large", "invalid_body", "unavailable")
#: Most ledger entries one overview reads for upload rates and latencies.
MAX_UPLOADS_READ = 10_000
#: Most events on one page of the feed.
MAX_PAGE = 200
#: Skip reasons the overview lists (the commonest).
SKIP_REASONS_SHOWN = 20


class WindowCache:
    """Sliding window counts, kept up to date with small range reads instead of a full one.

    The overview refreshes every few seconds; counting a week of a million events each time
    would read a million index entries per refresh.  For each window, the counts of
    ``[since, now - settle_margin_s)`` are read once, then each refresh subtracts the range
    that left the window and adds the range that closed, and reads the newest
    ``settle_margin_s`` afresh (a row's time is taken just before its commit, so a range only
    counts as closed once no commit can still land in it).  Every ``resync_s`` the whole window
    is read again, so a replay or a prune inside a window shows within that time.

    Parameters:
        outbox: the outbox whose :meth:`~integration.outbox.Outbox.window_counts` is read.
        settle_margin_s: how long a range stays open (read afresh each time).
        resync_s: how often each window is read whole again (monotonic seconds).
        monotonic: the clock of ``resync_s``.
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        settle_margin_s: float = 10.0,
        resync_s: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._margin_s = settle_margin_s
        self._resync_s = resync_s
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        # window length: (since, closed_until, synced at (monotonic), closed counts)
        self._closed: dict[float, tuple[float, float, float, _Sums]] = {}

    async def counts(self, length_s: float, *, now: float) -> WindowCounts:
        """The counts of ``[now - length_s, now]``; ``retrying`` as of now."""
        since, closed_until = now - length_s, now - self._margin_s
        async with self._lock:
            held = self._closed.get(length_s)
            if (
                held is None
                or self._monotonic() - held[2] >= self._resync_s
                or since < held[0]
                or closed_until < held[1]
                or since >= held[1]  # the window moved past everything held
            ):
                sums = _Sums.of(await self._outbox.window_counts(since=since, until=closed_until))
                held = (since, closed_until, self._monotonic(), sums)
            else:
                # Add what closed, then take away what left: [since, closed_until) exactly.
                old_since, old_until, synced, sums = held
                if closed_until > old_until:
                    sums = sums + _Sums.of(
                        await self._outbox.window_counts(since=old_until, until=closed_until)
                    )
                if since > old_since:
                    sums = sums - _Sums.of(
                        await self._outbox.window_counts(since=old_since, until=since)
                    )
                held = (since, closed_until, synced, sums)
            self._closed[length_s] = held
            newest = await self._outbox.window_counts(since=closed_until)
        total = held[3] + _Sums.of(newest)
        return WindowCounts(
            received=total.received,
            delivered=total.delivered,
            dead=total.dead,
            skipped_by_reason=dict(total.skipped.most_common(SKIP_REASONS_SHOWN)),
            retrying=newest.retrying,
            quarantined=total.quarantined,
            backfill_received=total.backfill_received,
            backfill_delivered=total.backfill_delivered,
        )


@dataclass(frozen=True, slots=True)
class _Sums:
    """The additive part of :class:`WindowCounts`."""

    received: int
    delivered: int
    dead: int
    quarantined: int
    skipped: Counter[str]
    backfill_received: int
    backfill_delivered: int

    @classmethod
    def of(cls, counts: WindowCounts) -> _Sums:
        return cls(
            counts.received,
            counts.delivered,
            counts.dead,
            counts.quarantined,
            Counter(counts.skipped_by_reason),
            counts.backfill_received,
            counts.backfill_delivered,
        )

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(
            self.received + other.received,
            self.delivered + other.delivered,
            self.dead + other.dead,
            self.quarantined + other.quarantined,
            self.skipped + other.skipped,
            self.backfill_received + other.backfill_received,
            self.backfill_delivered + other.backfill_delivered,
        )

    def __sub__(self, other: _Sums) -> _Sums:
        # Counter subtraction drops reasons that reach zero; counts never go below zero.
        return _Sums(
            max(0, self.received - other.received),
            max(0, self.delivered - other.delivered),
            max(0, self.dead - other.dead),
            max(0, self.quarantined - other.quarantined),
            self.skipped - other.skipped,
            max(0, self.backfill_received - other.backfill_received),
            max(0, self.backfill_delivered - other.backfill_delivered),
        )


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: str
    environments: tuple[str, ...]
    routes: tuple[str, ...]  # the [[routes]] delivering to it ("default" without any)
    state: str  # "delivering" (uploads in the last minute) | "idle" | "paused after a 401"
    paused_until: float | None
    concurrency_limit: int
    in_flight: int  # slots in use: uploads, and the lane's own lease while it polls
    uploads: int  # in the window
    uploads_last_minute: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


@dataclass(frozen=True, slots=True)
class Overview:
    """The pipeline over one window, the queue now, and each account."""

    window: str
    since: float
    now: float
    received: int
    delivered: int
    retrying: int
    dead: int
    skipped_by_reason: dict[str, int]
    quarantined: int
    # Of received and delivered: the events a backfill derived (issue 18), shown apart.
    backfill_received: int
    backfill_delivered: int
    # Counted by this process since it started (the outbox keeps no refused webhook).
    duplicates: int
    refused_by_reason: dict[str, int]
    pending: int
    leased: int
    dead_total: int
    oldest_pending_age_s: float | None
    accounts: list[AccountView]
    uploads_sampled: int  # ledger entries read (at most MAX_UPLOADS_READ)
    uploads_retried: int  # of those, uploads CleverTap did not take (retried or paused)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    @property
    def refused(self) -> int:
        return sum(self.refused_by_reason.values())

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "skipped": self.skipped, "refused": self.refused}


async def overview(engine: Engine, cache: WindowCache, window: str, *, now: float) -> Overview:
    """The overview for ``window`` (a key of :data:`WINDOWS`) at ``now``."""
    since = now - WINDOWS[window]
    counts = await cache.counts(WINDOWS[window], now=now)
    depths = await engine.queue_depths()
    uploads = await engine.outbox.uploads_since(since=since, limit=MAX_UPLOADS_READ)
    metrics = engine.metrics
    refused = {r: int(metrics.value("webhooks_rejected_total", reason=r)) for r in REFUSAL_REASONS}
    return Overview(
        window=window,
        since=since,
        now=now,
        received=counts.received,
        delivered=counts.delivered,
        retrying=counts.retrying,
        dead=counts.dead,
        skipped_by_reason=counts.skipped_by_reason,
        quarantined=counts.quarantined,
        backfill_received=counts.backfill_received,
        backfill_delivered=counts.backfill_delivered,
        duplicates=int(metrics.total("webhooks_duplicate_total")),
        refused_by_reason={reason: n for reason, n in refused.items() if n},
        pending=depths.pending,
        leased=depths.leased,
        dead_total=depths.dead,
        oldest_pending_age_s=None
        if depths.oldest_pending_at is None
        else max(0.0, now - depths.oldest_pending_at),
        accounts=_accounts(engine, uploads, now),
        uploads_sampled=len(uploads),
        uploads_retried=sum(1 for u in uploads if u.outcome in ("retry", "paused")),
    )


def _accounts(engine: Engine, uploads: list[UploadSample], now: float) -> list[AccountView]:
    # Latencies over the window's uploads (the newest MAX_UPLOADS_READ); the rate over the
    # last minute, which says what an account does now whatever the window.
    views: list[AccountView] = []
    configured = set(account_ids(engine))
    for account in engine.dispatcher.accounts():
        if account.account_id not in configured:
            continue  # an environment without an account is no account
        mine = sorted(u.latency_ms for u in uploads if u.account_id == account.account_id)
        last_minute = sum(
            1 for u in uploads if u.account_id == account.account_id and u.at >= now - 60
        )
        # A lane holds a slot while it asks the outbox for rows, so slots in use alone do not
        # say that anything is being sent: an upload in the last minute does.
        if account.paused_until is not None and account.paused_until > now:
            state = "paused after a 401"
        elif last_minute:
            state = "delivering"
        else:
            state = "idle"
        views.append(
            AccountView(
                account_id=account.account_id,
                environments=account.environments,
                routes=account.routes,
                state=state,
                paused_until=account.paused_until,
                concurrency_limit=account.concurrency_limit,
                in_flight=account.in_flight,
                uploads=len(mine),
                uploads_last_minute=last_minute,
                latency_p50_ms=_percentile(mine, 0.50),
                latency_p99_ms=_percentile(mine, 0.99),
            )
        )
    return views


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list; ``None`` when empty."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def account_lanes(engine: Engine, account_id: str) -> tuple[tuple[str, str], ...]:
    """The (route, environment) pairs whose events go to ``account_id`` (none if unknown)."""
    return tuple(
        (route.name, environment)
        for route in engine.routes
        for environment in ("PRODUCTION", "SANDBOX")
        if (account := route.config.clevertap.account_for(environment)) is not None
        and account.account_id == account_id
    )


def account_ids(engine: Engine) -> list[str]:
    """Every configured CleverTap account, in the order routes name them."""
    ids: list[str] = []
    for route in engine.routes:
        for environment in ("PRODUCTION", "SANDBOX"):
            account = route.config.clevertap.account_for(environment)
            if account is not None and account.account_id not in ids:
                ids.append(account.account_id)
    return ids


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of the feed and the cursor of the next (``None`` when nothing is older).

    ``stopped_at_scan`` says the page ended because :data:`MAX_FEED_SCAN` rows were looked at,
    not because no older event matches: the next page searches further down.
    """

    events: list[EventRow]
    next_before: int | None
    stopped_at_scan: bool


#: Rows one page of the feed looks at when no index narrows its filters (account alone, or
#: outcome delivered): each page's work stays bounded however rare the matches are.
MAX_FEED_SCAN = 100_000


async def feed(engine: Engine, filters: Mapping[str, str]) -> FeedPage:
    """One page of the feed for the query string's filters (unknown values match nothing)."""

    def text(name: str) -> str | None:
        value = filters.get(name, "").strip()
        return value[:200] or None

    before = filters.get("before", "")
    limit = filters.get("limit", "")
    account = text("account")
    query = FeedQuery(
        limit=min(number(limit) or 50, MAX_PAGE),
        before=number(before),
        app_user_id=text("user"),
        event_type=text("type"),
        state=text("outcome"),
        lanes=None if account is None else account_lanes(engine, account),
    )
    if query.lanes == ():
        return FeedPage([], None, False)  # an account this engine does not deliver to
    indexed = query.app_user_id or query.event_type or query.state not in (None, "delivered")
    bounded = not indexed and (query.lanes is not None or query.state is not None)
    if bounded:
        top = query.before
        if top is None:
            newest = await engine.outbox.event_feed(FeedQuery(limit=1))
            top = newest[0].row_id + 1 if newest else 1
        query = dataclasses.replace(query, before=top, at_least=max(1, top - MAX_FEED_SCAN))
    events = await engine.outbox.event_feed(query)
    if len(events) == query.limit:
        return FeedPage(events, events[-1].row_id, False)
    if bounded and query.at_least is not None and query.at_least > 1:
        return FeedPage(events, query.at_least, True)
    return FeedPage(events, None, False)


@dataclass(frozen=True, slots=True)
class EventView:
    """One event: its row, its body pretty-printed, its CleverTap records, its uploads."""

    event: EventRow
    body: str  # pretty-printed JSON, or the bytes as text when they are not JSON
    records: list[dict[str, Any]]  # as the current configuration maps the body
    not_sent_because: str | None  # the mapping's reason when it sends nothing
    attempts: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def event_view(engine: Engine, row_id: int) -> EventView | None:
    detail = await engine.outbox.event_detail(row_id)
    if detail is None:
        return None
    try:
        body = orjson.dumps(orjson.loads(detail.body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        body = detail.body.decode("utf-8", errors="replace")
    records: list[dict[str, Any]] = []
    reason: str | None = None
    try:
        mapped = map_event(parse_event(detail.body), engine.config)
    except InvalidWebhook as exc:
        reason = f"not a RevenueCat event: {exc.reason}"
    else:
        if isinstance(mapped, Skipped):
            reason = mapped.reason
        else:
            records = mapped.records
    attempts = [
        {
            "at": a.at,
            "batch_id": a.batch_id,
            "account_id": a.account_id,
            "records": a.records,
            "status": a.status,
            "outcome": a.outcome,
            "latency_ms": round(a.latency_ms, 1),
            "summary": a.summary,
        }
        for a in detail.attempts
    ]
    return EventView(detail.event, body, records, reason, attempts)
