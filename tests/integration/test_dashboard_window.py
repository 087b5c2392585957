"""The overview's sliding window counts (integration.app.dashboard.queries.WindowCache)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from integration.app.dashboard.queries import WindowCache
from integration.outbox import Outbox, open_outbox
from integration.outbox.base import WindowCounts

PROD = "PRODUCTION"


class Recording:
    """An outbox whose window_counts calls are recorded as (since, until)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.ranges: list[tuple[float, float | None]] = []

    async def window_counts(self, *, since: float, until: float | None = None) -> WindowCounts:
        self.ranges.append((since, until))
        return await self.outbox.window_counts(since=since, until=until)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    await box.open()
    yield box
    await box.close()


async def traffic(outbox: Outbox, start: int, stop: int) -> None:
    """One event a second; every third delivered a second later, every fifth skipped."""
    for t in range(start, stop):
        assert await outbox.enqueue(f"e{t}", PROD, b"{}", now=float(t))
        lease = await outbox.lease(PROD, 1, now=float(t), lease_s=60.0)
        assert lease is not None
        [event] = lease.events
        if t % 3 == 0:
            await outbox.settle(lease, delivered=[event.row_id], now=t + 1.0)
        elif t % 5 == 0:
            await outbox.settle(lease, skipped=[(event.row_id, "not forwarded")], now=t + 1.0)
        else:
            # Due long after the test: the next lease takes the next event, not this one.
            await outbox.release(lease, [event.row_id], retry_at=1e9, error="429", count=True)


def fields(counts: WindowCounts) -> tuple[Any, ...]:
    return (counts.received, counts.delivered, counts.skipped_by_reason, counts.retrying)


async def test_the_sliding_counts_equal_a_full_read_as_time_moves(outbox: Outbox) -> None:
    """At each refresh the cached window holds what a full read of the window finds."""
    cache = WindowCache(outbox, settle_margin_s=5.0)  # type: ignore[arg-type]
    done = 0
    for now in (100.0, 130.0, 131.0, 200.0):
        await traffic(outbox, done, int(now))
        done = int(now)
        cached = await cache.counts(60.0, now=now)
        assert fields(cached) == fields(await outbox.window_counts(since=now - 60.0)), now


async def test_after_the_first_read_only_the_changed_ranges_are_read(outbox: Outbox) -> None:
    """A refresh reads the range that left the window, the one that closed, and the newest."""
    recording = Recording(outbox)
    cache = WindowCache(recording, settle_margin_s=5.0)  # type: ignore[arg-type]
    await cache.counts(3600.0, now=10_000.0)
    assert recording.ranges == [(6400.0, 9995.0), (9995.0, None)]
    recording.ranges.clear()
    await cache.counts(3600.0, now=10_002.0)
    assert recording.ranges == [(9995.0, 9997.0), (6400.0, 6402.0), (9997.0, None)]


async def test_a_window_is_read_whole_again_after_resync_s(outbox: Outbox) -> None:
    """Past ``resync_s`` the whole window is read again (a replay or prune then shows)."""
    recording = Recording(outbox)
    clock = [0.0]
    cache = WindowCache(
        recording,  # type: ignore[arg-type]
        settle_margin_s=5.0,
        resync_s=60.0,
        monotonic=lambda: clock[0],
    )
    await cache.counts(3600.0, now=10_000.0)
    clock[0] = 61.0
    recording.ranges.clear()
    await cache.counts(3600.0, now=10_002.0)
    assert recording.ranges[0] == (6402.0, 9997.0)
