"""The engine against a misbehaving CleverTap mock: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from typing import Any

import pytest
from engine_helpers import ACCOUNT, PASSCODE, Stack, make_config, running_stack, webhook

from integration.config import Config, ExtrasConfig
from integration.policy import MIN_ATTEMPTS
from mockserver.faults import LIES, FaultInjector, FaultRule

UPLOAD = "/1/upload"


async def _post_many(stack: Stack, n: int, prefix: str = "e") -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    for event_id in ids:
        response = await stack.post(webhook(event_id, user=f"u-{event_id}"))
        assert response.status_code == 200
    return ids


async def test_a_429_storm_is_survived_with_every_event_delivered(outbox_url: str) -> None:
    """Forty 429s in a row delay delivery but every event arrives exactly once."""
    faults = FaultInjector(rules=[FaultRule("rate_limit", route=UPLOAD, count=40)])
    async with running_stack(make_config(outbox_url, batch_size=10), faults=faults) as stack:
        ids = await _post_many(stack, 60)
        await stack.drain()
        assert sorted(stack.delivered_ids()) == sorted(ids)
        outcomes = [a.status for a in await stack.engine.outbox.attempts(limit=500)]
        assert outcomes.count("429") == 40
        assert stack.engine.metrics.total("events_retried_total") > 0
        assert (await stack.engine.outbox.stats()).dead == 0


async def test_429_halves_the_concurrency_then_it_grows_back(outbox_url: str) -> None:
    """After 429s the account's slots shrink to one, and successes grow them back."""
    faults = FaultInjector(rules=[FaultRule("rate_limit", route=UPLOAD, count=6)])
    config = make_config(outbox_url, batch_size=1, concurrency=8)
    async with running_stack(config, faults=faults) as stack:
        await _post_many(stack, 4)
        await stack.drain()
        low = min(_limit(stack), 8)
        assert low < 8
        await _post_many(stack, 120, prefix="more")
        await stack.drain()
        assert _limit(stack) == 8


async def _enqueue_then_start(stack: Stack, n: int) -> list[str]:
    """``n`` events stored before the engine starts, so that they leave in one upload."""
    await stack.engine.outbox.open()
    ids = [f"e{i}" for i in range(n)]
    for event_id in ids:
        await stack.engine.outbox.enqueue(event_id, "PRODUCTION", webhook(event_id), now=0.0)
    await stack.engine.start()
    return ids


def _with_deadline(config: Config, timeout_s: float) -> Config:
    return dataclasses.replace(
        config, clevertap=dataclasses.replace(config.clevertap, timeout_s=timeout_s)
    )


def _limit(stack: Stack) -> int:
    states = stack.engine.dispatcher.accounts()
    return next(s.concurrency_limit for s in states if s.account_id == ACCOUNT)


async def test_a_5xx_outage_and_dropped_connections_are_survived(outbox_url: str) -> None:
    """Thirty 503s, then dropped connections and 500s: every event still arrives."""
    faults = FaultInjector(
        rules=[
            FaultRule("error", route=UPLOAD, status=503, count=30),
            FaultRule("drop", route=UPLOAD, count=3),
            FaultRule("error", route=UPLOAD, status=500, count=3),
        ]
    )
    async with running_stack(make_config(outbox_url, batch_size=25), faults=faults) as stack:
        ids = await _post_many(stack, 50)
        await stack.drain()
        assert sorted(set(stack.delivered_ids())) == sorted(ids)
        statuses = {a.status for a in await stack.engine.outbox.attempts(limit=500)}
        assert {"503", "500", "connection-error", "200"} <= statuses
        assert (await stack.engine.outbox.stats()).dead == 0


async def test_backoff_grows_exponentially_with_jitter(outbox_url: str) -> None:
    """Successive failures of one event are retried after 1, 2, 4, 8 s times the jitter."""
    faults = FaultInjector(rules=[FaultRule("error", route=UPLOAD, status=503, count=4)])
    async with running_stack(make_config(outbox_url), faults=faults, random=lambda: 0.0) as stack:
        outbox = stack.engine.outbox
        retry_at: list[float] = []  # when each release makes the event due again
        release = outbox.release

        async def recording_release(lease: Any, row_ids: Any, **options: Any) -> int:
            retry_at.append(options["retry_at"])
            return await release(lease, row_ids, **options)

        outbox.release = recording_release  # type: ignore[method-assign]
        await stack.post(webhook("e1"))
        await stack.drain()
        attempts = sorted(await outbox.attempts(), key=lambda a: a.at)
        # jitter 0.5 (random() == 0).  The delay is read where it is chosen (each failed
        # upload's time to the due time it set), not from the gaps between uploads: those also
        # hold the lane's polls, and every sleeper (the idle lane too) moves the shared fake
        # clock, so a gap bounds the delay only from below.
        delays = [due - attempt.at for due, attempt in zip(retry_at, attempts, strict=False)]
        assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0])
        assert [a.outcome for a in attempts] == ["retry"] * 4 + ["delivered"]
        gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
        assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True))
        assert stack.delivered_ids() == ["e1"]


async def test_partial_rejections_split_record_by_record(outbox_url: str) -> None:
    """555 records are re-sent alone, 513 ones go dead with CleverTap's code, the rest land once."""
    faults = FaultInjector(
        seed=11,
        rules=[  # the first upload meets the first rule, the second upload the second
            FaultRule("reject_records", route=UPLOAD, code=555, share=0.3, count=1),
            FaultRule("reject_records", route=UPLOAD, code=513, share=0.5, count=1),
        ],
    )
    async with running_stack(make_config(outbox_url), faults=faults, start=False) as stack:
        await stack.engine.outbox.open()
        ids = [f"e{i}" for i in range(20)]
        for event_id in ids:
            await stack.engine.outbox.enqueue(event_id, "PRODUCTION", webhook(event_id), now=0.0)
        await stack.engine.start()
        await stack.drain()
        first, second = sorted(await stack.engine.outbox.attempts(), key=lambda a: a.at)
        assert (first.outcome, first.records, first.summary) == (
            "partial",
            20,
            "200 partial: processed 14, unprocessed 6x555",
        )
        assert (second.outcome, second.records) == ("partial", 6)
        assert set(second.event_ids) < set(first.event_ids)
        dead = await stack.engine.dead_letters()
        assert len(dead) == 3
        assert all(d.reason.startswith("clevertap 513: ") for d in dead)
        assert {d.event_id for d in dead} < set(second.event_ids)
        delivered = stack.delivered_ids()
        assert len(delivered) == len(set(delivered)) == 17  # each survivor exactly once
        assert set(delivered) | {d.event_id for d in dead} == set(ids)


async def test_a_record_refused_on_its_first_upload_shows_one_attempt(outbox_url: str) -> None:
    """A 513 on the only upload an event ever had dead-letters it with attempts 1: the refusal
    was a try (``dlq list`` showed 0)."""
    faults = FaultInjector(
        seed=3, rules=[FaultRule("reject_records", route=UPLOAD, code=513, share=1.0, count=1)]
    )
    async with running_stack(make_config(outbox_url), faults=faults) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        [dead] = await stack.engine.dead_letters()
        assert (dead.event_id, dead.attempts) == ("e1", 1)
        assert dead.reason.startswith("clevertap 513: ")


async def test_a_retry_sends_only_the_records_of_an_event_that_clevertap_did_not_confirm(
    outbox_url: str,
) -> None:
    """Purchases map to an event record and a Charged record; when a 555 refuses one of the
    two, the retry sends that one alone: CleverTap holds each record once (it documents no
    deduplication, so a resent Charged would count the revenue twice)."""
    faults = FaultInjector(
        seed=5, rules=[FaultRule("reject_records", route=UPLOAD, code=555, share=0.5, count=1)]
    )
    config = make_config(outbox_url, extras=ExtrasConfig(charged_event=True))
    async with running_stack(config, faults=faults, start=False) as stack:
        await stack.engine.outbox.open()
        for i in range(20):
            await stack.engine.outbox.enqueue(f"e{i}", "PRODUCTION", webhook(f"e{i}"), now=0.0)
        await stack.engine.start()
        await stack.drain()
        first, second = sorted(await stack.engine.outbox.attempts(), key=lambda a: a.at)
        assert (first.records, second.records) == (40, 20)  # the 20 refused records only
        names = [e["evtName"] for e in stack.backend.events(ACCOUNT)]
        assert names.count("rc_initial_purchase_event") == names.count("Charged") == 20
        assert sorted(stack.delivered_ids()) == sorted(f"e{i}" for i in range(20))


async def test_401_pauses_the_account_without_dead_letters(
    outbox_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused credentials pause delivery, burn no attempt, dead-letter nothing, and are
    logged loudly without the passcode."""
    wrong = "wrong-passcode-xyz"
    caplog.set_level(logging.INFO)
    async with running_stack(make_config(outbox_url, passcode=wrong)) as stack:
        await stack.post(webhook("e1"))
        for _ in range(200):
            if len(await stack.engine.outbox.attempts()) >= 2:
                break
            await stack.clock.sleep(1.0)
        attempts = await stack.engine.outbox.attempts()
        assert {a.outcome for a in attempts} == {"paused"}
        assert attempts[0].at - attempts[1].at >= 60.0  # paused between tries
        stats = await stack.engine.outbox.stats()
        assert (stats.dead, stats.pending + stats.leased) == (0, 1)
        lease = await stack.engine.outbox.lease("PRODUCTION", 1, now=stack.clock() + 1e6, lease_s=1)
        assert lease is not None
        assert lease.events[0].attempts == 0
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("refused the credentials" in r.getMessage() for r in errors)
        assert wrong not in caplog.text
        assert PASSCODE not in caplog.text
        assert stack.backend.events(ACCOUNT) == []


async def test_delivery_resumes_after_a_401_pause(outbox_url: str) -> None:
    """Once CleverTap accepts the credentials again, paused events are delivered."""
    faults = FaultInjector(rules=[FaultRule("error", route=UPLOAD, status=401, count=2)])
    async with running_stack(make_config(outbox_url), faults=faults) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        assert stack.delivered_ids() == ["e1"]
        outcomes = [
            a.outcome for a in sorted(await stack.engine.outbox.attempts(), key=lambda a: a.at)
        ]
        assert outcomes == ["paused", "paused", "delivered"]


async def test_events_past_max_age_are_dead_lettered_with_the_last_error(outbox_url: str) -> None:
    """An event CleverTap keeps refusing with 503 is dead-lettered once past the maximum age."""
    faults = FaultInjector(rules=[FaultRule("error", route=UPLOAD, status=503)])
    config = make_config(outbox_url, max_age_s=30.0)
    async with running_stack(config, faults=faults) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        [dead] = await stack.engine.dead_letters()
        assert dead.reason.startswith("max age exceeded after")
        assert "HTTP 503" in dead.reason
        assert dead.attempts >= MIN_ATTEMPTS - 1
        assert dead.dead_at - dead.received_at >= 30.0


@pytest.mark.parametrize("preset", ["flaky", "chaos", "partial-rejects", "hostile"])
async def test_fault_presets_end_with_every_event_accounted_for(
    outbox_url: str, preset: str
) -> None:
    """Under each preset every event ends delivered or dead-lettered with CleverTap's reason."""
    faults = FaultInjector(seed=5)
    async with running_stack(make_config(outbox_url, batch_size=20), faults=faults) as stack:
        faults.sleep = stack.clock.sleep  # latency and timeout faults take no real time
        faults.clock = stack.clock
        faults.apply_preset(preset)
        ids = await _post_many(stack, 150)
        await stack.drain()
        dead = {d.event_id: d.reason for d in await stack.engine.dead_letters(limit=1000)}
        assert all(reason.startswith("clevertap 513: ") for reason in dead.values())
        assert set(stack.delivered_ids()) | set(dead) == set(ids)
        assert not set(stack.delivered_ids()) & set(dead)
        stats = await stack.engine.outbox.stats()
        assert stats.delivered + stats.dead == 150


async def test_a_retried_dead_letter_gets_the_whole_max_age_again(outbox_url: str) -> None:
    """A dead letter requeued by the operator is tried for max_age_s again before dying."""
    faults = FaultInjector(rules=[FaultRule("error", route=UPLOAD, status=503)])
    async with running_stack(make_config(outbox_url, max_age_s=30.0), faults=faults) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        stack.clock.advance(3600)
        retried_at = stack.clock()
        assert await stack.engine.retry_dead() == 1
        await stack.drain()
        [dead] = await stack.engine.dead_letters()
        assert dead.dead_at - retried_at >= 30.0
        assert dead.attempts > MIN_ATTEMPTS


async def test_a_slow_drip_ends_at_the_deadline_and_delivery_resumes(outbox_url: str) -> None:
    """An answer dripping a byte at a time holds its upload slot only until the whole-request
    deadline: with one slot, further uploads are tried meanwhile, and once CleverTap answers
    normally again every event is delivered."""
    drips = 0
    third = asyncio.Event()
    recovered = asyncio.Event()

    async def between_bytes(seconds: float) -> None:
        nonlocal drips
        drips += 1
        if drips == 3:
            third.set()
        await recovered.wait()  # a drip that lasts until CleverTap recovers

    faults = FaultInjector(sleep=between_bytes, rules=[FaultRule("slow_drip", route=UPLOAD)])
    config = _with_deadline(make_config(outbox_url, concurrency=1), 0.2)
    async with running_stack(config, faults=faults, start=False) as stack:
        ids = await _enqueue_then_start(stack, 10)
        async with asyncio.timeout(10):
            await third.wait()  # two uploads ended at their deadline, freeing the one slot
        faults.clear()
        recovered.set()
        await stack.drain()
        assert set(stack.delivered_ids()) == set(ids)
        attempts = sorted(await stack.engine.outbox.attempts(), key=lambda a: a.at)
        timeouts = [a for a in attempts if a.status == "timeout"]
        assert len(timeouts) >= 2
        assert all(150.0 <= a.latency_ms < 5000.0 for a in timeouts)
        assert attempts[-1].outcome == "delivered"
        assert (await stack.engine.outbox.stats()).dead == 0


@pytest.mark.parametrize("lie", LIES)
async def test_a_contradicting_200_leaves_its_events_undelivered_and_retried(
    outbox_url: str, lie: str
) -> None:
    """{}, a fail with code 401, and processed short of the records sent: none marks an event
    delivered; the events are sent again and arrive exactly once."""
    faults = FaultInjector(rules=[FaultRule("lying_200", route=UPLOAD, lie=lie, count=2)])
    async with running_stack(make_config(outbox_url), faults=faults, start=False) as stack:
        ids = await _enqueue_then_start(stack, 20)
        await stack.drain()
        attempts = sorted(await stack.engine.outbox.attempts(), key=lambda a: a.at)
        expected = "paused" if lie == "suspended" else "retry"
        assert [(a.status, a.outcome, a.records) for a in attempts] == [
            ("200", expected, 20),
            ("200", expected, 20),
            ("200", "delivered", 20),
        ]
        assert sorted(stack.delivered_ids()) == sorted(ids)
        assert (await stack.engine.outbox.stats()).dead == 0


async def test_an_unlocatable_partial_is_isolated_by_halving(outbox_url: str) -> None:
    """Records refused with no usable record number: the batch is sent again in halves at
    once, not retried whole, and every event arrives."""
    rule = FaultRule("unlocatable_partial", route=UPLOAD, code=555, share=0.3, count=1)
    faults = FaultInjector(seed=11, rules=[rule])
    async with running_stack(make_config(outbox_url), faults=faults, start=False) as stack:
        ids = await _enqueue_then_start(stack, 20)
        await stack.drain()
        attempts = sorted(await stack.engine.outbox.attempts(), key=lambda a: a.at)
        assert [(a.outcome, a.records) for a in attempts] == [
            ("retry", 20),
            ("delivered", 10),
            ("delivered", 10),
        ]
        assert attempts[0].summary.endswith("6 not tied to a record")
        assert set(stack.delivered_ids()) == set(ids)
        assert (await stack.engine.outbox.stats()).dead == 0


@pytest.mark.parametrize(
    ("rule", "status", "named"),
    [
        (FaultRule("redirect", route=UPLOAD, count=2), "302", "HTTP 302 to https://"),
        (FaultRule("error", route=UPLOAD, status=404, count=2), "404", "HTTP 404"),
    ],
)
async def test_a_302_or_a_404_pauses_the_account_without_splitting(
    outbox_url: str, caplog: pytest.LogCaptureFixture, rule: FaultRule, status: str, named: str
) -> None:
    """A whole-upload redirect or 404 pauses the account (no attempt counted, the batch kept
    whole), is logged loudly with the status and the Location, and delivery resumes."""
    caplog.set_level(logging.INFO)
    faults = FaultInjector(rules=[rule])
    async with running_stack(make_config(outbox_url), faults=faults, start=False) as stack:
        ids = await _enqueue_then_start(stack, 20)
        await stack.drain()
        attempts = sorted(await stack.engine.outbox.attempts(), key=lambda a: a.at)
        assert [(a.status, a.outcome, a.records) for a in attempts] == [
            (status, "paused", 20),
            (status, "paused", 20),
            ("200", "delivered", 20),
        ]
        assert attempts[1].at - attempts[0].at >= 60.0
        assert sorted(stack.delivered_ids()) == sorted(ids)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 2
        assert all(named in line and "clevertap.base_url" in line for line in errors)
        if status == "302":
            assert "https://clevertap.test/1/upload" in errors[0]
        assert PASSCODE not in caplog.text
