"""Typed views of RevenueCat's responses: the v1 subscriber and the v2 attribute list.

Parsing is lenient about fields RevenueCat may add (they are ignored) and strict about the
fields we expose: a wrong type raises :class:`ValueError`, which the client turns into
:class:`client.InvalidResponseError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "CustomerAttribute",
    "Entitlement",
    "NonSubscription",
    "Subscriber",
    "SubscriberAttribute",
    "Subscription",
]


def _obj(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    return data


def _str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name!r} is not a string")
    return value


def _opt_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name!r} is not a string or null")
    return value


def _int(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name!r} is not an integer")
    return value


def _opt_bool(data: Mapping[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name!r} is not a boolean or null")
    return value


def _opt_time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = _opt_str(data, name)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name!r} is not an ISO 8601 time: {value!r}") from None


@dataclass(frozen=True, slots=True)
class SubscriberAttribute:
    """One v1 customer attribute: ``value`` and the ``updated_at_ms`` that won."""

    key: str
    value: str
    updated_at_ms: int

    @classmethod
    def from_json(cls, key: str, data: object) -> SubscriberAttribute:
        obj = _obj(data, f"attribute {key!r}")
        return cls(key=key, value=_str(obj, "value"), updated_at_ms=_int(obj, "updated_at_ms"))


@dataclass(frozen=True, slots=True)
class Entitlement:
    """A v1 entitlement; ``expires_date`` is ``None`` for a lifetime entitlement."""

    identifier: str
    product_identifier: str
    purchase_date: datetime | None
    expires_date: datetime | None
    grace_period_expires_date: datetime | None

    def is_active(self, at: datetime) -> bool:
        """Whether the entitlement grants access at ``at`` (an aware datetime)."""
        ends = max(
            (t for t in (self.expires_date, self.grace_period_expires_date) if t is not None),
            default=None,
        )
        return ends is None or ends > at

    @classmethod
    def from_json(cls, identifier: str, data: object) -> Entitlement:
        obj = _obj(data, f"entitlement {identifier!r}")
        return cls(
            identifier=identifier,
            product_identifier=_str(obj, "product_identifier"),
            purchase_date=_opt_time(obj, "purchase_date"),
            expires_date=_opt_time(obj, "expires_date"),
            grace_period_expires_date=_opt_time(obj, "grace_period_expires_date"),
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    """A v1 subscription, keyed by product id in :attr:`Subscriber.subscriptions`."""

    product_id: str
    store: str | None
    period_type: str | None
    purchase_date: datetime | None
    original_purchase_date: datetime | None
    expires_date: datetime | None
    is_sandbox: bool | None
    ownership_type: str | None = None
    store_transaction_id: str | None = None
    unsubscribe_detected_at: datetime | None = None
    billing_issues_detected_at: datetime | None = None
    grace_period_expires_date: datetime | None = None
    refunded_at: datetime | None = None
    auto_resume_date: datetime | None = None

    @classmethod
    def from_json(cls, product_id: str, data: object) -> Subscription:
        obj = _obj(data, f"subscription {product_id!r}")
        return cls(
            product_id=product_id,
            store=_opt_str(obj, "store"),
            period_type=_opt_str(obj, "period_type"),
            purchase_date=_opt_time(obj, "purchase_date"),
            original_purchase_date=_opt_time(obj, "original_purchase_date"),
            expires_date=_opt_time(obj, "expires_date"),
            is_sandbox=_opt_bool(obj, "is_sandbox"),
            ownership_type=_opt_str(obj, "ownership_type"),
            store_transaction_id=_opt_str(obj, "store_transaction_id"),
            unsubscribe_detected_at=_opt_time(obj, "unsubscribe_detected_at"),
            billing_issues_detected_at=_opt_time(obj, "billing_issues_detected_at"),
            grace_period_expires_date=_opt_time(obj, "grace_period_expires_date"),
            refunded_at=_opt_time(obj, "refunded_at"),
            auto_resume_date=_opt_time(obj, "auto_resume_date"),
        )


@dataclass(frozen=True, slots=True)
class NonSubscription:
    """A one-time purchase listed under :attr:`Subscriber.non_subscriptions`."""

    id: str
    store: str | None
    purchase_date: datetime | None
    is_sandbox: bool | None

    @classmethod
    def from_json(cls, data: object) -> NonSubscription:
        obj = _obj(data, "non-subscription purchase")
        return cls(
            id=_str(obj, "id"),
            store=_opt_str(obj, "store"),
            purchase_date=_opt_time(obj, "purchase_date"),
            is_sandbox=_opt_bool(obj, "is_sandbox"),
        )


@dataclass(frozen=True, slots=True)
class Subscriber:
    """The v1 Customer Info (``GET /v1/subscribers/{app_user_id}``).

    ``attributes`` is filled only for secret-key requests (reference §2.1).  ``created`` is
    true when RevenueCat created the customer on this read (status 201).
    """

    original_app_user_id: str
    first_seen: datetime | None
    last_seen: datetime | None
    management_url: str | None
    entitlements: Mapping[str, Entitlement]
    subscriptions: Mapping[str, Subscription]
    non_subscriptions: Mapping[str, tuple[NonSubscription, ...]]
    attributes: Mapping[str, SubscriberAttribute]
    request_date_ms: int | None = None
    created: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: object, *, created: bool = False) -> Subscriber:
        envelope = _obj(data, "response")
        obj = _obj(envelope.get("subscriber"), "'subscriber'")
        request_date_ms = envelope.get("request_date_ms")
        purchases = _obj(obj.get("non_subscriptions") or {}, "'non_subscriptions'")
        for product, items in purchases.items():
            if not isinstance(items, list):
                raise ValueError(f"non_subscriptions[{product!r}] is not a list")
        return cls(
            original_app_user_id=_str(obj, "original_app_user_id"),
            first_seen=_opt_time(obj, "first_seen"),
            last_seen=_opt_time(obj, "last_seen"),
            management_url=_opt_str(obj, "management_url"),
            entitlements={
                k: Entitlement.from_json(k, v)
                for k, v in _obj(obj.get("entitlements") or {}, "'entitlements'").items()
            },
            subscriptions={
                k: Subscription.from_json(k, v)
                for k, v in _obj(obj.get("subscriptions") or {}, "'subscriptions'").items()
            },
            non_subscriptions={
                k: tuple(NonSubscription.from_json(item) for item in v)
                for k, v in purchases.items()
            },
            attributes={
                k: SubscriberAttribute.from_json(k, v)
                for k, v in _obj(
                    obj.get("subscriber_attributes") or {}, "'subscriber_attributes'"
                ).items()
            },
            request_date_ms=request_date_ms if isinstance(request_date_ms, int) else None,
            created=created,
            raw=envelope,
        )


@dataclass(frozen=True, slots=True)
class CustomerAttribute:
    """One v2 customer attribute (``object: customer.attribute``)."""

    name: str
    value: str | None
    updated_at_ms: int

    @classmethod
    def from_json(cls, data: object) -> CustomerAttribute:
        obj = _obj(data, "customer attribute")
        return cls(
            name=_str(obj, "name"),
            value=_opt_str(obj, "value"),
            updated_at_ms=_int(obj, "updated_at"),
        )


def parse_attribute_page(data: object) -> tuple[list[CustomerAttribute], str | None]:
    """Read one v2 ``list`` object: its items and the ``next_page`` path, if any."""
    obj = _obj(data, "response")
    items = obj.get("items")
    if not isinstance(items, list):
        raise ValueError("'items' is not a list")
    return [CustomerAttribute.from_json(item) for item in items], _opt_str(obj, "next_page")
