"""The webhook emitter: RevenueCat's delivery rules on the mock's virtual clock.

Facts (revenuecat.md section 4.1): a POST of ``{"api_version": "1.0", "event": {...}}`` with the
configured Authorization value sent verbatim; only a 200 counts; a response not finished within
60 s is a failure; failures are retried after 5, 10, 20, 40 and 80 minutes (about 2.6 hours in
all) and then given up; a retry keeps the event's ``id`` and ``event_timestamp_ms`` (the body is
sent byte for byte again).  Each target has an environment filter.

A delivery (one event to one target) moves through::

    pending ──attempt──> in_flight ──200──────────────> delivered
       ^                     │
       └──── after 5/10/20/40/80 min ──┤ other status, error, slower than 60 s
                                       └─ 6th failure ─> failed
    pending (over the log cap, never attempted) ──> dropped

Emission never blocks an API request: :meth:`WebhookEmitter.enqueue` only appends to the log.
Attempts run in the background task (:meth:`start`) or when a test awaits :meth:`run_due`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from mockserver.revenuecat.catalogue import Environment
from mockserver.revenuecat.clock import VirtualClock

__all__ = [
    "RESPONSE_TIMEOUT_S",
    "RETRY_DELAYS_MINUTES",
    "Attempt",
    "Delivery",
    "DeliveryState",
    "WebhookEmitter",
    "WebhookTarget",
]

logger = logging.getLogger("mockserver.revenuecat.webhooks")

RETRY_DELAYS_MINUTES: tuple[int, ...] = (5, 10, 20, 40, 80)
RESPONSE_TIMEOUT_S = 60.0
API_VERSION = "1.0"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED = "failed"
    DROPPED = "dropped"


@dataclass(frozen=True)
class WebhookTarget:
    """Where webhooks go.

    Parameters:
        url: the receiver's URL.
        authorization: sent verbatim as the ``Authorization`` header (never logged or shown).
        environments: which events to send: production, sandbox, or both (the default).
        event_types: send only these event types (``None``, the default, sends all), like
            the dashboard's optional event-type filter.
    """

    url: str
    authorization: str | None = field(default=None, repr=False)
    environments: frozenset[Environment] = frozenset(Environment)
    event_types: frozenset[str] | None = None

    def __post_init__(self) -> None:
        try:
            parsed = httpx.URL(self.url)
        except httpx.InvalidURL:
            raise ValueError("webhook url is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("webhook url must be an absolute http(s) URL")
        if not self.environments:
            raise ValueError("a webhook target needs at least one environment")
        if self.authorization is not None and (
            not self.authorization or any(c in self.authorization for c in "\r\n\0")
        ):
            raise ValueError("the webhook authorization value must be one non-empty line")

    def accepts(self, event: dict[str, Any]) -> bool:
        if self.event_types is not None and event.get("type") not in self.event_types:
            return False
        environment = event.get("environment") or event.get("purchase_environment")
        if environment is None:
            return True
        return Environment(environment) in self.environments


@dataclass
class Attempt:
    """One POST of a delivery; times are virtual epoch milliseconds."""

    number: int
    started_at_ms: int
    finished_at_ms: int
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at_ms": self.started_at_ms,
            "finished_at_ms": self.finished_at_ms,
            "status_code": self.status_code,
            "error": self.error,
            "ok": self.ok,
        }


@dataclass(eq=False)
class Delivery:
    """One event on its way to one target, with every attempt made.

    Times ending in ``_ms`` are on the virtual clock; ``acked_at`` is real: the wall-clock
    epoch seconds at which the receiver's 200 came back (None until then), so a test can set
    it beside what the receiver did with the event.
    """

    id: str
    target: WebhookTarget = field(repr=False)
    event: dict[str, Any] = field(repr=False)
    body: bytes = field(repr=False)
    created_at_ms: int
    next_attempt_at_ms: int | None
    state: DeliveryState = DeliveryState.PENDING
    attempts: list[Attempt] = field(default_factory=list)
    acked_at: float | None = None

    @property
    def event_id(self) -> str:
        return str(self.event["id"])

    def to_json(self, *, include_event: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "url": self.target.url,
            "event_id": self.event_id,
            "event_type": self.event.get("type"),
            "app_user_id": self.event.get("app_user_id"),
            "environment": self.event.get("environment"),
            "state": str(self.state),
            "created_at_ms": self.created_at_ms,
            "next_attempt_at_ms": self.next_attempt_at_ms,
            "attempts": [a.to_json() for a in self.attempts],
        }
        if include_event:
            data["event"] = self.event
        return data


class WebhookEmitter:
    """Sends events to the configured targets on RevenueCat's schedule.

    Example (a test, with a frozen clock)::

        emitter = WebhookEmitter(clock=clock, targets=[WebhookTarget(url)], http_client=client)
        emitter.enqueue(event)
        await emitter.run_due()          # first attempt
        clock.advance(5 * 60)
        await emitter.run_due()          # first retry

    Parameters:
        clock: the virtual clock (attempt times, retry schedule, the 60 s timeout).
        targets: where to send.
        http_client: the client used to POST; injectable so tests use ``httpx.ASGITransport``.
            When ``None`` the emitter creates one and closes it on :meth:`stop`.
        max_deliveries: cap on the delivery log; finished deliveries are evicted first, then
            the oldest pending ones are dropped (counted in :attr:`dropped`).
        max_concurrency: attempts in flight at once.
        retry_delays_minutes: the retry schedule.
        response_timeout_s: virtual seconds a receiver has to answer.
        wall_clock: real epoch seconds, for :attr:`Delivery.acked_at` (injectable).
    """

    def __init__(
        self,
        *,
        clock: VirtualClock,
        targets: Iterable[WebhookTarget] = (),
        http_client: httpx.AsyncClient | None = None,
        max_deliveries: int = 10_000,
        max_concurrency: int = 8,
        retry_delays_minutes: tuple[int, ...] = RETRY_DELAYS_MINUTES,
        response_timeout_s: float = RESPONSE_TIMEOUT_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_deliveries < 1 or max_concurrency < 1:
            raise ValueError("max_deliveries and max_concurrency must be >= 1")
        self.clock = clock
        self.targets: list[WebhookTarget] = list(targets)
        self.max_deliveries = max_deliveries
        self.retry_delays_minutes = retry_delays_minutes
        self.response_timeout_s = response_timeout_s
        self.wall_clock = wall_clock
        self.dropped = 0
        self._client = http_client
        self._owns_client = http_client is None
        self._max_concurrency = max_concurrency
        self._deliveries: OrderedDict[str, Delivery] = OrderedDict()
        self._lock = threading.Lock()  # the log is read from the control API's thread too
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        clock.on_advance(self._wake_up)

    def __repr__(self) -> str:
        return f"WebhookEmitter(targets={[t.url for t in self.targets]!r})"

    # --- the log ----------------------------------------------------------------------------

    def add_target(self, target: WebhookTarget) -> None:
        """Send events enqueued from now on to ``target`` too (safe from any thread)."""
        with self._lock:
            # A new list, not an append: an enqueue on another thread iterates the old one.
            self.targets = [*self.targets, target]

    def enqueue(self, event: dict[str, Any]) -> list[Delivery]:
        """Queue ``event`` for every target whose environment filter accepts it."""
        body = json.dumps({"api_version": API_VERSION, "event": event}).encode()
        now = self.clock.now_ms()
        targets = self.targets
        created = [
            Delivery(str(uuid.uuid4()), target, event, body, now, now)
            for target in targets
            if target.accepts(event)
        ]
        with self._lock:
            for delivery in created:
                self._deliveries[delivery.id] = delivery
            self._enforce_cap()
        if created:
            self._wake_up()
        return created

    def _enforce_cap(self) -> None:
        excess = len(self._deliveries) - self.max_deliveries
        if excess <= 0:
            return
        finished = (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.DROPPED)
        for delivery_id in [d.id for d in self._deliveries.values() if d.state in finished]:
            if excess <= 0:
                return
            del self._deliveries[delivery_id]
            excess -= 1
        for delivery_id in [
            d.id for d in self._deliveries.values() if d.state is DeliveryState.PENDING
        ]:
            if excess <= 0:
                return
            self._deliveries.pop(delivery_id).state = DeliveryState.DROPPED
            self.dropped += 1
            excess -= 1
            logger.warning("webhook log full: dropped a pending delivery")

    def deliveries(
        self, *, state: str | None = None, event_id: str | None = None
    ) -> list[Delivery]:
        """The deliveries in the log, oldest first: all, or those in ``state``/of ``event_id``."""
        with self._lock:
            return [
                d for d in self._deliveries.values()
                if (state is None or d.state == state)
                and (event_id is None or d.event_id == event_id)
            ]  # fmt: skip

    def delivery(self, delivery_id: str) -> Delivery | None:
        with self._lock:
            return self._deliveries.get(delivery_id)

    def clear(self) -> None:
        """Forget every delivery (``reset``); attempts in flight finish unrecorded."""
        with self._lock:
            self._deliveries.clear()
            self.dropped = 0

    def pending_count(self) -> int:
        live = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)
        with self._lock:
            return sum(1 for d in self._deliveries.values() if d.state in live)

    def next_due_ms(self) -> int | None:
        with self._lock:
            times = [
                d.next_attempt_at_ms
                for d in self._deliveries.values()
                if d.state is DeliveryState.PENDING and d.next_attempt_at_ms is not None
            ]
        return min(times) if times else None

    def _take_due(self) -> list[Delivery]:
        now = self.clock.now_ms()
        with self._lock:
            due = [
                d
                for d in self._deliveries.values()
                if d.state is DeliveryState.PENDING
                and d.next_attempt_at_ms is not None
                and d.next_attempt_at_ms <= now
            ]
            for delivery in due:
                delivery.state = DeliveryState.IN_FLIGHT
        return due

    # --- attempts ---------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def _attempt(self, delivery: Delivery, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            headers = {"Content-Type": "application/json", "User-Agent": "RevenueCat-Mock"}
            if delivery.target.authorization is not None:
                headers["Authorization"] = delivery.target.authorization
            started = self.clock.now_ms()
            status: int | None = None
            error: str | None = None
            answered_at: float | None = None
            try:
                response = await asyncio.wait_for(
                    self._http().post(delivery.target.url, content=delivery.body, headers=headers),
                    self.clock.real_seconds(self.response_timeout_s),
                )
                answered_at = self.wall_clock()
                status = response.status_code
            except TimeoutError:
                error = f"no response within {self.response_timeout_s:g} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: could not deliver"
            except asyncio.CancelledError:
                self._record(delivery, started, None, "cancelled at shutdown", final=False)
                raise
            elapsed_ms = self.clock.now_ms() - started
            if error is None and elapsed_ms > self.response_timeout_s * 1000:
                error = (
                    f"response took {elapsed_ms / 1000:g} s (limit {self.response_timeout_s:g} s)"
                )
            self._record(delivery, started, status, error, final=True, answered_at=answered_at)

    def _record(
        self, delivery: Delivery, started: int, status: int | None, error: str | None, *,
        final: bool, answered_at: float | None = None,
    ) -> None:  # fmt: skip
        now = self.clock.now_ms()
        with self._lock:
            attempt = Attempt(len(delivery.attempts) + 1, started, now, status, error)
            delivery.attempts.append(attempt)
            if attempt.ok:
                delivery.state = DeliveryState.DELIVERED
                delivery.next_attempt_at_ms = None
                delivery.acked_at = answered_at
            elif not final:
                delivery.state = DeliveryState.PENDING
                delivery.next_attempt_at_ms = now
            elif attempt.number <= len(self.retry_delays_minutes):
                delay_ms = self.retry_delays_minutes[attempt.number - 1] * 60_000
                delivery.state = DeliveryState.PENDING
                delivery.next_attempt_at_ms = now + delay_ms
            else:
                delivery.state = DeliveryState.FAILED
                delivery.next_attempt_at_ms = None
        if not attempt.ok:
            logger.info(
                "webhook %s to %s failed (attempt %d): %s",
                delivery.event_id, delivery.target.url, attempt.number, error or status,
            )  # fmt: skip
        self._progress.set()
        self._wake_up()

    async def run_due(self) -> int:
        """Make every attempt that is due now and wait for them; return how many were made."""
        due = self._take_due()
        semaphore = asyncio.Semaphore(self._max_concurrency)
        await asyncio.gather(*(self._attempt(d, semaphore) for d in due))
        return len(due)

    async def run_until_settled(self, *, max_rounds: int = 1000) -> None:
        """Deterministic drive: run what is due, jump the clock to the next retry, repeat.

        Ends when no delivery is pending.  Meant for a frozen clock (``time_scale=0``).
        """
        for _ in range(max_rounds):
            await self.run_due()
            next_due = self.next_due_ms()
            if next_due is None:
                return
            gap_ms = next_due - self.clock.now_ms()
            if gap_ms > 0:
                self.clock.advance(gap_ms / 1000)
        raise RuntimeError("webhook deliveries did not settle")

    # --- background task --------------------------------------------------------------------

    def _wake_up(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        """Start the background task that makes attempts as they fall due."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="revenuecat-webhooks")

    async def _run(self) -> None:
        semaphore = asyncio.Semaphore(self._max_concurrency)
        while True:
            self._wake.clear()
            for delivery in self._take_due():
                task = asyncio.create_task(self._attempt(delivery, semaphore))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            next_due = self.next_due_ms()
            timeout = None
            if next_due is not None:
                timeout = self.clock.real_seconds((next_due - self.clock.now_ms()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def wait_settled(self) -> None:
        """Wait until no delivery is pending or in flight (needs :meth:`start`).

        Bound it with ``asyncio.timeout``: a receiver that keeps failing settles only after
        the whole retry schedule has run on the virtual clock.
        """
        while self.pending_count():
            self._progress.clear()
            if not self.pending_count():
                return
            await self._progress.wait()

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop the background task; attempts in flight get ``grace_s`` real seconds to finish.

        Deliveries still pending stay in the log (``pending``) and are not sent.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._in_flight:
            _, late = await asyncio.wait(set(self._in_flight), timeout=grace_s)
            for straggler in late:
                straggler.cancel()
            if late:
                await asyncio.wait(late)
        self._loop = None
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
