"""The optional records: a profile with the subscription state, and a Charged event."""

from __future__ import annotations

from typing import Any

import pytest

from integration.config import CleverTapConfig, Config, ExtrasConfig, RevenueConfig, Secret
from integration.extras import subscription_status
from integration.mapping import Mapped, classify, map_event

CLEVERTAP = CleverTapConfig(account_id="ACC-1", passcode=Secret("pw"))
PROFILES = Config(clevertap=CLEVERTAP, extras=ExtrasConfig(profile_records=True))
CHARGED = Config(clevertap=CLEVERTAP, extras=ExtrasConfig(charged_event=True))


def event(**fields: Any) -> dict[str, Any]:
    """A production renewal for user-7 of pro.monthly, 9.99 EUR, expiring at 1 700 086 400."""
    base: dict[str, Any] = {
        "id": "evt-1",
        "type": "RENEWAL",
        "event_timestamp_ms": 1_700_000_000_000,
        "environment": "PRODUCTION",
        "app_user_id": "user-7",
        "product_id": "pro.monthly",
        "period_type": "NORMAL",
        "store": "PLAY_STORE",
        "currency": "EUR",
        "price": 10.5,
        "price_in_purchased_currency": 9.99,
        "transaction_id": "GPA.1",
        "entitlement_ids": ["pro", "extra"],
        "expiration_at_ms": 1_700_086_400_999,
    }
    base.update(fields)
    return base


def records(ev: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    result = map_event(ev, config)
    assert isinstance(result, Mapped)
    return result.records


def test_extras_are_off_by_default() -> None:
    """Without [extras], a revenue event yields only its own record."""
    assert len(records(event(), Config(clevertap=CLEVERTAP))) == 1


def test_profile_record_carries_subscription_state() -> None:
    """The profile record holds status, entitlements, product and a $D_ expiration date."""
    profile = records(event(), PROFILES)[1]
    assert profile == {
        "type": "profile",
        "identity": "user-7",
        "ts": 1_700_000_000,
        "profileData": {
            "rc_subscription_status": "active",
            "rc_active_entitlements": "pro,extra",
            "rc_product_id": "pro.monthly",
            "rc_expiration_at": "$D_1700086400",
        },
    }


def test_profile_record_uses_the_same_identity() -> None:
    """A record addressed by objectId has its profile addressed by objectId too."""
    ev = event(subscriber_attributes={"$clevertapId": {"value": "ct1", "updated_at_ms": 1}})
    assert records(ev, PROFILES)[1]["objectId"] == "ct1"


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"type": "INITIAL_PURCHASE", "period_type": "TRIAL"}, "trial"),
        ({"type": "INITIAL_PURCHASE", "period_type": "INTRO"}, "intro"),
        ({"type": "INITIAL_PURCHASE"}, "active"),
        ({"type": "RENEWAL", "is_trial_conversion": True}, "active"),
        ({"type": "UNCANCELLATION", "period_type": "PROMOTIONAL"}, "promotional"),
        ({"type": "CANCELLATION", "period_type": "TRIAL"}, "cancelled_trial"),
        ({"type": "CANCELLATION"}, "cancelled"),
        ({"type": "BILLING_ISSUE"}, "grace_period"),
        ({"type": "BILLING_ISSUE", "period_type": "TRIAL"}, "grace_period_trial"),
        ({"type": "EXPIRATION"}, "expired"),
        ({"type": "EXPIRATION", "period_type": "PROMOTIONAL"}, "expired_promotional"),
        ({"type": "EXPIRATION", "expiration_reason": "SUBSCRIPTION_PAUSED"}, "paused"),
        ({"type": "SUBSCRIPTION_PAUSED"}, "paused"),
    ],
)
def test_subscription_status(fields: dict[str, Any], status: str) -> None:
    """Each event sets the subscription status Amplitude's integration would."""
    ev = event(**fields)
    integration_event = classify(ev)
    assert integration_event is not None
    assert subscription_status(ev, integration_event) == status


def test_expired_profile_has_no_active_entitlements() -> None:
    """Once expired, rc_active_entitlements is empty."""
    profile = records(event(type="EXPIRATION"), PROFILES)[1]
    assert profile["profileData"]["rc_active_entitlements"] == ""


@pytest.mark.parametrize("kind", ["PRODUCT_CHANGE", "NON_RENEWING_PURCHASE"])
def test_no_profile_for_events_that_do_not_change_state(kind: str) -> None:
    """Product changes and one-off purchases send no profile record."""
    assert len(records(event(type=kind), PROFILES)) == 1


def test_charged_event_beside_revenue() -> None:
    """A revenue event with a positive amount gets a Charged event with one flat item."""
    charged = records(event(), CHARGED)[1]
    assert charged == {
        "type": "event",
        "evtName": "Charged",
        "identity": "user-7",
        "ts": 1_700_000_000,
        "evtData": {
            "Amount": 9.99,
            "Currency": "EUR",
            "Charged ID": "GPA.1",
            "Items": [
                {
                    "quantity": 1,
                    "product_id": "pro.monthly",
                    "store": "PLAY_STORE",
                    "period_type": "NORMAL",
                }
            ],
        },
    }


def test_charged_amount_follows_revenue_config() -> None:
    """Charged uses the same amount and currency as the event record."""
    config = Config(
        clevertap=CLEVERTAP,
        extras=ExtrasConfig(charged_event=True),
        revenue=RevenueConfig(currency="usd", mode="after_store_commission"),
    )
    ev = event(commission_percentage=0.15)
    main, charged = records(ev, config)
    assert main["evtData"]["amount"] == charged["evtData"]["Amount"] == 8.93  # 8.925
    assert charged["evtData"]["Currency"] == "USD"


def test_charged_id_falls_back_to_event_id() -> None:
    """Without a transaction id, Charged ID is RevenueCat's event id."""
    charged = records(event(transaction_id=None), CHARGED)[1]
    assert charged["evtData"]["Charged ID"] == "evt-1"


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "INITIAL_PURCHASE", "period_type": "TRIAL"},
        {"type": "CANCELLATION"},
        {"price": 0, "price_in_purchased_currency": 0},
    ],
)
def test_no_charged_without_positive_revenue(fields: dict[str, Any]) -> None:
    """Trials, cancellations and zero-priced events get no Charged event."""
    assert len(records(event(**fields), CHARGED)) == 1


def test_no_charged_for_negative_refunds() -> None:
    """A refund sent as negative revenue still gets no Charged event."""
    config = Config(
        clevertap=CLEVERTAP,
        extras=ExtrasConfig(charged_event=True),
        revenue=RevenueConfig(refunds="negative"),
    )
    ev = event(type="CANCELLATION", price=-10.5, price_in_purchased_currency=-9.99)
    assert len(records(ev, config)) == 1


def test_both_extras_order() -> None:
    """With both extras, records come as event, profile, Charged."""
    config = Config(
        clevertap=CLEVERTAP, extras=ExtrasConfig(profile_records=True, charged_event=True)
    )
    kinds = [(r["type"], r.get("evtName")) for r in records(event(), config)]
    assert kinds == [("event", "rc_renewal_event"), ("profile", None), ("event", "Charged")]
