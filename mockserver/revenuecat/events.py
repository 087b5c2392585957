"""Webhook event payloads, with every field RevenueCat's own payloads carry.

Field list: revenuecat.md section 4.3 and RevenueCat's sample events.  Every subscription
lifecycle event carries the common fields (``type``, ``id``, ``app_id``, ``event_timestamp_ms``,
``app_user_id``, ``original_app_user_id``, ``aliases``, ``subscriber_attributes``,
``experiments``) and the purchase fields (``product_id``, ``entitlement_ids``, ``period_type``,
``purchased_at_ms``, ``expiration_at_ms``, ``store``, ``environment``, prices, percentages,
transaction ids, ``country_code``, ``offer_code``, ``renewal_number``...).  Type-specific fields
are passed as ``extra``: ``is_trial_conversion`` (RENEWAL), ``cancel_reason`` (CANCELLATION),
``expiration_reason`` (EXPIRATION), ``new_product_id`` (PRODUCT_CHANGE),
``grace_period_expiration_at_ms`` (BILLING_ISSUE), ``auto_resume_at_ms`` (SUBSCRIPTION_PAUSED).
"""

from __future__ import annotations

import enum
from typing import Any

from mockserver.revenuecat.catalogue import Catalogue, money
from mockserver.revenuecat.models import Customer, Purchase

__all__ = [
    "CANCEL_REASONS",
    "EXPIRATION_REASONS",
    "EventType",
    "purchase_event",
    "transfer_event",
]


class EventType(enum.StrEnum):
    """Webhook event types the store simulator produces."""

    INITIAL_PURCHASE = "INITIAL_PURCHASE"
    RENEWAL = "RENEWAL"
    CANCELLATION = "CANCELLATION"
    UNCANCELLATION = "UNCANCELLATION"
    NON_RENEWING_PURCHASE = "NON_RENEWING_PURCHASE"
    SUBSCRIPTION_PAUSED = "SUBSCRIPTION_PAUSED"
    EXPIRATION = "EXPIRATION"
    BILLING_ISSUE = "BILLING_ISSUE"
    PRODUCT_CHANGE = "PRODUCT_CHANGE"
    TRANSFER = "TRANSFER"
    # Outside the purchase lifecycle (other_events.py):
    TEST = "TEST"
    SUBSCRIPTION_EXTENDED = "SUBSCRIPTION_EXTENDED"
    REFUND_REVERSED = "REFUND_REVERSED"
    TEMPORARY_ENTITLEMENT_GRANT = "TEMPORARY_ENTITLEMENT_GRANT"
    INVOICE_ISSUANCE = "INVOICE_ISSUANCE"
    VIRTUAL_CURRENCY_TRANSACTION = "VIRTUAL_CURRENCY_TRANSACTION"
    EXPERIMENT_ENROLLMENT = "EXPERIMENT_ENROLLMENT"


CANCEL_REASONS = frozenset(
    {"UNSUBSCRIBE", "BILLING_ERROR", "DEVELOPER_INITIATED", "PRICE_INCREASE",
     "CUSTOMER_SUPPORT", "UNKNOWN"}
)  # fmt: skip
EXPIRATION_REASONS = CANCEL_REASONS | {"SUBSCRIPTION_PAUSED"}

# Events that carry the price of a transaction; the others report 0 (RevenueCat's samples:
# REFUND_REVERSED carries the reinstated transaction's price, SUBSCRIPTION_EXTENDED 0).
_PRICED = frozenset(
    {EventType.INITIAL_PURCHASE, EventType.RENEWAL, EventType.NON_RENEWING_PURCHASE,
     EventType.REFUND_REVERSED}
)  # fmt: skip


def purchase_event(
    event_type: EventType,
    *,
    event_id: str,
    at_ms: int,
    customer: Customer,
    purchase: Purchase,
    catalogue: Catalogue,
    refund: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``event`` object of a webhook about ``purchase``.

    ``refund`` makes the prices negative (a CANCELLATION with ``CUSTOMER_SUPPORT``).
    """
    store = catalogue.store(purchase.store)
    product = catalogue.product(purchase.product_id)
    country = catalogue.countries.get(purchase.country_code)
    if event_type in _PRICED or refund:
        sign = -1 if refund else 1
        # "+ 0.0" turns the -0.0 of a refunded free trial into 0.0
        price: float = money(sign * purchase.price_usd) + 0.0
        local: float = money(sign * purchase.price_in_purchased_currency) + 0.0
    else:
        price = local = 0.0
    event: dict[str, Any] = {
        "type": str(event_type),
        "id": event_id,
        "app_id": store.app_id,
        "event_timestamp_ms": at_ms,
        "app_user_id": customer.app_user_id,
        "original_app_user_id": customer.original_app_user_id,
        "aliases": customer.all_ids(),
        "subscriber_attributes": customer.attributes.to_json(),
        "experiments": [dict(e) for e in customer.experiments],
        "product_id": purchase.product_id,
        "entitlement_ids": list(product.entitlement_ids) or None,
        "entitlement_id": None,  # deprecated; RevenueCat sends null or the first id
        "period_type": purchase.period_type,
        "purchased_at_ms": purchase.purchased_at_ms,
        "expiration_at_ms": purchase.expires_at_ms,
        "environment": str(purchase.environment),
        "presented_offering_id": purchase.presented_offering_id,
        "transaction_id": purchase.transaction_id,
        "original_transaction_id": purchase.original_transaction_id,
        "is_family_share": False,
        "country_code": purchase.country_code,
        "currency": purchase.currency,
        "price": price,
        "price_in_purchased_currency": local,
        "store": str(purchase.store),
        "takehome_percentage": money(1 - store.commission_percentage, "0.0001"),
        "tax_percentage": country.tax_percentage if country else 0.0,
        "commission_percentage": store.commission_percentage,
        "offer_code": purchase.offer_code,
        "renewal_number": purchase.renewal_number,
    }
    if extra:
        event.update(extra)
    return event


def transfer_event(
    *,
    event_id: str,
    at_ms: int,
    purchase: Purchase,
    catalogue: Catalogue,
    transferred_from: list[str],
    transferred_to: list[str],
) -> dict[str, Any]:
    """A TRANSFER event: sent for the destination customer only, without ``app_user_id``."""
    return {
        "type": str(EventType.TRANSFER),
        "id": event_id,
        "app_id": catalogue.store(purchase.store).app_id,
        "event_timestamp_ms": at_ms,
        "store": str(purchase.store),
        "environment": str(purchase.environment),
        "transferred_from": transferred_from,
        "transferred_to": transferred_to,
    }
