"""Group commit, shared by both outboxes, driven by an in-memory writer (no database)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from integration.outbox._group_commit import GroupCommitter, PendingRow


class FakeWriter:
    """Records each batch; stores ids like a unique index; can be told to fail once."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.stored: set[str] = set()
        self.fail_next: Exception | None = None

    async def __call__(self, rows: Sequence[PendingRow]) -> set[str]:
        await asyncio.sleep(0)  # a real commit yields to the loop; others queue meanwhile
        self.batches.append([r.event_id for r in rows])
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        new = {r.event_id for r in rows} - self.stored
        self.stored |= new
        return new


def row(event_id: str) -> PendingRow:
    return PendingRow(event_id, "PRODUCTION", b"{}", 0.0)


async def test_concurrent_submits_share_one_write() -> None:
    """Rows submitted while no commit is running go out together in one write."""
    writer = FakeWriter()
    committer = GroupCommitter(writer, max_batch=100)
    results = await asyncio.gather(*(committer.submit(row(f"e{i}")) for i in range(50)))
    assert results == [True] * 50
    assert len(writer.batches) == 1


async def test_batches_never_exceed_max_batch() -> None:
    """No write carries more than ``max_batch`` rows, and every row is written."""
    writer = FakeWriter()
    committer = GroupCommitter(writer, max_batch=8)
    await asyncio.gather(*(committer.submit(row(f"e{i}")) for i in range(30)))
    assert max(len(b) for b in writer.batches) <= 8
    assert sorted(e for b in writer.batches for e in b) == sorted(f"e{i}" for i in range(30))


async def test_duplicate_in_one_batch_is_reported_once() -> None:
    """Two callers with the same event id in one batch: one gets True, the other False."""
    writer = FakeWriter()
    committer = GroupCommitter(writer, max_batch=100)
    results = await asyncio.gather(*(committer.submit(row("same")) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert writer.batches == [["same"]]


async def test_already_stored_id_is_reported_as_duplicate() -> None:
    """An id the writer did not insert comes back False."""
    writer = FakeWriter()
    committer = GroupCommitter(writer, max_batch=100)
    assert await committer.submit(row("e1")) is True
    assert await committer.submit(row("e1")) is False


async def test_write_failure_reaches_every_caller_of_the_batch() -> None:
    """When a commit fails, each caller in it sees the error and nothing is acknowledged."""
    writer = FakeWriter()
    writer.fail_next = RuntimeError("database went away")
    committer = GroupCommitter(writer, max_batch=100)
    results = await asyncio.gather(
        *(committer.submit(row(f"e{i}")) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await committer.submit(row("e0")) is True


async def test_drain_waits_for_submitted_rows() -> None:
    """drain() returns only once rows already submitted have been written."""
    writer = FakeWriter()
    committer = GroupCommitter(writer, max_batch=100)
    tasks = [asyncio.create_task(committer.submit(row(f"e{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    await committer.drain()
    assert writer.stored == {"e0", "e1", "e2"}
    assert await asyncio.gather(*tasks) == [True, True, True]


async def test_caller_that_stops_waiting_leaves_the_commit_to_the_others() -> None:
    """A cancelled caller's row is still written and the others in its batch get their answers."""
    writer = FakeWriter()
    committer = GroupCommitter(writer, max_batch=100)
    gone = asyncio.create_task(committer.submit(row("gone")))
    stays = asyncio.create_task(committer.submit(row("stays")))
    await asyncio.sleep(0)  # both rows now wait for the same commit
    gone.cancel()
    assert await stays is True
    assert gone.cancelled()
    assert writer.stored == {"gone", "stays"}


def test_max_batch_must_be_positive() -> None:
    """A group size below one is refused."""
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(FakeWriter(), max_batch=0)
