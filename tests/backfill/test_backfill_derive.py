"""Deriving webhook-shaped events from export rows: each type, its fields, its id."""

from __future__ import annotations

from typing import Any

import pytest
from exportfiles import DAY, T0, row

from integration.backfill import DerivedEvent, derive, event_id
from integration.config import CleverTapConfig, Config, Secret
from integration.mapping import Mapped, classify, map_event
from integration.webhook import parse_webhook

CONFIG = Config(clevertap=CleverTapConfig(account_id="ACC", passcode=Secret("pass")))


def only(events: list[DerivedEvent]) -> dict[str, Any]:
    assert len(events) == 1, [e.event_type for e in events]
    return events[0].event


def test_a_paid_first_purchase_is_an_initial_purchase_with_gross_prices() -> None:
    """renewal_number 1, paid: INITIAL_PURCHASE at start_time with the row's fields."""
    event = only(derive(row("t1")))
    assert event["type"] == "INITIAL_PURCHASE" and event["period_type"] == "NORMAL"
    assert event["event_timestamp_ms"] == T0 and event["purchased_at_ms"] == T0
    assert event["expiration_at_ms"] == T0 + 30 * DAY
    assert (event["price"], event["price_in_purchased_currency"], event["currency"]) == (
        10.99, 9.99, "EUR",
    )  # fmt: skip
    assert (event["tax_percentage"], event["commission_percentage"]) == (0.16, 0.3)
    assert event["app_user_id"] == "u1" and event["original_app_user_id"] == "$RCAnonymousID:u1"
    assert event["store"] == "APP_STORE" and event["environment"] == "PRODUCTION"
    assert event["entitlement_ids"] == ["pro", "plus one"] and event["country_code"] == "DE"
    assert event["transaction_id"] == "t1" and event["original_transaction_id"] == "t1"
    assert event["subscriber_attributes"]["$clevertapId"]["value"] == "ct-u1"
    assert event["subscriber_attributes"]["plan; tier"]["value"] == 'gold "A"'


def test_a_derived_body_is_a_webhook_the_receiver_accepts_and_the_mapping_sends() -> None:
    """The body parses as a webhook; the mapping sends it to the $clevertapId with revenue."""
    (derived,) = derive(row("t1"))
    envelope = parse_webhook(derived.body())
    assert envelope.event_id == derived.event_id and envelope.event_type == "INITIAL_PURCHASE"
    mapped = map_event(envelope.event, CONFIG)
    assert isinstance(mapped, Mapped)
    record = mapped.records[0]
    assert record["objectId"] == "ct-u1" and record["ts"] == T0 // 1000
    assert record["evtData"]["amount"] == 9.99 and record["evtData"]["currency"] == "EUR"


@pytest.mark.parametrize(
    ("values", "webhook_type", "integration_event"),
    [
        ({"is_trial_period": True}, "INITIAL_PURCHASE", "trial_started"),
        ({"renewal_number": 2, "is_trial_conversion": True}, "RENEWAL", "trial_converted"),
        ({"renewal_number": 3}, "RENEWAL", "renewal"),
        ({"is_auto_renewable": False, "end_time": None}, "NON_RENEWING_PURCHASE",
         "non_subscription_purchase"),
    ],
)  # fmt: skip
def test_purchases_are_classified_as_the_webhooks_would_be(
    values: dict[str, Any], webhook_type: str, integration_event: str
) -> None:
    """Trials, trial conversions, renewals and one-off purchases get their webhook's shape."""
    event = only(derive(row("t1", **values)))
    assert event["type"] == webhook_type
    assert classify(event) == integration_event


def test_a_trial_start_carries_no_revenue() -> None:
    """A trial's INITIAL_PURCHASE has price 0, as RevenueCat's trial webhooks do."""
    event = only(derive(row("t1", is_trial_period=True)))
    assert event["price"] == 0.0 and event["price_in_purchased_currency"] == 0.0


def test_a_non_renewing_purchase_has_no_expiration_time() -> None:
    """expiration_at_ms is null for a one-off purchase, and no EXPIRATION is derived."""
    events = derive(row("t1", is_auto_renewable=False), expired=True)
    assert [e.event_type for e in events] == ["NON_RENEWING_PURCHASE"]
    assert events[0].event["expiration_at_ms"] is None


def test_an_unsubscribe_is_a_cancellation_at_its_detection_time() -> None:
    """unsubscribe_detected_at: CANCELLATION (UNSUBSCRIBE), a trial's is a trial cancellation."""
    events = derive(row("t1", is_trial_period=True, unsubscribe_detected_at=T0 + DAY))
    cancellation = events[1].event
    assert cancellation["type"] == "CANCELLATION" and cancellation["cancel_reason"] == "UNSUBSCRIBE"
    assert cancellation["event_timestamp_ms"] == T0 + DAY and cancellation["price"] == 0.0
    assert classify(cancellation) == "trial_cancelled"


def test_a_refund_is_a_cancellation_with_negative_gross_prices() -> None:
    """refunded_at: CANCELLATION (CUSTOMER_SUPPORT) with the gross prices negated."""
    events = derive(row("t1", refunded_at=T0 + 2 * DAY, price_in_usd=0.0))
    refund = events[1].event
    assert refund["cancel_reason"] == "CUSTOMER_SUPPORT"
    assert (refund["price"], refund["price_in_purchased_currency"]) == (-10.99, -9.99)
    mapped = map_event(refund, CONFIG)
    assert isinstance(mapped, Mapped) and mapped.records[0]["evtData"]["is_refund"] is True


def test_a_billing_issue_carries_its_grace_period_end_and_a_cancellation() -> None:
    """billing_issues_detected_at: BILLING_ISSUE with grace_period_expiration_at_ms, and the
    CANCELLATION (BILLING_ERROR) RevenueCat sends with it."""
    events = derive(
        row("t1", billing_issues_detected_at=T0 + DAY, grace_period_end_time=T0 + 5 * DAY)
    )
    issue, cancellation = events[1].event, events[2].event
    assert issue["type"] == "BILLING_ISSUE" and issue["event_timestamp_ms"] == T0 + DAY
    assert issue["grace_period_expiration_at_ms"] == T0 + 5 * DAY
    assert cancellation["type"] == "CANCELLATION"
    assert cancellation["cancel_reason"] == "BILLING_ERROR"
    assert cancellation["event_timestamp_ms"] == T0 + DAY


def test_a_billing_issue_after_an_unsubscribe_adds_no_second_cancellation() -> None:
    """A row that records an unsubscribe already derives its one CANCELLATION."""
    values = row("t1", billing_issues_detected_at=T0 + DAY, unsubscribe_detected_at=T0)
    assert [e.kind for e in derive(values)] == ["purchase", "unsubscribe", "billing_issue"]


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({}, "UNKNOWN"),
        ({"unsubscribe_detected_at": T0 + DAY}, "UNSUBSCRIBE"),
        ({"billing_issues_detected_at": T0 + DAY}, "BILLING_ERROR"),
        ({"refunded_at": T0 + DAY}, "CUSTOMER_SUPPORT"),
        ({"auto_resume_time": T0 + 40 * DAY}, "SUBSCRIPTION_PAUSED"),
    ],
)
def test_an_expired_row_gets_an_expiration_at_its_effective_end(
    values: dict[str, Any], reason: str
) -> None:
    """expired: EXPIRATION at effective_end_time, its reason from what the row recorded."""
    events = derive(row("t1", effective_end_time=T0 + 33 * DAY, **values), expired=True)
    expiration = events[-1].event
    assert expiration["type"] == "EXPIRATION" and expiration["expiration_reason"] == reason
    assert expiration["event_timestamp_ms"] == T0 + 33 * DAY


def test_ids_are_deterministic_per_transaction_and_kind() -> None:
    """The same row derives the same ids; each kind and each transaction has its own."""
    values = row(
        "t1", refunded_at=T0 + DAY, unsubscribe_detected_at=T0 + DAY,
        billing_issues_detected_at=T0 + DAY,
    )  # fmt: skip
    first = [e.event_id for e in derive(values, expired=True)]
    assert first == [e.event_id for e in derive(dict(values), expired=True)]
    assert len(set(first)) == 5  # purchase, unsubscribe, refund, billing issue, expiration
    assert first[0] == event_id("app_store", "t1", "purchase")
    assert event_id("app_store", "t2", "purchase") != first[0]


def test_a_sandbox_row_derives_sandbox_events() -> None:
    """is_sandbox: the events' environment is SANDBOX (the mapping's sandbox rules apply)."""
    event = only(derive(row("t1", is_sandbox=True)))
    assert event["environment"] == "SANDBOX"


def test_v3_rows_without_gross_columns_use_the_price_columns() -> None:
    """Without purchase_price_* (v3), the price_* columns are the prices."""
    values = row("t1", price_in_usd=4.99, price_in_purchased_currency=4.5)
    del values["purchase_price_in_usd"], values["purchase_price_in_purchased_currency"]
    event = only(derive(values))
    assert (event["price"], event["price_in_purchased_currency"]) == (4.99, 4.5)
