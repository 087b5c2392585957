"""Customer attribute rules: which keys exist, what values they take, and who wins a conflict.

Facts (revenuecat.md sections 1.2, 1.4, 1.5; api-v2.yaml ``CustomerAttribute*``):

* custom keys match ``^[a-zA-Z][a-zA-Z0-9_-]*$`` and are at most 40 characters; ``$`` keys are
  reserved and only the known ones are accepted;
* values are strings of at most 500 characters; ``null`` or ``""`` deletes;
* at most 50 custom attributes per customer (reserved keys do not count: the docs phrase the
  limit for custom attributes; UNCONFIRMED for reserved ones);
* an update applies only if its ``updated_at_ms`` is newer than the stored one (deletes too,
  which is why deletions leave a tombstone);
* device identifiers and attribution keys cannot be changed once set.  Whether RevenueCat
  rejects or silently ignores such a change is UNCONFIRMED; the mock ignores it silently,
  because the SDKs re-send these keys on every sync and RevenueCat does not answer 400 to them.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from mockserver.revenuecat.errors import ParameterError

__all__ = [
    "CUSTOM_KEY_PATTERN",
    "MAX_CUSTOM_ATTRIBUTES",
    "MAX_KEY_LENGTH",
    "MAX_VALUE_LENGTH",
    "RESERVED_KEYS",
    "WRITE_ONCE_KEYS",
    "Attribute",
    "AttributeStore",
    "key_error",
    "parse_v2_attributes",
    "value_error",
]

MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = 500
MAX_CUSTOM_ATTRIBUTES = 50
MAX_TOMBSTONES = 200  # deleted keys remembered per customer for the newer-wins rule
CUSTOM_KEY_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*$")
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# The union of the docs list, the v2 enum and the SDK constants (revenuecat.md section 1.5).
RESERVED_KEYS: frozenset[str] = frozenset(
    {
        "$ad", "$adGroup", "$adjustId", "$airbridgeDeviceId", "$airshipChannelId",
        "$amazonAdId", "$amplitudeDeviceId", "$amplitudeUserId", "$androidId",
        "$apnsTokens", "$appleAdsAdGroupId", "$appleAdsCampaignId", "$appleAdsKeywordId",
        "$appleRefundHandlingPreference", "$appsflyerId", "$appsflyerSharingFilter",
        "$appstackId", "$attConsentStatus", "$branchId", "$brazeAliasLabel", "$brazeAliasName",
        "$campaign", "$clevertapId", "$creative", "$customerioId", "$deviceVersion",
        "$displayName", "$email", "$fbAnonId", "$fcmTokens", "$firebaseAppInstanceId",
        "$gpsAdId", "$idfa", "$idfv", "$ip", "$iterableCampaignId", "$iterableTemplateId",
        "$iterableUserId", "$keyword", "$kochavaDeviceId", "$mediaSource",
        "$mixpanelDistinctId", "$mparticleId", "$onesignalId", "$onesignalUserId",
        "$phoneNumber", "$posthogUserId", "$segmentId", "$solarEngineAccountId",
        "$solarEngineDistinctId", "$solarEngineVisitorId", "$telemetryDeckAppId",
        "$telemetryDeckUserId", "$tenjinId",
        # RevenueCat's CleverTap page tells Android users to set "$cleverTapId" (capital T) with
        # setAttributes (revenuecat.md section 0.1); rejecting it would break those apps.
        "$cleverTapId",
    }
)  # fmt: skip

# "can't be changed once set" (revenuecat.md section 1.4)
WRITE_ONCE_KEYS: frozenset[str] = frozenset(
    {"$idfa", "$idfv", "$gpsAdId", "$ip", "$mediaSource", "$campaign", "$adGroup", "$ad",
     "$keyword", "$creative"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Attribute:
    """One stored attribute, as RevenueCat returns it: the value and when it was set."""

    value: str
    updated_at_ms: int

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "updated_at_ms": self.updated_at_ms}


def is_custom(key: str) -> bool:
    return not key.startswith("$") and key not in RESERVED_KEYS


def key_error(key: str) -> str | None:
    """Why ``key`` cannot be an attribute name, or ``None`` when it can."""
    if not key:
        return "Key name format is not valid."
    if len(key) > MAX_KEY_LENGTH:
        return "Key name is too long."
    if key in RESERVED_KEYS:
        return None
    if key.startswith("$"):
        return "Key name is reserved and not a known attribute."
    if not CUSTOM_KEY_PATTERN.match(key):
        return "Key name format is not valid."
    return None


def value_error(key: str, value: object) -> str | None:
    """Why ``value`` cannot be stored under ``key`` (``None``/``""`` are valid: they delete)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "Value must be a string or null."
    if len(value) > MAX_VALUE_LENGTH:
        return "Value is too long."
    if key == "$email" and value and not _EMAIL_PATTERN.match(value):
        return "Value is not a valid email address."
    return None


class AttributeStore:
    """One customer's attributes with RevenueCat's write rules.

    ``set`` returns an error message for a rejected key, ``None`` when the write was applied or
    legitimately ignored (an older ``updated_at_ms``, a write-once key already set).
    """

    def __init__(self) -> None:
        self._values: dict[str, Attribute] = {}
        self._tombstones: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> list[tuple[str, Attribute]]:
        return sorted(self._values.items())

    def get(self, key: str) -> Attribute | None:
        return self._values.get(key)

    def to_json(self) -> dict[str, dict[str, object]]:
        """The ``subscriber_attributes`` map of the v1 API and of webhook events."""
        return {key: attr.to_json() for key, attr in self.items()}

    def custom_count(self) -> int:
        return sum(1 for key in self._values if is_custom(key))

    def set(self, key: str, value: object, updated_at_ms: int) -> str | None:
        """Apply one write; return the per-key error message if the key is rejected."""
        problem = key_error(key) or value_error(key, value)
        if problem is not None:
            return problem
        assert value is None or isinstance(value, str)
        current = self._values.get(key)
        last_write = current.updated_at_ms if current else self._tombstones.get(key)
        if last_write is not None and updated_at_ms <= last_write:
            return None  # newer wins; an older or equal write is ignored, not an error
        if key in WRITE_ONCE_KEYS and current is not None and current.value:
            return None
        if not value:
            self._values.pop(key, None)
            self._tombstones[key] = updated_at_ms
            self._tombstones.move_to_end(key)
            while len(self._tombstones) > MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)
            return None
        if current is None and is_custom(key) and self.custom_count() >= MAX_CUSTOM_ATTRIBUTES:
            return f"Too many custom attributes: the limit is {MAX_CUSTOM_ATTRIBUTES}."
        self._values[key] = Attribute(value, updated_at_ms)
        self._tombstones.pop(key, None)
        return None

    def clear(self) -> None:
        self._values.clear()
        self._tombstones.clear()


def parse_v2_attributes(body: object) -> list[tuple[str, str | None]]:
    """The ``(name, value)`` pairs of a v2 set-attributes body, or ParameterError.

    The body is all-or-nothing (api-v2.yaml ``set-customer-attributes``): an object with only
    ``attributes``, an array of 1 to 50 items of exactly ``name`` and ``value``.
    """
    if not isinstance(body, dict) or set(body) != {"attributes"}:
        raise ParameterError(
            "the body must be an object with only 'attributes'", param="attributes"
        )
    items = body["attributes"]
    if not isinstance(items, list) or not 1 <= len(items) <= 50:
        raise ParameterError("attributes must be an array of 1 to 50 items", param="attributes")
    parsed: list[tuple[str, str | None]] = []
    for index, item in enumerate(items):
        param = f"attributes[{index}]"
        if not isinstance(item, dict) or set(item) != {"name", "value"}:
            raise ParameterError("each attribute needs exactly 'name' and 'value'", param=param)
        name, value = item["name"], item["value"]
        problem = key_error(name) if isinstance(name, str) else "Key name must be a string."
        if problem is not None:
            raise ParameterError(f"invalid attribute name: {problem}", param=f"{param}.name")
        if (problem := value_error(name, value)) is not None:
            raise ParameterError(f"invalid attribute value: {problem}", param=f"{param}.value")
        assert value is None or isinstance(value, str)
        parsed.append((name, value))
    return parsed
