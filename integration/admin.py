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

from integration._exceptions import IntegrationError
from integration.config import Config
from integration.outbox import (
    DeadLetter,
    Outbox,
    OutboxEvent,
    OutboxStats,
    QuarantinedBody,
    open_outbox,
)

__all__ = [
    "UnknownDeadLetters",
    "delivered_since",
    "list_dead_letters",
    "list_quarantined",
    "outbox_for",
    "read_status",
    "replay_delivered",
    "retry_dead_letters",
]

#: Most dead letters read to resolve the ids ``dlq retry`` is given.
MAX_RETRY_LOOKUP = 1_000_000


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


class UnknownDeadLetters(IntegrationError, LookupError):
    """Some ids given to :func:`retry_dead_letters` name no dead letter; ``ids`` lists them."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(
            f"no dead letter with id {', '.join(ids)}; nothing was requeued "
            "(rc-clevertap dlq list shows the ids)"
        )
        self.ids = tuple(ids)


async def retry_dead_letters(
    config: Config, ids: Sequence[int | str] | None, *, now: float | None = None
) -> int:
    """Requeue dead letters, all when ``ids`` is None (``rc-clevertap dlq retry``).

    Each id is a dead letter's row id or its event id.  When any names no dead letter,
    :class:`UnknownDeadLetters` is raised and no row changes.  A running engine picks the
    requeued rows up within its poll interval.  Returns how many were requeued.
    """
    async with _opened(config) as outbox:
        row_ids: list[int] | None = None
        if ids is not None:
            dead = await outbox.dead_letters(limit=MAX_RETRY_LOOKUP)
            by_id = {str(d.row_id): d.row_id for d in dead}
            by_id.update({d.event_id: d.row_id for d in dead})
            unknown = [str(i) for i in ids if str(i) not in by_id]
            if unknown:
                raise UnknownDeadLetters(unknown)
            row_ids = sorted({by_id[str(i)] for i in ids})
        return await outbox.retry_dead(row_ids, now=time.time() if now is None else now)


async def replay_delivered(config: Config, *, since: float, now: float | None = None) -> int:
    """Send again every event delivered at or after ``since`` (``rc-clevertap replay``).

    The stored bodies are mapped again with the current configuration.  Returns the count.
    """
    async with _opened(config) as outbox:
        return await outbox.replay(since=since, now=time.time() if now is None else now)


async def delivered_since(config: Config, *, since: float, limit: int) -> list[OutboxEvent]:
    """What :func:`replay_delivered` would send, oldest first (``replay --dry-run``)."""
    async with _opened(config) as outbox:
        return await outbox.delivered_since(since=since, limit=limit)


async def read_status(config: Config) -> OutboxStats:
    """Queue depth, oldest pending, dead letters, last upload (``rc-clevertap status``)."""
    async with _opened(config) as outbox:
        return await outbox.stats()


async def list_quarantined(config: Config, *, limit: int = 100) -> list[QuarantinedBody]:
    """Bodies refused as invalid events, newest first."""
    async with _opened(config) as outbox:
        return await outbox.quarantined(limit=limit)
