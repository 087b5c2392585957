"""Group commit: concurrent enqueue calls in one process share one transaction.

Callers hand their row to :class:`GroupCommitter` and wait.  One flusher task takes everything
waiting (up to ``max_batch`` rows), has the backend write it in one transaction, and wakes
each caller with its own answer.  While that commit is in flight, new rows gather for the next
one, so under load each commit carries many webhooks and at rest a single webhook waits only
for its own commit.

Both backends use it: PostgreSQL writes a batch as one statement over its pool, SQLite as a
few multi-row INSERTs on the outbox's own thread.  The flusher, not the caller, runs the
write, so a caller that stops waiting (a client hanging up) takes nothing out of a commit
others share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple


class PendingRow(NamedTuple):
    event_id: str
    environment: str
    body: bytes
    received_at: float
    # What the row is and who it belongs to, for lookups (schema 3): where it came from
    # ("webhook" or "backfill"), and the event's app_user_id, type and transaction_id.
    source: str = "webhook"
    app_user_id: str | None = None
    event_type: str | None = None
    transaction_id: str | None = None
    route: str = "default"  # schema 6 (issue 16)
    mapped: bytes | None = None  # schema 8 (issue 21): the mapped form and its fingerprint
    mapped_fp: str | None = None


# Writes the rows (no two share an event_id) in one transaction and returns the event ids
# actually inserted; a row whose id is already stored is not.
WriteBatch = Callable[[Sequence[PendingRow]], Awaitable[set[str]]]


class GroupCommitter:
    """Batches concurrent :meth:`submit` calls into shared commits of at most ``max_batch``."""

    def __init__(self, write: WriteBatch, *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[PendingRow, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, row: PendingRow) -> bool:
        """Wait until ``row`` is committed; ``False`` if its event id was already stored."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="outbox-group-commit")
        return await future

    async def drain(self) -> None:
        """Wait until every submitted row has been written (or has failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            # The first caller with an event id gets the database's answer; a second caller
            # with the same id in the same batch is a duplicate by definition.
            first: dict[str, PendingRow] = {}
            for row, _ in batch:
                first.setdefault(row.event_id, row)
            try:
                inserted = await self._write(list(first.values()))
            except BaseException as exc:
                for _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
                if not isinstance(exc, Exception):
                    for _, future in self._waiting:
                        future.cancel()
                    self._waiting.clear()
                    raise
                continue
            for row, future in batch:
                is_new = first.get(row.event_id) is row and row.event_id in inserted
                if not future.done():
                    future.set_result(is_new)
