"""``rc-clevertap backfill --deliver``: enqueue, then run the dispatcher until the queue drains.

A backfill alone only makes its events durable; a running ``serve`` on the same outbox delivers
them.  :func:`backfill_and_deliver` instead starts an :class:`~integration.engine.Engine` (the
same dispatcher, uploader and retry rules as ``serve``, without the receiver being served),
backfills into its outbox, and waits until nothing is pending or in flight: each event
delivered, skipped or dead-lettered.  Live rows in the same outbox go first (the lease takes them
first) and are delivered too.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from integration.backfill.run import BackfillProgress, BackfillReport, backfill
from integration.config import Config
from integration.engine import Engine
from integration.outbox.base import OutboxStats

__all__ = ["DeliveryProgress", "DeliveryReport", "backfill_and_deliver"]

POLL_S = 0.5  # how often the outbox is asked how far delivery has got


@dataclass(frozen=True, slots=True)
class DeliveryProgress:
    """Events this engine settled (live ones in the same outbox included, read from its
    counters), of the ``enqueued`` the backfill added, and the rows still waiting."""

    enqueued: int
    delivered: int
    skipped: int
    dead: int
    waiting: int  # pending or leased now


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The backfill's report, and what the outbox settled while ``--deliver`` ran."""

    backfill: BackfillReport
    delivered: int
    skipped: int
    dead: int


def _progress(engine: Engine, stats: OutboxStats, enqueued: int) -> DeliveryProgress:
    metrics = engine.metrics
    return DeliveryProgress(
        enqueued=enqueued,
        delivered=int(metrics.total("events_delivered_total")),
        skipped=int(metrics.total("events_skipped_total")),
        dead=int(metrics.total("events_dead_lettered_total")),
        waiting=stats.pending + stats.leased,
    )


async def backfill_and_deliver(
    config: Config,
    paths: Sequence[str | os.PathLike[str]],
    *,
    since: float | None = None,
    until: float | None = None,
    route: str | None = None,
    engine: Engine | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    on_delivery: Callable[[DeliveryProgress], None] | None = None,
) -> DeliveryReport:
    """Backfill ``paths`` into an engine's outbox and wait until it has all been settled.

    ``engine`` (not started) is built from ``config`` when not given; it is started and stopped
    here.  Bound the wait with ``asyncio.timeout``: an account whose credentials CleverTap
    refuses never drains (the rows stay queued for ``serve``).
    """
    engine = engine if engine is not None else Engine(config, clock=clock, sleep=sleep)
    async with engine:
        report = await backfill(
            engine.outbox, paths, config=config, since=since, until=until, route=route,
            clock=clock, on_progress=on_progress,
        )  # fmt: skip
        while True:
            idle = await engine.idle()  # first: the counts read after it include the last row
            progress = _progress(engine, await engine.outbox.stats(), report.enqueued)
            if on_delivery is not None:
                on_delivery(progress)
            if idle:
                break
            await sleep(POLL_S)
    return DeliveryReport(report, progress.delivered, progress.skipped, progress.dead)
