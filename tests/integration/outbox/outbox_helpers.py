"""Settling one row state at a time, as many outbox tests do, through :meth:`Outbox.settle`.

The engine settles a whole upload with one ``settle`` call; these helpers give the tests the
one-kind-at-a-time calls they read best with, built on that same call.
"""

from __future__ import annotations

from collections.abc import Sequence

from integration.outbox import DeliveryAttempt, Lease, Outbox


async def mark_delivered(
    outbox: Outbox, lease: Lease, row_ids: Sequence[int], *, now: float
) -> int:
    """Settle rows as delivered; how many rows ``lease`` still held."""
    return await outbox.settle(lease, delivered=row_ids, now=now)


async def mark_skipped(
    outbox: Outbox, lease: Lease, row_id: int, reason: str, *, now: float
) -> int:
    """Settle one row as skipped with ``reason``; 1 if ``lease`` still held it, else 0."""
    return await outbox.settle(lease, skipped=[(row_id, reason)], now=now)


async def mark_dead(outbox: Outbox, lease: Lease, row_id: int, reason: str, *, now: float) -> int:
    """Settle one row as dead with ``reason``; 1 if ``lease`` still held it, else 0."""
    return await outbox.settle(lease, dead=[(row_id, reason)], now=now)


async def record_attempt(outbox: Outbox, attempt: DeliveryAttempt) -> None:
    """Append ``attempt`` to the ledger, settling no rows."""
    no_rows = Lease(token="", environment=attempt.environment, events=(), expires_at=attempt.at)
    await outbox.settle(no_rows, attempt=attempt, now=attempt.at)
