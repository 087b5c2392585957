"""The operator's commands on the outbox alone: dead letters, quarantine, replay, status.

``rc-clevertap dlq``, ``quarantine``, ``replay`` and ``status`` call these.  Each opens the
configured outbox, does one thing and closes it again, so it works with or without engines
running against the same outbox (SQLite in WAL mode and PostgreSQL both allow that): a running
engine picks up requeued rows within its ``dispatcher.poll_s``::

    config = load_config("rc-clevertap.toml")
    stats = asyncio.run(read_status(config))
    asyncio.run(retry_dead_letters(config, None))   # every dead letter back in the queue
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from integration._exceptions import IntegrationError, InvalidWebhook
from integration.config import DEFAULT_ROUTE, Config
from integration.outbox import (
    DeadLetter,
    Outbox,
    OutboxEvent,
    OutboxStats,
    QuarantinedBody,
    Requeue,
    open_outbox,
)
from integration.routes import route_for_event
from integration.webhook import parse_webhook

__all__ = [
    "StillInvalid",
    "UnknownDeadLetters",
    "UnknownQuarantined",
    "delivered_since",
    "discard_dead_letters",
    "discard_quarantined",
    "list_dead_letters",
    "list_quarantined",
    "outbox_for",
    "read_backfill_counts",
    "read_status",
    "read_unrouted",
    "replay_delivered",
    "requeue_quarantined",
    "retry_dead_letters",
    "show_quarantined",
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
    """Some ids given to :func:`retry_dead_letters` or :func:`discard_dead_letters` name no
    dead letter; ``ids`` lists them."""

    def __init__(self, ids: Sequence[str], *, action: str = "requeued") -> None:
        super().__init__(
            f"no dead letter with id {', '.join(ids)}; nothing was {action} "
            "(rc-clevertap dlq list shows the ids)"
        )
        self.ids = tuple(ids)


async def _dead_row_ids(outbox: Outbox, ids: Sequence[int | str], action: str) -> list[int]:
    """The row ids of the dead letters ``ids`` names (row ids or event ids), or
    :class:`UnknownDeadLetters` naming those that name none."""
    dead = await outbox.dead_letters(limit=MAX_RETRY_LOOKUP)
    by_id = {str(d.row_id): d.row_id for d in dead}
    by_id.update({d.event_id: d.row_id for d in dead})
    unknown = [str(i) for i in ids if str(i) not in by_id]
    if unknown:
        raise UnknownDeadLetters(unknown, action=action)
    return sorted({by_id[str(i)] for i in ids})


async def retry_dead_letters(
    config: Config, ids: Sequence[int | str] | None, *, now: float | None = None
) -> int:
    """Requeue dead letters, all when ``ids`` is None (``rc-clevertap dlq retry``).

    Each id is a dead letter's row id or its event id.  When any names no dead letter,
    :class:`UnknownDeadLetters` is raised and no row changes.  A running engine picks the
    requeued rows up within its poll interval.  Returns how many were requeued.
    """
    async with _opened(config) as outbox:
        row_ids = None if ids is None else await _dead_row_ids(outbox, ids, "requeued")
        return await outbox.retry_dead(row_ids, now=time.time() if now is None else now)


async def discard_dead_letters(config: Config, ids: Sequence[int | str]) -> int:
    """Delete dead letters for good (``rc-clevertap dlq discard``): row ids or event ids.

    When any names no dead letter, :class:`UnknownDeadLetters` is raised and nothing is
    deleted.  Returns how many were deleted.
    """
    async with _opened(config) as outbox:
        return await outbox.discard_dead(await _dead_row_ids(outbox, ids, "discarded"))


async def replay_delivered(
    config: Config, *, since: float, until: float | None = None, now: float | None = None
) -> int:
    """Send again every event delivered at or after ``since`` and before ``until`` (no end
    when ``None``; ``rc-clevertap replay``).

    The stored bodies are mapped again with the current configuration.  Returns the count.
    """
    async with _opened(config) as outbox:
        at = time.time() if now is None else now
        return await outbox.replay(since=since, until=until, now=at)


async def delivered_since(
    config: Config, *, since: float, limit: int, until: float | None = None
) -> list[OutboxEvent]:
    """What :func:`replay_delivered` would send, oldest first (``replay --dry-run``)."""
    async with _opened(config) as outbox:
        return await outbox.delivered_since(since=since, until=until, limit=limit)


async def read_status(config: Config) -> OutboxStats:
    """Queue depth, oldest pending, dead letters, last upload (``rc-clevertap status``)."""
    async with _opened(config) as outbox:
        return await outbox.stats()


async def read_backfill_counts(config: Config) -> dict[str, int]:
    """Backfilled rows by state (``rc-clevertap status`` shows them apart, issue 18)."""
    async with _opened(config) as outbox:
        return await outbox.backfill_counts()


async def read_unrouted(config: Config) -> dict[str, int]:
    """Waiting rows (pending or leased) whose route ``config`` no longer has, by route name.

    No lane leases them: they wait, unchanged, until the route is configured again, and are
    never dead-lettered for it (issue 16); ``rc-clevertap status`` lists them with that hint.
    """
    configured = {route.name for route in config.routes}
    if config.default_route:
        configured.add(DEFAULT_ROUTE)
    async with _opened(config) as outbox:
        waiting = await outbox.waiting_by_route()
    return {name: n for name, n in sorted(waiting.items()) if name not in configured}


async def list_quarantined(config: Config, *, limit: int = 100) -> list[QuarantinedBody]:
    """Bodies refused as invalid events, newest first."""
    async with _opened(config) as outbox:
        return await outbox.quarantined(limit=limit)


class UnknownQuarantined(IntegrationError, LookupError):
    """Some quarantine ids name no quarantined body; ``ids`` lists them."""

    def __init__(self, ids: Sequence[int], *, action: str) -> None:
        listed = ", ".join(str(i) for i in ids)
        super().__init__(
            f"no quarantined body with id {listed}; nothing was {action} "
            "(rc-clevertap quarantine list shows the ids)"
        )
        self.ids = tuple(ids)


class StillInvalid(IntegrationError, ValueError):
    """A quarantined body asked to be requeued is still not a RevenueCat event."""

    def __init__(self, quarantine_id: int, reason: str) -> None:
        super().__init__(
            f"quarantined body {quarantine_id} is still not a RevenueCat event ({reason}); "
            "nothing was requeued"
        )
        self.quarantine_id = quarantine_id


class Unrouted(IntegrationError, ValueError):
    """A quarantined body asked to be requeued is an event no configured route takes."""

    def __init__(self, quarantine_id: int, app_id: str | None, environment: str) -> None:
        super().__init__(
            f"quarantined body {quarantine_id}: no route takes app_id {app_id!r:.80} in "
            f"{environment} ([[routes]] app_ids, or a [clevertap] account); nothing was requeued"
        )
        self.quarantine_id = quarantine_id


async def _quarantined(outbox: Outbox, ids: Sequence[int], action: str) -> list[QuarantinedBody]:
    found = await outbox.quarantined_by_id(sorted(set(ids)))
    unknown = sorted(set(ids) - {b.quarantine_id for b in found})
    if unknown:
        raise UnknownQuarantined(unknown, action=action)
    return found


async def show_quarantined(config: Config, quarantine_id: int) -> QuarantinedBody:
    """One quarantined body (``rc-clevertap quarantine show``), or :class:`UnknownQuarantined`."""
    async with _opened(config) as outbox:
        [body] = await _quarantined(outbox, [quarantine_id], "shown")
        return body


async def requeue_quarantined(
    config: Config, ids: Sequence[int], *, now: float | None = None
) -> int:
    """Queue quarantined bodies as events (``rc-clevertap quarantine requeue``).

    Each body is read again with today's webhook parser: the body was quarantined because an
    earlier release, or a body since corrected in place, could not read it.  All or nothing:
    an unknown id (:class:`UnknownQuarantined`) or a body that is still not an event
    (:class:`StillInvalid`) changes no row.  An event already stored under the same id leaves
    the quarantine without being stored twice.  Returns how many left the quarantine.
    """
    async with _opened(config) as outbox:
        rows: list[Requeue] = []
        for body in await _quarantined(outbox, ids, "requeued"):
            try:
                envelope = parse_webhook(body.body)
            except InvalidWebhook as exc:
                raise StillInvalid(body.quarantine_id, exc.reason) from None
            # The route its app_id takes on the shared path (the quarantine keeps no path).
            route = route_for_event(config, envelope.text("app_id"), envelope.environment)
            if route is None:
                raise Unrouted(body.quarantine_id, envelope.text("app_id"), envelope.environment)
            rows.append(
                Requeue(
                    body.quarantine_id,
                    envelope.event_id,
                    envelope.environment,
                    app_user_id=envelope.text("app_user_id"),
                    event_type=envelope.event_type,
                    transaction_id=envelope.text("transaction_id"),
                    route=route,
                )
            )
        return await outbox.requeue_quarantined(rows, now=time.time() if now is None else now)


async def discard_quarantined(config: Config, ids: Sequence[int]) -> int:
    """Delete quarantined bodies for good (``rc-clevertap quarantine discard``); an unknown id
    (:class:`UnknownQuarantined`) deletes nothing.  Returns how many were deleted."""
    async with _opened(config) as outbox:
        await _quarantined(outbox, ids, "discarded")
        return await outbox.discard_quarantined(sorted(set(ids)))
