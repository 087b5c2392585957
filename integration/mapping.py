"""Mapping one RevenueCat event to CleverTap Upload API records (pure, no I/O).

The flow of :func:`map_event`, each step either continuing or ending in :class:`Skipped`::

    type --classify--> integration event --name--> "" ? skipped (disabled by configuration)
         (TRANSFER, TEST, ... skipped)                |
                                                      v
    store (not in [events.stores] for the event: skipped) --> environment (SANDBOX without
    a sandbox account: skipped) --> identity (none, or anonymous under skip: skipped)
                                                      |
                                                      v
    Mapped(records = [event record, profile record?, Charged record?])

The identity, by ``[identity]``: a usable ``$clevertapId`` as ``objectId`` or ``identity``
(``clevertap_id_as``; ``none`` ignores it), else ``identity`` = the ``fallback`` id; when that
id is anonymous (:data:`ANONYMOUS_PREFIX`), ``anonymous`` sends it, prefers the first
non-anonymous id in ``aliases`` (``alias``) or skips the event (``skip``).

Classification follows RevenueCat's integrations (revenuecat.md §5.2); names default to
RevenueCat's (``EventNames``).  The event record is
``{"type": "event", "evtName", "ts": event_timestamp_ms // 1000, "evtData", objectId|identity}``.

``evtData`` is built in priority order and cut at ``extras.max_event_properties`` keys, so the
first groups always survive:

1. core: ``amount``, ``currency``, ``product_id``, ``app_id``, ``is_refund``, the event's own
   field (``cancel_reason``, ``expiration_reason``, ``new_product_id``,
   ``grace_period_expiration_at`` or ``auto_resume_at``, in epoch ms as RevenueCat sends them)
   and ``rc_event_id``;
2. context: ``store``, ``environment``, ``period_type``, ``transaction_id``,
   ``entitlement_ids`` (comma-joined), ``country_code``, ``renewal_number``;
3. subscriber attributes (all, or those in ``extras.attribute_allowlist``), flattened to
   ``key: value`` in key order; an attribute whose key is already taken by 1. or 2. is
   dropped, as is one whose value is null.

Keys are clipped to 120 characters and string values to 512 UTF-8 bytes, CleverTap's limits
(clevertap.md §1.3); values are scalars.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from integration.config import STORES, Config, ExtrasConfig, IdentityConfig
from integration.extras import charged_record, profile_record, text_field
from integration.revenue import Revenue, compute_revenue
from integration.webhook import parse_webhook

__all__ = [
    "ANONYMOUS_PREFIX",
    "CLEVERTAP_ID_KEYS",
    "CONTEXT_KEYS",
    "CORE_KEYS",
    "KNOWN_EVENT_TYPES",
    "MAX_KEY_CHARS",
    "MAX_VALUE_BYTES",
    "SKIP_CODES",
    "Mapped",
    "Skipped",
    "classify",
    "map_event",
    "preview",
    "record_key",
]

MAX_KEY_CHARS = 120  # CleverTap: event property key length (clevertap.md §1.3)
MAX_VALUE_BYTES = 512  # CleverTap: event property value length

# Integration events that carry revenue (revenuecat.md §5.3).
_REVENUE_EVENTS = frozenset(
    {"initial_purchase", "trial_converted", "renewal", "non_subscription_purchase"}
)
_ONE_TO_ONE = {
    "UNCANCELLATION": "uncancellation",
    "NON_RENEWING_PURCHASE": "non_subscription_purchase",
    "EXPIRATION": "expiration",
    "BILLING_ISSUE": "billing_issue",
    "PRODUCT_CHANGE": "product_change",
    "SUBSCRIPTION_PAUSED": "subscription_paused",
}
# The event's own field, per webhook type: (webhook field, evtData key).
_EVENT_FIELDS = {
    "CANCELLATION": ("cancel_reason", "cancel_reason"),
    "EXPIRATION": ("expiration_reason", "expiration_reason"),
    "PRODUCT_CHANGE": ("new_product_id", "new_product_id"),
    "BILLING_ISSUE": ("grace_period_expiration_at_ms", "grace_period_expiration_at"),
    "SUBSCRIPTION_PAUSED": ("auto_resume_at_ms", "auto_resume_at"),
}
_CONTEXT_FIELDS = ("store", "environment", "period_type", "transaction_id")
#: The evtData keys of groups 1 (core) and 2 (context) of the module docstring: what the
#: property budget (integration/budget.py) always keeps; ``budget.context_properties = false``
#: leaves the context keys out.
CORE_KEYS = frozenset(
    {"amount", "currency", "product_id", "app_id", "is_refund", "rc_event_id"}
    | {key for _, key in _EVENT_FIELDS.values()}
)
CONTEXT_KEYS = frozenset({*_CONTEXT_FIELDS, "entitlement_ids", "country_code", "renewal_number"})
# "$clevertapId" is what the SDKs send; RevenueCat's integration page spells it "$cleverTapId"
# (revenuecat.md §0.1): both are read, the SDK spelling first.
CLEVERTAP_ID_KEYS = ("$clevertapId", "$cleverTapId")
# App user ids the SDKs make up before logIn() (revenuecat.md §4.3, peers.md A1).
ANONYMOUS_PREFIX = "$RCAnonymousID:"
_STORES = frozenset(STORES)
# CleverTap IDs are 1-64 characters from this set (https://developer.clevertap.com/docs/set-
# clevertap-id); CleverTap answers 526 for an invalid objectId (clevertap.md §5).  Whether the
# server applies exactly this rule is UNCONFIRMED; a value outside it would be dead-lettered,
# so such an event falls back to ``identity`` = app_user_id instead.
_CLEVERTAP_ID = re.compile(r"[A-Za-z0-9()!:@$_-]{1,64}")
# RevenueCat's documented event types (revenuecat.md §4.2): named in skip reasons as they are.
KNOWN_EVENT_TYPES = frozenset(
    {
        "TEST", "INITIAL_PURCHASE", "RENEWAL", "CANCELLATION", "UNCANCELLATION",
        "NON_RENEWING_PURCHASE", "SUBSCRIPTION_PAUSED", "EXPIRATION", "BILLING_ISSUE",
        "PRODUCT_CHANGE", "TRANSFER", "SUBSCRIPTION_EXTENDED", "TEMPORARY_ENTITLEMENT_GRANT",
        "REFUND_REVERSED", "INVOICE_ISSUANCE", "VIRTUAL_CURRENCY_TRANSACTION",
        "EXPERIMENT_ENROLLMENT", "SUBSCRIBER_ALIAS",
    }
)  # fmt: skip


class Mapped(NamedTuple):
    """Records for one event, ready for ``{"d": [...]}``, and the environment that picks the
    CleverTap account (``config.clevertap.account_for(environment)``).

    A named tuple: delivery makes one per event from its stored form (integration/premap.py);
    0.57 µs to make against 0.80 for the frozen dataclass it was."""

    environment: str
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Skipped:
    """The event is acknowledged but not sent.

    ``reason`` is the sentence stored on the outbox row and shown by ``status``; ``code`` is
    one of :data:`SKIP_CODES`, the only values ``events_skipped_total{reason}`` takes, so the
    metric's label set stays small whatever RevenueCat sends.
    """

    reason: str
    code: str = field(default="other", compare=False)  # tests compare skips by reason


#: Every ``Skipped.code``: the label values of ``events_skipped_total{reason}``.
SKIP_CODES = (
    "not_forwarded",  # a documented RevenueCat type this integration does not send
    "unknown_type",  # a type RevenueCat added after this release
    "disabled",  # turned off in the configuration
    "store_not_forwarded",  # [events.stores]: e.g. a PROMOTIONAL grant's INITIAL_PURCHASE
    "no_environment",
    "sandbox_no_account",
    "no_identity",  # neither the [identity] fallback id nor $clevertapId
    "anonymous_identity",  # an $RCAnonymousID: id under identity.anonymous = "skip"
    "invalid_timestamp",
    "transform",  # the route's [transform] callable returned no records (integration/transform)
    "other",
)


def classify(event: Mapping[str, Any]) -> str | None:
    """The integration event (an :class:`EventNames` field name) for ``event``, or ``None``."""
    kind = event.get("type")
    trial = event.get("period_type") == "TRIAL"
    if kind == "INITIAL_PURCHASE":
        return "trial_started" if trial else "initial_purchase"
    if kind == "RENEWAL":
        return "trial_converted" if event.get("is_trial_conversion") is True else "renewal"
    if kind == "CANCELLATION":
        return "trial_cancelled" if trial else "cancellation"
    return _ONE_TO_ONE.get(kind) if isinstance(kind, str) else None


# A string of at most this many characters fits MAX_VALUE_BYTES in any encoding (UTF-8 takes at
# most 4 bytes a character), so only longer ones are encoded to be measured.
_SHORT_CHARS = MAX_VALUE_BYTES // 4
_NOT_SCALAR = object()  # what _scalar returns for a value evtData cannot hold


def _clip_key(key: str) -> str:
    return key[:MAX_KEY_CHARS]


def _clip_value(value: object) -> object:
    if isinstance(value, str) and len(value) > _SHORT_CHARS:
        # Cut on a character boundary: a split multi-byte character is dropped, not mangled.
        return value.encode()[:MAX_VALUE_BYTES].decode("utf-8", "ignore")
    return value


def _number(amount: Decimal) -> float:
    # The decimal is already rounded; float() of it prints back as the same short text.
    return float(amount)


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def _scalar(value: object) -> object:
    """``value`` as evtData holds it (strings clipped), or :data:`_NOT_SCALAR`.

    The exact built-in types, which is what parsed JSON holds, are tested first: this runs for
    every property of every event delivered.
    """
    kind = type(value)
    if kind is str:
        return value if len(value) <= _SHORT_CHARS else _clip_value(value)  # type: ignore[arg-type]
    if kind is int or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NOT_SCALAR  # type: ignore[arg-type]
    return _clip_value(value) if _is_scalar(value) else _NOT_SCALAR


def _clevertap_id(event: Mapping[str, Any]) -> str | None:
    attributes = event.get("subscriber_attributes")
    if type(attributes) is dict or isinstance(attributes, Mapping):
        for key in CLEVERTAP_ID_KEYS:
            entry = attributes.get(key)
            if entry is None:
                continue
            value = (
                entry.get("value") if type(entry) is dict or isinstance(entry, Mapping) else None
            )
            if isinstance(value, str) and _CLEVERTAP_ID.fullmatch(value.strip()):
                return value.strip()
    return None


def _named_alias(event: Mapping[str, Any]) -> str | None:
    """The first id in the event's ``aliases`` that is not anonymous, or ``None``."""
    aliases = event.get("aliases")
    if isinstance(aliases, list):
        for alias in aliases:
            if isinstance(alias, str) and alias.strip() and not alias.startswith(ANONYMOUS_PREFIX):
                return alias
    return None


def _identity(event: Mapping[str, Any], rules: IdentityConfig) -> tuple[str, str] | Skipped:
    """The record's ``(objectId|identity, id)`` under ``rules``, or why the event has none."""
    if rules.clevertap_id_as != "none" and (clevertap_id := _clevertap_id(event)) is not None:
        return rules.clevertap_id_as, clevertap_id
    user = text_field(event, rules.fallback)
    if user is None:
        also = "" if rules.clevertap_id_as == "none" else " and no $clevertapId"
        return Skipped(f"event has no {rules.fallback}{also}", "no_identity")
    if rules.anonymous == "send" or not user.startswith(ANONYMOUS_PREFIX):
        return "identity", user
    if rules.anonymous == "skip":  # never sent with an anonymous (or empty) id: issue 15
        return Skipped(
            f"event's {rules.fallback} is anonymous and identity.anonymous is skip",
            "anonymous_identity",
        )
    alias = _named_alias(event)  # "alias": none named yet, so the anonymous id, as "send"
    return "identity", user if alias is None else alias


def _fixed_properties(event: Mapping[str, Any], revenue: Revenue) -> dict[str, Any]:
    """The core and context properties in priority order, those the event has, as evtData
    holds them (strings clipped, non-scalars left out).

    Their keys are distinct, short and not blank, so they need no clipping or de-duplication.
    Written out, property by property: this runs for every event delivered, and a function
    call per property was a third of the mapping's time.
    """
    get = event.get
    data: dict[str, Any] = {}
    amount = _number(revenue.amount)
    if math.isfinite(amount):
        data["amount"] = amount
    currency = revenue.currency
    if currency is not None:
        data["currency"] = currency if len(currency) <= _SHORT_CHARS else _clip_value(currency)
    for name in ("product_id", "app_id"):
        value = get(name)
        if isinstance(value, str) and value and not value.isspace():
            data[name] = value if len(value) <= _SHORT_CHARS else _clip_value(value)
    data["is_refund"] = revenue.is_refund
    kind = get("type")
    if isinstance(kind, str) and kind in _EVENT_FIELDS:
        source, target = _EVENT_FIELDS[kind]
        value = get(source)
        if value is not None and (value := _scalar(value)) is not _NOT_SCALAR:
            data[target] = value
    for key, name in _TEXT_FIELDS:
        value = get(name)
        if isinstance(value, str) and value and not value.isspace():
            data[key] = value if len(value) <= _SHORT_CHARS else _clip_value(value)
    entitlements = get("entitlement_ids")
    if isinstance(entitlements, list) and entitlements:
        joined = ",".join(str(e) for e in entitlements)
        data["entitlement_ids"] = joined if len(joined) <= _SHORT_CHARS else _clip_value(joined)
    else:
        value = get("entitlement_id")
        if isinstance(value, str) and value and not value.isspace():
            data["entitlement_ids"] = value if len(value) <= _SHORT_CHARS else _clip_value(value)
    value = get("country_code")
    if isinstance(value, str) and value and not value.isspace():
        data["country_code"] = value if len(value) <= _SHORT_CHARS else _clip_value(value)
    renewal_number = get("renewal_number")
    if isinstance(renewal_number, int) and not isinstance(renewal_number, bool):
        data["renewal_number"] = renewal_number
    return data


# (evtData key, event field) read as text between the event's own field and entitlement_ids.
_TEXT_FIELDS = (("rc_event_id", "id"), *((name, name) for name in _CONTEXT_FIELDS))


def _event_data(
    event: Mapping[str, Any], revenue: Revenue, extras: ExtrasConfig, *, context: bool = True
) -> dict[str, Any]:
    limit = extras.max_event_properties
    data = _fixed_properties(event, revenue)
    if not context:  # budget.context_properties = false: the budget goes to attributes
        for key in CONTEXT_KEYS:
            data.pop(key, None)
    if len(data) > limit:  # a cap below the usual: the first properties in priority order
        return dict(itertools.islice(data.items(), limit))
    if len(data) == limit:
        return data
    return _add_attributes(data, event, extras.attribute_allowlist, limit)


def _add_attributes(
    data: dict[str, Any],
    event: Mapping[str, Any],
    allowlist: tuple[str, ...] | None,
    limit: int,
) -> dict[str, Any]:
    """``data`` with the subscriber attributes added in key order, up to ``limit`` keys: keys
    clipped, null and non-scalar values, blank keys and keys already taken left out."""
    attributes = event.get("subscriber_attributes")
    if not (type(attributes) is dict or isinstance(attributes, Mapping)):
        return data
    for key in sorted(attributes):
        if allowlist is not None and key not in allowlist:
            continue
        entry = attributes[key]
        if not (type(entry) is dict or isinstance(entry, Mapping)):
            continue
        value = entry.get("value")
        if value is None or not isinstance(key, str) or not key:
            continue
        clipped = key if len(key) <= MAX_KEY_CHARS else _clip_key(key)
        if clipped.isspace() or clipped in data:
            continue
        if type(value) is str:
            data[clipped] = value if len(value) <= _SHORT_CHARS else _clip_value(value)
        elif (value := _scalar(value)) is not _NOT_SCALAR:
            data[clipped] = value
        else:
            continue
        if len(data) >= limit:
            return data
    return data


def map_event(event: Mapping[str, Any], config: Config) -> Mapped | Skipped:
    """The CleverTap records for one RevenueCat event, or why it is not sent."""
    kind = event.get("type")
    integration_event = classify(event)
    if integration_event is None:
        if kind in KNOWN_EVENT_TYPES:
            return Skipped(f"event type {kind} is not forwarded to CleverTap", "not_forwarded")
        # Types RevenueCat adds later land here; the name is clipped to keep reasons bounded.
        return Skipped(
            f"unknown event type {str(kind)[:40]!r} is not forwarded to CleverTap", "unknown_type"
        )
    name: str = getattr(config.events, integration_event)
    if not name:
        return Skipped(f"event {integration_event} disabled by configuration", "disabled")
    store = event.get("store")
    # A store this release does not know (RevenueCat adds stores: RC_BILLING, PADDLE) is more
    # likely a new real store than a grant, so it is forwarded, as before [events.stores].
    stores: frozenset[str] = getattr(config.events.stores, integration_event)
    if isinstance(store, str) and store in _STORES and store not in stores:
        reason = f"{integration_event} from store {store} is not forwarded (events.stores)"
        return Skipped(reason, "store_not_forwarded")

    environment = event.get("environment")
    if environment not in ("PRODUCTION", "SANDBOX"):
        return Skipped("event has no environment", "no_environment")
    if environment != "PRODUCTION" and config.clevertap.account_for(environment) is None:
        return Skipped("sandbox event and no sandbox account configured", "sandbox_no_account")

    identity = _identity(event, config.identity)
    if isinstance(identity, Skipped):
        return identity
    timestamp = event.get("event_timestamp_ms")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 1000:
        return Skipped("event has no valid event_timestamp_ms", "invalid_timestamp")

    revenue = compute_revenue(
        event, config.revenue, carries_revenue=integration_event in _REVENUE_EVENTS
    )
    id_key, id_value = identity
    ts = timestamp // 1000
    records: list[dict[str, Any]] = [
        {
            "type": "event",
            "evtName": name,
            "ts": ts,
            id_key: id_value,
            "evtData": _event_data(
                event, revenue, config.extras, context=config.budget.context_properties
            ),
        }
    ]
    if config.extras.profile_records:
        profile = profile_record(event, integration_event, id_key, id_value, ts)
        if profile is not None:
            records.append(profile)
    if config.extras.charged_event and integration_event in _REVENUE_EVENTS:
        charged = charged_record(event, revenue, id_key, id_value, ts)
        if charged is not None:
            records.append(charged)
    return Mapped(environment=str(environment), records=records)


def record_key(record: Mapping[str, Any]) -> str:
    """Which of its event's records ``record`` is: its type and event name (an event maps to
    at most one record of each: the event, the profile, the ``Charged`` event).  The outbox
    keeps the keys CleverTap confirmed while another record of the event is retried, so a
    retry never sends a confirmed record twice (CleverTap documents no deduplication)."""
    return f"{record.get('type')}:{record.get('evtName', '')}"


def preview(body: bytes, config: Config) -> dict[str, Any]:
    """What ``rc-clevertap map`` prints: the upload body for one webhook, or why none.

    Raises :class:`InvalidWebhook` for a body the receiver would refuse.
    """
    envelope = parse_webhook(body)
    result = map_event(envelope.event, config)
    if isinstance(result, Skipped):
        return {"d": [], "skipped": result.reason}
    account = config.clevertap.account_for(result.environment)
    assert account is not None  # map_event skips events without an account
    return {"account_id": account.account_id, "d": result.records}
