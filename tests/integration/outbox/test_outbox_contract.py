"""The outbox contract (``integration/outbox/base.py``), checked on every backend.

The ``outbox`` fixture is SQLite always, and PostgreSQL too when ``RC_CLEVERTAP_TEST_POSTGRES_URL``
names a database; each PostgreSQL run works in its own throwaway schema, dropped afterwards.
"""

from __future__ import annotations

import asyncio

import pytest
from outbox_helpers import mark_dead, mark_delivered, mark_skipped, record_attempt

from integration.outbox import DeliveryAttempt, Outbox, Requeue

PROD = "PRODUCTION"


async def fill(outbox: Outbox, n: int, *, env: str = PROD, start: float = 0.0) -> None:
    for i in range(n):
        assert await outbox.enqueue(f"{env}-{i}", env, b'{"n": %d}' % i, now=start + i)


def attempt(at: float, batch: str = "b1") -> DeliveryAttempt:
    return DeliveryAttempt(batch, "ACC", PROD, 2, ("e1", "e2"), "200", "delivered", 12.5, "ok", at)


# -- intake -------------------------------------------------------------------------------------


async def test_enqueue_stores_a_pending_row(outbox: Outbox) -> None:
    """A first enqueue of an event id answers True and leaves one pending row."""
    assert await outbox.enqueue("e1", PROD, b"{}", now=10.0)
    stats = await outbox.stats()
    assert (stats.pending, stats.leased, stats.delivered) == (1, 0, 0)
    assert stats.oldest_pending_at == 10.0


async def test_repeated_event_id_is_stored_once(outbox: Outbox) -> None:
    """Enqueuing an event id again answers False and stores nothing more."""
    assert await outbox.enqueue("e1", PROD, b"{}", now=1.0)
    assert not await outbox.enqueue("e1", PROD, b"{}", now=2.0)
    assert (await outbox.stats()).pending == 1


async def test_concurrent_duplicates_are_stored_once(outbox: Outbox) -> None:
    """Concurrent enqueues of the same ids store each id once and answer True once per id."""
    calls = [outbox.enqueue(f"e{i % 50}", PROD, b"{}", now=float(i)) for i in range(150)]
    results = await asyncio.gather(*calls)
    assert sum(results) == 50
    assert (await outbox.stats()).pending == 50


async def test_each_event_keeps_its_own_body_in_a_shared_commit(outbox: Outbox) -> None:
    """Events stored together (and a repeated id among them) keep their own bodies."""
    ids = [f"e{i}" for i in range(40)] + ["e3"]
    await asyncio.gather(
        *(outbox.enqueue(e, PROD, f"body of {e} #{n}".encode(), now=1.0) for n, e in enumerate(ids))
    )
    lease = await outbox.lease(PROD, 100, now=2.0, lease_s=30)
    assert lease is not None
    bodies = {event.event_id: event.body for event in lease.events}
    assert bodies == {f"e{i}": f"body of e{i} #{i}".encode() for i in range(40)}


async def test_body_is_kept_byte_for_byte(outbox: Outbox) -> None:
    """The leased body is exactly the enqueued bytes, even when they are not UTF-8."""
    body = b'{"event": {"id": "x"}}\xff\x00 '
    await outbox.enqueue("e1", PROD, body, now=1.0)
    lease = await outbox.lease(PROD, 10, now=2.0, lease_s=30)
    assert lease is not None
    assert lease.events[0].body == body


# -- leasing ------------------------------------------------------------------------------------


async def test_lease_hands_back_each_rows_source(outbox: Outbox) -> None:
    """A row enqueued from a backfill is leased with source "backfill", a webhook's with
    "webhook" (the default)."""
    await outbox.enqueue("live", PROD, b"{}", now=1.0, app_user_id="u1", event_type="RENEWAL")
    await outbox.enqueue(
        "old", PROD, b"{}", now=2.0, source="backfill", app_user_id="u1",
        event_type="RENEWAL", transaction_id="t1",
    )  # fmt: skip
    lease = await outbox.lease(PROD, 10, now=3.0, lease_s=30.0)
    assert lease is not None
    assert {e.event_id: e.source for e in lease.events} == {"live": "webhook", "old": "backfill"}


async def test_lookup_columns_that_cannot_be_stored_as_they_are_do_not_refuse_the_event(
    outbox: Outbox,
) -> None:
    """An app user id holding a NUL character (valid JSON) still enqueues the event."""
    assert await outbox.enqueue("e1", PROD, b"{}", now=1.0, app_user_id="a\x00b")
    assert (await outbox.stats()).pending == 1


async def test_lease_takes_the_oldest_due_rows_of_one_environment(outbox: Outbox) -> None:
    """A lease holds at most ``limit`` rows of its environment, oldest first."""
    await fill(outbox, 5)
    await fill(outbox, 2, env="SANDBOX", start=-10)
    lease = await outbox.lease(PROD, 3, now=100.0, lease_s=30)
    assert lease is not None
    assert [e.event_id for e in lease.events] == ["PRODUCTION-0", "PRODUCTION-1", "PRODUCTION-2"]
    assert {e.environment for e in lease.events} == {PROD}
    assert lease.expires_at == 130.0


async def test_lease_of_an_empty_queue_is_none(outbox: Outbox) -> None:
    """Leasing with nothing due gives None."""
    assert await outbox.lease(PROD, 10, now=1.0, lease_s=30) is None


async def test_leased_rows_are_not_leased_twice(outbox: Outbox) -> None:
    """Rows under an unexpired lease are not handed to a second lease."""
    await fill(outbox, 2)
    first = await outbox.lease(PROD, 1, now=10.0, lease_s=30)
    second = await outbox.lease(PROD, 10, now=11.0, lease_s=30)
    assert first is not None and second is not None
    assert {e.row_id for e in first.events}.isdisjoint(e.row_id for e in second.events)
    assert await outbox.lease(PROD, 10, now=12.0, lease_s=30) is None


async def test_expired_lease_comes_back(outbox: Outbox) -> None:
    """Rows whose lease expired are leased again, as after a crashed worker."""
    await fill(outbox, 1)
    first = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert first is not None
    assert await outbox.lease(PROD, 10, now=39.0, lease_s=30) is None
    again = await outbox.lease(PROD, 10, now=40.0, lease_s=30)
    assert again is not None
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]


async def test_stale_lease_settles_nothing(outbox: Outbox) -> None:
    """A worker whose lease expired and was re-leased cannot settle or release the rows."""
    await fill(outbox, 1)
    stale = await outbox.lease(PROD, 10, now=10.0, lease_s=5)
    fresh = await outbox.lease(PROD, 10, now=20.0, lease_s=30)
    assert stale is not None and fresh is not None
    row = stale.events[0].row_id
    assert await mark_delivered(outbox, stale, [row], now=21.0) == 0
    assert await mark_dead(outbox, stale, row, "x", now=21.0) == 0
    assert await outbox.release(stale, [row], retry_at=0, error="x", count=True) == 0
    assert await mark_delivered(outbox, fresh, [row], now=22.0) == 1


# -- settling -----------------------------------------------------------------------------------


async def test_mark_delivered_settles_the_rows(outbox: Outbox) -> None:
    """Delivered rows count as delivered and are not leased again."""
    await fill(outbox, 3)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    settled = await mark_delivered(outbox, lease, [e.row_id for e in lease.events], now=11.0)
    assert settled == 3
    stats = await outbox.stats()
    assert (stats.pending, stats.leased, stats.delivered) == (0, 0, 3)
    assert stats.oldest_pending_at is None
    assert await outbox.lease(PROD, 10, now=1000.0, lease_s=30) is None


async def test_mark_skipped_counts_by_reason(outbox: Outbox) -> None:
    """Skipped rows are counted by their reason."""
    await fill(outbox, 3)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    for event, reason in zip(lease.events, ["test event", "test event", "no user"], strict=True):
        assert await mark_skipped(outbox, lease, event.row_id, reason, now=11.0) == 1
    stats = await outbox.stats()
    assert stats.skipped == 3
    assert stats.skipped_by_reason == {"test event": 2, "no user": 1}


async def test_mark_dead_lists_the_dead_letter(outbox: Outbox) -> None:
    """A dead row is listed with its reason, attempts and times."""
    await fill(outbox, 1, start=5.0)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    row = lease.events[0].row_id
    await mark_dead(outbox, lease, row, "clevertap 513: restricted", now=11.0)
    [dead] = await outbox.dead_letters()
    assert (dead.row_id, dead.event_id, dead.environment) == (row, "PRODUCTION-0", PROD)
    assert (dead.reason, dead.attempts, dead.received_at, dead.dead_at) == (
        "clevertap 513: restricted",
        0,
        5.0,
        11.0,
    )
    assert (await outbox.stats()).dead == 1


async def test_release_delays_and_counts(outbox: Outbox) -> None:
    """A counted release adds an attempt, keeps the error and is due only at retry_at."""
    await fill(outbox, 1)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    row = lease.events[0].row_id
    assert await outbox.release(lease, [row], retry_at=50.0, error="503", count=True) == 1
    assert await outbox.lease(PROD, 10, now=49.0, lease_s=30) is None
    again = await outbox.lease(PROD, 10, now=50.0, lease_s=30)
    assert again is not None
    assert (again.events[0].attempts, again.events[0].last_error) == (1, "503")


async def test_uncounted_release_keeps_attempts(outbox: Outbox) -> None:
    """A release with count=False (a paused account, a shutdown) burns no attempt."""
    await fill(outbox, 1)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    await outbox.release(lease, [lease.events[0].row_id], retry_at=10.0, error="401", count=False)
    again = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert again is not None
    assert again.events[0].attempts == 0


async def test_settle_settles_each_kind_and_records_the_attempt_at_once(outbox: Outbox) -> None:
    """One settle call marks rows delivered, skipped and dead, and appends the ledger entry."""
    await fill(outbox, 4, start=5.0)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    rows = [e.row_id for e in lease.events]
    settled = await outbox.settle(
        lease,
        delivered=rows[:2],
        skipped=[(rows[2], "test event")],
        dead=[(rows[3], "clevertap 513: restricted")],
        attempt=attempt(11.0),
        now=11.0,
    )
    assert settled == 4
    stats = await outbox.stats()
    assert (stats.pending, stats.leased, stats.delivered, stats.skipped, stats.dead) == (
        0,
        0,
        2,
        1,
        1,
    )
    assert stats.skipped_by_reason == {"test event": 1}
    [dead] = await outbox.dead_letters()
    assert (dead.row_id, dead.reason, dead.dead_at) == (rows[3], "clevertap 513: restricted", 11.0)
    assert await outbox.attempts() == [attempt(11.0)]


async def test_a_row_dead_on_a_try_counts_that_try_and_one_dead_before_any_does_not(
    outbox: Outbox,
) -> None:
    """``dead_tried`` adds the try that ended the row to its attempts; ``dead`` (an unmappable
    body, never sent) leaves them as they were."""
    await fill(outbox, 2, start=5.0)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    refused, unmappable = (e.row_id for e in lease.events)
    settled = await outbox.settle(
        lease,
        dead=[(unmappable, "stored body is not a valid event")],
        dead_tried=[(refused, "clevertap 513: restricted")],
        now=11.0,
    )
    assert settled == 2
    attempts = {d.row_id: d.attempts for d in await outbox.dead_letters()}
    assert attempts == {refused: 1, unmappable: 0}


async def test_confirmed_records_come_back_with_the_next_lease(outbox: Outbox) -> None:
    """confirm_records keeps a held row's confirmed record keys through a release; the next
    lease hands them back and a row never confirmed has none."""
    await fill(outbox, 2)
    lease = await outbox.lease(PROD, 10, now=5.0, lease_s=30)
    assert lease is not None
    first, second = (e.row_id for e in lease.events)
    assert await outbox.confirm_records(lease, {first: ["event:Charged"]}) == 1
    await outbox.release(lease, [first, second], retry_at=6.0, error="555", count=True)
    again = await outbox.lease(PROD, 10, now=7.0, lease_s=30)
    assert again is not None
    confirmed = {e.row_id: e.confirmed_records for e in again.events}
    assert confirmed == {first: frozenset({"event:Charged"}), second: frozenset()}


async def test_a_replay_sends_every_record_again(outbox: Outbox) -> None:
    """Rows replayed after delivery carry no confirmed records: replay means send it all."""
    await fill(outbox, 1)
    lease = await outbox.lease(PROD, 10, now=5.0, lease_s=30)
    assert lease is not None
    [row] = [e.row_id for e in lease.events]
    await outbox.confirm_records(lease, {row: ["event:Charged"]})
    await outbox.settle(lease, delivered=[row], now=6.0)
    assert await outbox.replay(since=0.0, now=7.0) == 1
    again = await outbox.lease(PROD, 10, now=8.0, lease_s=30)
    assert again is not None
    assert again.events[0].confirmed_records == frozenset()


async def test_settle_with_a_stale_lease_changes_no_row(outbox: Outbox) -> None:
    """A settle naming an expired, re-leased lease settles nothing (the ledger entry, a fact
    about an upload that happened, is still kept)."""
    await fill(outbox, 1)
    stale = await outbox.lease(PROD, 10, now=10.0, lease_s=5)
    fresh = await outbox.lease(PROD, 10, now=20.0, lease_s=30)
    assert stale is not None and fresh is not None
    row = stale.events[0].row_id
    assert await outbox.settle(stale, delivered=[row], dead=[(row, "x")], now=21.0) == 0
    assert (await outbox.stats()).leased == 1
    assert await outbox.settle(fresh, delivered=[row], now=22.0) == 1


async def test_settle_of_nothing_changes_nothing(outbox: Outbox) -> None:
    """A settle with no rows and no attempt is a no-op that answers 0."""
    await fill(outbox, 1)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    assert await outbox.settle(lease, now=11.0) == 0
    assert (await outbox.stats()).leased == 1


# -- queued_at ----------------------------------------------------------------------------------


async def test_queued_at_is_the_enqueue_time_and_survives_releases(outbox: Outbox) -> None:
    """A row is queued since its enqueue; a release for another try does not reset it."""
    await fill(outbox, 1, start=7.0)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    assert lease.events[0].queued_at == 7.0
    await outbox.release(lease, [lease.events[0].row_id], retry_at=20.0, error="e", count=True)
    again = await outbox.lease(PROD, 10, now=20.0, lease_s=30)
    assert again is not None
    assert again.events[0].queued_at == 7.0


async def test_retry_dead_and_replay_queue_rows_anew(outbox: Outbox) -> None:
    """retry_dead and replay set queued_at to their own time; received_at stays."""
    await fill(outbox, 2, start=1.0)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=30)
    assert lease is not None
    first, second = (e.row_id for e in lease.events)
    await outbox.settle(lease, delivered=[first], dead=[(second, "x")], now=11.0)
    assert await outbox.retry_dead([second], now=50.0) == 1
    assert await outbox.replay(since=11.0, now=60.0) == 1
    again = await outbox.lease(PROD, 10, now=60.0, lease_s=30)
    assert again is not None
    assert sorted((e.row_id, e.received_at, e.queued_at) for e in again.events) == [
        (first, 1.0, 60.0),
        (second, 2.0, 50.0),
    ]


# -- operator actions ---------------------------------------------------------------------------


async def _kill_all(outbox: Outbox, now: float) -> list[int]:
    lease = await outbox.lease(PROD, 100, now=now, lease_s=30)
    assert lease is not None
    for event in lease.events:
        await outbox.release(lease, [event.row_id], retry_at=now, error="e", count=True)
    lease = await outbox.lease(PROD, 100, now=now, lease_s=30)
    assert lease is not None
    for event in lease.events:
        await mark_dead(outbox, lease, event.row_id, f"dead {event.event_id}", now=now)
    return [e.row_id for e in lease.events]


async def test_retry_dead_by_id_requeues_only_those(outbox: Outbox) -> None:
    """Retrying named dead rows makes them pending with fresh attempts and their reason kept."""
    await fill(outbox, 3)
    rows = await _kill_all(outbox, 10.0)
    assert await outbox.retry_dead([rows[0]], now=20.0) == 1
    lease = await outbox.lease(PROD, 10, now=20.0, lease_s=30)
    assert lease is not None
    [event] = lease.events
    assert (event.row_id, event.attempts, event.last_error) == (rows[0], 0, "dead PRODUCTION-0")
    assert (await outbox.stats()).dead == 2


async def test_retry_dead_all(outbox: Outbox) -> None:
    """Retrying with None requeues every dead row."""
    await fill(outbox, 3)
    await _kill_all(outbox, 10.0)
    assert await outbox.retry_dead(None, now=20.0) == 3
    stats = await outbox.stats()
    assert (stats.dead, stats.pending) == (0, 3)


async def test_replay_requeues_rows_delivered_since(outbox: Outbox) -> None:
    """Replay moves rows delivered at or after ``since`` back to pending, and no others."""
    await fill(outbox, 2)
    for at in (100.0, 200.0):
        lease = await outbox.lease(PROD, 1, now=at, lease_s=30)
        assert lease is not None
        await mark_delivered(outbox, lease, [lease.events[0].row_id], now=at)
    assert await outbox.replay(since=150.0, now=300.0) == 1
    lease = await outbox.lease(PROD, 10, now=300.0, lease_s=30)
    assert lease is not None
    assert [e.event_id for e in lease.events] == ["PRODUCTION-1"]


async def test_prune_deletes_old_settled_rows_only(outbox: Outbox) -> None:
    """Prune removes delivered and skipped rows settled before the cut, and old ledger entries."""
    await fill(outbox, 4)
    lease = await outbox.lease(PROD, 3, now=10.0, lease_s=30)
    assert lease is not None
    a, b, c = (e.row_id for e in lease.events)
    await mark_delivered(outbox, lease, [a], now=10.0)
    await mark_skipped(outbox, lease, b, "skip", now=10.0)
    await mark_dead(outbox, lease, c, "dead", now=10.0)
    await record_attempt(outbox, attempt(at=5.0, batch="old"))
    await record_attempt(outbox, attempt(at=50.0, batch="new"))
    assert await outbox.prune(delivered_before=20.0) == 2
    stats = await outbox.stats()
    assert (stats.delivered, stats.skipped, stats.dead, stats.pending) == (0, 0, 1, 1)
    assert [a.batch_id for a in await outbox.attempts()] == ["new"]


# -- quarantine and ledger ----------------------------------------------------------------------


async def test_quarantine_is_capped_newest_first(outbox: Outbox) -> None:
    """Past the cap (3 here) the oldest quarantined bodies go; the list is newest first."""
    for i in range(5):
        await outbox.quarantine(b"bad %d" % i, f"reason {i}", now=float(i))
    kept = await outbox.quarantined()
    assert [(q.body, q.reason, q.received_at) for q in kept] == [
        (b"bad 4", "reason 4", 4.0),
        (b"bad 3", "reason 3", 3.0),
        (b"bad 2", "reason 2", 2.0),
    ]
    assert (await outbox.stats()).quarantined == 3


async def test_quarantined_by_id_reads_only_the_ids_that_exist(outbox: Outbox) -> None:
    """quarantined_by_id gives back the bodies named, by id, and ignores ids that name none."""
    await outbox.quarantine(b"one", "r1", now=1.0)
    await outbox.quarantine(b"two", "r2", now=2.0)
    ids = sorted(b.quarantine_id for b in await outbox.quarantined())
    found = await outbox.quarantined_by_id([ids[1], 99_999])
    assert [(b.quarantine_id, b.body) for b in found] == [(ids[1], b"two")]


async def test_requeue_quarantined_moves_a_body_into_the_queue(outbox: Outbox) -> None:
    """A requeued body leaves the quarantine and becomes a pending event with that body,
    received when it was quarantined and queued at the requeue."""
    await outbox.quarantine(b'{"event": 1}', "old parser", now=5.0)
    [body] = await outbox.quarantined()
    moved = await outbox.requeue_quarantined(
        [Requeue(body.quarantine_id, "e1", PROD, app_user_id="u1", event_type="RENEWAL")],
        now=9.0,
    )
    assert moved == 1
    assert await outbox.quarantined() == []
    lease = await outbox.lease(PROD, 10, now=9.0, lease_s=30)
    assert lease is not None
    [event] = lease.events
    assert (event.event_id, event.body, event.received_at, event.queued_at) == (
        "e1", b'{"event": 1}', 5.0, 9.0,
    )  # fmt: skip


async def test_requeue_of_an_event_already_stored_does_not_store_it_twice(
    outbox: Outbox,
) -> None:
    """A quarantined body whose event id is already queued leaves the quarantine, and the
    queue still holds that event once."""
    assert await outbox.enqueue("e1", PROD, b"{}", now=1.0)
    await outbox.quarantine(b"{}", "x", now=2.0)
    [body] = await outbox.quarantined()
    assert await outbox.requeue_quarantined([Requeue(body.quarantine_id, "e1", PROD)], now=3.0)
    assert (await outbox.stats()).pending == 1
    assert await outbox.quarantined() == []


async def test_discard_quarantined_deletes_only_the_named_bodies(outbox: Outbox) -> None:
    """discard_quarantined deletes the bodies named and counts them; the others stay."""
    await outbox.quarantine(b"one", "r1", now=1.0)
    await outbox.quarantine(b"two", "r2", now=2.0)
    _newest, oldest = await outbox.quarantined()
    assert await outbox.discard_quarantined([oldest.quarantine_id, 99_999]) == 1
    assert [b.body for b in await outbox.quarantined()] == [b"two"]


async def test_discard_dead_deletes_dead_rows_only(outbox: Outbox) -> None:
    """discard_dead deletes the dead rows named; a pending row named with them stays."""
    await fill(outbox, 2)
    lease = await outbox.lease(PROD, 1, now=5.0, lease_s=30)
    assert lease is not None
    dead = lease.events[0].row_id
    await outbox.settle(lease, dead_tried=[(dead, "clevertap 513: x")], now=6.0)
    pending = dead + 1
    assert await outbox.discard_dead([dead, pending]) == 1
    stats = await outbox.stats()
    assert (stats.dead, stats.pending) == (0, 1)


async def test_ledger_keeps_attempts_newest_first(outbox: Outbox) -> None:
    """Recorded attempts come back whole, newest first, and the newest is in the stats."""
    await record_attempt(outbox, attempt(at=1.0, batch="first"))
    await record_attempt(outbox, attempt(at=2.0, batch="second"))
    entries = await outbox.attempts(limit=10)
    assert [e.batch_id for e in entries] == ["second", "first"]
    assert entries[1] == attempt(at=1.0, batch="first")
    assert (await outbox.stats()).last_attempt == attempt(at=2.0, batch="second")


async def test_closed_outbox_refuses_work(outbox: Outbox) -> None:
    """After close, calls fail with an error that says the outbox is closed."""
    await outbox.close()
    with pytest.raises(Exception, match="closed"):
        await outbox.enqueue("e1", PROD, b"{}", now=1.0)


async def test_depths_count_live_and_dead_rows_and_the_oldest(outbox: Outbox) -> None:
    """depths() counts pending, leased and dead rows (not settled ones) and the oldest arrival."""
    await fill(outbox, 4, start=10.0)
    await fill(outbox, 1, env="SANDBOX", start=5.0)
    lease = await outbox.lease(PROD, 2, now=100.0, lease_s=60.0)
    assert lease is not None
    first, second = (e.row_id for e in lease.events)
    await outbox.settle(lease, delivered=[first], dead=[(second, "bad")], now=101.0)
    await outbox.lease(PROD, 1, now=102.0, lease_s=60.0)
    depths = await outbox.depths()
    assert (depths.pending, depths.leased, depths.dead) == (2, 1, 1)
    assert depths.oldest_pending_at == 5.0


async def test_health_follows_the_last_write(outbox: Outbox) -> None:
    """health() is writable once a write has committed, and probe_write commits one."""
    assert outbox.health().writable
    await outbox.probe_write()
    await fill(outbox, 1)
    assert outbox.health().writable
    assert outbox.health().reason is None
