"""What the operator commands need from every outbox backend beyond the engine's contract."""

from __future__ import annotations

import pytest

from integration import OutboxError
from integration.outbox import open_outbox


async def test_an_outbox_that_does_not_exist_is_not_created_on_request(outbox_url: str) -> None:
    """With ``create=False``, opening an outbox that was never created fails and creates none."""
    with pytest.raises(OutboxError, match="rc-clevertap serve once to create it"):
        await open_outbox(outbox_url, create=False).open()
    with pytest.raises(OutboxError):  # still not there: the failed open left nothing behind
        await open_outbox(outbox_url, create=False).open()


async def test_an_existing_outbox_opens_without_creating(outbox_url: str) -> None:
    """With ``create=False``, an outbox a creating open made opens and reads as usual."""
    async with open_outbox(outbox_url) as created:
        await created.enqueue("e1", "PRODUCTION", b"{}", now=1.0)
    async with open_outbox(outbox_url, create=False) as existing:
        assert (await existing.stats()).pending == 1


async def test_delivered_since_lists_what_replay_would_send_and_changes_nothing(
    outbox_url: str,
) -> None:
    """delivered_since lists rows delivered at or after the time, oldest first, unchanged."""
    async with open_outbox(outbox_url) as outbox:
        for i in range(3):
            await outbox.enqueue(f"e{i}", "PRODUCTION", b"{}", now=float(i))
        lease = await outbox.lease("PRODUCTION", 10, now=10.0, lease_s=30)
        assert lease is not None
        rows = [e.row_id for e in lease.events]
        await outbox.settle(lease, delivered=rows[:1], now=10.0)
        await outbox.settle(lease, delivered=rows[1:], now=20.0)
        listed = await outbox.delivered_since(since=15.0)
        assert [e.event_id for e in listed] == ["e1", "e2"]
        assert (await outbox.stats()).delivered == 3


async def test_replay_and_delivered_since_with_an_end_take_only_rows_before_it(
    outbox_url: str,
) -> None:
    """With ``until``, both take rows delivered in [since, until): the end itself is out."""
    async with open_outbox(outbox_url) as outbox:
        for i in range(3):
            await outbox.enqueue(f"e{i}", "PRODUCTION", b"{}", now=float(i))
        lease = await outbox.lease("PRODUCTION", 10, now=10.0, lease_s=30)
        assert lease is not None
        for row, at in zip([e.row_id for e in lease.events], (10.0, 20.0, 30.0), strict=True):
            await outbox.settle(lease, delivered=[row], now=at)
        listed = await outbox.delivered_since(since=10.0, until=30.0)
        assert [e.event_id for e in listed] == ["e0", "e1"]
        assert await outbox.replay(since=15.0, until=30.0, now=40.0) == 1
        stats = await outbox.stats()
        assert (stats.pending, stats.delivered) == (1, 2)
        again = await outbox.lease("PRODUCTION", 10, now=40.0, lease_s=30)
        assert again is not None and [e.event_id for e in again.events] == ["e1"]
