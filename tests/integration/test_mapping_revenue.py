"""Revenue rules, one case each: which events carry it, currency, mode, rounding and refunds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from integration.config import CleverTapConfig, Config, RevenueConfig, Secret
from integration.mapping import Mapped, map_event
from integration.revenue import compute_revenue, minor_units

CLEVERTAP = CleverTapConfig(account_id="ACC-1", passcode=Secret("pw"))


def event(**fields: Any) -> dict[str, Any]:
    """A production renewal priced 10.50 USD / 9.99 EUR with 30 % commission and 20 % tax."""
    base: dict[str, Any] = {
        "id": "evt-1",
        "type": "RENEWAL",
        "event_timestamp_ms": 1_700_000_000_000,
        "environment": "PRODUCTION",
        "app_user_id": "user-7",
        "period_type": "NORMAL",
        "currency": "EUR",
        "price": 10.5,
        "price_in_purchased_currency": 9.99,
        "commission_percentage": 0.3,
        "tax_percentage": 0.2,
    }
    base.update(fields)
    return base


def evt_data(ev: dict[str, Any], **revenue: Any) -> dict[str, Any]:
    config = Config(clevertap=CLEVERTAP, revenue=RevenueConfig(**revenue))
    result = map_event(ev, config)
    assert isinstance(result, Mapped)
    data: dict[str, Any] = result.records[0]["evtData"]
    return data


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "INITIAL_PURCHASE"},
        {"type": "RENEWAL", "is_trial_conversion": True},
        {"type": "RENEWAL"},
        {"type": "NON_RENEWING_PURCHASE"},
    ],
)
def test_revenue_events_carry_the_price(fields: dict[str, Any]) -> None:
    """Initial Purchase, Trial Converted, Renewal and Non Subscription Purchase carry revenue."""
    assert evt_data(event(**fields))["amount"] == 9.99


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "INITIAL_PURCHASE", "period_type": "TRIAL"},
        {"type": "CANCELLATION"},
        {"type": "CANCELLATION", "period_type": "TRIAL"},
        {"type": "UNCANCELLATION"},
        {"type": "EXPIRATION"},
        {"type": "BILLING_ISSUE"},
        {"type": "PRODUCT_CHANGE"},
    ],
)
def test_other_events_have_amount_zero(fields: dict[str, Any]) -> None:
    """Every other event has amount 0, even when the webhook carries a price."""
    assert evt_data(event(**fields))["amount"] == 0


def test_purchased_currency_is_the_default() -> None:
    """By default the amount is price_in_purchased_currency with the event's currency."""
    data = evt_data(event())
    assert (data["amount"], data["currency"]) == (9.99, "EUR")


def test_usd_currency_uses_price() -> None:
    """currency = "usd" sends price with currency USD."""
    data = evt_data(event(), currency="usd")
    assert (data["amount"], data["currency"]) == (10.5, "USD")


def test_purchased_currency_falls_back_to_usd_price() -> None:
    """Without price_in_purchased_currency the USD price is sent, labelled USD."""
    data = evt_data(event(price_in_purchased_currency=None))
    assert (data["amount"], data["currency"]) == (10.5, "USD")


def test_missing_prices_give_zero() -> None:
    """A revenue event without any price has amount 0 in its own currency."""
    data = evt_data(event(price=None, price_in_purchased_currency=None))
    assert (data["amount"], data["currency"]) == (0, "EUR")


def test_after_store_commission() -> None:
    """after_store_commission multiplies by 1 - commission_percentage."""
    assert evt_data(event(), mode="after_store_commission")["amount"] == 6.99  # 6.993


def test_after_store_commission_and_taxes() -> None:
    """after_store_commission_and_taxes multiplies by 1 - commission - tax."""
    assert evt_data(event(), mode="after_store_commission_and_taxes")["amount"] == 5.0  # 4.995


def test_missing_percentages_count_as_zero() -> None:
    """Null commission and tax percentages leave the price whole."""
    ev = event(commission_percentage=None, tax_percentage=None)
    assert evt_data(ev, mode="after_store_commission_and_taxes")["amount"] == 9.99


def test_usd_after_commission() -> None:
    """Currency and mode combine: USD price after commission."""
    assert evt_data(event(), currency="usd", mode="after_store_commission")["amount"] == 7.35


def test_no_binary_float_noise() -> None:
    """4.99 x 0.7 is sent as 3.49, not 3.4930000000000003."""
    data = evt_data(event(price_in_purchased_currency=4.99), mode="after_store_commission")
    assert repr(data["amount"]) == "3.49"


def test_rounding_is_half_up_to_cents() -> None:
    """Amounts round half up to the currency's minor unit: 0.125 becomes 0.13."""
    ev = event(price_in_purchased_currency=0.25, commission_percentage=0.5)
    assert evt_data(ev, mode="after_store_commission")["amount"] == 0.13


@pytest.mark.parametrize(
    ("currency", "price", "expected"),
    [("JPY", 1200, 840.0), ("KWD", 1.999, 1.399), ("USD", 1.999, 1.4)],
)
def test_rounding_follows_the_currencys_minor_unit(
    currency: str, price: float, expected: float
) -> None:
    """JPY rounds to whole yen and KWD to three places."""
    ev = event(currency=currency, price_in_purchased_currency=price)
    assert evt_data(ev, mode="after_store_commission")["amount"] == expected


def test_minor_units_of_unknown_currency_is_two() -> None:
    """A currency outside the table is rounded to two places."""
    assert (minor_units("XYZ"), minor_units(None), minor_units("jpy")) == (2, 2, 0)


def refund(**fields: Any) -> dict[str, Any]:
    """A customer-support cancellation: RevenueCat's refund, with negative prices."""
    values: dict[str, Any] = {"price": -10.5, "price_in_purchased_currency": -9.99, **fields}
    return event(type="CANCELLATION", cancel_reason="CUSTOMER_SUPPORT", **values)


def test_refund_is_zero_by_default() -> None:
    """A refund has amount 0 and is_refund true: CleverTap has no negative revenue."""
    data = evt_data(refund())
    assert (data["amount"], data["is_refund"]) == (0, True)


def test_refund_negative_when_configured() -> None:
    """refunds = "negative" sends the negative price."""
    data = evt_data(refund(), refunds="negative")
    assert (data["amount"], data["is_refund"]) == (-9.99, True)


def test_negative_refund_respects_mode_and_currency() -> None:
    """A negative refund is computed like revenue: here USD after commission."""
    data = evt_data(refund(), refunds="negative", currency="usd", mode="after_store_commission")
    assert (data["amount"], data["currency"]) == (-7.35, "USD")


def test_negative_price_on_revenue_event_is_zero_by_default() -> None:
    """Even a revenue event with a negative price never sends negative revenue by default."""
    data = evt_data(event(price=-1.0, price_in_purchased_currency=-0.99))
    assert (data["amount"], data["is_refund"]) == (0, True)


def test_ordinary_event_is_not_a_refund() -> None:
    """is_refund is false for a positive price."""
    assert evt_data(event())["is_refund"] is False


def test_amount_never_negative_zero() -> None:
    """A tiny negative amount that rounds to zero is 0.00, not -0.00."""
    result = compute_revenue(
        refund(price_in_purchased_currency=-0.001),
        RevenueConfig(refunds="negative"),
        carries_revenue=False,
    )
    assert str(result.amount) == "0.00"


def test_compute_revenue_returns_decimals() -> None:
    """compute_revenue keeps the exact decimal for callers that need it."""
    result = compute_revenue(event(), RevenueConfig(), carries_revenue=True)
    assert (result.amount, result.currency, result.is_refund) == (Decimal("9.99"), "EUR", False)
