"""Optional records beside each event, both off by default (``[extras]`` in the configuration).

- A **profile record** carrying the subscription state, which RevenueCat sends to Braze and
  Amplitude but not to CleverTap (revenuecat.md §5.5): ``rc_subscription_status`` (Amplitude's
  values: ``trial``, ``intro``, ``active``, ``promotional``, ``cancelled``, ``cancelled_trial``,
  ``grace_period``, ``grace_period_trial``, ``expired``, ``expired_promotional``, ``paused``),
  ``rc_active_entitlements`` (comma-joined, empty once expired or paused), ``rc_product_id``
  and ``rc_expiration_at`` as a CleverTap date ``"$D_<epoch seconds>"`` (clevertap.md §1.3).
  Product changes and non-subscription purchases say nothing about the subscription's state,
  so they get no profile record.
- A **Charged event**, CleverTap's native purchase event (clevertap.md §1.4), beside each revenue
  event with a positive amount: ``Amount``, ``Currency``, ``Charged ID`` (the store's
  transaction id, else RevenueCat's event id) and ``Items``, a list with one flat object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integration.revenue import Revenue

__all__ = ["CHARGED_EVENT_NAME", "charged_record", "profile_record", "subscription_status"]

CHARGED_EVENT_NAME = "Charged"
_MAX_VALUE_BYTES = 512  # CleverTap's value limit (clevertap.md §1.3, §2)


def text_field(event: Mapping[str, Any], name: str) -> str | None:
    """``event[name]`` if it is a string with something besides whitespace, else ``None``."""
    value = event.get(name)
    # "not isspace()" on a non-empty string is "strip() leaves something", without the copy.
    return value if isinstance(value, str) and value and not value.isspace() else None


def _clip(text: str) -> str:
    # Cut on a character boundary: a split multi-byte character is dropped, not mangled.
    return text.encode()[:_MAX_VALUE_BYTES].decode("utf-8", "ignore")


def _clipped_text(event: Mapping[str, Any], name: str) -> str | None:
    value = text_field(event, name)
    return None if value is None else _clip(value)


def subscription_status(event: Mapping[str, Any], integration_event: str) -> str | None:
    """The subscription state after ``event``, or ``None`` when the event does not tell."""
    period = event.get("period_type")
    if integration_event == "trial_started":
        return "trial"
    if integration_event in ("initial_purchase", "trial_converted", "renewal", "uncancellation"):
        return {"TRIAL": "trial", "INTRO": "intro", "PROMOTIONAL": "promotional"}.get(
            str(period), "active"
        )
    if integration_event == "trial_cancelled":
        return "cancelled_trial"
    if integration_event == "cancellation":
        return "cancelled"
    if integration_event == "billing_issue":
        return "grace_period_trial" if period == "TRIAL" else "grace_period"
    if integration_event == "subscription_paused":
        return "paused"
    if integration_event == "expiration":
        if event.get("expiration_reason") == "SUBSCRIPTION_PAUSED":
            return "paused"
        return "expired_promotional" if period == "PROMOTIONAL" else "expired"
    return None


def profile_record(
    event: Mapping[str, Any], integration_event: str, id_key: str, id_value: str, ts: int
) -> dict[str, Any] | None:
    """A ``type: profile`` record with the subscription state, or ``None`` (see module doc)."""
    status = subscription_status(event, integration_event)
    if status is None:
        return None
    entitlements = event.get("entitlement_ids")
    active = ""
    if status not in ("expired", "expired_promotional", "paused") and isinstance(
        entitlements, list
    ):
        active = ",".join(str(e) for e in entitlements)
    data: dict[str, Any] = {
        "rc_subscription_status": status,
        "rc_active_entitlements": _clip(active),
    }
    product_id = _clipped_text(event, "product_id")
    if product_id is not None:
        data["rc_product_id"] = product_id
    expiration_ms = event.get("expiration_at_ms")
    if isinstance(expiration_ms, int) and not isinstance(expiration_ms, bool):
        data["rc_expiration_at"] = f"$D_{expiration_ms // 1000}"
    return {"type": "profile", id_key: id_value, "ts": ts, "profileData": data}


def charged_record(
    event: Mapping[str, Any], revenue: Revenue, id_key: str, id_value: str, ts: int
) -> dict[str, Any] | None:
    """A ``Charged`` event for a positive amount, or ``None``."""
    if revenue.amount <= 0:
        return None
    item: dict[str, Any] = {"quantity": 1}
    for name in ("product_id", "store", "period_type"):
        value = _clipped_text(event, name)
        if value is not None:
            item[name] = value
    data: dict[str, Any] = {"Amount": float(revenue.amount)}
    if revenue.currency is not None:
        data["Currency"] = revenue.currency
    charged_id = _clipped_text(event, "transaction_id") or _clipped_text(event, "id")
    if charged_id is not None:
        data["Charged ID"] = charged_id
    data["Items"] = [item]
    return {
        "type": "event",
        "evtName": CHARGED_EVENT_NAME,
        id_key: id_value,
        "ts": ts,
        "evtData": data,
    }
