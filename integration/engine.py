"""The forwarding engine as one object: receiver, outbox and dispatcher, started together.

Example (what ``rc-clevertap serve`` does, and what tests and notebooks do in process)::

    engine = Engine(load_config("rc-clevertap.toml"))
    async with engine:                 # opens the outbox, starts delivering
        ...                            # serve engine.app (an ASGI app) with uvicorn
        await engine.wait_idle()       # everything delivered, skipped or dead-lettered

Serving ``engine.app`` with uvicorn also works on its own: the app's lifespan starts the engine
and stops it on shutdown.  Stopping closes intake first (new webhooks get 503, which RevenueCat
retries), then lets uploads in flight finish or releases their rows, then closes the outbox.

The operator commands (``rc-clevertap dlq``, ``replay``, ``status``) work on the outbox alone,
with or without an engine running against it: see :mod:`integration.admin`.  Serving the
engine with uvicorn from the command line is :mod:`integration.app.server`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.types import ASGIApp

from integration._exceptions import IntegrationError
from integration.admin import outbox_for
from integration.config import Config
from integration.dispatcher import AccountState, Dispatcher
from integration.metrics import Metrics
from integration.outbox import DeadLetter, Outbox, OutboxStats
from integration.outbox.base import QueueDepths
from integration.receiver import Gauge, Receiver
from integration.routes import Routes
from integration.uploader import Uploader

__all__ = ["Engine", "EngineStatus"]

logger = logging.getLogger(__name__)

# /metrics reads queue depths from a snapshot at most this old, taken by one scrape for all
# (off the committing thread: Outbox.depths), so probes cost intake nothing measurable.
DEPTHS_MAX_AGE_S = 2.0
# While the outbox's last write failed (a full disk), how often a tiny write is tried, so
# that /healthz turns 200 again once writes commit even when no webhook comes in.
WRITE_PROBE_EVERY_S = 2.0


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What ``rc-clevertap status`` and the demo show about a running engine."""

    running: bool
    outbox: OutboxStats
    accounts: list[AccountState]
    counters: dict[str, float] = field(default_factory=dict)


class Engine:
    """Receiver, durable outbox and dispatcher as one object with ``start`` and ``stop``.

    Parameters:
        config: a validated :class:`~integration.config.Config`.
        outbox: an outbox to use instead of opening ``config.outbox.url`` (not yet opened; the
            engine opens and closes it).
        http_client: the ``httpx.AsyncClient`` uploads go through (tests pass one over
            ``httpx.ASGITransport`` on the CleverTap mock); the caller closes it.
        clock: epoch seconds, for every stored time.
        sleep: every wait the engine makes (polls, linger, pauses, backoff discovery).
        random: floats in [0, 1) for the backoff jitter.
        poll_s: instead of ``dispatcher.poll_s``, how often idle lanes look for rows that
            became due (and ``wait_idle`` looks again).
        shutdown_grace_s: instead of ``dispatcher.shutdown_grace_s``, how long ``stop`` lets
            uploads in flight finish (real seconds).
        prune_every_s: how often settled rows past ``outbox.retention_s`` are pruned.
    """

    def __init__(
        self,
        config: Config,
        *,
        outbox: Outbox | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        poll_s: float | None = None,
        shutdown_grace_s: float | None = None,
        prune_every_s: float = 3600.0,
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        self.outbox = outbox if outbox is not None else outbox_for(config)
        # [[routes]] (issue 16): imports the transforms, so a bad one fails here, at start-up.
        self.routes = Routes(config)
        self.uploader = Uploader(
            config.clevertap.api_base_url(),
            http_client=http_client,
            timeout_s=config.clevertap.timeout_s,
        )
        # A route whose CleverTap API is elsewhere (another region) gets its own uploader.
        self._uploaders: dict[str, Uploader] = {}
        for route in self.routes:
            url = route.config.clevertap.api_base_url()
            if url != config.clevertap.api_base_url() and url not in self._uploaders:
                self._uploaders[url] = Uploader(
                    url, http_client=http_client, timeout_s=route.config.clevertap.timeout_s
                )
        self.dispatcher = Dispatcher(
            config,
            self.outbox,
            self.uploader,
            metrics=self.metrics,
            clock=clock,
            sleep=sleep,
            random=random,
            poll_s=poll_s,
            routes=self.routes,
            uploaders=self._uploaders,
        )
        self.receiver = Receiver(
            config.webhook,
            self.outbox,
            metrics=self.metrics,
            clock=clock,
            on_stored=self.dispatcher.wake,
            gauges=self._gauges,
            lifespan=self._lifespan,
            metrics_token=config.metrics.token,
            routes=self.routes,
            wake=self.dispatcher.wake,
        )
        self.receiver.close_intake()  # until start()
        self._clock = clock
        self._sleep = sleep
        self._poll_s = self.dispatcher.poll_s
        self._grace_s = shutdown_grace_s
        self._prune_every_s = prune_every_s
        self._prune_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._depths: tuple[float, QueueDepths] | None = None  # (monotonic time, snapshot)
        self._depths_lock = asyncio.Lock()
        self._state = "new"  # new -> running -> stopped

    def __repr__(self) -> str:
        return f"Engine(outbox={self.outbox!r}, state={self._state!r})"

    @property
    def app(self) -> ASGIApp:
        """The receiver's ASGI app; its lifespan starts and stops the engine."""
        return self.receiver.app

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outbox (creating or migrating its schema), then take and deliver webhooks."""
        if self._state == "running":
            return
        if self._state == "stopped":
            raise RuntimeError("an engine cannot be started again after stop(); make a new one")
        await self.outbox.open()
        await self._warn_unrouted()
        await self.dispatcher.start()
        self._prune_task = asyncio.create_task(self._prune_loop(), name="rc-clevertap prune")
        self._probe_task = asyncio.create_task(self._write_probe_loop(), name="rc-clevertap probe")
        self.receiver.open_intake()
        self._state = "running"
        logger.info("engine started: outbox %r, CleverTap %s", self.outbox, self.uploader.url)

    async def stop(self) -> None:
        """Stop intake, finish or release uploads in flight, close the outbox.  Idempotent."""
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"
        self.receiver.close_intake()
        await self.dispatcher.stop(grace_s=self._grace_s)
        for task in (self._prune_task, self._probe_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.uploader.aclose()
        for uploader in self._uploaders.values():
            await uploader.aclose()
        await self.outbox.close()
        logger.info("engine stopped")

    async def _warn_unrouted(self) -> None:
        """Say once, at start, which waiting rows no configured route takes (issue 16).

        Such rows wait, unchanged, until their route is configured again; nothing dead-letters
        them.  The choice is a warning in the log, not a metric: the condition only arises when
        the configuration changes, which is a restart, and a ``route`` label must name
        configured routes only.  ``rc-clevertap status`` lists the same rows at any time.
        """
        try:
            waiting = await self.outbox.waiting_by_route()
        except IntegrationError as exc:  # a diagnostic: the engine starts without it
            logger.warning("could not count the events waiting by route: %s", exc)
            return
        configured = set(self.routes.names)
        for name, count in sorted(waiting.items()):
            if name not in configured:
                logger.warning(
                    "%d %s for route %r, which is not configured: delivered once [[routes]] "
                    "names it again, never dead-lettered for it",
                    count,
                    "event waits" if count == 1 else "events wait",
                    name,
                )

    async def _prune_loop(self) -> None:
        retention = self.config.outbox.retention_s
        while True:
            try:
                pruned = await self.outbox.prune(delivered_before=self._clock() - retention)
                if pruned:
                    logger.info("pruned %d settled events older than %.0f s", pruned, retention)
            except Exception:
                logger.exception("pruning the outbox failed; trying again later")
            await asyncio.sleep(self._prune_every_s)  # real time: pruning is housekeeping

    async def _write_probe_loop(self) -> None:
        while True:
            await asyncio.sleep(WRITE_PROBE_EVERY_S)  # real time: a disk frees up in real time
            health = self.outbox.health()
            if health.writable:
                continue
            try:
                await self.outbox.probe_write()
            except Exception:
                logger.warning("outbox still refuses writes: %s", health.reason)
            else:
                logger.info("outbox takes writes again")

    # -- observing ---------------------------------------------------------------------------

    async def wait_idle(self) -> OutboxStats:
        """Wait until nothing is pending, leased or in flight; returns the outbox stats then.

        Rows waiting for a retry count as pending, so this also waits out backoffs (with an
        injected ``sleep`` and clock, in no real time).  Bound it with ``asyncio.timeout``: an
        account whose credentials CleverTap refuses never drains.
        """
        while True:
            stats = await self.outbox.stats()
            if self._idle(stats):
                return stats
            await self._sleep(self._poll_s)

    async def idle(self) -> bool:
        """Whether nothing is pending, leased or in flight right now (:meth:`wait_idle`'s test)."""
        return self._idle(await self.outbox.stats())

    def _idle(self, stats: OutboxStats) -> bool:
        return stats.pending == 0 and stats.leased == 0 and self.dispatcher.in_flight == 0

    async def status(self) -> EngineStatus:
        return EngineStatus(
            running=self.running,
            outbox=await self.outbox.stats(),
            accounts=self.dispatcher.accounts(),
            counters=self.metrics.snapshot(),
        )

    async def queue_depths(self) -> QueueDepths:
        """Queue depths at most :data:`DEPTHS_MAX_AGE_S` old; concurrent callers share one read."""
        async with self._depths_lock:
            cached = self._depths
            if cached is not None and time.monotonic() - cached[0] < DEPTHS_MAX_AGE_S:
                return cached[1]
            depths = await self.outbox.depths()
            self._depths = (time.monotonic(), depths)
            return depths

    async def _gauges(self) -> list[Gauge]:
        stats = await self.queue_depths()
        gauges: list[Gauge] = [
            ("queue_depth", "Outbox rows by state.", {"state": "pending"}, stats.pending),
            ("queue_depth", "Outbox rows by state.", {"state": "leased"}, stats.leased),
            ("queue_depth", "Outbox rows by state.", {"state": "dead"}, stats.dead),
            (
                "oldest_pending_age_seconds",
                "Age of the oldest event not yet settled.",
                {},
                0.0
                if stats.oldest_pending_at is None
                else max(0.0, self._clock() - stats.oldest_pending_at),
            ),
        ]
        # Only configured accounts: an environment without one is no account to label.
        configured = {
            found.account_id
            for route in self.routes
            for environment in ("PRODUCTION", "SANDBOX")
            if (found := route.config.clevertap.account_for(environment)) is not None
        }
        accounts = [a for a in self.dispatcher.accounts() if a.account_id in configured]
        for account in accounts:
            gauges.append(
                (
                    "account_concurrency",
                    "Uploads allowed in flight per account (AIMD).",
                    {"account": account.account_id},
                    account.concurrency_limit,
                )
            )
        for account in accounts:
            gauges.append(
                (
                    "account_paused",
                    "1 while CleverTap refuses the account's credentials.",
                    {"account": account.account_id},
                    1.0 if account.paused_until is not None else 0.0,
                )
            )
        return gauges

    # -- operator actions on the running engine's outbox -------------------------------------

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        return await self.outbox.dead_letters(limit=limit)

    async def retry_dead(self, row_ids: Sequence[int] | None = None) -> int:
        count = await self.outbox.retry_dead(row_ids, now=self._clock())
        self._wake_all()
        return count

    async def replay(self, *, since: float, until: float | None = None) -> int:
        count = await self.outbox.replay(since=since, until=until, now=self._clock())
        self._wake_all()
        return count

    def _wake_all(self) -> None:
        self.dispatcher.wake_all()
