"""One backfill into an outbox: enqueued once, deduplicated, windowed, dry, resumable."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from exportfiles import DAY, T0, csv_text, row, write_export

from integration.backfill import (
    BackfillError,
    BackfillProgress,
    NotAnExport,
    TruncatedExport,
    backfill,
    event_id,
)
from integration.backfill.run import BATCH
from integration.config import CleverTapConfig, Config, Secret
from integration.outbox import Outbox, open_outbox

CONFIG = Config(clevertap=CleverTapConfig(account_id="ACC", passcode=Secret("pass")))
NOW = (T0 + 10 * DAY) / 1000  # every fixture subscription is still running at NOW


def clock() -> float:
    return NOW


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}")
    await box.open()
    yield box
    await box.close()


async def pending(outbox: Outbox) -> int:
    return (await outbox.stats()).pending


async def test_derived_events_are_enqueued_as_backfill_rows(outbox: Outbox, tmp_path: Path) -> None:
    """Each derived event is one pending row, source backfill, leased with its body."""
    path = write_export(tmp_path / "a.csv.gz", [row("t1"), row("t2", refunded_at=T0 + DAY)])
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert (report.rows_read, report.events_derived, report.enqueued) == (2, 3, 3)
    assert report.by_type == {"INITIAL_PURCHASE": 2, "CANCELLATION": 1}
    lease = await outbox.lease("PRODUCTION", 10, now=NOW, lease_s=30)
    assert lease is not None
    assert {e.source for e in lease.events} == {"backfill"}
    assert event_id("app_store", "t1", "purchase") in {e.event_id for e in lease.events}
    assert await outbox.stored_transaction_events([("t2", "CANCELLATION")], source="backfill") == {
        ("t2", "CANCELLATION")
    }


async def test_importing_the_same_file_again_enqueues_nothing(
    outbox: Outbox, tmp_path: Path
) -> None:
    """A second run finds every deterministic id stored and writes nothing."""
    path = write_export(tmp_path / "a.csv.gz", [row(f"t{i}") for i in range(3)])
    await backfill(outbox, [path], config=CONFIG, clock=clock)
    again = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert (again.enqueued, again.already_stored) == (0, 3)
    assert await pending(outbox) == 3


async def test_an_incremental_export_repeating_a_refunded_row_adds_only_the_refund(
    outbox: Outbox, tmp_path: Path
) -> None:
    """The updated row's purchase is known; the refund detected later is the one new event."""
    full = write_export(tmp_path / "full.csv.gz", [row("t1")])
    later = write_export(
        tmp_path / "incremental.csv.gz",
        [row("t1", refunded_at=T0 + DAY, price_in_usd=0.0, updated_at=T0 + DAY)],
    )
    await backfill(outbox, [full], config=CONFIG, clock=clock)
    report = await backfill(outbox, [later], config=CONFIG, clock=clock)
    assert (report.enqueued, report.already_stored) == (1, 1)
    assert report.by_type == {"CANCELLATION": 1}


async def test_an_event_a_live_webhook_stored_is_skipped(outbox: Outbox, tmp_path: Path) -> None:
    """Same transaction id and type as a stored webhook: skipped and counted, not enqueued."""
    await outbox.enqueue(
        "live-1", "PRODUCTION", b"{}", now=NOW, event_type="INITIAL_PURCHASE", transaction_id="t1"
    )
    path = write_export(tmp_path / "a.csv.gz", [row("t1"), row("t2")])
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert (report.skipped_live, report.enqueued) == (1, 1)
    assert await outbox.stored_events([event_id("app_store", "t1", "purchase")]) == set()


async def test_a_dry_run_counts_routes_and_revenue_and_writes_nothing(
    outbox: Outbox, tmp_path: Path
) -> None:
    """--dry-run: types, environments, routes and revenue per currency; no row stored."""
    rows = [
        row("t1"),
        row("t2", purchased_currency="USD", purchase_price_in_purchased_currency=5.0),
        row("t3", is_sandbox=True),
    ]
    path = write_export(tmp_path / "a.csv.gz", rows)
    report = await backfill(outbox, [path], config=CONFIG, clock=clock, dry_run=True)
    assert await pending(outbox) == 0
    assert report.enqueued == 0 and report.by_type == {"INITIAL_PURCHASE": 3}
    assert report.by_environment == {"PRODUCTION": 2, "SANDBOX": 1}
    assert report.by_route == {"ACC": 2, "skipped: sandbox_no_account": 1}
    assert report.revenue_by_currency == {"EUR": Decimal("9.99"), "USD": Decimal("5.0")}


async def test_a_run_that_writes_counts_routes_and_revenue_of_what_it_enqueued(
    outbox: Outbox, tmp_path: Path
) -> None:
    """A run that writes reports routes and revenue per currency as a dry run does, for the
    events it enqueued only: a second run reports none."""
    rows = [
        row("t1"),
        row("t2", purchased_currency="USD", purchase_price_in_purchased_currency=5.0),
    ]
    path = write_export(tmp_path / "a.csv.gz", rows)
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert report.enqueued == 2 and report.by_route == {"ACC": 2}
    assert report.revenue_by_currency == {"EUR": Decimal("9.99"), "USD": Decimal("5.0")}
    again = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert (again.by_route, again.revenue_by_currency) == ({}, {})


async def test_a_dry_run_needs_no_outbox(tmp_path: Path) -> None:
    """Without an outbox a dry run still derives and counts."""
    path = write_export(tmp_path / "a.csv.gz", [row("t1")])
    report = await backfill(None, [path], config=CONFIG, clock=clock, dry_run=True)
    assert report.by_type == {"INITIAL_PURCHASE": 1}


async def test_since_and_until_limit_by_event_time(outbox: Outbox, tmp_path: Path) -> None:
    """Only events at or after since and before until are enqueued; the rest are counted."""
    rows = [row(f"t{i}", start_time=T0 + i * DAY) for i in range(5)]
    path = write_export(tmp_path / "a.csv.gz", rows)
    report = await backfill(
        outbox, [path], config=CONFIG, clock=clock,
        since=(T0 + DAY) / 1000, until=(T0 + 3 * DAY) / 1000,
    )  # fmt: skip
    assert (report.enqueued, report.outside_window) == (2, 3)


async def test_only_a_subscriptions_latest_ended_row_expires(
    outbox: Outbox, tmp_path: Path
) -> None:
    """Two ended periods of one subscription: one EXPIRATION, for the later; a running one: none."""
    rows = [
        row("a1", effective_end_time=T0 + 1 * DAY),
        row("a2", original_store_transaction_id="a1", renewal_number=2, start_time=T0 + DAY,
            effective_end_time=T0 + 2 * DAY),
        row("b1", effective_end_time=T0 + 30 * DAY),
    ]  # fmt: skip
    path = write_export(tmp_path / "a.csv.gz", rows)
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert report.by_type == {"INITIAL_PURCHASE": 2, "RENEWAL": 1, "EXPIRATION": 1}
    assert await outbox.stored_events([event_id("app_store", "a2", "expiration")]) == {
        event_id("app_store", "a2", "expiration")
    }


async def test_a_period_followed_by_a_resubscription_expires_too(
    outbox: Outbox, tmp_path: Path
) -> None:
    """A lapse between two rows of one subscription is an EXPIRATION at the first one's end,
    whatever the rows' order in the file; the running resubscription has none."""
    rows = [
        row("a3", original_store_transaction_id="a1", renewal_number=3, start_time=T0 + 5 * DAY,
            end_time=T0 + 35 * DAY, effective_end_time=None),
        row("a1", end_time=T0 + DAY, effective_end_time=T0 + DAY),
        row("a2", original_store_transaction_id="a1", renewal_number=2, start_time=T0 + DAY,
            end_time=T0 + 2 * DAY, effective_end_time=T0 + 2 * DAY),
    ]  # fmt: skip
    path = write_export(tmp_path / "a.csv.gz", rows)
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert report.by_type == {"INITIAL_PURCHASE": 1, "RENEWAL": 2, "EXPIRATION": 1}
    lease = await outbox.lease("PRODUCTION", 10, now=NOW, lease_s=30)
    assert lease is not None
    [expiration] = [
        e for e in lease.events if e.event_id == event_id("app_store", "a2", "expiration")
    ]
    assert json.loads(expiration.body)["event"]["event_timestamp_ms"] == T0 + 2 * DAY


async def test_a_renewal_inside_the_grace_period_is_no_lapse(
    outbox: Outbox, tmp_path: Path
) -> None:
    """A renewal that starts before the period's grace period ended continues it: no EXPIRATION."""
    rows = [
        row("g1", end_time=T0 + DAY, grace_period_end_time=T0 + 2 * DAY,
            effective_end_time=T0 + 2 * DAY, billing_issues_detected_at=T0 + DAY),
        row("g2", original_store_transaction_id="g1", renewal_number=2,
            start_time=T0 + DAY + DAY // 2, end_time=T0 + 31 * DAY, effective_end_time=None),
    ]  # fmt: skip
    path = write_export(tmp_path / "g.csv.gz", rows)
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert "EXPIRATION" not in report.by_type


async def test_malformed_rows_are_counted_and_the_rest_enqueued(
    outbox: Outbox, tmp_path: Path
) -> None:
    """A bad row is skipped with its file and line; the rows around it are enqueued."""
    lines = csv_text([row("t1"), row("t2"), row("t3")]).splitlines()
    lines[2] = lines[2].replace(";true;", ";maybe;", 1)
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert (report.rows_read, report.rows_malformed, report.enqueued) == (2, 1, 2)
    assert report.problems[0].line == 3 and "not a boolean" in report.problems[0].reason


async def test_a_file_that_is_not_an_export_refuses_the_whole_run(
    outbox: Outbox, tmp_path: Path
) -> None:
    """One bad file among good ones: NotAnExport before anything is enqueued."""
    good = write_export(tmp_path / "good.csv.gz", [row("t1")])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(NotAnExport, match=r"bad\.csv is not a RevenueCat transactions export"):
        await backfill(outbox, [good, bad], config=CONFIG, clock=clock)
    assert await pending(outbox) == 0


async def test_a_truncated_file_keeps_what_came_before_and_a_rerun_resumes(
    outbox: Outbox, tmp_path: Path
) -> None:
    """The rows before the damage are enqueued; the whole file later adds only the rest."""
    rows = [row(f"t{i}") for i in range(3 * BATCH)]
    whole = gzip.compress(csv_text(rows).encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TruncatedExport):
        await backfill(outbox, [cut], config=CONFIG, clock=clock)
    before = await pending(outbox)
    assert 0 < before < len(rows)
    cut.write_bytes(whole)
    report = await backfill(outbox, [cut], config=CONFIG, clock=clock)
    assert (report.already_stored, report.enqueued) == (before, len(rows) - before)


async def test_an_interrupted_run_resumes_where_it_stopped(outbox: Outbox, tmp_path: Path) -> None:
    """Cancelled after its first batch, a second run enqueues exactly the remainder."""
    rows = [row(f"t{i}") for i in range(3 * BATCH)]
    path = write_export(tmp_path / "a.csv.gz", rows)
    task: asyncio.Task[object] | None = None

    def stop(progress: BackfillProgress) -> None:
        assert task is not None
        if progress.enqueued:
            task.cancel()

    task = asyncio.create_task(
        backfill(outbox, [path], config=CONFIG, clock=clock, on_progress=stop)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    first = await pending(outbox)
    assert 0 < first < len(rows)
    report = await backfill(outbox, [path], config=CONFIG, clock=clock)
    assert (report.already_stored, report.enqueued) == (first, len(rows) - first)


async def test_folders_and_globs_name_the_files(outbox: Outbox, tmp_path: Path) -> None:
    """A folder is searched for exports, a glob expanded; a file found twice is read once."""
    folder = tmp_path / "exports" / "2026-03-01"
    folder.mkdir(parents=True)
    write_export(folder / "transactions_1.csv.gz", [row("t1")])
    write_export(folder / "transactions_2.csv.gz", [row("t2")])
    report = await backfill(
        outbox, [tmp_path / "exports", str(folder / "*.csv.gz")], config=CONFIG, clock=clock
    )
    assert len(report.files) == 2 and report.enqueued == 2


async def test_a_path_naming_nothing_is_refused(outbox: Outbox, tmp_path: Path) -> None:
    """A missing file, or a glob matching nothing, is NotAnExport naming it."""
    with pytest.raises(NotAnExport, match="matches no file"):
        await backfill(outbox, [str(tmp_path / "*.csv.gz")], config=CONFIG, clock=clock)


def routes_config(tmp_path: Path, *, default: bool) -> Config:
    """[[routes]] ios (its own account); the top-level account only when ``default``."""
    from integration.config import config_from_mapping

    top = {"account_id": "ACC", "passcode": "pass"} if default else {}
    return config_from_mapping(
        {
            "clevertap": top,
            "outbox": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
            "routes": [
                {"name": "ios", "path": "ios", "clevertap": {"account_id": "IOS", "passcode": "p"}}
            ],
        },
        require_clevertap=False,
    )


async def test_a_backfill_on_a_route_stores_its_events_there(
    outbox: Outbox, tmp_path: Path
) -> None:
    """With --route, the events are stored on that route and counted under its account."""
    path = write_export(tmp_path / "a.csv.gz", [row("t1")])
    config = routes_config(tmp_path, default=True)
    report = await backfill(outbox, [path], config=config, clock=clock, route="ios")
    assert report.enqueued == 1 and report.by_route == {"IOS": 1}
    assert await outbox.lease("PRODUCTION", 10, now=NOW, lease_s=30) is None  # not default's
    lease = await outbox.lease("PRODUCTION", 10, now=NOW, lease_s=30, route="ios")
    assert lease is not None and [e.route for e in lease.events] == ["ios"]


@pytest.mark.parametrize(
    ("default", "route", "message"),
    [
        (False, None, "no default route"),
        (True, "android", "unknown route 'android'; known: default, ios"),
    ],
)
async def test_a_route_no_lane_would_deliver_is_refused_before_anything_is_stored(
    outbox: Outbox, tmp_path: Path, default: bool, route: str | None, message: str
) -> None:
    """Without a default route and no --route, or with an unknown one: refused, nothing stored."""
    path = write_export(tmp_path / "a.csv.gz", [row("t1")])
    config = routes_config(tmp_path, default=default)
    with pytest.raises(BackfillError, match=message):
        await backfill(outbox, [path], config=config, clock=clock, route=route)
    assert await pending(outbox) == 0
