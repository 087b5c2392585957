"""The dispatcher with a scripted uploader: how one CleverTap answer settles each event."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import FakeTime, make_config, webhook

from integration.config import Config, ExtrasConfig
from integration.dispatcher import Dispatcher
from integration.outbox import SQLiteOutbox
from integration.policy import MIN_ATTEMPTS
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


async def pause_gaps(
    tmp_path: Path, outbox: SQLiteOutbox, clock: FakeTime, answer: UploadResult, *, uploads: int
) -> tuple[ScriptedUploader, list[float]]:
    """Run a dispatcher (pauses 5 s doubling to 20 s) whose uploads all get ``answer`` until
    it has made ``uploads`` of them; the uploader and the fake-clock gaps between uploads."""
    sent_at: list[float] = []
    enough = asyncio.Event()

    class Timed(ScriptedUploader):
        async def upload(self, account: Any, records: Sequence[dict[str, Any]]) -> UploadResult:
            sent_at.append(clock())
            if len(sent_at) == uploads:
                enough.set()
            return await super().upload(account, records)

    uploader = Timed(answer)
    config = make_config(tmp_path, auth_pause_s=5.0, auth_pause_max_s=20.0)
    dispatcher = Dispatcher(
        config, outbox, uploader, clock=clock, sleep=clock.sleep, random=lambda: 0.5, poll_s=0.05
    )  # type: ignore[arg-type]
    await dispatcher.start()
    async with asyncio.timeout(10):
        await enough.wait()
    await dispatcher.stop()
    return uploader, [later - earlier for earlier, later in itertools.pairwise(sent_at)]


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


async def test_an_unidentified_failure_sends_the_batch_again_in_halves(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """When CleverTap does not say which record failed, the batch is sent again in halves at
    once instead of retrying all of it later."""
    await enqueue(outbox, "a", "b")
    unnamed = RecordFailure(None, 555, "?", "no record number")
    uploader = ScriptedUploader(ok(unnamed, processed=1), SUCCESS)
    dispatcher = await run(make_config(tmp_path), outbox, uploader)
    assert [rc_ids(b) for b in uploader.batches] == [["a", "b"], ["a"], ["b"]]
    assert dispatcher.metrics.total("events_retried_total") == 0
    assert (await outbox.stats()).delivered == 2


class HidesTheBadRecord(ScriptedUploader):
    """CleverTap refusing the "bad" event's record with 513 and no usable record number."""

    async def upload(self, account: Any, records: Sequence[dict[str, Any]]) -> UploadResult:
        self.batches.append(list(records))
        if "bad" not in rc_ids(list(records)):
            return ok(processed=len(records))
        unnamed = RecordFailure(None, 513, "Event Name is incorrect.", "no record number")
        return ok(unnamed, processed=len(records) - 1)


@pytest.mark.parametrize("events", [50, 64])
async def test_an_unidentified_failure_is_isolated_in_about_2_log2_n_uploads(
    tmp_path: Path, outbox: SQLiteOutbox, events: int
) -> None:
    """One bad record among n events that CleverTap does not locate costs at most
    2*ceil(log2(n)) uploads beyond the first; the bad event alone is dead-lettered, the reason
    naming the ambiguity, and every other event is delivered."""
    ids = [f"e{i}" for i in range(events - 1)]
    ids.insert(events // 3, "bad")
    await enqueue(outbox, *ids)
    uploader = HidesTheBadRecord(SUCCESS)
    await run(make_config(tmp_path, batch_size=events), outbox, uploader)
    extra = len(uploader.batches) - 1
    assert extra <= 2 * math.ceil(math.log2(events))
    [dead] = await outbox.dead_letters()
    assert dead.event_id == "bad"
    assert dead.reason == (
        "clevertap 513: Event Name is incorrect. (record not identified: no record number)"
    )
    assert (await outbox.stats()).delivered == events - 1


async def test_a_contradicting_200_delivers_nothing_and_retries_everything(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """A bad response (a 200 that does not account for every record) leaves every event of
    the upload undelivered, retried with backoff, never split."""
    await enqueue(outbox, "a", "b")
    lying = UploadResult("bad-response", 200, 0.01, "200 success: processed 1 ... 2 sent")
    uploader = ScriptedUploader(lying, SUCCESS)
    dispatcher = await run(make_config(tmp_path), outbox, uploader)
    assert [rc_ids(b) for b in uploader.batches] == [["a", "b"], ["a", "b"]]
    assert dispatcher.metrics.total("events_retried_total") == 2
    first, second = sorted(await outbox.attempts(), key=lambda a: a.at)
    assert (first.outcome, second.outcome) == ("retry", "delivered")


@pytest.mark.parametrize("status", [302, 404])
async def test_a_misdirected_upload_pauses_the_account_without_splitting(
    tmp_path: Path, outbox: SQLiteOutbox, status: int
) -> None:
    """A whole-request 302 or 404 pauses the account as a 401 does: each try sends the whole
    batch again after the pause, no attempt counted, nothing dead."""
    clock = FakeTime()
    for event_id in ("a", "b", "c", "d"):
        await outbox.enqueue(event_id, "PRODUCTION", webhook(event_id), now=clock())
    summary = f"HTTP {status} to https://eu1.api.clevertap.com/1/upload"
    answer = UploadResult("misdirected", status, 0.01, summary)
    uploader, gaps = await pause_gaps(tmp_path, outbox, clock, answer, uploads=3)
    assert [len(batch) for batch in uploader.batches] == [4, 4, 4]
    assert gaps == pytest.approx([5.0, 10.0], abs=1.0)
    stats = await outbox.stats()
    assert (stats.dead, stats.pending + stats.leased) == (0, 4)
    assert {a.outcome for a in await outbox.attempts()} == {"paused"}


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


class Crashes(ScriptedUploader):
    """An uploader with a bug: every upload raises, with event data in the message."""

    def __init__(self, *answers: UploadResult) -> None:
        super().__init__(*answers)
        self.crashed = asyncio.Event()

    async def upload(self, account: Any, records: Sequence[dict[str, Any]]) -> UploadResult:
        self.batches.append(list(records))
        self.crashed.set()
        raise RuntimeError(f"cannot send {rc_ids(list(records))}")


async def test_an_unexpected_exception_counts_an_attempt_and_backs_off(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """A delivery that raises releases its rows at once, one attempt counted, due after the
    backoff: they do not sit leased until the lease expires."""
    clock = FakeTime()
    await outbox.enqueue("a", "PRODUCTION", webhook("a"), now=clock())
    config = make_config(tmp_path, backoff_initial_s=1000.0, backoff_max_s=1000.0)
    uploader = Crashes(SUCCESS)
    dispatcher = Dispatcher(
        config, outbox, uploader, clock=clock, sleep=clock.sleep, random=lambda: 0.5, poll_s=0.05
    )  # type: ignore[arg-type]
    await dispatcher.start()
    async with asyncio.timeout(10):
        await uploader.crashed.wait()
    await dispatcher.stop()  # lets the failed delivery finish its handling
    stats = await outbox.stats()
    assert (stats.pending, stats.leased, stats.dead) == (1, 0, 0)
    assert await outbox.lease("PRODUCTION", 10, now=clock(), lease_s=60) is None
    lease = await outbox.lease("PRODUCTION", 10, now=clock() + 1000.0, lease_s=60)
    assert lease is not None
    [event] = lease.events
    assert (event.attempts, event.last_error) == (1, "delivery failed: RuntimeError")
    assert len(uploader.batches) == 1


async def test_a_batch_that_always_raises_ends_dead_lettered_by_type(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """Past the maximum age a batch whose delivery keeps raising is dead-lettered, the reason
    naming the exception's type and never its message."""
    await enqueue(outbox, "a", "b")
    uploader = Crashes(SUCCESS)
    await run(make_config(tmp_path, max_age_s=5.0), outbox, uploader)
    dead = await outbox.dead_letters()
    assert sorted(d.event_id for d in dead) == ["a", "b"]
    for letter in dead:
        assert letter.reason.startswith("max age exceeded after ")
        assert letter.reason.endswith(": delivery failed: RuntimeError")
        assert "cannot send" not in letter.reason
    assert len(uploader.batches) == MIN_ATTEMPTS


async def test_max_age_counts_from_when_the_event_was_queued(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """An event queued longer ago than max_age_s dies at its MIN_ATTEMPTS-th failure, however
    recently its failures began (the age is the outbox's queued_at, not process memory)."""
    clock = FakeTime()
    await outbox.enqueue("old", "PRODUCTION", webhook("old"), now=clock() - 1000.0)
    uploader = ScriptedUploader(UploadResult("server-error", 503, 0.01, "HTTP 503"))
    dispatcher = Dispatcher(
        make_config(tmp_path, max_age_s=600.0),
        outbox,
        uploader,
        clock=clock,
        sleep=clock.sleep,
        random=lambda: 0.5,
        poll_s=0.05,
    )  # type: ignore[arg-type]
    await dispatcher.start()
    async with asyncio.timeout(10):
        while (await outbox.stats()).dead == 0:
            await clock.sleep(0.05)
    await dispatcher.stop()
    [dead] = await outbox.dead_letters()
    assert dead.reason == f"max age exceeded after {MIN_ATTEMPTS} attempts: HTTP 503"
    assert len(uploader.batches) == MIN_ATTEMPTS


async def test_refused_credentials_pause_for_auth_pause_s_doubling_to_the_cap(
    tmp_path: Path, outbox: SQLiteOutbox
) -> None:
    """Each 401 pauses the account for dispatcher.auth_pause_s, doubling up to
    dispatcher.auth_pause_max_s, and the event keeps its attempts count."""
    clock = FakeTime()
    await outbox.enqueue("a", "PRODUCTION", webhook("a"), now=clock())
    answer = UploadResult("unauthorized", 401, 0.01, "HTTP 401")
    _, gaps = await pause_gaps(tmp_path, outbox, clock, answer, uploads=5)
    assert gaps[:4] == pytest.approx([5.0, 10.0, 20.0, 20.0], abs=1.0)
    [attempt] = await outbox.attempts(limit=1)
    assert attempt.outcome == "paused"
    assert (await outbox.stats()).dead == 0
