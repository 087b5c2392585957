"""Rows whose route is no longer configured: they wait, and status and the start say so (#16)."""

from __future__ import annotations

import logging

import pytest
from engine_helpers import make_config, running_stack, webhook

from integration.admin import outbox_for, read_unrouted


async def _enqueue(outbox_url: str, routes: dict[str, str]) -> None:
    """Store one webhook per event id on the given route, as a receiver would have."""
    outbox = outbox_for(make_config(outbox_url))
    await outbox.open()
    try:
        for event_id, route in routes.items():
            await outbox.enqueue(event_id, "PRODUCTION", webhook(event_id), now=1.0, route=route)
    finally:
        await outbox.close()


async def test_waiting_by_route_counts_pending_and_leased_rows_only(outbox_url: str) -> None:
    """waiting_by_route counts each route's pending and leased rows, not settled ones."""
    outbox = outbox_for(make_config(outbox_url))
    await outbox.open()
    try:
        for i, route in enumerate(["ios", "ios", "ios", "default"]):
            await outbox.enqueue(f"e{i}", "PRODUCTION", b"{}", now=1.0, route=route)
        lease = await outbox.lease("PRODUCTION", 2, now=2.0, lease_s=30, route="ios")
        assert lease is not None and len(lease.events) == 2
        await outbox.settle(lease, delivered=[lease.events[0].row_id], now=3.0)
        assert await outbox.waiting_by_route() == {"ios": 2, "default": 1}
    finally:
        await outbox.close()


async def test_read_unrouted_names_only_routes_the_configuration_lacks(outbox_url: str) -> None:
    """With only the default route configured, rows on route ios are unrouted; default's not."""
    await _enqueue(outbox_url, {"i1": "ios", "i2": "ios", "d1": "default"})
    assert await read_unrouted(make_config(outbox_url)) == {"ios": 2}


async def test_the_engine_warns_once_at_start_and_leaves_the_rows_waiting(
    outbox_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Starting an engine logs one warning per unconfigured route; its rows stay pending."""
    await _enqueue(outbox_url, {"i1": "ios"})
    with caplog.at_level(logging.WARNING, logger="integration.engine"):
        async with running_stack(make_config(outbox_url)) as stack:
            warnings = [r.getMessage() for r in caplog.records if "not configured" in r.message]
            assert warnings == [
                "1 event waits for route 'ios', which is not configured: delivered once "
                "[[routes]] names it again, never dead-lettered for it"
            ]
            stats = await stack.engine.outbox.stats()
            assert (stats.pending + stats.leased, stats.dead) == (1, 0)
