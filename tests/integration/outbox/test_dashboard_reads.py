"""The dashboard's reads of the outbox (issue 17): feed, one event, window counts, uploads.

Each test runs on SQLite, and on PostgreSQL when ``RC_CLEVERTAP_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

from outbox_helpers import mark_dead, mark_delivered, mark_skipped, record_attempt

from integration.outbox import DeliveryAttempt, Outbox
from integration.outbox.base import FeedQuery

PROD, SANDBOX = "PRODUCTION", "SANDBOX"


async def store(outbox: Outbox, event_id: str, *, user: str, kind: str, now: float) -> None:
    env = SANDBOX if event_id.startswith("s") else PROD
    body = b'{"id": "%s"}' % event_id.encode()
    assert await outbox.enqueue(event_id, env, body, now=now, app_user_id=user, event_type=kind)


async def five_events(outbox: Outbox) -> None:
    """p1..p4 in PRODUCTION, s5 in SANDBOX; users alice (p1, p3) and bob; two RENEWALs."""
    await store(outbox, "p1", user="alice", kind="INITIAL_PURCHASE", now=1.0)
    await store(outbox, "p2", user="bob", kind="RENEWAL", now=2.0)
    await store(outbox, "p3", user="alice", kind="RENEWAL", now=3.0)
    await store(outbox, "p4", user="bob", kind="CANCELLATION", now=4.0)
    await store(outbox, "s5", user="bob", kind="INITIAL_PURCHASE", now=5.0)


def ids(rows: list[object]) -> list[str]:
    return [row.event_id for row in rows]  # type: ignore[attr-defined]


async def test_feed_lists_newest_first_with_the_row_columns(outbox: Outbox) -> None:
    """The feed without filters is every event, newest first, with its user, type and state."""
    await five_events(outbox)
    rows = await outbox.event_feed(FeedQuery())
    assert ids(rows) == ["s5", "p4", "p3", "p2", "p1"]
    assert (rows[0].app_user_id, rows[0].event_type, rows[0].state) == (
        "bob",
        "INITIAL_PURCHASE",
        "pending",
    )
    assert rows[0].source == "webhook" and rows[0].received_at == 5.0


async def test_feed_pages_by_cursor(outbox: Outbox) -> None:
    """Each page continues below the smallest row id of the one before, without overlap."""
    await five_events(outbox)
    first = await outbox.event_feed(FeedQuery(limit=2))
    second = await outbox.event_feed(FeedQuery(limit=2, before=first[-1].row_id))
    third = await outbox.event_feed(FeedQuery(limit=2, before=second[-1].row_id))
    assert (ids(first), ids(second), ids(third)) == (["s5", "p4"], ["p3", "p2"], ["p1"])


async def test_feed_filters_by_user_type_state_and_environment(outbox: Outbox) -> None:
    """Each filter keeps only matching events, and filters combine."""
    await five_events(outbox)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=60.0)
    assert lease is not None
    by_id = {e.event_id: e.row_id for e in lease.events}
    await mark_delivered(outbox, lease, [by_id["p1"], by_id["p2"]], now=11.0)
    await mark_dead(outbox, lease, by_id["p3"], "clevertap 513: refused", now=11.0)

    assert ids(await outbox.event_feed(FeedQuery(app_user_id="alice"))) == ["p3", "p1"]
    assert ids(await outbox.event_feed(FeedQuery(event_type="RENEWAL"))) == ["p3", "p2"]
    assert ids(await outbox.event_feed(FeedQuery(state="delivered"))) == ["p2", "p1"]
    assert ids(await outbox.event_feed(FeedQuery(environments=(SANDBOX,)))) == ["s5"]
    both = FeedQuery(app_user_id="bob", event_type="INITIAL_PURCHASE", environments=(PROD,))
    assert ids(await outbox.event_feed(both)) == []
    dead = await outbox.event_feed(FeedQuery(state="dead"))
    assert [(r.event_id, r.reason) for r in dead] == [("p3", "clevertap 513: refused")]


async def test_event_detail_has_the_body_and_the_ledger_entries_that_carried_it(
    outbox: Outbox,
) -> None:
    """One event opens with its body as stored and only the uploads whose ids include it."""
    await five_events(outbox)
    row_id = (await outbox.event_feed(FeedQuery(app_user_id="alice", limit=1)))[0].row_id
    carried = DeliveryAttempt("b1", "ACC", PROD, 2, ("p3", "p4"), "200", "delivered", 9, "ok", 7)
    retried = DeliveryAttempt("b0", "ACC", PROD, 1, ("p3",), "429", "retry", 5.0, "slow", 6.0)
    other = DeliveryAttempt("b2", "ACC", PROD, 1, ("p2",), "200", "delivered", 4.0, "ok", 8.0)
    for entry in (retried, carried, other):
        await record_attempt(outbox, entry)
    detail = await outbox.event_detail(row_id)
    assert detail is not None
    assert detail.event.event_id == "p3" and detail.body == b'{"id": "p3"}'
    assert [a.batch_id for a in detail.attempts] == ["b1", "b0"]
    assert detail.attempts[1].status == "429"


async def test_event_detail_of_an_unknown_row_is_none(outbox: Outbox) -> None:
    """A row id that names no event gives None."""
    assert await outbox.event_detail(12345) is None


async def test_pruned_ledger_entries_no_longer_carry_an_event(outbox: Outbox) -> None:
    """After prune drops a ledger entry, the event's detail lists it no more."""
    await five_events(outbox)
    row_id = (await outbox.event_feed(FeedQuery(limit=1)))[0].row_id  # s5, still pending
    await record_attempt(
        outbox, DeliveryAttempt("old", "ACC", SANDBOX, 1, ("s5",), "500", "retry", 1.0, "x", 2.0)
    )
    await outbox.prune(delivered_before=3.0)
    detail = await outbox.event_detail(row_id)
    assert detail is not None and detail.attempts == ()


async def test_window_counts_count_only_what_happened_since(outbox: Outbox) -> None:
    """Received, delivered, skipped by reason and dead count from ``since``; retrying is now."""
    await five_events(outbox)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=60.0)
    assert lease is not None
    by_id = {e.event_id: e.row_id for e in lease.events}
    await mark_delivered(outbox, lease, [by_id["p1"]], now=11.0)
    await mark_skipped(outbox, lease, by_id["p2"], "not forwarded", now=20.0)
    await mark_dead(outbox, lease, by_id["p3"], "refused", now=20.0)
    await outbox.release(lease, [by_id["p4"]], retry_at=30.0, error="429", count=True)
    await outbox.quarantine(b"not json", "invalid JSON", now=25.0)

    counts = await outbox.window_counts(since=3.0)
    assert (counts.received, counts.delivered, counts.dead) == (3, 1, 1)
    assert counts.skipped_by_reason == {"not forwarded": 1}
    assert (counts.retrying, counts.quarantined) == (1, 1)
    later = await outbox.window_counts(since=15.0)
    assert (later.received, later.delivered, later.dead, later.quarantined) == (0, 0, 1, 1)


async def test_uploads_since_are_the_newest_ledger_entries_from_then(outbox: Outbox) -> None:
    """Ledger entries from ``since`` on, newest first, with account, outcome and latency."""
    for at, outcome in ((1.0, "delivered"), (5.0, "retry"), (9.0, "delivered")):
        await record_attempt(
            outbox, DeliveryAttempt("b", "ACC", PROD, 3, ("x",), "200", outcome, at * 10, "", at)
        )
    samples = await outbox.uploads_since(since=4.0)
    assert [(s.at, s.outcome, s.latency_ms, s.records) for s in samples] == [
        (9.0, "delivered", 90.0, 3),
        (5.0, "retry", 50.0, 3),
    ]
    assert [s.at for s in await outbox.uploads_since(since=0.0, limit=1)] == [9.0]


async def test_window_counts_end_before_until(outbox: Outbox) -> None:
    """With ``until``, only what happened in [since, until) counts; retrying is still now."""
    await five_events(outbox)
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=60.0)
    assert lease is not None
    by_id = {e.event_id: e.row_id for e in lease.events}
    await mark_delivered(outbox, lease, [by_id["p1"]], now=11.0)
    await mark_delivered(outbox, lease, [by_id["p2"]], now=12.0)
    await mark_skipped(outbox, lease, by_id["p3"], "not forwarded", now=12.0)
    counts = await outbox.window_counts(since=2.0, until=12.0)
    assert (counts.received, counts.delivered, counts.skipped_by_reason) == (4, 1, {})


async def test_feed_looks_no_lower_than_at_least(outbox: Outbox) -> None:
    """``at_least`` bounds the feed from below, with and without ``before``."""
    await five_events(outbox)
    rows = await outbox.event_feed(FeedQuery())
    third = rows[2].row_id  # p3
    assert ids(await outbox.event_feed(FeedQuery(at_least=third))) == ["s5", "p4", "p3"]
    bounded = FeedQuery(at_least=third, before=rows[1].row_id)
    assert ids(await outbox.event_feed(bounded)) == ["p3"]


async def test_feed_filters_by_route_and_environment_pairs(outbox: Outbox) -> None:
    """``lanes`` keeps the rows of the given (route, environment) pairs only."""
    await five_events(outbox)  # all on the default route
    lanes = (("default", SANDBOX),)
    assert ids(await outbox.event_feed(FeedQuery(lanes=lanes))) == ["s5"]
    assert ids(await outbox.event_feed(FeedQuery(lanes=(("ios", SANDBOX),)))) == []
    assert ids(await outbox.event_feed(FeedQuery(lanes=()))) == []


async def test_window_counts_count_backfilled_rows_apart(outbox: Outbox) -> None:
    """Of the window's received and delivered rows, those a backfill stored count apart."""
    await store(outbox, "p1", user="alice", kind="RENEWAL", now=1.0)
    for i, at in enumerate((2.0, 3.0, 20.0)):
        await outbox.enqueue(f"b{i}", PROD, b"{}", now=at, source="backfill")
    lease = await outbox.lease(PROD, 10, now=10.0, lease_s=60.0)
    assert lease is not None and len(lease.events) == 3
    by_id = {e.event_id: e.row_id for e in lease.events}
    await mark_delivered(outbox, lease, [by_id["p1"], by_id["b0"]], now=11.0)
    counts = await outbox.window_counts(since=0.0)
    assert (counts.received, counts.backfill_received) == (4, 3)
    assert (counts.delivered, counts.backfill_delivered) == (2, 1)
    later = await outbox.window_counts(since=2.5, until=15.0)
    assert (later.backfill_received, later.backfill_delivered) == (1, 1)
