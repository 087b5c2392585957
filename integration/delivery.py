"""Delivering one lease: map its events, upload them in chunks, carry out each verdict's plan.

A :class:`LeaseDelivery` is made by the dispatcher for every lease it gets.  For each upload it
asks :func:`integration.policy.plan_upload` what the verdict means and carries the plan out:
the account's :class:`~integration.slots.Slots` (limit, pause), the log lines, the releases,
and one :meth:`Outbox.settle <integration.outbox.base.Outbox.settle>` per upload that writes
the rows it settles (delivered, dead, and the lease's skipped events) with its ledger entry.
Each event record is cut to its event name's property budget
(:class:`~integration.budget.PropertyBudget`) once mapped; the keys CleverTap confirms are
stored just before the settle, and a record refused with a 522 is sent again at once with
its core keys only.
It holds the rows of the lease not yet settled or released, so that a shutdown
(:meth:`LeaseDelivery.give_back`) or an unexpected exception (:meth:`LeaseDelivery.fail`)
hands back exactly those.

Example (what the dispatcher does with each lease)::

    delivery = LeaseDelivery(context, lease, slots)
    try:
        await delivery.run()
    except Exception as exc:
        await delivery.fail(f"delivery failed: {type(exc).__name__}")
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from integration.budget import PropertyBudget
from integration.config import Config
from integration.mapping import Mapped, Skipped, map_event, record_key
from integration.metrics import Metrics
from integration.outbox.base import DeliveryAttempt, EventProperties, Lease, Outbox, OutboxEvent
from integration.policy import (
    PROPERTIES_LIMIT_CODE,
    Pause,
    Plan,
    Release,
    plan_retry,
    plan_upload,
)
from integration.premap import Stored, from_stored
from integration.slots import Slots
from integration.transform import SKIP_CODE as TRANSFORM_SKIP_CODE
from integration.transform import Transform
from integration.uploader import Uploader, UploadResult
from integration.webhook import ENVIRONMENTS, InvalidWebhook, parse_event

__all__ = ["DeliveryContext", "LeaseDelivery"]

# These lines were the dispatcher's before this module was split out of it; they keep its name.
logger = logging.getLogger("integration.dispatcher")

MAP_YIELD_EVERY = 50  # events mapped between two turns of the event loop

# One event of a lease with the records it maps to.
_Item = tuple[OutboxEvent, list[dict[str, Any]]]
# Mapped, before the transform: the event, its parsed body, its environment and records.
_Mapped = tuple[OutboxEvent, dict[str, Any], str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """What every lease's delivery shares with its dispatcher.

    ``records_per_event`` is the lanes' estimate per environment, which sizes their leases;
    each delivery updates it as soon as its lease is mapped.  ``budget`` is the property
    budget the dispatcher's deliveries share, loaded from the outbox by the first of them.
    """

    config: Config
    outbox: Outbox
    uploader: Uploader
    metrics: Metrics
    clock: Callable[[], float]
    random: Callable[[], float]
    records_per_event: dict[str, float]
    budget: PropertyBudget = field(default_factory=PropertyBudget)
    # The route the lease's rows belong to (issue 16), its transform, and the labels its
    # counters carry ({"route": name} when [[routes]] are configured, else none).
    route: str = "default"
    transform: Transform | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # The route's mapping fingerprint (integration/premap.py): a row stored with this one
    # is delivered from its stored mapped form; None maps every body (and so does any other).
    fingerprint: str | None = None


@dataclass(slots=True)
class _Settlement:
    """Rows of one lease to settle in the next :meth:`Outbox.settle` call."""

    delivered: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    skip_codes: list[str] = field(default_factory=list)  # metric labels, beside ``skipped``
    dead: list[tuple[int, str]] = field(default_factory=list)  # before any try (unmappable)
    dead_tried: list[tuple[int, str]] = field(default_factory=list)  # on a failed try
    # The property budget's news (keys CleverTap confirmed, limits a 522 taught), stored
    # just before the settle.
    properties: list[EventProperties] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.delivered or self.skipped or self.dead or self.dead_tried or self.properties
        )


class LeaseDelivery:
    """One lease on its way to CleverTap: maps it, uploads it in chunks, and carries out each
    verdict's :class:`~integration.policy.Plan` against the outbox.

    It owns the rows the lease still holds (``held``: what an unexpected failure must still
    hand back), the account's slots, and the rows the next settle writes.
    """

    def __init__(self, context: DeliveryContext, lease: Lease, slots: Slots) -> None:
        self.context = context
        self.lease = lease
        self.slots = slots
        self.held: dict[int, OutboxEvent] = {event.row_id: event for event in lease.events}
        self.settlement = _Settlement()
        # Per row, the keys of its records that uploads of this lease with failures (or
        # earlier tries) confirmed; written to the outbox when the row is retried.
        self.accepted: dict[int, set[str]] = {}

    async def run(self) -> None:
        """Map the lease, then upload it in chunks of at most ``dispatcher.batch_size``."""
        await self.context.budget.load(self.context.outbox)
        items = await self._map()
        if not items:
            await self._flush()
            return
        records = sum(len(recs) for _, recs in items)
        self.context.records_per_event[self.lease.environment] = records / len(items)
        batch_size = self.context.config.dispatcher.batch_size
        chunk: list[_Item] = []
        size = 0
        for event, recs in items:
            if chunk and size + len(recs) > batch_size:
                await self._upload(chunk)
                chunk, size = [], 0
            chunk.append((event, recs))
            size += len(recs)
        if chunk:
            await self._upload(chunk)

    async def give_back(self) -> None:
        """Release every row still held, due at once, no attempt counted (shutdown)."""
        try:
            due = ((self.context.clock(), tuple(self.held)),)
            await self._release(Release("released at shutdown", due, counted=False))
        except Exception:
            logger.exception("cannot release a batch at shutdown; it returns at lease expiry")

    async def fail(self, error: str) -> None:
        """Count a failed try for every row still held: backoff, or dead past the max age."""
        if not self.held:
            return
        # Whatever the failed upload had queued to settle is retried with the rest.
        self.settlement = _Settlement()
        context = self.context
        try:
            plan = plan_retry(
                list(self.held.values()),
                error,
                now=context.clock(),
                settings=context.config.dispatcher,
                random=context.random,
            )
            await self._settle_rows(plan)
            await self._flush()
        except Exception:
            logger.exception(
                "cannot release a failed %s batch; it returns at lease expiry",
                self.lease.environment,
            )

    async def _map(self) -> list[_Item]:
        """Records per event; skipped and unreadable events go to the settlement."""
        items: list[_Item] = []
        mapped: list[_Mapped] = []
        config = self.context.config
        settlement = self.settlement
        accounts = {env: config.clevertap.account_for(env) is not None for env in ENVIRONMENTS}
        budget, budget_config, dropped = self.context.budget, config.budget, 0
        transform = self.context.transform is not None
        for position, event in enumerate(self.lease.events):
            if position % MAP_YIELD_EVERY == MAP_YIELD_EVERY - 1:
                # Mapping a full batch takes milliseconds of CPU: let the receiver answer
                # webhooks in between.
                await asyncio.sleep(0)
            stored = self._stored(event)
            payload: dict[str, Any] = {}  # the parsed body: only a transform needs it
            try:
                if stored is None:
                    payload = parse_event(event.body)
                    result = map_event(payload, config)
                else:
                    result = stored.result
                    if transform and isinstance(result, Mapped):
                        payload = _event_object(event.body, fast=stored.fast)
            except InvalidWebhook as exc:
                self._dead(event, f"stored body is not a valid event: {exc.reason}")
                continue
            except Exception as exc:  # a mapping bug must not stall the queue
                logger.exception("mapping event %s failed", event.event_id)
                self._dead(event, f"mapping failed: {type(exc).__name__}")
                continue
            if isinstance(result, Skipped):
                settlement.skipped.append((event.row_id, result.reason))
                settlement.skip_codes.append(result.code)
                continue
            if event.source == "backfill":  # derived from an export (issue 18): say so
                result.records[0]["evtData"]["rc_backfill"] = True
            if not accounts.get(result.environment, False):
                self._dead(event, f"no CleverTap account for {result.environment}")
                continue
            mapped.append((event, payload, result.environment, result.records))
        if transform:
            mapped = await self._transform(mapped)
        for event, _, environment, records in mapped:
            if event.confirmed:  # an earlier try delivered some of its records: not again
                confirmed = event.confirmed_records
                records = [r for r in records if record_key(r) not in confirmed]
                if not records:
                    settlement.delivered.append(event.row_id)
                    continue
            account = config.clevertap.account_for(environment)
            assert account is not None  # checked above
            dropped += budget.fit(
                account.account_id,
                records,
                limit=budget_config.limit_for(environment),
                context=budget_config.context_properties,
            )
            items.append((event, records))
        if dropped:
            self.context.metrics.inc(
                "event_properties_dropped_total", dropped, reason="budget", **self.context.labels
            )
        return items

    def _stored(self, event: OutboxEvent) -> Stored | None:
        """The event's mapped form stored with it, when the route's configuration and code
        are still those that made it (integration/premap.py); else None: map the body."""
        fingerprint = self.context.fingerprint
        if event.mapped is None or fingerprint is None or event.mapped_fp != fingerprint:
            return None
        try:
            return from_stored(event.mapped)
        except (ValueError, KeyError, TypeError):  # not what stored_form writes: map the body
            return None

    async def _transform(self, mapped: list[_Mapped]) -> list[_Mapped]:
        """The route's transform over the mapped events (integration/transform.py): what it
        returns is sent; none is a skip, a failure that event's dead letter."""
        transform = self.context.transform
        assert transform is not None
        outcomes = await transform.apply(
            [(payload, records) for _, payload, _, records in mapped], route=self.context.route
        )
        kept: list[_Mapped] = []
        for (event, payload, environment, _), outcome in zip(mapped, outcomes, strict=True):
            if outcome.records is None:
                self._dead(event, outcome.error or "transform failed")
            elif not outcome.records:
                self.settlement.skipped.append((event.row_id, "transform returned no records"))
                self.settlement.skip_codes.append(TRANSFORM_SKIP_CODE)
            else:
                kept.append((event, payload, environment, outcome.records))
        return kept

    async def _upload(self, chunk: Sequence[_Item]) -> None:
        context = self.context
        environment = self.lease.environment
        account = context.config.clevertap.account_for(environment)
        assert account is not None  # checked in _map
        records = [record for _, recs in chunk for record in recs]
        owner = [i for i, (_, recs) in enumerate(chunk) for _ in recs]
        events = [event for event, _ in chunk]
        result = await context.uploader.upload(account, records)
        now = context.clock()
        context.metrics.observe_latency(result.latency_s, environment=environment)
        plan = plan_upload(
            result,
            events,
            owner,
            now=now,
            settings=context.config.dispatcher,
            pause=self.slots.pause,
            random=context.random,
            trimmable=self._trimmable(result, records),
        )
        processed = _processed(result, len(records))
        resend = self._learn(plan, result, processed, chunk, records, owner, account.account_id)
        confirmed = _confirmed_records(
            plan, result, processed, chunk, records, owner, self.accepted
        )
        if confirmed:  # before the release: a retry must not send these again
            await context.outbox.confirm_records(self.lease, confirmed)
        await self._execute(plan, result, account.account_id, len(records))
        context.metrics.inc(
            "uploads_total", environment=environment, outcome=plan.outcome, **context.labels
        )
        await self._flush(
            DeliveryAttempt(
                batch_id=uuid.uuid4().hex[:16],
                account_id=account.account_id,
                environment=environment,
                records=len(records),
                event_ids=tuple(e.event_id for e in events),
                status=result.status_text,
                outcome=plan.outcome,
                latency_ms=round(result.latency_s * 1000, 3),
                summary=result.summary,
                at=now,
            )
        )
        if plan.split:
            half = len(chunk) // 2
            await self._upload(chunk[:half])
            await self._upload(chunk[half:])
        if resend:
            await self._upload(resend)

    def _trimmable(self, result: UploadResult, records: Sequence[dict[str, Any]]) -> set[int]:
        """Records refused with a 522 that have keys beyond their core keys to give up."""
        budget = self.context.budget
        return {
            index
            for failure in result.failures
            if failure.code == PROPERTIES_LIMIT_CODE
            and (index := failure.index) is not None
            and 0 <= index < len(records)
            and budget.core_only(records[index])[1]
        }

    def _learn(
        self,
        plan: Plan,
        result: UploadResult,
        processed: list[int] | None,
        chunk: Sequence[_Item],
        records: Sequence[dict[str, Any]],
        owner: Sequence[int],
        account_id: str,
    ) -> list[_Item]:
        """Teach the budget what a 200 said (keys confirmed, limits refused); the plan's
        trimmed records, by event, to send again with their core keys only."""
        if result.kind != "ok":
            return []  # nothing confirmed; what was sent stays counted as used
        budget = self.context.budget
        properties = self.settlement.properties
        if processed is not None:  # else which records CleverTap processed is unknown
            properties += budget.confirmed(account_id, [records[i] for i in processed])
        refused = {
            records[index]["evtName"]
            for failure in result.failures
            if failure.code == PROPERTIES_LIMIT_CODE
            and (index := failure.index) is not None
            and 0 <= index < len(records)
            and records[index].get("type") == "event"
        }
        limit = self.context.config.budget.limit_for(self.lease.environment)
        properties += [budget.refused(account_id, name, limit=limit) for name in sorted(refused)]
        if not plan.trim:
            return []
        by_event: dict[int, list[dict[str, Any]]] = {}
        dropped = 0
        for index in plan.trim:
            record, lost = budget.core_only(records[index])
            dropped += lost
            by_event.setdefault(owner[index], []).append(record)
        self.context.metrics.inc(
            "event_properties_dropped_total", dropped, reason="core_only", **self.context.labels
        )
        logger.warning(
            "CleverTap refused %d %s records for their properties (522); sending them again "
            "with their core keys only",
            len(plan.trim),
            self.lease.environment,
        )
        return [(chunk[event][0], recs) for event, recs in by_event.items()]

    async def _execute(
        self, plan: Plan, result: UploadResult, account_id: str, records: int
    ) -> None:
        """Carry out ``plan`` up to the settle: account state, logs, releases."""
        slots = self.slots
        environment = self.lease.environment
        if plan.limit == "halve":
            slots.rate_limited()
        if plan.pause is not None:
            self._pause(plan.pause, result, account_id)
        if plan.split:
            logger.warning(
                "CleverTap %s a batch of %d %s records (%s); sending it in halves",
                "refused" if result.kind == "rejected" else "did not say which records failed in",
                records,
                environment,
                result.summary,
            )
        elif result.kind not in ("ok", "unauthorized", "misdirected"):
            logger.warning(
                "upload of %d %s records failed (%s); retrying with backoff",
                records,
                environment,
                result.summary,
            )
        self.settlement.delivered += plan.delivered
        await self._settle_rows(plan)
        if plan.limit == "grow":
            slots.succeeded()

    def _pause(self, pause: Pause, result: UploadResult, account_id: str) -> None:
        seconds = self.slots.pause.next_s
        self.slots.pause = pause
        if result.kind == "misdirected":
            logger.error(
                "CleverTap's upload URL answered %s for a whole upload of account %s: "
                "delivery to it is paused for %.0f s and nothing is dead-lettered. Check "
                "clevertap.region and clevertap.base_url for %s events.",
                result.summary,
                account_id,
                seconds,
                self.lease.environment,
            )
            return
        logger.error(
            "CleverTap refused the credentials of account %s (%s): delivery to it is "
            "paused for %.0f s and nothing is dead-lettered. Check clevertap.account_id "
            "and the passcode for %s events.",
            account_id,
            result.summary,
            seconds,
            self.lease.environment,
        )

    async def _settle_rows(self, plan: Plan) -> None:
        """Queue the plan's dead rows for the next settle and release the rows it hands back."""
        for event, reason in plan.dead:
            self._dead(event, reason, tried=True)
        if plan.release is not None:
            await self._release(plan.release)

    async def _release(self, release: Release) -> None:
        outbox = self.context.outbox
        for retry_at, row_ids in release.due:
            await outbox.release(
                self.lease, row_ids, retry_at=retry_at, error=release.error, count=release.counted
            )
            for row_id in row_ids:
                self.held.pop(row_id, None)
        retried = release.retried
        if retried:
            self.context.metrics.inc(
                "events_retried_total",
                retried,
                environment=self.lease.environment,
                **self.context.labels,
            )

    async def _flush(self, attempt: DeliveryAttempt | None = None) -> None:
        """Write the settlement (and the upload's ledger entry) in one outbox transaction."""
        settlement = self.settlement
        if not settlement and attempt is None:
            return
        context = self.context
        if settlement.properties:
            await self._store_properties(settlement.properties)
        await context.outbox.settle(
            self.lease,
            delivered=settlement.delivered,
            skipped=settlement.skipped,
            dead=settlement.dead,
            dead_tried=settlement.dead_tried,
            attempt=attempt,
            now=context.clock(),
        )
        self.settlement = _Settlement()
        held = self.held
        backfilled = 0
        for row_id in settlement.delivered:
            event = held.pop(row_id, None)
            backfilled += event is not None and event.source == "backfill"
        if backfilled:
            context.metrics.inc(
                "backfill_events_delivered_total",
                backfilled,
                environment=self.lease.environment,
                **context.labels,
            )
        for row_id, _ in (*settlement.skipped, *settlement.dead, *settlement.dead_tried):
            held.pop(row_id, None)
        self._count(settlement)

    async def _store_properties(self, properties: Sequence[EventProperties]) -> None:
        """Store the budget's news before the settle: a crash in between leaves keys stored
        that CleverTap did accept.  A failure to store them is logged, not raised: the
        uploads they came from were accepted and must settle; the budget keeps them in
        memory, and a restart relearns what was lost (at worst from one more 522)."""
        try:
            await self.context.outbox.add_event_properties(properties, now=self.context.clock())
        except Exception as exc:
            logger.warning("cannot store the property budget: %s", exc)

    def _count(self, settlement: _Settlement) -> None:
        metrics = self.context.metrics
        environment = self.lease.environment
        labels = self.context.labels
        if settlement.delivered:
            metrics.inc(
                "events_delivered_total",
                len(settlement.delivered),
                environment=environment,
                **labels,
            )
        for code, count in Counter(settlement.skip_codes).items():
            metrics.inc("events_skipped_total", count, reason=code, **labels)
        dead = len(settlement.dead) + len(settlement.dead_tried)
        if dead:
            metrics.inc("events_dead_lettered_total", dead, environment=environment, **labels)

    def _dead(self, event: OutboxEvent, reason: str, *, tried: bool = False) -> None:
        """Queue ``event`` for the next settle as dead; ``tried`` when a try (an upload, or a
        delivery that raised) ended it, which its ``attempts`` then counts."""
        logger.warning("event %s dead-lettered: %s", event.event_id, reason)
        rows = self.settlement.dead_tried if tried else self.settlement.dead
        rows.append((event.row_id, reason))


def _event_object(body: bytes, *, fast: bool) -> dict[str, Any]:
    """A stored body's event object, for the transform: read by orjson alone when the
    receiver kept orjson's reading of it (``premap.Stored.fast``: checked then, with this
    release's code), else parsed and checked again."""
    if fast:
        event: dict[str, Any] = orjson.loads(body)["event"]
        return event
    return parse_event(body)


def _processed(result: UploadResult, records: int) -> list[int] | None:
    """Indices of the upload's records CleverTap confirmed: all but the failed ones of a 200,
    or ``None`` when that is unknown (not a 200, or a failure not tied to its record)."""
    if result.kind != "ok":
        return None
    failed = {failure.index for failure in result.failures}
    if None in failed:
        return None
    return [i for i in range(records) if i not in failed]


def _confirmed_records(
    plan: Plan,
    result: UploadResult,
    processed: list[int] | None,
    chunk: Sequence[_Item],
    records: Sequence[dict[str, Any]],
    owner: Sequence[int],
    accepted: dict[int, set[str]],
) -> dict[int, list[str]]:
    """For each event this upload's plan retries, the keys of its records CleverTap
    confirmed (on this upload, an earlier one of the lease, or an earlier try), when some
    were: a retried event with an event record and a ``Charged`` record, one of them refused
    with a 555, must not send the other twice.  ``accepted`` collects, per row, what the
    lease's uploads with failures confirmed.  Nothing is known confirmed when the answer did
    not tie each failure to its record."""
    if processed is None or not result.failures:
        return {}
    for index in processed:
        event = chunk[owner[index]][0]
        keys = accepted.setdefault(event.row_id, set(event.confirmed_records))
        keys.add(record_key(records[index]))
    if plan.release is None:
        return {}
    retried = {row_id for _, row_ids in plan.release.due for row_id in row_ids}
    return {row_id: sorted(accepted[row_id]) for row_id in retried if row_id in accepted}
