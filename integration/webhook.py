"""Checking a RevenueCat webhook body before it is stored (pure, no I/O).

RevenueCat POSTs ``{"api_version": "1.0", "event": {...}}`` (revenuecat.md §4.1).
:func:`parse_webhook` accepts any event type, including types not invented yet (they are
stored and skipped later with a reason), but refuses bodies the mapping could not read: not
JSON, no ``event`` object, no ``id``, no ``type``, no ``event_timestamp_ms``, or a known field
with the wrong type.  Every refusal is an :class:`InvalidWebhook` with a short ``reason``
that names the field and never echoes values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from integration._exceptions import InvalidWebhook

__all__ = [
    "ENVIRONMENTS",
    "MAX_EVENT_ID_LENGTH",
    "InvalidWebhook",
    "WebhookEnvelope",
    "parse_event",
    "parse_webhook",
]

ENVIRONMENTS = ("PRODUCTION", "SANDBOX")
MAX_EVENT_ID_LENGTH = 256  # RevenueCat's ids are UUIDs; anything this long is not one

# Fields the mapping reads, with the JSON type each must have when present and not null
# (revenuecat.md §4.3).  Other fields are not checked: new fields may appear at any time.
_STRING_FIELDS = (
    "app_id",
    "app_user_id",
    "original_app_user_id",
    "product_id",
    "new_product_id",
    "period_type",
    "store",
    "currency",
    "cancel_reason",
    "expiration_reason",
    "transaction_id",
    "country_code",
    "entitlement_id",
)
_NUMBER_FIELDS = (
    "price",
    "price_in_purchased_currency",
    "tax_percentage",
    "commission_percentage",
)
_INTEGER_FIELDS = (
    "renewal_number",
    "expiration_at_ms",
    "grace_period_expiration_at_ms",
    "auto_resume_at_ms",
)


@dataclass(frozen=True)
class WebhookEnvelope:
    """One checked webhook: the fields the receiver needs, and the event object itself.

    ``environment`` is ``"PRODUCTION"`` or ``"SANDBOX"``.  A few event types carry no
    ``environment`` (TEMPORARY_ENTITLEMENT_GRANT, EXPERIMENT_ENROLLMENT; VIRTUAL_CURRENCY_
    TRANSACTION has ``purchase_environment``): those are filed under PRODUCTION for queueing, and
    :func:`integration.mapping.map_event` never sends an event without an explicit environment.
    """

    event_id: str
    event_type: str
    environment: str
    event: dict[str, Any]
    # True when orjson's reading of the body is the one kept (no fallback to the standard
    # library): ``orjson.loads(body)["event"]`` then gives this same event again, unchecked.
    # How the body was read, not what it holds: left out of comparisons.
    fast: bool = field(default=False, compare=False)

    def text(self, key: str) -> str | None:
        """The event's field ``key`` when it is a string, else ``None`` (the outbox's lookup
        columns: ``app_user_id``, ``transaction_id``)."""
        value = self.event.get(key)
        return value if isinstance(value, str) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf, which no JSON encoder can write back
        raise ValueError("number out of range")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Inexact(Exception):
    """orjson may have read this body differently from :func:`json.loads` (see ``_LOSSY``)."""


# orjson reads an integer outside [-2**63, 2**64) as a float, where the standard library keeps
# it exact.  A float this large where the mapping reads a value may be such an integer, so the
# body is read again by the standard library (rare: RevenueCat sends no such numbers).
_LOSSY = float(2**63)


# The exact types a JSON parser gives that each group of fields accepts (null included).
_STRING_TYPES = frozenset({str, type(None)})
_INTEGER_TYPES = frozenset({int, type(None)})
_ONLY_STRINGS = frozenset({str})


def _check_fields(event: dict[str, Any], exact: bool) -> None:
    """Raise :class:`InvalidWebhook` for a known field of the wrong type.

    With ``exact`` false (the document came from orjson), raise :class:`_Inexact` instead
    wherever a float may have been an integer the standard library would have kept exact.
    """
    get = event.get
    # The common case, all fields fine, checked a group at a time without a Python-level loop
    # (this runs for every webhook received and every event delivered); any doubt falls
    # through to the field-by-field checks below, which name the field at fault.
    if (
        _STRING_TYPES.issuperset(map(type, map(get, _STRING_FIELDS)))
        and _INTEGER_TYPES.issuperset(map(type, map(get, _INTEGER_FIELDS)))
        and _numbers_fine(list(map(get, _NUMBER_FIELDS)), exact)
    ):
        _check_collections(event, exact)
        return
    for name in _STRING_FIELDS:
        value = get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidWebhook(f"event.{name} must be a string")
    for name in _NUMBER_FIELDS:
        value = get(name)
        if value is None:
            continue
        kind = type(value)
        if kind is float:
            if not exact and abs(value) >= _LOSSY:
                raise _Inexact
        elif kind is not int and not _is_number(value):
            raise InvalidWebhook(f"event.{name} must be a number")
    for name in _INTEGER_FIELDS:
        value = get(name)
        if value is not None and type(value) is not int and not _is_int(value):
            if not exact and type(value) is float:
                raise _Inexact
            raise InvalidWebhook(f"event.{name} must be an integer")
    _check_collections(event, exact)


def _numbers_fine(values: list[Any], exact: bool) -> bool:
    for value in values:
        kind = type(value)
        if kind is float:
            if not exact and abs(value) >= _LOSSY:
                return False
        elif kind is not int and value is not None:
            return False
    return True


def _check_collections(event: dict[str, Any], exact: bool) -> None:
    get = event.get
    trial_conversion = get("is_trial_conversion")
    if trial_conversion is not None and not isinstance(trial_conversion, bool):
        raise InvalidWebhook("event.is_trial_conversion must be true or false")
    entitlements = get("entitlement_ids")
    if entitlements is not None and not (
        isinstance(entitlements, list)
        and (
            _ONLY_STRINGS.issuperset(map(type, entitlements))
            or all(isinstance(e, str) for e in entitlements)
        )
    ):
        raise InvalidWebhook("event.entitlement_ids must be a list of strings")
    attributes = get("subscriber_attributes")
    if attributes is None:
        return
    if not isinstance(attributes, dict):
        raise InvalidWebhook("event.subscriber_attributes must be an object")
    for key, entry in attributes.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or isinstance(value, (dict, list)):
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise InvalidWebhook(
                f"event.subscriber_attributes[{shown!r}] must be an object with a scalar value"
            )
        if not exact and type(value) is float and abs(value) >= _LOSSY:
            raise _Inexact


def _environment(event: dict[str, Any]) -> str:
    for name in ("environment", "purchase_environment"):
        value = event.get(name)
        if value is None:
            continue
        if value not in ENVIRONMENTS:
            raise InvalidWebhook(f"event.{name} must be PRODUCTION or SANDBOX")
        return str(value)
    return "PRODUCTION"


def _checked(document: Any, exact: bool) -> tuple[str, str, str, dict[str, Any]]:
    """``(event_id, event_type, environment, event)`` of a checked document."""
    if not isinstance(document, dict):
        raise InvalidWebhook("body is not a JSON object")
    event = document.get("event")
    if not isinstance(event, dict):
        raise InvalidWebhook("event missing or not an object")
    event_id = event.get("id")
    # "not x or x.isspace()" is "not x.strip()" without the copy.
    if not isinstance(event_id, str) or not event_id or event_id.isspace():
        raise InvalidWebhook("event.id missing or not a non-empty string")
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise InvalidWebhook(f"event.id longer than {MAX_EVENT_ID_LENGTH} characters")
    # A NUL or a lone surrogate cannot be stored as text by SQLite or PostgreSQL; refusing it
    # here keeps one bad body from failing the group commit it would share with good ones.
    # (isprintable() is false for both: surrogates are Unicode category Cs, "other".)
    if not event_id.isprintable():
        raise InvalidWebhook("event.id must be printable text")
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type or event_type.isspace():
        raise InvalidWebhook("event.type missing or not a non-empty string")
    timestamp = event.get("event_timestamp_ms")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        if not exact and type(timestamp) is float:
            raise _Inexact
        raise InvalidWebhook("event.event_timestamp_ms missing or not an integer")
    if timestamp < 1000:
        raise InvalidWebhook("event.event_timestamp_ms must be a positive epoch in milliseconds")
    environment = _environment(event)
    _check_fields(event, exact)
    return event_id, event_type, environment, event


def _standard_parse(body: bytes) -> Any:
    """The body as the standard library reads it (exact integers, UTF-16 and BOMs accepted)."""
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise InvalidWebhook("body is not UTF-8 JSON") from None
    except ValueError:
        raise InvalidWebhook("body is not JSON") from None
    except RecursionError:
        raise InvalidWebhook("body is nested too deeply") from None


def _has_surrogate(document: Any) -> bool:
    """Whether any string (key or value) holds an unpaired surrogate; iterative, any depth."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:  # only a surrogate stops strict UTF-8
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_webhook(body: bytes) -> WebhookEnvelope:
    """Check a webhook body and return its envelope, or raise :class:`InvalidWebhook`.

    orjson reads the body (about four times faster than :func:`json.loads`, and this runs for
    every webhook received and again for every event delivered).  What orjson refuses, or may
    have read inexactly, is read again by the standard library, so the contract is the
    standard library's: the same bodies are accepted, with the same values, and refusals keep
    their reasons.  One exception: a string holding an unpaired surrogate (``"\\ud800"``,
    which :func:`json.loads` accepts) is refused, since no UTF-8 encoder can write it back.
    """
    checked, fast = _parse(body)
    return WebhookEnvelope(*checked, fast=fast)


def parse_event(body: bytes) -> dict[str, Any]:
    """The event object of a webhook body, checked as :func:`parse_webhook` checks it.

    For the dispatcher, which maps stored bodies and needs nothing else of the envelope.
    """
    return _parse(body)[0][3]


def _parse(body: bytes) -> tuple[tuple[str, str, str, dict[str, Any]], bool]:
    """The checked fields, and whether orjson's reading was kept (see ``WebhookEnvelope``)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        try:
            return _checked(document, exact=False), True
        except _Inexact:
            return _checked(_standard_parse(body), exact=True), False
    return _parse_standard(body), False


def _parse_standard(body: bytes) -> tuple[str, str, str, dict[str, Any]]:
    # orjson refused: not JSON at all (the standard library says why), or JSON orjson does not
    # take (UTF-16, a byte order mark, integers past 64 bits, unpaired surrogates).
    document = _standard_parse(body)
    checked = _checked(document, exact=True)
    if _has_surrogate(document):
        raise InvalidWebhook("body holds an unpaired surrogate, which is not valid text")
    return checked
