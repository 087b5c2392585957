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
with or without an engine running against it: :func:`list_dead_letters`,
:func:`retry_dead_letters`, :func:`replay_delivered`, :func:`read_status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from starlette.applications import Starlette
from starlette.types import ASGIApp

from integration.config import Config
from integration.dispatcher import AccountState, Dispatcher
from integration.metrics import Metrics
from integration.outbox import DeadLetter, Outbox, OutboxStats, QuarantinedBody, open_outbox
from integration.receiver import Gauge, Receiver
from integration.uploader import Uploader

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "Engine",
    "EngineStatus",
    "list_dead_letters",
    "list_quarantined",
    "outbox_for",
    "parse_since",
    "read_status",
    "replay_delivered",
    "retry_dead_letters",
    "run_server",
    "serve",
]

logger = logging.getLogger(__name__)


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
        poll_s: how often idle lanes look for rows that became due.
        auth_pause_s: how long an account pauses after CleverTap refuses its credentials.
        shutdown_grace_s: how long ``stop`` lets uploads in flight finish (real seconds).
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
        poll_s: float = 1.0,
        auth_pause_s: float = 60.0,
        shutdown_grace_s: float = 10.0,
        prune_every_s: float = 3600.0,
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        self.outbox = outbox if outbox is not None else outbox_for(config)
        self.uploader = Uploader(
            config.clevertap.api_base_url(),
            http_client=http_client,
            timeout_s=config.clevertap.timeout_s,
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
            auth_pause_s=auth_pause_s,
            auth_pause_max_s=max(auth_pause_s, 900.0),
        )
        self.receiver = Receiver(
            config.webhook,
            self.outbox,
            metrics=self.metrics,
            clock=clock,
            on_stored=self.dispatcher.wake,
            gauges=self._gauges,
            lifespan=self._lifespan,
        )
        self.receiver.close_intake()  # until start()
        self._clock = clock
        self._sleep = sleep
        self._poll_s = poll_s
        self._grace_s = shutdown_grace_s
        self._prune_every_s = prune_every_s
        self._prune_task: asyncio.Task[None] | None = None
        self._state = "new"  # new -> running -> stopped
        if config.outbox.lease_s <= config.clevertap.timeout_s:
            logger.warning(
                "outbox.lease_s (%s) should exceed clevertap.timeout_s (%s): a slow upload "
                "could outlive its lease and be sent twice",
                config.outbox.lease_s,
                config.clevertap.timeout_s,
            )

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
        await self.dispatcher.start()
        self._prune_task = asyncio.create_task(self._prune_loop(), name="rc-clevertap prune")
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
        if self._prune_task is not None:
            self._prune_task.cancel()
            await asyncio.gather(self._prune_task, return_exceptions=True)
        await self.uploader.aclose()
        await self.outbox.close()
        logger.info("engine stopped")

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

    # -- observing ---------------------------------------------------------------------------

    async def wait_idle(self) -> OutboxStats:
        """Wait until nothing is pending, leased or in flight; returns the outbox stats then.

        Rows waiting for a retry count as pending, so this also waits out backoffs (with an
        injected ``sleep`` and clock, in no real time).  Bound it with ``asyncio.timeout``: an
        account whose credentials CleverTap refuses never drains.
        """
        while True:
            stats = await self.outbox.stats()
            if stats.pending == 0 and stats.leased == 0 and self.dispatcher.in_flight == 0:
                return stats
            await self._sleep(self._poll_s)

    async def status(self) -> EngineStatus:
        return EngineStatus(
            running=self.running,
            outbox=await self.outbox.stats(),
            accounts=self.dispatcher.accounts(),
            counters=self.metrics.snapshot(),
        )

    async def _gauges(self) -> list[Gauge]:
        stats = await self.outbox.stats()
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
        accounts = self.dispatcher.accounts()
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

    async def replay(self, *, since: float) -> int:
        count = await self.outbox.replay(since=since, now=self._clock())
        self._wake_all()
        return count

    def _wake_all(self) -> None:
        for environment in ("PRODUCTION", "SANDBOX"):
            self.dispatcher.wake(environment)


# -- operator commands on the outbox alone (rc-clevertap dlq / replay / status) ---------------


def outbox_for(config: Config) -> Outbox:
    """The configured outbox, not yet opened."""
    return open_outbox(config.outbox.url, quarantine_cap=config.outbox.quarantine_cap)


@contextlib.asynccontextmanager
async def _opened(config: Config) -> AsyncIterator[Outbox]:
    outbox = outbox_for(config)
    await outbox.open()
    try:
        yield outbox
    finally:
        await outbox.close()


async def list_dead_letters(config: Config, *, limit: int = 100) -> list[DeadLetter]:
    """Dead letters, oldest first (``rc-clevertap dlq list``)."""
    async with _opened(config) as outbox:
        return await outbox.dead_letters(limit=limit)


async def retry_dead_letters(
    config: Config, row_ids: Sequence[int] | None, *, now: float | None = None
) -> int:
    """Requeue dead letters, all when ``row_ids`` is None (``rc-clevertap dlq retry``).

    A running engine picks them up within its ``poll_s``.  Returns how many were requeued.
    """
    async with _opened(config) as outbox:
        return await outbox.retry_dead(row_ids, now=time.time() if now is None else now)


async def replay_delivered(config: Config, *, since: float, now: float | None = None) -> int:
    """Send again every event delivered at or after ``since`` (``rc-clevertap replay``).

    The stored bodies are mapped again with the current configuration.  Returns the count.
    """
    async with _opened(config) as outbox:
        return await outbox.replay(since=since, now=time.time() if now is None else now)


async def read_status(config: Config) -> OutboxStats:
    """Queue depth, oldest pending, dead letters, last upload (``rc-clevertap status``)."""
    async with _opened(config) as outbox:
        return await outbox.stats()


async def list_quarantined(config: Config, *, limit: int = 100) -> list[QuarantinedBody]:
    """Bodies refused as invalid events, newest first."""
    async with _opened(config) as outbox:
        return await outbox.quarantined(limit=limit)


_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``--since``: a duration back from now (``90s``, ``30m``, ``2h``,
    ``7d``, ``1w``), an ISO 8601 time (``2026-11-26T10:00:00Z``; naive means UTC), or epoch
    seconds.  Raises ``ValueError`` with the accepted forms."""
    value = text.strip()
    current = time.time() if now is None else now
    match = _RELATIVE.fullmatch(value)
    if match:
        return current - float(match.group(1)) * _UNIT_S[match.group(2)]
    with contextlib.suppress(ValueError):
        return float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else _iso(value)
    raise ValueError(
        f"--since must be a duration (30m, 2h, 7d), an ISO 8601 time or epoch seconds, got {text!r}"
    )


def _iso(value: str) -> float:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _server(
    config: Config, *, host: str, port: int, log_level: str, access_log: bool
) -> uvicorn.Server:
    import uvicorn  # here, so that importing the package does not load the server

    engine = Engine(config)
    # One line per webhook in uvicorn's access log costs more than storing it: off unless
    # asked for (``rc-clevertap serve --access-log``); refusals are logged by the receiver.
    server_config = uvicorn.Config(
        engine.app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=access_log,
    )
    return uvicorn.Server(server_config)


async def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Run receiver and dispatcher on the running event loop until interrupted.

    uvicorn handles SIGINT/SIGTERM: it stops accepting connections, then the app's lifespan
    stops the engine (intake closed, in-flight uploads finished or released, outbox closed).
    """
    server = _server(config, host=host, port=port, log_level=log_level, access_log=access_log)
    await server.serve()


def run_server(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """:func:`serve` on an event loop of uvicorn's choosing (``rc-clevertap serve``).

    uvicorn picks uvloop and its httptools parser when they are installed (they are
    dependencies of rc-clevertap on CPython outside Windows): about twice the requests per
    second of asyncio with h11 on the same core (benchmarks/README.md).
    """
    server = _server(config, host=host, port=port, log_level=log_level, access_log=access_log)
    server.run()
