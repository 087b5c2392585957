"""``rc-clevertap demo --backfill``: run small end to end, and its verification on made-up data."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from integration.app.cli import main
from integration.app.demo_backfill import (
    _compare,
    _ended_silently,
    _expected,
    _Tally,
    run_backfill_demo,
)
from integration.app.localstack import PRODUCTION_ACCOUNT, SANDBOX_ACCOUNT
from integration.config import CleverTapConfig, Config, Secret
from mockserver.revenuecat import RevenueCatBackend, VirtualClock

ACCOUNT = PRODUCTION_ACCOUNT.account_id


@pytest.fixture(scope="module")
def report() -> Any:
    """One small run (a module's tests read it; it takes about a second)."""
    return run_backfill_demo(users=40, seed=3)


def test_the_small_demo_passes_its_verification(report: Any) -> None:
    """A backfilled history matches what the simulator knows happened, per person and name."""
    assert report.problems == []
    assert report.first_run["enqueued"] > 0 and report.first_run["rows_malformed"] == 0
    assert sum(report.held_by_name.values()) == report.first_run["enqueued"]


def test_the_second_backfill_sends_nothing_twice(report: Any) -> None:
    """The same file again and the live changes' incremental export enqueue nothing."""
    assert report.second_run["enqueued"] == 0
    assert report.second_run["already_stored"] == report.first_run["enqueued"]
    assert report.second_run["skipped_live"] == report.live_events > 0
    assert report.sent_twice == 0


@pytest.mark.parametrize(("version", "fmt"), [(3, "csv"), (5, "csv"), (6, "parquet")])
def test_older_versions_and_parquet_pass_too(version: int, fmt: str) -> None:
    """The verification passes whatever the export's format version and file format."""
    small = run_backfill_demo(users=20, seed=version, version=version, fmt=fmt)
    assert small.problems == [] and small.export_format == fmt
    assert small.first_run["enqueued"] > 0 and small.second_run["enqueued"] == 0


def test_the_report_counts_what_an_export_cannot_carry(report: Any) -> None:
    """Product changes, which an export does not record, are counted, not expected."""
    assert report.not_in_exports.get("PRODUCT_CHANGE", 0) > 0


# ----------------------------------------------------------------------------- the verification


T0 = 1_700_000_000_000  # event times are offsets from this, in days


def _event(kind: str, day: int, transaction: str, **fields: Any) -> dict[str, Any]:
    """A webhook-shaped event for one App Store customer with a CleverTap ID."""
    at = T0 + day * 86_400_000
    return {
        "type": kind, "id": f"{kind}-{at}", "event_timestamp_ms": at, "app_user_id": "u1",
        "original_app_user_id": "u1", "aliases": ["u1"], "product_id": "pro_monthly",
        "period_type": "NORMAL", "purchased_at_ms": at, "expiration_at_ms": at + 86_400_000,
        "environment": "PRODUCTION", "transaction_id": transaction,
        "original_transaction_id": "t1", "store": "APP_STORE", "currency": "USD",
        "price": 9.99 if kind in ("INITIAL_PURCHASE", "RENEWAL") else 0.0,
        "price_in_purchased_currency": 9.99 if kind in ("INITIAL_PURCHASE", "RENEWAL") else 0.0,
        "tax_percentage": 0.0, "commission_percentage": 0.3,
        "subscriber_attributes": {"$clevertapId": {"value": "ct1", "updated_at_ms": 1}},
        **fields,
    }  # fmt: skip


@pytest.fixture(scope="module")
def config() -> Config:
    """The local stack's accounts (production and sandbox), as the demo maps with them."""
    return Config(
        clevertap=CleverTapConfig(
            account_id=PRODUCTION_ACCOUNT.account_id,
            passcode=Secret(PRODUCTION_ACCOUNT.passcodes[0]),
            sandbox_account_id=SANDBOX_ACCOUNT.account_id,
            sandbox_passcode=Secret(SANDBOX_ACCOUNT.passcodes[0]),
        )
    )


def _names(truth: Any) -> Counter[str]:
    return Counter({key[1]: tally.count for key, tally in truth.expected.items()})


def test_an_undone_cancellation_is_left_out_of_the_truth(config: Any) -> None:
    """A cancellation followed by an uncancellation is not expected from an export."""
    truth = _expected(
        [
            _event("INITIAL_PURCHASE", 1, "t1"),
            _event("CANCELLATION", 2, "t1", cancel_reason="UNSUBSCRIBE"),
            _event("UNCANCELLATION", 3, "t1"),
        ],
        config,
        ended=set(),
    )
    assert truth.left_out == Counter(
        {"CANCELLATION undone before the export": 1, "UNCANCELLATION": 1}
    )
    assert sum(_names(truth).values()) == 1


def test_a_reversed_refund_is_left_out_of_the_truth(config: Any) -> None:
    """A refund the store reversed before the export is not expected from it."""
    truth = _expected(
        [
            _event("INITIAL_PURCHASE", 1, "t1"),
            _event("CANCELLATION", 2, "t1", cancel_reason="CUSTOMER_SUPPORT", price=-9.99),
            _event("REFUND_REVERSED", 3, "t1"),
        ],
        config,
        ended=set(),
    )
    assert truth.left_out["refund reversed before the export"] == 1
    assert sum(_names(truth).values()) == 1


def test_a_subscription_ended_without_expiration_implies_one(config: Any) -> None:
    """A subscription the simulator ended otherwise (a refund) is expected to expire too."""
    history = [
        _event("INITIAL_PURCHASE", 1, "t1"),
        _event("CANCELLATION", 2, "t1", cancel_reason="CUSTOMER_SUPPORT", price=-9.99),
    ]
    truth = _expected(history, config, ended={"t1"})
    assert truth.inferred == 1 and sum(_names(truth).values()) == 3


def test_the_simulator_knows_which_subscriptions_ended_silently() -> None:
    """Refunded or run-out subscriptions ended without an EXPIRATION; live ones did not."""
    backend = RevenueCatBackend(clock=VirtualClock(time_scale=0, start_ms=T0), seed=1)
    (refunded,) = backend.buy("a", "pro_monthly", at_ms=T0)
    backend.refund("a", at_ms=T0 + 86_400_000)
    (ran_out,) = backend.buy("b", "pro_weekly", at_ms=T0)
    backend.buy("c", "pro_annual", at_ms=T0)
    (expired,) = backend.buy("d", "pro_weekly", at_ms=T0)
    backend.expire("d", reason="UNSUBSCRIBE", at_ms=T0 + 86_400_000)
    ended = _ended_silently(backend.customers(), T0 + 30 * 86_400_000)
    assert ended == {refunded["original_transaction_id"], ran_out["original_transaction_id"]}
    assert expired["original_transaction_id"] not in ended


def test_an_expiration_before_a_resubscription_is_expected_and_counted(config: Any) -> None:
    """An expiration followed by a resubscription is expected like any other (the backfill
    derives it from the gap), and counted as one."""
    history = [
        _event("INITIAL_PURCHASE", 1, "t1"),
        _event("EXPIRATION", 5, "t1", expiration_reason="UNSUBSCRIBE"),
        _event("RENEWAL", 9, "t2"),
    ]
    truth = _expected(history, config, ended=set())
    assert truth.gaps == 1
    without = {k: v for k, v in truth.expected.items() if "xpiration" not in k[1]}
    [problem] = _compare(truth.expected, without, Counter(_names(truth)))
    assert "CleverTap holds 0, expected 1" in problem


def test_a_missing_event_fails_the_verification() -> None:
    """An expected event CleverTap does not hold is a problem naming the person and the event."""
    key = (ACCOUNT, "rc_renewal_event", "objectId", "ct1")
    expected = {key: _Tally(count=2)}
    problems = _compare(expected, {key: _Tally(count=1)}, Counter({"rc_renewal_event": 1}))
    assert problems == [
        "rc_renewal_event for objectId ct1 (LOCAL-PROD-0001): CleverTap holds 1, expected 2"
    ]


def test_a_wrong_amount_fails_the_verification() -> None:
    """The right count with another amount is a problem too."""
    key = (ACCOUNT, "rc_renewal_event", "objectId", "ct1")
    want, got = _Tally(), _Tally()
    want.add(9.99, "USD")
    got.add(8.99, "USD")
    problems = _compare({key: want}, {key: got}, Counter({"rc_renewal_event": 1}))
    assert problems and "amounts USD 8.99, expected USD 9.99" in problems[0]


def test_an_event_nobody_expected_fails_the_verification() -> None:
    """CleverTap holding more backfilled events of a name than expected is a problem."""
    problems = _compare({}, {}, Counter({"rc_expiration_event": 1}))
    assert problems == ["CleverTap holds 1 backfilled rc_expiration_event events, expected 0"]


# ----------------------------------------------------------------------------- the command


def test_the_command_prints_json_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """demo --backfill --json prints the report with ok true and exits 0."""
    assert main(["demo", "--backfill", "--users", "25", "--seed", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["export_version"] == 7
    assert report["second_run"]["enqueued"] == 0


def test_the_command_refuses_faults(capsys: pytest.CaptureFixture[str]) -> None:
    """Fault presets are for the live demo: with --backfill they are a usage error."""
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--backfill", "--faults", "flaky"])
    assert exited.value.code == 2
    assert "--faults does not apply to demo --backfill" in capsys.readouterr().err
