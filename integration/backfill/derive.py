"""Deriving webhook-shaped events from export rows (pure, no I/O).

RevenueCat documents no mapping from transactions to events; this follows the derivation in
revenuecat-exports.md ("Deriving webhook-equivalent events"), one row standing for up to four
events, each a RevenueCat-shaped event object with the fields a webhook carries
(revenuecat.md §4.3) taken from the row's columns::

    kind           webhook type                        when                        event time
    purchase       INITIAL_PURCHASE (TRIAL period     renewal_number == 1         start_time
                   when the row is a trial)
                   RENEWAL (+ is_trial_conversion)    renewal_number > 1, or a    start_time
                                                      trial conversion
                   NON_RENEWING_PURCHASE              not auto-renewable          start_time
    unsubscribe    CANCELLATION (UNSUBSCRIBE)         unsubscribe_detected_at     that time
    refund         CANCELLATION (CUSTOMER_SUPPORT,    refunded_at                 that time
                   negative prices, as RevenueCat's
                   refund webhooks have them)
    billing_issue  BILLING_ISSUE                      billing_issues_detected_at  that time
    billing_       CANCELLATION (BILLING_ERROR),      the same, unless the row    that time
    cancellation   sent with it (revenuecat.md §4.3,  records an unsubscribe
                   event flows)
    expiration     EXPIRATION                         the last row of a period    effective_end_time
                                                      of access that ended        (or end_time)
                                                      before now (run.py)

Not derived (the export does not record them): UNCANCELLATION, PRODUCT_CHANGE,
SUBSCRIPTION_PAUSED, TRANSFER, and unsubscribes undone and made again (a row keeps only its
latest ``unsubscribe_detected_at``).  An EXPIRATION's reason comes from what the row recorded:
a refund (CUSTOMER_SUPPORT), a billing issue (BILLING_ERROR), a pause (``auto_resume_time``:
SUBSCRIPTION_PAUSED), an unsubscribe (UNSUBSCRIBE), else UNKNOWN.

Prices are gross (``purchase_price_*``, which stay set after a refund; ``price_*`` in v3 exports,
which have no gross columns), so the forwarder's revenue modes apply unchanged; events without
revenue carry ``0.0`` as RevenueCat's do.  Identity: the app user id is the last seen alias (the
webhook's ``app_user_id``), and ``$clevertapId`` rides in ``subscriber_attributes`` from
``reserved_subscriber_attributes``, where the mapping reads it first.

Each event's id is a UUID (version 5) of the store, the transaction id and the kind, so a
re-import, or an incremental export repeating a row, derives the same ids, and only a kind that
is new (a refund detected later) is a new event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "KINDS",
    "DerivedEvent",
    "derive",
    "event_id",
]

#: The derived kinds, in the order one row's events are derived.
KINDS = (
    "purchase", "unsubscribe", "refund", "billing_issue", "billing_cancellation", "expiration",
)  # fmt: skip

# The namespace of backfill event ids (uuid5 of "rc-clevertap backfill" in NAMESPACE_URL).
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/rc-clevertap/backfill")


def event_id(store: str, transaction_id: str, kind: str) -> str:
    """The deterministic id of the ``kind`` event of one store transaction."""
    return str(uuid.uuid5(_NAMESPACE, f"{store.upper()}\x1f{transaction_id}\x1f{kind}"))


@dataclass(frozen=True, slots=True)
class DerivedEvent:
    """One event derived from an export row, ready to enqueue.

    ``event`` is the event object of a RevenueCat webhook body; :meth:`body` wraps it as one.
    """

    kind: str
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["id"])

    @property
    def event_type(self) -> str:
        return str(self.event["type"])

    @property
    def environment(self) -> str:
        return str(self.event["environment"])

    @property
    def timestamp_ms(self) -> int:
        return int(self.event["event_timestamp_ms"])

    @property
    def transaction_id(self) -> str:
        return str(self.event["transaction_id"])

    @property
    def app_user_id(self) -> str:
        return str(self.event["app_user_id"])

    def body(self) -> bytes:
        """The webhook body RevenueCat would have POSTed."""
        return orjson.dumps({"api_version": "1.0", "event": self.event})


def _period_type(row: Mapping[str, Any]) -> str:
    if row.get("is_trial_period"):
        return "TRIAL"
    if row.get("is_in_intro_offer_period"):
        return "INTRO"
    if str(row["store"]).lower() == "promotional":
        return "PROMOTIONAL"
    return "NORMAL"


def _attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """Reserved and custom attributes in one map, as webhooks carry them (reserved win)."""
    merged: dict[str, Any] = {}
    for column in ("custom_subscriber_attributes", "reserved_subscriber_attributes"):
        attributes = row.get(column)
        if not isinstance(attributes, dict):
            continue
        for key, entry in attributes.items():
            if isinstance(entry, dict):
                value = entry.get("value")
                if isinstance(value, dict | list):
                    continue  # webhooks carry scalars only (the parser refuses others)
                merged[key] = entry
            elif not isinstance(entry, list):
                merged[key] = {"value": entry}  # a bare value: the shape webhooks use
    return merged


def _gross(row: Mapping[str, Any], gross: str, net: str) -> float | None:
    value = row.get(gross)
    if value is None:
        value = row.get(net)
    return None if value is None else float(value)


def _base(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every event of this row shares."""
    original = str(row["rc_original_app_user_id"])
    last_seen = row.get("rc_last_seen_app_user_id_alias") or original
    aliases = [original] if last_seen == original else [original, last_seen]
    entitlements = row.get("entitlement_identifiers")
    event: dict[str, Any] = {
        "app_user_id": last_seen,
        "original_app_user_id": original,
        "aliases": aliases,
        "product_id": row["product_identifier"],
        "period_type": _period_type(row),
        "purchased_at_ms": row["start_time"],
        "expiration_at_ms": row.get("end_time") if row.get("is_auto_renewable") else None,
        "environment": "SANDBOX" if row["is_sandbox"] else "PRODUCTION",
        "entitlement_id": None,
        "entitlement_ids": list(entitlements) if entitlements else None,
        "presented_offering_id": row.get("presented_offering"),
        "transaction_id": row["store_transaction_id"],
        "original_transaction_id": row["original_store_transaction_id"],
        "is_family_share": row.get("ownership_type") == "FAMILY_SHARED",
        "country_code": row.get("country"),
        "currency": row.get("purchased_currency"),
        "tax_percentage": row.get("tax_percentage"),
        "commission_percentage": row.get("commission_percentage"),
        "store": str(row["store"]).upper(),
        "renewal_number": row["renewal_number"],
        "subscriber_attributes": _attributes(row),
    }
    takehome = row.get("takehome_percentage")
    if takehome is not None:
        event["takehome_percentage"] = takehome
    return event


def _event(
    row: Mapping[str, Any],
    base: dict[str, Any],
    kind: str,
    event_type: str,
    timestamp_ms: int,
    prices: tuple[float | None, float | None],
    **fields: Any,
) -> DerivedEvent:
    event = dict(base)
    event["type"] = event_type
    event["id"] = event_id(str(row["store"]), str(row["store_transaction_id"]), kind)
    event["event_timestamp_ms"] = timestamp_ms
    event["price"], event["price_in_purchased_currency"] = prices
    event.update(fields)
    return DerivedEvent(kind, event)


def _negative(value: float | None) -> float | None:
    return None if value is None else -abs(value)


def derive(row: Mapping[str, Any], *, expired: bool = False) -> list[DerivedEvent]:
    """The events one parsed row stands for (see the module docstring), in :data:`KINDS`
    order; ``expired`` adds its EXPIRATION (the caller knows whether it is the last row of a
    period of access that ended before now: see integration/backfill/run.py)."""
    base = _base(row)
    usd = _gross(row, "purchase_price_in_usd", "price_in_usd")
    local = _gross(row, "purchase_price_in_purchased_currency", "price_in_purchased_currency")
    no_revenue = (0.0, 0.0)
    start = int(row["start_time"])
    events: list[DerivedEvent] = []
    renewal_number = int(row["renewal_number"])
    if not row["is_auto_renewable"]:
        events.append(_event(row, base, "purchase", "NON_RENEWING_PURCHASE", start, (usd, local)))
    elif row.get("is_trial_conversion") or renewal_number > 1:
        events.append(
            _event(
                row, base, "purchase", "RENEWAL", start, (usd, local),
                is_trial_conversion=bool(row.get("is_trial_conversion")),
            )
        )  # fmt: skip
    else:
        prices = no_revenue if row["is_trial_period"] else (usd, local)
        events.append(_event(row, base, "purchase", "INITIAL_PURCHASE", start, prices))
    unsubscribed = row.get("unsubscribe_detected_at")
    if unsubscribed is not None and row["is_auto_renewable"]:
        events.append(
            _event(
                row, base, "unsubscribe", "CANCELLATION", unsubscribed, no_revenue,
                cancel_reason="UNSUBSCRIBE",
            )
        )  # fmt: skip
    refunded = row.get("refunded_at")
    if refunded is not None:
        events.append(
            _event(
                row, base, "refund", "CANCELLATION", refunded,
                (_negative(usd), _negative(local)), cancel_reason="CUSTOMER_SUPPORT",
            )
        )  # fmt: skip
    billing = row.get("billing_issues_detected_at")
    if billing is not None:
        events.append(
            _event(
                row, base, "billing_issue", "BILLING_ISSUE", billing, no_revenue,
                grace_period_expiration_at_ms=row.get("grace_period_end_time"),
            )
        )  # fmt: skip
        if unsubscribed is None and row["is_auto_renewable"]:
            events.append(
                _event(
                    row, base, "billing_cancellation", "CANCELLATION", billing, no_revenue,
                    cancel_reason="BILLING_ERROR",
                )
            )  # fmt: skip
    if expired:
        end = ending(row)
        if end is not None:
            events.append(
                _event(
                    row, base, "expiration", "EXPIRATION", end, no_revenue,
                    expiration_reason=_expiration_reason(row),
                )
            )  # fmt: skip
    return events


def ending(row: Mapping[str, Any]) -> int | None:
    """When the row's access ends: ``effective_end_time``, else ``end_time``; ``None`` for a
    non-renewing purchase."""
    if not row["is_auto_renewable"]:
        return None
    end = row.get("effective_end_time")
    if end is None:
        end = row.get("end_time")
    return None if end is None else int(end)


def _expiration_reason(row: Mapping[str, Any]) -> str:
    if row.get("refunded_at") is not None:
        return "CUSTOMER_SUPPORT"
    if row.get("billing_issues_detected_at") is not None:
        return "BILLING_ERROR"
    if row.get("auto_resume_time") is not None:
        return "SUBSCRIPTION_PAUSED"
    if row.get("unsubscribe_detected_at") is not None:
        return "UNSUBSCRIBE"
    return "UNKNOWN"
