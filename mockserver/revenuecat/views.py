"""RevenueCat's JSON shapes, rendered from the mock's state.

* v1 Customer Info (api-v1.yaml ``Subscriber``), derived from the simulated purchases;
* v2 ``Customer``, ``ListCustomerAttributes`` and ``DeletedObject`` (api-v2.yaml);
* the control API's customer summary and catalogue (``/_mock/revenuecat``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Any

from mockserver.revenuecat.catalogue import Catalogue, Store
from mockserver.revenuecat.models import Customer, Purchase

__all__ = [
    "attribute_list_json",
    "catalogue_json",
    "customer_json",
    "customer_summary_json",
    "entitlement_v2_id",
    "iso",
    "offerings_json",
    "subscriber_json",
]


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as RevenueCat's ISO 8601 (``2019-07-26T17:40:10Z``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subscription_json(purchase: Purchase, catalogue: Catalogue) -> dict[str, Any]:
    product = catalogue.products.get(purchase.product_id)
    return {
        "auto_resume_date": iso(purchase.auto_resume_at_ms),
        "billing_issues_detected_at": iso(purchase.billing_issue_detected_at_ms),
        "display_name": product.display_name if product else purchase.product_id,
        "expires_date": iso(purchase.expires_at_ms),
        "grace_period_expires_date": iso(purchase.grace_period_expires_at_ms),
        "is_sandbox": purchase.is_sandbox,
        "original_purchase_date": iso(purchase.original_purchased_at_ms),
        "ownership_type": "PURCHASED",
        "period_type": purchase.period_type.lower(),
        "price": {"amount": purchase.price_in_purchased_currency, "currency": purchase.currency},
        "purchase_date": iso(purchase.purchased_at_ms),
        "refunded_at": iso(purchase.refunded_at_ms),
        "store": catalogue.store(purchase.store).v1_name,
        "store_transaction_id": purchase.transaction_id,
        "unsubscribe_detected_at": iso(purchase.unsubscribe_detected_at_ms),
    }


def _non_subscription_json(purchase: Purchase, catalogue: Catalogue) -> dict[str, Any]:
    product = catalogue.products.get(purchase.product_id)
    return {
        "display_name": product.display_name if product else purchase.product_id,
        "id": purchase.id,
        "is_sandbox": purchase.is_sandbox,
        "price": {"amount": purchase.price_in_purchased_currency, "currency": purchase.currency},
        "purchase_date": iso(purchase.purchased_at_ms),
        "store": catalogue.store(purchase.store).v1_name,
        "store_transaction_id": purchase.transaction_id,
    }


def _entitlement_end(purchase: Purchase) -> int | None:
    if purchase.refunded_at_ms is not None:
        return purchase.refunded_at_ms
    return purchase.expires_at_ms


def _entitlements(customer: Customer, catalogue: Catalogue) -> dict[str, dict[str, Any]]:
    """Entitlement -> the purchase granting it with the furthest-out expiry (null = lifetime)."""
    best: dict[str, Purchase] = {}
    for purchase in customer.purchases:
        product = catalogue.products.get(purchase.product_id)
        for entitlement in product.entitlement_ids if product else ():
            current = best.get(entitlement)
            if current is None:
                best[entitlement] = purchase
                continue
            ours, theirs = _entitlement_end(purchase), _entitlement_end(current)
            if theirs is not None and (ours is None or ours >= theirs):
                best[entitlement] = purchase
    return {
        name: {
            "expires_date": iso(_entitlement_end(p)),
            "grace_period_expires_date": iso(p.grace_period_expires_at_ms),
            "product_identifier": p.product_id,
            "purchase_date": iso(p.purchased_at_ms),
        }
        for name, p in sorted(best.items())
    }


def _management_url(customer: Customer, catalogue: Catalogue, now_ms: int) -> str | None:
    active = [p for p in customer.purchases if p.is_subscription and p.is_active(now_ms)]
    if not active:
        return None
    furthest = max(active, key=lambda p: p.access_until_ms() or 0)
    return catalogue.store(furthest.store).management_url


def subscriber_json(
    customer: Customer, catalogue: Catalogue, now_ms: int, *, include_attributes: bool
) -> dict[str, Any]:
    """The v1 Customer Info body (``request_date``, ``request_date_ms``, ``subscriber``)."""
    subscriptions: dict[str, Any] = {}
    non_subscriptions: dict[str, list[dict[str, Any]]] = {}
    for purchase in customer.purchases:
        if purchase.is_subscription:
            subscriptions[purchase.product_id] = _subscription_json(purchase, catalogue)
        else:
            non_subscriptions.setdefault(purchase.product_id, []).append(
                _non_subscription_json(purchase, catalogue)
            )
    apple = [p for p in customer.purchases if p.store in (Store.APP_STORE, Store.MAC_APP_STORE)]
    subscriber: dict[str, Any] = {
        "entitlements": _entitlements(customer, catalogue),
        "first_seen": iso(customer.first_seen_ms),
        "last_seen": iso(customer.last_seen_ms),
        "management_url": _management_url(customer, catalogue, now_ms),
        "non_subscriptions": non_subscriptions,
        "original_app_user_id": customer.original_app_user_id,
        # iOS only: null until an App Store receipt has been seen (api-v1.yaml).
        "original_application_version": "1.0" if apple else None,
        "original_purchase_date": iso(min(p.original_purchased_at_ms for p in apple))
        if apple
        else None,
        "other_purchases": {},
        "subscriptions": subscriptions,
    }
    if include_attributes:
        subscriber["subscriber_attributes"] = customer.attributes.to_json()
    return {"request_date": iso(now_ms), "request_date_ms": now_ms, "subscriber": subscriber}


def entitlement_v2_id(name: str) -> str:
    """A stable v2-style entitlement id (``entl`` + 10 hex) for an entitlement lookup key."""
    return "entl" + hashlib.sha256(name.encode()).hexdigest()[:10]


def attribute_list_json(
    customer: Customer, project_id: str, *, limit: int = 20, starting_after: str | None = None
) -> dict[str, Any]:
    """``ListCustomerAttributes``, sorted by name, paginated with ``starting_after``."""
    base = f"/v2/projects/{project_id}/customers/{customer.app_user_id}/attributes"
    items = [
        {"object": "customer.attribute", "name": name, "value": attr.value,
         "updated_at": attr.updated_at_ms}
        for name, attr in customer.attributes.items()
        if starting_after is None or name > starting_after
    ]  # fmt: skip
    page, more = items[:limit], len(items) > limit
    next_page = f"{base}?starting_after={page[-1]['name']}&limit={limit}" if more else None
    return {"object": "list", "items": page, "next_page": next_page, "url": base}


def _experiment_json(customer: Customer) -> dict[str, Any] | None:
    """The latest enrollment as api-v2.yaml ``ExperimentEnrollment`` (``None`` if none).

    The mock's experiments have no names, so ``name`` repeats the id.
    """
    if not customer.experiments:
        return None
    latest = customer.experiments[-1]
    return {"object": "experiment_enrollment", "id": latest["experiment_id"],
            "name": latest["experiment_id"], "variant": latest["experiment_variant"]}  # fmt: skip


def customer_json(
    customer: Customer,
    catalogue: Catalogue,
    project_id: str,
    now_ms: int,
    *,
    expand_attributes: bool,
) -> dict[str, Any]:
    """The v2 ``Customer`` object."""
    base = f"/v2/projects/{project_id}/customers/{customer.app_user_id}"
    entitlements = _entitlements(customer, catalogue)
    active = []
    for name, ent in entitlements.items():
        purchase_end = None
        for purchase in customer.purchases:
            if purchase.product_id == ent["product_identifier"] and purchase.is_active(now_ms):
                purchase_end = purchase.access_until_ms()
                active.append(
                    {"object": "customer.active_entitlement",
                     "entitlement_id": entitlement_v2_id(name), "expires_at": purchase_end}
                )  # fmt: skip
                break
    body: dict[str, Any] = {
        "object": "customer",
        "id": customer.app_user_id,
        "project_id": project_id,
        "first_seen_at": customer.first_seen_ms,
        "last_seen_at": customer.last_seen_ms,
        "last_seen_app_version": None,
        "last_seen_country": customer.country_code,
        "last_seen_platform": customer.last_seen_platform,
        "last_seen_platform_version": None,
        "active_entitlements": {
            "object": "list",
            "items": active,
            "next_page": None,
            "url": f"{base}/active_entitlements",
        },
        "experiment": _experiment_json(customer),
    }
    if expand_attributes:
        body["attributes"] = attribute_list_json(customer, project_id, limit=50)
    return body


def customer_summary_json(customer: Customer, now_ms: int) -> dict[str, Any]:
    """The control API's summary of a customer: ids, country, attributes, active products."""
    return {
        "app_user_id": customer.app_user_id,
        "original_app_user_id": customer.original_app_user_id,
        "aliases": customer.all_ids(),
        "country_code": customer.country_code,
        "attributes": customer.attributes.to_json(),
        "active_products": sorted(
            {p.product_id for p in customer.purchases if p.is_active(now_ms)}
        ),
        "purchases": len(customer.purchases),
    }


# RevenueCat's default package identifiers by period ("prefixed by $rc_", api-v1.yaml).
_PACKAGE_TYPES = {7: "$rc_weekly", 30: "$rc_monthly", 365: "$rc_annual"}


def offerings_json(catalogue: Catalogue) -> dict[str, Any]:
    """The v1 ``Offerings`` body (api-v1.yaml ``get-offerings``).

    The mock has no offering configuration, so it answers one ``default`` offering (the
    ``presented_offering_id`` its purchases carry) with a package per catalogue product: the
    first product of each period takes the default identifier (``$rc_monthly``,
    ``$rc_lifetime``...), the others their product id.  The mock's products have one id on
    every store, so ``X-Platform`` does not change ``platform_product_identifier``.
    """
    packages: list[dict[str, str]] = []
    taken: set[str] = set()
    for product in catalogue.products.values():
        kind = (
            "$rc_lifetime" if product.lifetime else _PACKAGE_TYPES.get(product.duration_days or 0)
        )
        identifier = kind if kind is not None and kind not in taken else product.id
        taken.add(identifier)
        packages.append({"identifier": identifier, "platform_product_identifier": product.id})
    return {
        "current_offering_id": "default",
        "offerings": [
            {"description": "The default offering", "identifier": "default", "packages": packages}
        ],
    }


def catalogue_json(catalogue: Catalogue) -> dict[str, Any]:
    """The control API's catalogue: products, stores, countries and USD rates."""
    return {
        "products": [
            {**dataclasses.asdict(p), "prices": dict(p.prices),
             "intro_prices": dict(p.intro_prices)}
            for p in catalogue.products.values()
        ],
        "stores": [
            {**dataclasses.asdict(s), "store": str(s.store)} for s in catalogue.stores.values()
        ],
        "countries": [dataclasses.asdict(c) for c in catalogue.countries.values()],
        "usd_rates": dict(catalogue.usd_rates),
    }  # fmt: skip
