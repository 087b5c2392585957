"""Moving events from the outbox to CleverTap: lease, map, batch, upload, settle.

One lane per environment (PRODUCTION, SANDBOX) leases due rows, maps each stored body with the
*current* configuration, and uploads batches of at most ``dispatcher.batch_size`` records (one
event may give several records) to the environment's CleverTap account.  Each account has its
own slots: at most ``dispatcher.concurrency`` uploads in flight, never above CleverTap's 15
(clevertap.md §3.4).

What each upload's verdict (see :mod:`integration.uploader`) does to the events it carried::

    ok, no failures        -> all delivered                          limit grows (+1/limit)
    ok, record failures    -> per event: a permanent code -> dead ("clevertap 513: ...");
                              555 only -> retried; no failure -> delivered
    rate-limited (429)     -> all retried                            limit halves (AIMD)
    5xx, timeout, network,
    unreadable             -> all retried
    other 4xx              -> a batch of several events is sent again in halves at once (a
                              bad record or the size is at fault); a single event is retried
    unauthorized (401/403) -> all released without an attempt counted; the account pauses
                              (auth_pause_s, doubling to auth_pause_max_s while it lasts)

A retried event is due again after ``backoff_initial_s * 2**(attempts-1)`` seconds, capped at
``backoff_max_s``, times a jitter in [0.5, 1).  An event that fails again ``max_age_s`` or more
after it entered the queue (``queued_at``) goes to the dead-letter table with its last error
instead, once it has had at least :data:`MIN_ATTEMPTS` tries.  The outbox resets ``queued_at``
when an operator retries a dead letter or replays an event, so those get the whole
``max_age_s`` again, whichever process delivers them.  An unexpected exception while
delivering a lease (a bug, the outbox failing) counts as a failed try of each row it had not
settled yet, so even a batch that always crashes ends in the dead-letter table, with a reason
naming the exception's type (never its message, which may quote event data).

Settling is batched: the rows one upload settles (delivered, dead, and the events of its lease
that were skipped) and its ledger entry are written in one transaction, since every commit
waits for the disk.

Every upload is written to the delivery ledger.  On :meth:`Dispatcher.stop` the lanes stop
leasing, uploads in flight get ``grace_s`` to finish, and the rest are cancelled and their
rows released at once (no attempt counted): nothing leased is lost, at worst a batch that
reached CleverTap is sent again (CleverTap has no idempotency key, clevertap.md §5).
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from integration.config import Config
from integration.mapping import Skipped, map_event
from integration.metrics import Metrics
from integration.outbox.base import DeliveryAttempt, Lease, Outbox, OutboxEvent
from integration.uploader import RecordFailure, Uploader, UploadResult
from integration.webhook import ENVIRONMENTS, InvalidWebhook, parse_event

__all__ = ["MIN_ATTEMPTS", "AccountState", "Dispatcher"]

logger = logging.getLogger(__name__)

CLEVERTAP_MAX_CONCURRENCY = 15  # uploads in flight per account (clevertap.md §3.4)
MIN_ATTEMPTS = 3
MAP_YIELD_EVERY = 50  # events mapped between two turns of the event loop

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account's delivery state, for ``status`` and ``/metrics``."""

    account_id: str
    environments: tuple[str, ...]
    concurrency_limit: int
    in_flight: int
    paused_until: float | None


@dataclass(slots=True)
class _Settlement:
    """Rows of one lease to settle in the next :meth:`Outbox.settle` call."""

    delivered: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.delivered or self.skipped or self.dead)


# Rows of a lease not yet settled or released, by row id: what an unexpected failure must
# still hand back.
_Held = dict[int, OutboxEvent]


class _Slots:
    """Upload slots of one account: an AIMD limit between 1 and ``ceiling``, and a pause."""

    def __init__(self, account_id: str, ceiling: int, pause_s: float) -> None:
        self.account_id = account_id
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self.paused_until = 0.0
        self.base_pause_s = pause_s
        self.pause_s = pause_s
        self.environments: list[str] = []
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self, stop: asyncio.Event) -> bool:
        while self.in_flight >= self.allowed and not stop.is_set():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        if stop.is_set():
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
        self.wake()

    def wake(self, everyone: bool = False) -> None:
        free = self.allowed - self.in_flight
        for waiter in list(self._waiters):
            if not everyone and free <= 0:
                break
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def succeeded(self) -> None:
        # Additive increase: about one more slot per `limit` successful uploads.
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        self.pause_s = self.base_pause_s
        self.wake()

    def rate_limited(self) -> None:
        self.limit = max(1.0, self.limit / 2)


class Dispatcher:
    """Delivers what the outbox holds to CleverTap, as described in the module docstring.

    Parameters:
        config: the engine's configuration (accounts, batching, retries, mapping).
        outbox: an opened outbox.
        uploader: sends batches; its HTTP client is injectable.
        metrics: counters to update (a fresh :class:`Metrics` by default).
        clock: epoch seconds; every outbox time comes from it.
        sleep: awaited for every wait (idle polls, linger, pauses); tests advance a fake clock.
        random: returns floats in [0, 1) for the backoff jitter.
        poll_s: how often an idle lane looks for rows that became due (retries, other writers).
        auth_pause_s, auth_pause_max_s: how long an account pauses after a 401, doubling while
            CleverTap keeps refusing its credentials.
    """

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        uploader: Uploader,
        *,
        metrics: Metrics | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        poll_s: float = 1.0,
        auth_pause_s: float = 60.0,
        auth_pause_max_s: float = 900.0,
    ) -> None:
        if not poll_s > 0 or not auth_pause_s > 0 or auth_pause_max_s < auth_pause_s:
            raise ValueError("need poll_s > 0 and 0 < auth_pause_s <= auth_pause_max_s")
        self.config = config
        self.outbox = outbox
        self.uploader = uploader
        self.metrics = metrics if metrics is not None else Metrics()
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._poll_s = poll_s
        self._auth_pause_max_s = auth_pause_max_s
        settings = config.dispatcher
        ceiling = min(settings.concurrency, CLEVERTAP_MAX_CONCURRENCY)
        self._slots: dict[str, _Slots] = {}
        self._lane_slots: dict[str, _Slots] = {}
        for environment in ENVIRONMENTS:
            account = config.clevertap.account_for(environment)
            key = account.account_id if account is not None else f"(no {environment} account)"
            slots = self._slots.setdefault(key, _Slots(key, ceiling, auth_pause_s))
            slots.environments.append(environment)
            self._lane_slots[environment] = slots
        self._wakes = {environment: asyncio.Event() for environment in ENVIRONMENTS}
        self._records_per_event = dict.fromkeys(ENVIRONMENTS, 1.0)
        self._stop = asyncio.Event()
        self._lanes: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start one lane per environment."""
        if self._lanes:
            return
        self._stop.clear()
        self._lanes = [
            asyncio.create_task(self._lane(environment), name=f"rc-clevertap lane {environment}")
            for environment in ENVIRONMENTS
        ]

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop leasing; let uploads in flight finish for ``grace_s``, then release the rest."""
        self._stop.set()
        for slots in self._slots.values():
            slots.wake(everyone=True)
        for wake in self._wakes.values():
            wake.set()
        if self._lanes:
            await asyncio.gather(*self._lanes, return_exceptions=True)
        self._lanes = []
        pending = set(self._deliveries)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self, environment: str) -> None:
        """Tell the environment's lane that new rows are waiting (the receiver calls this)."""
        wake = self._wakes.get(environment)
        if wake is not None:
            wake.set()

    @property
    def in_flight(self) -> int:
        """Leases being delivered right now."""
        return len(self._deliveries)

    def accounts(self) -> list[AccountState]:
        now = self._clock()
        return [
            AccountState(
                slots.account_id,
                tuple(slots.environments),
                slots.allowed,
                slots.in_flight,
                slots.paused_until if slots.paused_until > now else None,
            )
            for slots in self._slots.values()
        ]

    # -- lanes -------------------------------------------------------------------------------

    async def _lane(self, environment: str) -> None:
        slots = self._lane_slots[environment]
        lease_s = self.config.outbox.lease_s
        while not self._stop.is_set():
            pause = slots.paused_until - self._clock()
            if pause > 0:
                await self._wait(None, min(pause, self._poll_s * 10))
                continue
            if not await slots.acquire(self._stop):
                break
            limit = max(
                1, int(self.config.dispatcher.batch_size / self._records_per_event[environment])
            )
            try:
                lease = await self.outbox.lease(
                    environment, limit, now=self._clock(), lease_s=lease_s
                )
            except Exception:
                slots.release()
                logger.exception("cannot lease %s events; trying again", environment)
                await self._wait(None, self._poll_s)
                continue
            if lease is None:
                slots.release()
                await self._idle(environment)
                continue
            self._spawn(self._deliver(lease, slots))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _idle(self, environment: str) -> None:
        wake = self._wakes[environment]
        await self._wait(wake, self._poll_s)
        if wake.is_set() and not self._stop.is_set():
            wake.clear()
            # Linger: let webhooks arriving together leave together.
            await self._sleep(self.config.dispatcher.linger_s)

    async def _wait(self, event: asyncio.Event | None, seconds: float) -> None:
        """Sleep up to ``seconds``, ending early on ``event`` or on stop."""
        waits = [
            asyncio.ensure_future(self._sleep(seconds)),
            asyncio.ensure_future(self._stop.wait()),
        ]
        if event is not None:
            waits.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    # -- one lease ---------------------------------------------------------------------------

    async def _deliver(self, lease: Lease, slots: _Slots) -> None:
        held: _Held = {event.row_id: event for event in lease.events}
        try:
            await self._deliver_lease(lease, slots, held)
        except asyncio.CancelledError:
            # Shutdown past the grace period: hand the rows back now rather than at expiry.
            await asyncio.shield(self._give_back(lease, held))
            raise
        except Exception as exc:
            # Left leased, the rows would come back at expiry with no attempt counted, and a
            # batch that always fails would never reach the dead-letter table.
            logger.exception(
                "delivery of a %s batch failed; its rows are retried with backoff",
                lease.environment,
            )
            await self._fail(lease, held, f"delivery failed: {type(exc).__name__}")
        finally:
            slots.release()

    async def _give_back(self, lease: Lease, held: _Held) -> None:
        try:
            await self._release(
                lease, list(held), held, retry_at=self._clock(), error="released at shutdown"
            )
        except Exception:
            logger.exception("cannot release a batch at shutdown; it returns at lease expiry")

    async def _fail(self, lease: Lease, held: _Held, error: str) -> None:
        """Count a failed try for every row still held: backoff, or dead past the max age."""
        if not held:
            return
        settlement = _Settlement()
        try:
            await self._retry(lease, list(held.values()), error, self._clock(), settlement, held)
            await self._flush(lease, settlement, held)
        except Exception:
            logger.exception(
                "cannot release a failed %s batch; it returns at lease expiry", lease.environment
            )

    async def _deliver_lease(self, lease: Lease, slots: _Slots, held: _Held) -> None:
        settlement = _Settlement()
        items = await self._map(lease, settlement)
        if not items:
            await self._flush(lease, settlement, held)
            return
        records = sum(len(recs) for _, recs in items)
        self._records_per_event[lease.environment] = records / len(items)
        batch_size = self.config.dispatcher.batch_size
        chunk: list[tuple[OutboxEvent, list[dict[str, Any]]]] = []
        size = 0
        for event, recs in items:
            if chunk and size + len(recs) > batch_size:
                await self._upload(lease, chunk, slots, held, settlement)
                settlement = _Settlement()
                chunk, size = [], 0
            chunk.append((event, recs))
            size += len(recs)
        if chunk:
            await self._upload(lease, chunk, slots, held, settlement)

    async def _map(
        self, lease: Lease, settlement: _Settlement
    ) -> list[tuple[OutboxEvent, list[dict[str, Any]]]]:
        """Records per event; skipped and unreadable events go to ``settlement``."""
        items: list[tuple[OutboxEvent, list[dict[str, Any]]]] = []
        config = self.config
        accounts = {env: config.clevertap.account_for(env) is not None for env in ENVIRONMENTS}
        for position, event in enumerate(lease.events):
            if position % MAP_YIELD_EVERY == MAP_YIELD_EVERY - 1:
                # Mapping a full batch takes milliseconds of CPU: let the receiver answer
                # webhooks in between.
                await asyncio.sleep(0)
            try:
                result = map_event(parse_event(event.body), config)
            except InvalidWebhook as exc:
                reason = f"stored body is not a valid event: {exc.reason}"
                self._dead(event, reason, settlement)
                continue
            except Exception as exc:  # a mapping bug must not stall the queue
                logger.exception("mapping event %s failed", event.event_id)
                self._dead(event, f"mapping failed: {type(exc).__name__}", settlement)
                continue
            if isinstance(result, Skipped):
                settlement.skipped.append((event.row_id, result.reason))
                continue
            if not accounts.get(result.environment, False):
                self._dead(event, f"no CleverTap account for {result.environment}", settlement)
                continue
            items.append((event, result.records))
        return items

    async def _flush(
        self,
        lease: Lease,
        settlement: _Settlement,
        held: _Held,
        attempt: DeliveryAttempt | None = None,
    ) -> None:
        """Write ``settlement`` (and the upload's ledger entry) in one outbox transaction."""
        if not settlement and attempt is None:
            return
        await self.outbox.settle(
            lease,
            delivered=settlement.delivered,
            skipped=settlement.skipped,
            dead=settlement.dead,
            attempt=attempt,
            now=self._clock(),
        )
        environment = lease.environment
        for row_id in settlement.delivered:
            held.pop(row_id, None)
        for row_id, _ in (*settlement.skipped, *settlement.dead):
            held.pop(row_id, None)
        if settlement.delivered:
            self.metrics.inc(
                "events_delivered_total", len(settlement.delivered), environment=environment
            )
        for reason, count in Counter(reason for _, reason in settlement.skipped).items():
            self.metrics.inc("events_skipped_total", count, reason=reason)
        if settlement.dead:
            self.metrics.inc(
                "events_dead_lettered_total", len(settlement.dead), environment=environment
            )

    async def _release(
        self,
        lease: Lease,
        row_ids: list[int],
        held: _Held,
        *,
        retry_at: float,
        error: str,
        count: bool = False,
    ) -> None:
        await self.outbox.release(lease, row_ids, retry_at=retry_at, error=error, count=count)
        for row_id in row_ids:
            held.pop(row_id, None)

    async def _upload(
        self,
        lease: Lease,
        chunk: Sequence[tuple[OutboxEvent, list[dict[str, Any]]]],
        slots: _Slots,
        held: _Held,
        settlement: _Settlement,
    ) -> None:
        environment = lease.environment
        account = self.config.clevertap.account_for(environment)
        assert account is not None  # checked in _map
        records = [record for _, recs in chunk for record in recs]
        owner = [i for i, (_, recs) in enumerate(chunk) for _ in recs]
        events = [event for event, _ in chunk]
        result = await self.uploader.upload(account, records)
        now = self._clock()
        self.metrics.observe_latency(result.latency_s, environment=environment)

        outcome: str
        if result.kind == "ok":
            outcome = await self._settle_ok(lease, events, owner, result, now, settlement, held)
            slots.succeeded()
        elif result.kind == "unauthorized":
            outcome = "paused"
            if slots.paused_until <= now:  # batches in flight together pause the account once
                slots.paused_until = now + slots.pause_s
                logger.error(
                    "CleverTap refused the credentials of account %s (%s): delivery to it is "
                    "paused for %.0f s and nothing is dead-lettered. Check clevertap.account_id "
                    "and the passcode for %s events.",
                    account.account_id,
                    result.summary,
                    slots.pause_s,
                    environment,
                )
                slots.pause_s = min(slots.pause_s * 2, self._auth_pause_max_s)
            await self._release(
                lease,
                [e.row_id for e in events],
                held,
                retry_at=slots.paused_until,
                error=f"paused: {result.summary}",
            )
        elif result.kind == "rejected" and len(chunk) > 1:
            # CleverTap refused the request as a whole (400, 413, ...): one record or the
            # size may be at fault.  Send each half on its own, so a bad event is isolated
            # and the others are not held back with it.
            outcome = "retry"
            logger.warning(
                "CleverTap refused a batch of %d %s records (%s); sending it in halves",
                len(records),
                environment,
                result.summary,
            )
        else:
            if result.kind == "rate-limited":
                slots.rate_limited()
            logger.warning(
                "upload of %d %s records failed (%s); retrying with backoff",
                len(records),
                environment,
                result.summary,
            )
            outcome = await self._retry(lease, events, result.summary, now, settlement, held)

        self.metrics.inc("uploads_total", environment=environment, outcome=outcome)
        await self._flush(
            lease,
            settlement,
            held,
            DeliveryAttempt(
                batch_id=uuid.uuid4().hex[:16],
                account_id=account.account_id,
                environment=environment,
                records=len(records),
                event_ids=tuple(e.event_id for e in events),
                status=result.status_text,
                outcome=outcome,
                latency_ms=round(result.latency_s * 1000, 3),
                summary=result.summary,
                at=now,
            ),
        )
        if result.kind == "rejected" and len(chunk) > 1:
            half = len(chunk) // 2
            await self._upload(lease, chunk[:half], slots, held, _Settlement())
            await self._upload(lease, chunk[half:], slots, held, _Settlement())

    async def _settle_ok(
        self,
        lease: Lease,
        events: Sequence[OutboxEvent],
        owner: Sequence[int],
        result: UploadResult,
        now: float,
        settlement: _Settlement,
        held: _Held,
    ) -> str:
        """Split a 200 record by record: delivered, dead (permanent code) or retried (555)."""
        failures = result.failures
        located = all(f.index is not None and f.index < len(owner) for f in failures)
        if failures and not located:
            if len(failures) == len(owner) and len({f.code for f in failures}) == 1:
                # Every record failed with one code: which is which does not matter.
                failures = tuple(RecordFailure(i, f.code, f.error) for i, f in enumerate(failures))
            else:
                error = f"{result.summary} (failed records not identified)"
                return await self._retry(lease, events, error, now, settlement, held)
        permanent: dict[int, str] = {}
        retryable: dict[int, str] = {}
        for failure in failures:
            assert failure.index is not None
            event_index = owner[failure.index]
            reason = f"clevertap {failure.code}: {failure.error}"
            if failure.retryable:
                retryable.setdefault(event_index, reason)
            else:
                permanent.setdefault(event_index, reason)
        for index, reason in permanent.items():
            self._dead(events[index], reason, settlement)
        retry = [events[i] for i in sorted(retryable) if i not in permanent]
        if retry:
            error = next(iter(retryable.values()))
            await self._retry(lease, retry, error, now, settlement, held)
        if failures:
            delivered = [
                e for i, e in enumerate(events) if i not in permanent and i not in retryable
            ]
        else:
            delivered = list(events)
        settlement.delivered += [e.row_id for e in delivered]
        if not failures:
            return "delivered"
        if not delivered and not retry:
            return "dead"
        if not delivered and not permanent:
            return "retry"
        return "partial"

    async def _retry(
        self,
        lease: Lease,
        events: Iterable[OutboxEvent],
        error: str,
        now: float,
        settlement: _Settlement,
        held: _Held,
    ) -> str:
        """Release events with backoff, or dead-letter (into ``settlement``) those past the
        maximum age."""
        settings = self.config.dispatcher
        by_due: dict[float, list[int]] = {}
        dead = 0
        retried = 0
        jitter: dict[int, float] = {}
        for event in events:
            attempts = event.attempts + 1
            if now - event.queued_at >= settings.max_age_s and attempts >= MIN_ATTEMPTS:
                reason = f"max age exceeded after {attempts} attempts: {error}"
                self._dead(event, reason, settlement)
                dead += 1
                continue
            if attempts not in jitter:
                jitter[attempts] = 0.5 + self._random() / 2
            delay = min(settings.backoff_max_s, settings.backoff_initial_s * 2 ** (attempts - 1))
            by_due.setdefault(now + delay * jitter[attempts], []).append(event.row_id)
            retried += 1
        for retry_at, row_ids in by_due.items():
            await self._release(lease, row_ids, held, retry_at=retry_at, error=error, count=True)
        if retried:
            self.metrics.inc("events_retried_total", retried, environment=lease.environment)
        return "dead" if dead and not retried else "retry"

    def _dead(self, event: OutboxEvent, reason: str, settlement: _Settlement) -> None:
        logger.warning("event %s dead-lettered: %s", event.event_id, reason)
        settlement.dead.append((event.row_id, reason))
