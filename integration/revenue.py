"""Revenue: the ``amount`` and ``currency`` of one event, in exact decimal arithmetic.

RevenueCat sends two prices (revenuecat.md §4.3): ``price`` in USD and
``price_in_purchased_currency`` in ``currency``, both negative for refunds, plus estimated
``commission_percentage`` and ``tax_percentage`` shares.  The rules (revenuecat.md §5.3):

- ``revenue.currency = "purchased"`` takes ``price_in_purchased_currency`` with ``currency``
  (falling back to ``price`` in USD when the event has no purchased-currency price);
  ``"usd"`` takes ``price`` with ``USD``.
- ``revenue.mode``: ``gross`` is the price; ``after_store_commission`` is
  price x (1 - commission); ``after_store_commission_and_taxes`` is
  price x (1 - commission - tax), the proceeds formula RevenueCat documents.  A missing
  percentage counts as 0.
- Prices are read through their shortest decimal text (``Decimal(str(x))``), multiplied as
  decimals, then rounded half-up to the currency's ISO 4217 minor unit (2 places unless listed
  below), so ``4.99 x 0.7`` is ``3.49``, never ``3.4930000000000003``.
- A negative price is a refund.  CleverTap has no negative revenue (revenuecat.md §5.1), so a
  refund's amount is 0 unless ``revenue.refunds = "negative"``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from integration.config import RevenueConfig

__all__ = ["Revenue", "compute_revenue", "minor_units"]

# ISO 4217 currencies whose minor unit is not 2 (the rest, and unknown codes, get 2).
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
            "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}  # fmt: skip


def minor_units(currency: str | None) -> int:
    """Decimal places of ``currency`` (2 when unknown)."""
    return _MINOR_UNITS.get((currency or "").upper(), 2)


@dataclass(frozen=True)
class Revenue:
    """What one event is worth, ready for ``evtData``.

    ``amount`` is already rounded; ``currency`` is ``None`` when the event names none.
    """

    amount: Decimal
    currency: str | None
    is_refund: bool


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = Decimal(str(value))
    return result if result.is_finite() else None


def _is_negative(value: Any) -> bool:
    """``_decimal(value) < 0``, without building the decimal for plain ints and floats.

    ``str()`` of an int or a float is exact and keeps its sign (``-0.0`` is not below zero
    either way), so comparing the number itself gives the same answer; only a non-finite
    float differs, and ``_decimal`` rejects those.
    """
    kind = type(value)
    if kind is int:
        return bool(value < 0)
    if kind is float:
        return bool(value < 0 and math.isfinite(value))
    price = _decimal(value)
    return price is not None and price < 0


# Rounding step and rounded zero per minor unit: 0 -> (1, 0), 2 -> (0.01, 0.00), ...
_STEPS = {
    places: (Decimal(1).scaleb(-places), Decimal(0).quantize(Decimal(1).scaleb(-places)))
    for places in {2, *_MINOR_UNITS.values()}
}
_ONE = Decimal(1)


def compute_revenue(
    event: Mapping[str, Any], config: RevenueConfig, *, carries_revenue: bool
) -> Revenue:
    """The amount, currency and refund flag of ``event``.

    ``carries_revenue`` is true for Initial Purchase, Trial Converted, Renewal and Non
    Subscription Purchase; other events have amount 0, except refunds when
    ``refunds = "negative"``.
    """
    get = event.get
    fields = (
        get("price_in_purchased_currency"),
        get("price"),
        get("currency"),
        get("commission_percentage"),
        get("tax_percentage"),
    )
    if _PLAIN.issuperset(map(type, fields)):
        return _cached_revenue(
            *fields, config.currency, config.mode, config.refunds, carries_revenue
        )
    return _revenue(*fields, config.currency, config.mode, config.refunds, carries_revenue)


# Types a JSON parser gives that hash by value; anything else (lists, objects) is not cached.
_PLAIN = frozenset({int, float, str, bool, type(None)})


def _revenue(
    price_purchased_field: Any,
    price_field: Any,
    currency_field: Any,
    commission: Any,
    tax: Any,
    currency_rule: str,
    mode: str,
    refunds: str,
    carries_revenue: bool,
) -> Revenue:
    purchased_currency = currency_field if isinstance(currency_field, str) else None
    price_purchased = _decimal(price_purchased_field)
    if currency_rule == "purchased" and price_purchased is not None:
        price, currency = price_purchased, purchased_currency
    elif currency_rule == "purchased" and _decimal(price_field) is None:
        price, currency = None, purchased_currency
    else:
        price, currency = _decimal(price_field), "USD"

    is_refund = _is_negative(price_field) or _is_negative(price_purchased_field)
    places = minor_units(currency)
    zero = _STEPS[places][1]
    counts = carries_revenue or (is_refund and refunds == "negative")
    if price is None or not counts:
        return Revenue(zero, currency, is_refund)
    if price < 0 and refunds == "zero":
        return Revenue(zero, currency, is_refund)
    share = _ONE
    if mode in ("after_store_commission", "after_store_commission_and_taxes"):
        share -= _decimal(commission) or Decimal(0)
    if mode == "after_store_commission_and_taxes":
        share -= _decimal(tax) or Decimal(0)
    amount = (price * share).quantize(_STEPS[places][0], rounding=ROUND_HALF_UP)
    return Revenue(amount + 0, currency, is_refund)  # + 0 turns -0.00 into 0.00


# The same inputs always give the same revenue, and a store sells few prices, so the same
# combinations come back event after event: the decimal arithmetic runs once for each.
# ``typed`` keeps apart inputs that compare equal but are read differently (``1`` and
# ``1.0`` print differently, ``True`` is not a number); inputs that are equal and of one type
# give the same revenue (``0.0`` and ``-0.0`` both round to 0.00).
_cached_revenue = functools.lru_cache(maxsize=4096, typed=True)(_revenue)
