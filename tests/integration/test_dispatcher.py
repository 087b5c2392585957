"""The dispatcher with a scripted uploader: how one CleverTap answer settles each event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import FakeTime, make_config, webhook

from integration.config import Config, ExtrasConfig
from integration.dispatcher import Dispatcher
from integration.outbox import SQLiteOutbox
from integration.uploader import RecordFailure, UploadResult


class ScriptedUploader:
    """Answers uploads from a script (the last answer repeats) and records the batches."""

    def __init__(self, *answers: UploadResult) -> None:
        self.answers = list(answers)
        self.batches: list[list[dict[str, Any]]] = []

    async def upload(self, account: Any, records: Sequence[dict[str, Any]]) -> UploadResult:
        self.batches.append(list(records))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def ok(*failures: RecordFailure, processed: int = 0) -> UploadResult:
    return UploadResult("ok", 200, 0.01, "200", processed, failures)


SUCCESS = ok()


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[SQLiteOutbox]:
    async with SQLiteOutbox(tmp_path / "o.db") as box:
        yield box


async def run(config: Config, outbox: SQLiteOutbox, uploader: ScriptedUploader) -> Dispatcher:
    """Run a dispatcher until the queue is empty, then stop it."""
    clock = FakeTime()
    dispatcher = Dispatcher(
        config, outbox, uploader, clock=clock, sleep=clock.sleep, random=lambda: 0.5, poll_s=0.05
    )  # type: ignore[arg-type]
    await dispatcher.start()
    async with asyncio.timeout(10):
        while True:
            stats = await outbox.stats()
            if stats.pending == stats.leased == dispatcher.in_flight == 0:
                break
            await clock.sleep(0.05)
    await dispatcher.stop()
    return dispatcher


async def enqueue(outbox: SQLiteOutbox, *ids: str) -> None:
    for event_id in ids:
        await outbox.enqueue(event_id, "PRODUCTION", webhook(event_id), now=0.0)


def rc_ids(batch: list[dict[str, Any]]) -> list[str]:
    return [r["evtData"]["rc_event_id"] for r in batch if "rc_event_id" in r.get("evtData", {})]


async def test_one_answer_with_both_kinds_of_failure(tmp_path: Path, outbox: SQLiteOutbox) -> None:
    """In one 200: a 513 record's event dies, a 555 record's event alone is re-sent."""
    await enqueue(outbox, "a", "b", "c")
    uploader = ScriptedUploader(
        ok(RecordFailure(0, 513, "restricted"), RecordFailure(2, 555, "misc"), processed=1),
        SUCCESS,
    )
    await run(make_config(tmp_path), outbox, uploader)
    assert [rc_ids(b) for b in uploader.batches] == [["a", "b", "c"], ["c"]]
    [dead] = await outbox.dead_letters()
    assert (dead.event_id, dead.reason) == ("a", "clevertap 513: restricted")
    stats = await outbox.stats()
    assert (stats.delivered, stats.dead) == (2, 1)


async def test_a_failed_record_settles_the_event_it_came_from(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """With two records per event, a failure on record 3 belongs to the second event."""
    await enqueue(outbox, "a", "b")
    uploader = ScriptedUploader(ok(RecordFailure(3, 521, "bad charged"), processed=3))
    config = make_config(tmp_path, extras=ExtrasConfig(charged_event=True))
    await run(config, outbox, uploader)
    assert len(uploader.batches[0]) == 4
    [dead] = await outbox.dead_letters()
    assert dead.event_id == "b"
    assert (await outbox.stats()).delivered == 1


async def test_unidentified_failures_retry_the_whole_batch(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """When CleverTap does not say which record failed, every event of the batch is retried."""
    await enqueue(outbox, "a", "b")
    uploader = ScriptedUploader(ok(RecordFailure(None, 555, "?"), processed=1), SUCCESS)
    dispatcher = await run(make_config(tmp_path), outbox, uploader)
    assert [rc_ids(b) for b in uploader.batches] == [["a", "b"], ["a", "b"]]
    assert dispatcher.metrics.total("events_retried_total") == 2
    assert (await outbox.stats()).delivered == 2


async def test_all_records_failing_with_one_code_need_no_numbers(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """A "fail" answer listing every record with one permanent code kills every event."""
    await enqueue(outbox, "a", "b")
    failures = (RecordFailure(None, 523, "Missing identity"),) * 2
    await run(make_config(tmp_path), outbox, ScriptedUploader(ok(*failures)))
    assert len(await outbox.dead_letters()) == 2


async def test_a_stored_body_that_no_longer_parses_is_dead_lettered(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """A row whose body is not a valid event (stored by hand or by an older release) dies."""
    await outbox.enqueue("x", "PRODUCTION", b"{}", now=0.0)
    uploader = ScriptedUploader(SUCCESS)
    await run(make_config(tmp_path), outbox, uploader)
    [dead] = await outbox.dead_letters()
    assert dead.reason.startswith("stored body is not a valid event")
    assert uploader.batches == []


async def test_concurrency_never_exceeds_the_configured_slots(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """With concurrency 2, two uploads run at once and never more."""
    in_flight = 0
    peak = 0
    both = asyncio.Event()

    class Slow(ScriptedUploader):
        async def upload(self, account: Any, records: Sequence[dict[str, Any]]) -> UploadResult:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight == 2:
                both.set()
            await both.wait()  # the first upload waits for a second one to start
            for _ in range(5):
                await asyncio.sleep(0)
            in_flight -= 1
            return SUCCESS

    await enqueue(outbox, *(f"e{i}" for i in range(20)))
    await run(make_config(tmp_path, batch_size=1, concurrency=2), outbox, Slow(SUCCESS))
    assert peak == 2
    assert (await outbox.stats()).delivered == 20


async def test_a_refused_request_is_split_until_the_bad_event_is_alone(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """A 400 for a whole batch sends it again in halves: the good events land, the bad one
    alone is retried until it is dead-lettered by age."""

    class RefusesBad(ScriptedUploader):
        async def upload(self, account: Any, records: Sequence[dict[str, Any]]) -> UploadResult:
            self.batches.append(list(records))
            if "bad" in rc_ids(list(records)):
                return UploadResult("rejected", 400, 0.01, "HTTP 400: Malformed request")
            return SUCCESS

    await enqueue(outbox, "a", "b", "c", "bad", "d", "e", "f", "g")
    uploader = RefusesBad(SUCCESS)
    await run(make_config(tmp_path, max_age_s=5.0), outbox, uploader)
    assert sorted(len(b) for b in uploader.batches[:7]) == [1, 1, 2, 2, 4, 4, 8]
    [dead] = await outbox.dead_letters()
    assert dead.event_id == "bad"
    assert "HTTP 400" in dead.reason
    assert (await outbox.stats()).delivered == 7
