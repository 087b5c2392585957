"""Backfilled events go through the engine's one delivery path, marked, after live ones."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from engine_helpers import ACCOUNT, make_config, running_stack, webhook

from integration.backfill import DeliveryProgress, backfill, backfill_and_deliver
from integration.mapping import map_event
from integration.premap import from_stored
from integration.routes import Routes
from integration.webhook import parse_event

COLUMNS = (
    "rc_original_app_user_id", "rc_last_seen_app_user_id_alias", "product_identifier",
    "start_time", "end_time", "store", "is_auto_renewable", "is_trial_period", "is_sandbox",
    "purchase_price_in_usd", "purchased_currency", "purchase_price_in_purchased_currency",
    "store_transaction_id", "original_store_transaction_id", "renewal_number",
)  # fmt: skip


def export(path: Path, users: list[str]) -> Path:
    """A v6 export: one paid first purchase per user (running until 2036), transaction t-<user>."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(COLUMNS)
    for user in users:
        writer.writerow([
            f"$RCAnonymousID:{user}", user, "pro.monthly", "2026-01-05 10:00:00",
            "2036-02-05 10:00:00", "play_store", "true", "false", "false", "4.99", "USD", "4.99",
            f"t-{user}", f"t-{user}", "1",
        ])  # fmt: skip
    path.write_bytes(gzip.compress(out.getvalue().encode()))
    return path


async def test_backfilled_events_are_delivered_with_the_backfill_flag(
    outbox_url: str, tmp_path: Path
) -> None:
    """A backfilled purchase reaches CleverTap with rc_backfill true; a live one without it."""
    async with running_stack(make_config(outbox_url)) as stack:
        assert (await stack.post(webhook("live-1", user="bob"))).status_code == 200
        path = export(tmp_path / "transactions.csv.gz", ["alice"])
        report = await backfill(
            stack.engine.outbox, [path], config=stack.engine.config, clock=stack.clock
        )
        assert report.enqueued == 1
        await stack.drain()
        [backfilled] = stack.backend.events_for(ACCOUNT, identity="alice")
        assert backfilled["evtData"]["rc_backfill"] is True
        assert backfilled["evtData"]["amount"] == 4.99
        [live] = stack.backend.events_for(ACCOUNT, identity="bob")
        assert "rc_backfill" not in live["evtData"]


async def test_backfilled_deliveries_are_counted_apart_in_metrics(
    outbox_url: str, tmp_path: Path
) -> None:
    """events_delivered_total counts both; backfill_events_delivered_total only the one a
    backfill derived."""
    async with running_stack(make_config(outbox_url)) as stack:
        assert (await stack.post(webhook("live-1", user="bob"))).status_code == 200
        path = export(tmp_path / "transactions.csv.gz", ["alice"])
        await backfill(stack.engine.outbox, [path], config=stack.engine.config, clock=stack.clock)
        await stack.drain()
        metrics = stack.engine.metrics
        assert metrics.value("events_delivered_total", environment="PRODUCTION") == 2
        assert metrics.value("backfill_events_delivered_total", environment="PRODUCTION") == 1


async def test_a_backfill_skips_what_a_live_webhook_already_delivered(
    outbox_url: str, tmp_path: Path
) -> None:
    """The live INITIAL_PURCHASE of t-alice was delivered: the backfill sends it no second time."""
    async with running_stack(make_config(outbox_url)) as stack:
        body = webhook("live-1", user="alice", transaction_id="t-alice")
        assert (await stack.post(body)).status_code == 200
        await stack.drain()
        path = export(tmp_path / "transactions.csv.gz", ["alice", "carol"])
        report = await backfill(
            stack.engine.outbox, [path], config=stack.engine.config, clock=stack.clock
        )
        await stack.drain()
        assert (report.skipped_live, report.enqueued) == (1, 1)
        assert len(stack.backend.events_for(ACCOUNT, identity="alice")) == 1
        assert len(stack.backend.events_for(ACCOUNT, identity="carol")) == 1


async def test_deliver_runs_the_dispatcher_until_everything_enqueued_is_settled(
    outbox_url: str, tmp_path: Path
) -> None:
    """backfill_and_deliver (--deliver): returns once the events are delivered, with counts."""
    seen: list[DeliveryProgress] = []
    async with running_stack(make_config(outbox_url), start=False) as stack:
        path = export(tmp_path / "transactions.csv.gz", ["alice", "bob", "carol"])
        outcome = await backfill_and_deliver(
            stack.engine.config, [path], engine=stack.engine, clock=stack.clock,
            sleep=stack.clock.sleep, on_delivery=seen.append,
        )  # fmt: skip
        assert (outcome.backfill.enqueued, outcome.delivered, outcome.dead) == (3, 3, 0)
        assert seen[-1].waiting == 0 and seen[-1].enqueued == 3
        assert len(stack.backend.events(ACCOUNT)) == 3


async def test_a_live_webhook_goes_before_a_waiting_backfill(
    outbox_url: str, tmp_path: Path
) -> None:
    """Backfilled events queued first, a live webhook after them: CleverTap gets it first."""
    config = make_config(outbox_url, batch_size=10)
    async with running_stack(config, start=False) as stack:
        await stack.engine.outbox.open()
        path = export(tmp_path / "transactions.csv.gz", [f"user-{i}" for i in range(30)])
        report = await backfill(stack.engine.outbox, [path], config=config, clock=stack.clock)
        assert report.enqueued == 30
        stack.clock.advance(1.0)
        await stack.engine.outbox.enqueue(
            "live-1", "PRODUCTION", webhook("live-1", user="zoe"), now=stack.clock(),
            app_user_id="zoe", event_type="INITIAL_PURCHASE", transaction_id="tx-live-1",
        )  # fmt: skip
        await stack.engine.start()
        await stack.drain()
        first = stack.backend.events(ACCOUNT)[0]
        assert first["evtData"]["rc_event_id"] == "live-1"
        assert len(stack.backend.events(ACCOUNT)) == 31


async def test_backfilled_rows_are_stored_with_their_mapped_form(
    outbox_url: str, tmp_path: Path
) -> None:
    """A backfill stores each event's mapped form under the route's fingerprint, as the
    receiver does, so delivery need not map the body again (integration/premap.py)."""
    config = make_config(outbox_url)
    async with running_stack(config, start=False) as stack:
        await stack.engine.outbox.open()
        path = export(tmp_path / "transactions.csv.gz", ["alice"])
        await backfill(stack.engine.outbox, [path], config=config, clock=stack.clock)
        lease = await stack.engine.outbox.lease("PRODUCTION", 10, now=stack.clock() + 1, lease_s=60)
        assert lease is not None
        [row] = lease.events
        route = Routes(config).get("default")
        assert route is not None and row.mapped_fp == route.fingerprint and row.mapped
        assert from_stored(row.mapped).result == map_event(parse_event(row.body), config)
        await stack.engine.outbox.close()
