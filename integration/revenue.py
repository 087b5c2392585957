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


def _is_refund(event: dict[str, Any]) -> bool:
    for name in ("price", "price_in_purchased_currency"):
        price = _decimal(event.get(name))
        if price is not None and price < 0:
            return True
    return False


def compute_revenue(
    event: dict[str, Any], config: RevenueConfig, *, carries_revenue: bool
) -> Revenue:
    """The amount, currency and refund flag of ``event``.

    ``carries_revenue`` is true for Initial Purchase, Trial Converted, Renewal and Non
    Subscription Purchase; other events have amount 0, except refunds when
    ``refunds = "negative"``.
    """
    currency_field = event.get("currency")
    purchased_currency = currency_field if isinstance(currency_field, str) else None
    price_purchased = _decimal(event.get("price_in_purchased_currency"))
    if config.currency == "purchased" and price_purchased is not None:
        price, currency = price_purchased, purchased_currency
    elif config.currency == "purchased" and _decimal(event.get("price")) is None:
        price, currency = None, purchased_currency
    else:
        price, currency = _decimal(event.get("price")), "USD"

    is_refund = _is_refund(event)
    places = Decimal(1).scaleb(-minor_units(currency))
    zero = Decimal(0).quantize(places)
    counts = carries_revenue or (is_refund and config.refunds == "negative")
    if price is None or not counts:
        return Revenue(zero, currency, is_refund)
    if price < 0 and config.refunds == "zero":
        return Revenue(zero, currency, is_refund)

    share = Decimal(1)
    if config.mode in ("after_store_commission", "after_store_commission_and_taxes"):
        share -= _decimal(event.get("commission_percentage")) or Decimal(0)
    if config.mode == "after_store_commission_and_taxes":
        share -= _decimal(event.get("tax_percentage")) or Decimal(0)
    amount = (price * share).quantize(places, rounding=ROUND_HALF_UP)
    return Revenue(amount + 0, currency, is_refund)  # + 0 turns -0.00 into 0.00
