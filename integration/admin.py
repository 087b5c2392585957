"""The operator's commands on the outbox alone: dead letters, replay, status.

``rc-clevertap dlq``, ``replay`` and ``status`` call these.  Each opens the configured outbox,
does one thing and closes it again, so it works with or without engines running against the
same outbox (SQLite in WAL mode and PostgreSQL both allow that): a running engine picks up
requeued rows within its ``dispatcher.poll_s``::

    config = load_config("rc-clevertap.toml")
    stats = asyncio.run(read_status(config))
    asyncio.run(retry_dead_letters(config, None))   # every dead letter back in the queue
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from integration.config import Config
from integration.outbox import DeadLetter, Outbox, OutboxStats, QuarantinedBody, open_outbox

__all__ = [
    "list_dead_letters",
    "list_quarantined",
    "outbox_for",
    "read_status",
    "replay_delivered",
    "retry_dead_letters",
]


def outbox_for(config: Config, *, create: bool = True) -> Outbox:
    """The configured outbox, not yet opened; with ``create=False`` opening it fails when it
    does not exist yet."""
    options: dict[str, object] = {"quarantine_cap": config.outbox.quarantine_cap}
    if not config.outbox.url.startswith("sqlite"):
        options["pool_timeout"] = config.outbox.pool_timeout_s  # PostgreSQL's pool only
    return open_outbox(config.outbox.url, create=create, **options)


@contextlib.asynccontextmanager
async def _opened(config: Config) -> AsyncIterator[Outbox]:
    # An operator command never creates an outbox: a mistyped path would show an empty queue.
    outbox = outbox_for(config, create=False)
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

    A running engine picks them up within its poll interval.  Returns how many were requeued.
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
