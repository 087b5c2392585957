"""The backfill's lookups in the outbox (issue 18): stored event ids, stored transactions.

Each test runs on SQLite, and on PostgreSQL when ``RC_CLEVERTAP_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

from outbox_helpers import mark_delivered

from integration.outbox import Outbox


async def store(
    outbox: Outbox, event_id: str, transaction: str | None, kind: str, *, source: str
) -> None:
    assert await outbox.enqueue(
        event_id, "PRODUCTION", b"{}", now=1.0, source=source, event_type=kind,
        transaction_id=transaction,
    )  # fmt: skip


async def test_stored_events_names_the_ids_the_outbox_holds(outbox: Outbox) -> None:
    """Of the ids asked about, exactly those stored come back, whatever their state."""
    await store(outbox, "a", "t1", "RENEWAL", source="webhook")
    await store(outbox, "b", "t2", "RENEWAL", source="backfill")
    lease = await outbox.lease("PRODUCTION", 1, now=2.0, lease_s=30)
    assert lease is not None
    await mark_delivered(outbox, lease, [lease.events[0].row_id], now=3.0)
    assert await outbox.stored_events(["a", "b", "c"]) == {"a", "b"}
    assert await outbox.stored_events([]) == set()


async def test_stored_transaction_events_match_transaction_type_and_source(
    outbox: Outbox,
) -> None:
    """A pair matches only a row of the asked source with that transaction id and type."""
    await store(outbox, "a", "t1", "INITIAL_PURCHASE", source="webhook")
    await store(outbox, "b", "t2", "RENEWAL", source="backfill")
    await store(outbox, "c", None, "RENEWAL", source="webhook")
    asked = [("t1", "INITIAL_PURCHASE"), ("t1", "RENEWAL"), ("t2", "RENEWAL"), ("t3", "X")]
    assert await outbox.stored_transaction_events(asked) == {("t1", "INITIAL_PURCHASE")}
    assert await outbox.stored_transaction_events(asked, source="backfill") == {("t2", "RENEWAL")}
    assert await outbox.stored_transaction_events([]) == set()


async def test_a_lease_takes_live_rows_before_older_backfilled_ones(outbox: Outbox) -> None:
    """Backfilled rows queued first wait: a lease takes due live rows, then fills up with them."""
    for i in range(3):
        assert await outbox.enqueue(f"b{i}", "PRODUCTION", b"{}", now=1.0 + i, source="backfill")
    assert await outbox.enqueue("live", "PRODUCTION", b"{}", now=10.0)
    first = await outbox.lease("PRODUCTION", 1, now=20.0, lease_s=30)
    assert first is not None and [e.event_id for e in first.events] == ["live"]
    assert await outbox.enqueue("live2", "PRODUCTION", b"{}", now=11.0)
    second = await outbox.lease("PRODUCTION", 3, now=20.0, lease_s=30)
    assert second is not None
    assert [(e.event_id, e.source) for e in second.events] == [
        ("live2", "webhook"), ("b0", "backfill"), ("b1", "backfill"),
    ]  # fmt: skip


async def test_backfill_counts_count_only_backfilled_rows_by_state(outbox: Outbox) -> None:
    """Live rows are left out; each state with backfilled rows is counted."""
    await store(outbox, "live", "t0", "RENEWAL", source="webhook")
    for i in range(3):
        await store(outbox, f"b{i}", f"t{i + 1}", "RENEWAL", source="backfill")
    lease = await outbox.lease("PRODUCTION", 2, now=2.0, lease_s=30)
    assert lease is not None  # the live row and b0
    await mark_delivered(outbox, lease, [e.row_id for e in lease.events], now=3.0)
    assert await outbox.backfill_counts() == {"delivered": 1, "pending": 2}
