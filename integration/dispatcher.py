"""Moving events from the outbox to CleverTap: lease, map, batch, upload, settle.

One lane per route and environment (PRODUCTION, SANDBOX; one route, ``default``, unless
``[[routes]]`` are configured, see :mod:`integration.routes`) leases that route's due rows,
maps each stored body with the route's *current* configuration, passes the records through
the route's transform (:mod:`integration.transform`) and uploads batches of at most
``dispatcher.batch_size`` records (one event may give several records) to the environment's
CleverTap account of that route.  Each account has its own slots, shared by the routes that
deliver to it: at most ``dispatcher.concurrency`` uploads in flight, never above CleverTap's
15 (clevertap.md §3.4), and its own pause.  A row whose route is no longer configured is not
leased by any lane: it waits, unchanged, until its route is configured again.

What each upload's verdict (see :mod:`integration.uploader`) does to the events it carried;
the executable form of this table is :func:`integration.policy.plan_upload`, a pure function
checked row by row in ``tests/integration/test_policy.py``::

    ok, no failures        -> all delivered                          limit grows (+1/limit)
    ok, record failures    -> per event: a permanent code -> dead ("clevertap 513: ...");
                              522 (too many properties for its event name) -> sent again at
                              once with its core keys only (integration/budget.py);
                              555 or no code only -> retried, without its records CleverTap
                              confirmed (kept on the row); no failure -> delivered
    ok, a failure not
    tied to a record       -> a batch of several events is sent again in halves at once,
                              until each such failure is alone with its event, which then
                              settles as above, the reason naming what was ambiguous
                              ("record not identified: no record number"); when every
                              record failed with one code, which is which does not matter
    rate-limited (429)     -> all retried                            limit halves (AIMD)
    5xx, timeout, network,
    bad response           -> all retried, none delivered (a bad response: unreadable, over
                              the size cap, or a 200 that does not account for every record)
    other 4xx              -> a batch of several events is sent again in halves at once (a
                              bad record or the size is at fault); a single event is retried
    unauthorized (401/403) -> all released without an attempt counted; the account pauses
                              (dispatcher.auth_pause_s, doubling to auth_pause_max_s while
                              it lasts; a success ends the doubling); also a 200 whose body
                              is CleverTap's request-level fail with code 401
    misdirected (3xx, 404,
    405, 407, 410, 421,
    426)                   -> as unauthorized, never split: the region or base URL is wrong,
                              not a record; logged once with the status and the Location

A retried event is due again after ``backoff_initial_s * 2**(attempts-1)`` seconds, capped at
``backoff_max_s``, times a jitter in [0.5, 1).  An event that fails again ``max_age_s`` or more
after it entered the queue (``queued_at``) goes to the dead-letter table with its last error
instead, once it has had at least :data:`~integration.policy.MIN_ATTEMPTS` tries.  The outbox
resets ``queued_at`` when an operator retries a dead letter or replays an event, so those get
the whole ``max_age_s`` again, whichever process delivers them.  An unexpected exception while
delivering a lease (a bug, the outbox failing) counts as a failed try of each row it had not
settled yet, so even a batch that always crashes ends in the dead-letter table, with a reason
naming the exception's type (never its message, which may quote event data).

Each lease is delivered by one :class:`integration.delivery.LeaseDelivery`: it carries out the
plans against the outbox and owns the rows the lease still holds.  Each account's AIMD limit
and pause live in :class:`integration.slots.Slots`.  Settling is batched: the rows one upload
settles (delivered, dead, and the events of its lease that were skipped) and its ledger entry
are written in one transaction, since every commit waits for the disk.

Every upload is written to the delivery ledger.  On :meth:`Dispatcher.stop` the lanes stop
leasing, uploads in flight get ``dispatcher.shutdown_grace_s`` to finish, and the rest are
cancelled and their rows released at once (no attempt counted): nothing leased is lost, at
worst a batch that reached CleverTap is sent again (CleverTap has no idempotency key,
clevertap.md §5).
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from integration.budget import PropertyBudget
from integration.config import Config
from integration.delivery import DeliveryContext, LeaseDelivery
from integration.metrics import Metrics
from integration.outbox.base import Lease, Outbox
from integration.routes import Route, Routes
from integration.slots import Slots
from integration.uploader import Uploader
from integration.webhook import ENVIRONMENTS

__all__ = ["AccountState", "Dispatcher"]

logger = logging.getLogger(__name__)

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
    routes: tuple[str, ...] = ("default",)  # the routes delivering to it


class Dispatcher:
    """Delivers what the outbox holds to CleverTap, as described in the module docstring.

    Parameters:
        config: the engine's configuration (accounts, batching, retries, pauses, mapping).
        outbox: an opened outbox.
        uploader: sends batches; its HTTP client is injectable.
        metrics: counters to update (a fresh :class:`Metrics` by default).
        clock: epoch seconds; every outbox time comes from it.
        sleep: awaited for every wait (idle polls, linger, pauses); tests advance a fake clock.
        random: returns floats in [0, 1) for the backoff jitter.
        poll_s: instead of ``dispatcher.poll_s``, how often an idle lane looks for rows that
            became due (retries, other writers).
        routes: the configuration's routes (``Routes(config)`` by default).
        uploaders: by API base URL, an uploader for routes whose CleverTap API is not
            ``uploader``'s (another region); ``uploader`` serves the rest.
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
        poll_s: float | None = None,
        routes: Routes | None = None,
        uploaders: dict[str, Uploader] | None = None,
    ) -> None:
        settings = config.dispatcher
        if poll_s is not None and not poll_s > 0:
            raise ValueError("need poll_s > 0")
        self.config = config
        self.outbox = outbox
        self.uploader = uploader
        self.metrics = metrics if metrics is not None else Metrics()
        self.poll_s = poll_s if poll_s is not None else settings.poll_s
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self.routes = routes if routes is not None else Routes(config)
        self._slots: dict[str, Slots] = {}
        self._lanes_of: dict[tuple[str, str], _Lane] = {}
        uploaders = uploaders or {}
        labelled = self.routes.several
        budget = PropertyBudget()  # one for all routes: it is kept per account and event name
        for route in self.routes:
            route_uploader = uploaders.get(route.config.clevertap.api_base_url(), uploader)
            context = DeliveryContext(
                route.config,
                outbox,
                route_uploader,
                self.metrics,
                clock,
                random,
                dict.fromkeys(ENVIRONMENTS, 1.0),
                budget=budget,
                route=route.name,
                transform=route.transform,
                labels={"route": route.name} if labelled else {},
                fingerprint=route.fingerprint,
            )
            for environment in ENVIRONMENTS:
                account = route.config.clevertap.account_for(environment)
                key = account.account_id if account is not None else f"(no {environment} account)"
                slots = self._slots.setdefault(
                    key, Slots(key, settings.concurrency, settings.auth_pause_s)
                )
                if environment not in slots.environments:
                    slots.environments.append(environment)
                self._lanes_of[route.name, environment] = _Lane(
                    route, environment, slots, context, asyncio.Event()
                )
        self._stop = asyncio.Event()
        self._lanes: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start one lane per route and environment."""
        if self._lanes:
            return
        self._stop.clear()
        self._lanes = [
            asyncio.create_task(self._lane(lane), name=f"rc-clevertap lane {route} {environment}")
            for (route, environment), lane in self._lanes_of.items()
        ]

    async def stop(self, *, grace_s: float | None = None) -> None:
        """Stop leasing; let uploads in flight finish for ``grace_s`` (by default
        ``dispatcher.shutdown_grace_s``), then release the rest."""
        if grace_s is None:
            grace_s = self.config.dispatcher.shutdown_grace_s
        self._stop.set()
        for slots in self._slots.values():
            slots.wake(everyone=True)
        for lane in self._lanes_of.values():
            lane.wake.set()
        if self._lanes:
            await asyncio.gather(*self._lanes, return_exceptions=True)
        self._lanes = []
        pending = set(self._deliveries)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self, environment: str, route: str = "default") -> None:
        """Tell the route's lane of ``environment`` that new rows are waiting (the receiver
        calls this)."""
        lane = self._lanes_of.get((route, environment))
        if lane is not None:
            lane.wake.set()

    def wake_all(self) -> None:
        """Wake every lane (after an operator moved rows of any route back to the queue)."""
        for lane in self._lanes_of.values():
            lane.wake.set()

    @property
    def in_flight(self) -> int:
        """Leases being delivered right now."""
        return len(self._deliveries)

    def accounts(self) -> list[AccountState]:
        now = self._clock()
        routes: dict[str, list[str]] = {}
        for (route, _), lane in self._lanes_of.items():
            names = routes.setdefault(lane.slots.account_id, [])
            if route not in names:
                names.append(route)
        return [
            AccountState(
                slots.account_id,
                tuple(slots.environments),
                slots.allowed,
                slots.in_flight,
                slots.paused_until if slots.paused_until > now else None,
                tuple(routes.get(slots.account_id, ())),
            )
            for slots in self._slots.values()
        ]

    # -- lanes -------------------------------------------------------------------------------

    async def _lane(self, lane: _Lane) -> None:
        slots, environment, route = lane.slots, lane.environment, lane.route.name
        records_per_event = lane.context.records_per_event
        lease_s = self.config.outbox.lease_s
        while not self._stop.is_set():
            pause = slots.paused_until - self._clock()
            if pause > 0:
                await self._wait(None, min(pause, self.poll_s * 10))
                continue
            if not await slots.acquire(self._stop):
                break
            limit = max(1, int(self.config.dispatcher.batch_size / records_per_event[environment]))
            try:
                lease = await self.outbox.lease(
                    environment, limit, now=self._clock(), lease_s=lease_s, route=route
                )
            except Exception:
                slots.release()
                logger.exception(
                    "cannot lease %s events of route %s; trying again", environment, route
                )
                await self._wait(None, self.poll_s)
                continue
            if lease is None:
                slots.release()
                await self._idle(lane.wake)
                continue
            self._spawn(self._deliver(lease, slots, lane.context))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _idle(self, wake: asyncio.Event) -> None:
        await self._wait(wake, self.poll_s)
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

    async def _deliver(self, lease: Lease, slots: Slots, context: DeliveryContext) -> None:
        delivery = LeaseDelivery(context, lease, slots)
        try:
            await delivery.run()
        except asyncio.CancelledError:
            # Shutdown past the grace period: hand the rows back now rather than at expiry.
            await asyncio.shield(delivery.give_back())
            raise
        except Exception as exc:
            # Left leased, the rows would come back at expiry with no attempt counted, and a
            # batch that always fails would never reach the dead-letter table.
            logger.exception(
                "delivery of a %s batch failed; its rows are retried with backoff",
                lease.environment,
            )
            await delivery.fail(f"delivery failed: {type(exc).__name__}")
        finally:
            slots.release()


@dataclass(frozen=True, slots=True)
class _Lane:
    """One route's environment: what its lane leases and where it delivers."""

    route: Route
    environment: str
    slots: Slots
    context: DeliveryContext
    wake: asyncio.Event
