"""Properties over generated input: parsing and mapping never crash, and records stay uploadable."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from integration.config import CleverTapConfig, Config, ExtrasConfig, Secret
from integration.mapping import Mapped, Skipped, map_event
from integration.webhook import InvalidWebhook, parse_webhook

CONFIG = Config(
    clevertap=CleverTapConfig(
        account_id="A", passcode=Secret("p"), sandbox_account_id="S", sandbox_passcode=Secret("q")
    ),
    extras=ExtrasConfig(profile_records=True, charged_event=True, max_event_properties=20),
)
TYPES = ["INITIAL_PURCHASE", "RENEWAL", "CANCELLATION", "EXPIRATION", "BILLING_ISSUE", "NEW"]
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=700)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
attribute = st.fixed_dictionaries({"value": json_values, "updated_at_ms": st.integers()})
events = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=10),
        "type": st.sampled_from(TYPES),
        "event_timestamp_ms": st.integers(min_value=-5, max_value=10**15),
        "environment": st.sampled_from(["PRODUCTION", "SANDBOX", None, 3]),
    },
    optional={
        "app_user_id": json_values,
        "period_type": st.sampled_from(["TRIAL", "NORMAL", "INTRO", None]),
        "is_trial_conversion": json_values,
        "price": json_values,
        "price_in_purchased_currency": json_values,
        "currency": json_values,
        "commission_percentage": json_values,
        "tax_percentage": json_values,
        "cancel_reason": json_values,
        "entitlement_ids": json_values,
        "renewal_number": json_values,
        "expiration_at_ms": json_values,
        "subscriber_attributes": st.dictionaries(st.text(max_size=130), attribute, max_size=30)
        | json_values,
    },
)


def assert_uploadable(record: dict[str, Any]) -> None:
    assert len({"identity", "objectId"} & record.keys()) == 1
    assert isinstance(record["ts"], int) and record["ts"] > 0
    data = record.get("evtData", record.get("profileData"))
    assert isinstance(data, dict) and len(data) <= 20
    for key, value in data.items():
        assert len(key) <= 120
        if key == "Items":
            continue
        assert isinstance(value, str | int | float | bool)
        assert not isinstance(value, float) or math.isfinite(value)
        assert not isinstance(value, str) or len(value.encode()) <= 512


@settings(max_examples=100, deadline=None)
@given(events)
def test_map_event_never_raises_and_records_are_uploadable(event: dict[str, Any]) -> None:
    """Whatever the event holds, mapping returns Mapped or Skipped with uploadable records."""
    result = map_event(event, CONFIG)
    assert isinstance(result, Mapped | Skipped)
    if isinstance(result, Mapped):
        json.dumps(result.records, allow_nan=False)
        for record in result.records:
            assert_uploadable(record)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | events.map(lambda e: json.dumps({"event": e}).encode()))
def test_parse_webhook_raises_only_invalid_webhook(body: bytes) -> None:
    """Arbitrary bytes either parse or raise InvalidWebhook, and parsed events map cleanly."""
    try:
        envelope = parse_webhook(body)
    except InvalidWebhook as exc:
        assert exc.reason
        return
    assert envelope.environment in ("PRODUCTION", "SANDBOX")
    assert isinstance(map_event(envelope.event, CONFIG), Mapped | Skipped)


# Events that map (a known environment, a user, a valid time), so every example has an evtData.
sendable_events = st.builds(
    lambda event, user: {
        **event,
        "environment": "PRODUCTION",
        "app_user_id": user,
        "event_timestamp_ms": 1_700_000_000_000,
    },
    events.filter(lambda event: event["type"] != "NEW"),
    st.text(alphabet="abc", min_size=1, max_size=3),
)


def evt_data(event: dict[str, Any], cap: int) -> list[tuple[str, Any]]:
    config = Config(clevertap=CONFIG.clevertap, extras=ExtrasConfig(max_event_properties=cap))
    result = map_event(event, config)
    assert isinstance(result, Mapped)
    return list(result.records[0]["evtData"].items())


@settings(max_examples=200, deadline=None)
@given(sendable_events, st.integers(min_value=1, max_value=20) | st.integers(1, 1000))
def test_any_cap_keeps_the_first_properties_in_priority_order(
    event: dict[str, Any], cap: int
) -> None:
    """evtData under any cap is the first ``cap`` properties (keys, order and values) of the
    evtData the same event gets under the largest cap."""
    assert evt_data(event, cap) == evt_data(event, 1000)[:cap]
