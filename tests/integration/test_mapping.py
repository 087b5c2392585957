"""Mapping rules, one case each: classification, names, identity, shape, clipping, sandbox."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from integration.config import (
    CleverTapConfig,
    Config,
    EventNames,
    ExtrasConfig,
    Secret,
)
from integration.mapping import Mapped, Skipped, classify, map_event, preview
from integration.webhook import InvalidWebhook

CONFIG = Config(clevertap=CleverTapConfig(account_id="ACC-1", passcode=Secret("pw")))


def event(**fields: Any) -> dict[str, Any]:
    """A production monthly renewal for user-7; keyword arguments replace or add fields."""
    base: dict[str, Any] = {
        "id": "evt-1",
        "type": "RENEWAL",
        "event_timestamp_ms": 1_700_000_123_999,
        "environment": "PRODUCTION",
        "app_user_id": "user-7",
        "app_id": "app1",
        "product_id": "pro.monthly",
        "period_type": "NORMAL",
        "store": "APP_STORE",
        "currency": "EUR",
        "price": 10.5,
        "price_in_purchased_currency": 9.99,
        "commission_percentage": 0.3,
        "tax_percentage": 0.2,
        "subscriber_attributes": {},
    }
    base.update(fields)
    return base


def mapped(result: Mapped | Skipped) -> list[dict[str, Any]]:
    assert isinstance(result, Mapped), result
    return result.records


def record(ev: dict[str, Any], config: Config = CONFIG) -> dict[str, Any]:
    records = mapped(map_event(ev, config))
    assert len(records) == 1
    return records[0]


def attrs(**values: Any) -> dict[str, Any]:
    return {key: {"value": value, "updated_at_ms": 1} for key, value in values.items()}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": "INITIAL_PURCHASE", "period_type": "TRIAL"}, "trial_started"),
        ({"type": "INITIAL_PURCHASE", "period_type": "NORMAL"}, "initial_purchase"),
        ({"type": "INITIAL_PURCHASE", "period_type": "INTRO"}, "initial_purchase"),
        ({"type": "INITIAL_PURCHASE", "period_type": "PREPAID"}, "initial_purchase"),
        ({"type": "RENEWAL", "is_trial_conversion": True}, "trial_converted"),
        ({"type": "RENEWAL", "is_trial_conversion": False}, "renewal"),
        ({"type": "RENEWAL"}, "renewal"),
        ({"type": "CANCELLATION", "period_type": "TRIAL"}, "trial_cancelled"),
        ({"type": "CANCELLATION", "period_type": "INTRO"}, "cancellation"),
        ({"type": "UNCANCELLATION"}, "uncancellation"),
        ({"type": "NON_RENEWING_PURCHASE"}, "non_subscription_purchase"),
        ({"type": "EXPIRATION"}, "expiration"),
        ({"type": "BILLING_ISSUE"}, "billing_issue"),
        ({"type": "PRODUCT_CHANGE"}, "product_change"),
        ({"type": "SUBSCRIPTION_PAUSED"}, "subscription_paused"),
        ({"type": "TRANSFER"}, None),
        ({"type": "SOMETHING_NEW"}, None),
    ],
)
def test_classification(fields: dict[str, Any], expected: str | None) -> None:
    """Each webhook type and condition lands in RevenueCat's integration event."""
    assert classify(event(**fields)) == expected


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"type": "INITIAL_PURCHASE"}, "rc_initial_purchase_event"),
        ({"type": "INITIAL_PURCHASE", "period_type": "TRIAL"}, "rc_trial_started_event"),
        ({"type": "RENEWAL", "is_trial_conversion": True}, "rc_trial_converted_event"),
        ({"type": "CANCELLATION", "period_type": "TRIAL"}, "rc_trial_cancelled_event"),
        ({"type": "RENEWAL"}, "rc_renewal_event"),
        ({"type": "CANCELLATION"}, "rc_cancellation_event"),
        ({"type": "UNCANCELLATION"}, "rc_uncancellation_event"),
        ({"type": "NON_RENEWING_PURCHASE"}, "rc_non_subscription_purchase_event"),
        ({"type": "EXPIRATION"}, "rc_expiration_event"),
        ({"type": "BILLING_ISSUE"}, "rc_billing_issue_event"),
        ({"type": "PRODUCT_CHANGE"}, "rc_product_change_event"),
    ],
)
def test_default_event_names_are_revenuecats(fields: dict[str, Any], name: str) -> None:
    """Without an [events] table, each integration event gets RevenueCat's default name."""
    assert record(event(**fields))["evtName"] == name


def test_configured_event_name_is_used() -> None:
    """A name set in [events] replaces the default."""
    config = Config(clevertap=CONFIG.clevertap, events=EventNames(renewal="Subscription Renewed"))
    assert record(event(), config)["evtName"] == "Subscription Renewed"


def test_empty_event_name_disables_the_event() -> None:
    """An empty name skips the event with a reason naming it."""
    config = Config(clevertap=CONFIG.clevertap, events=EventNames(expiration=""))
    result = map_event(event(type="EXPIRATION"), config)
    assert result == Skipped("event expiration disabled by configuration")


def test_known_unforwarded_type_is_skipped_with_its_name() -> None:
    """A documented type the integration does not send is skipped, naming the type."""
    assert map_event(event(type="TRANSFER"), CONFIG) == Skipped(
        "event type TRANSFER is not forwarded to CleverTap"
    )


def test_unknown_type_reason_is_bounded() -> None:
    """An invented type's name is clipped in the reason, so reasons stay short."""
    result = map_event(event(type="X" * 500), CONFIG)
    assert isinstance(result, Skipped) and len(result.reason) < 100


def test_record_shape() -> None:
    """The event record has type, evtName, ts in epoch seconds, identity and evtData."""
    rec = record(event())
    assert set(rec) == {"type", "evtName", "ts", "identity", "evtData"}
    assert (rec["type"], rec["ts"], rec["identity"]) == ("event", 1_700_000_123, "user-7")


def test_identity_is_app_user_id_without_clevertap_id() -> None:
    """Without a CleverTap ID attribute the record is addressed by identity = app_user_id."""
    rec = record(event(subscriber_attributes=attrs(**{"$email": "a@b.c"})))
    assert rec["identity"] == "user-7" and "objectId" not in rec


def test_identity_prefers_clevertap_id_sdk_spelling() -> None:
    """A non-empty $clevertapId addresses the record by objectId."""
    rec = record(event(subscriber_attributes=attrs(**{"$clevertapId": "-abc123"})))
    assert rec["objectId"] == "-abc123" and "identity" not in rec


def test_identity_accepts_clevertap_id_docs_spelling() -> None:
    """$cleverTapId (capital T, as RevenueCat's integration page spells it) works too."""
    rec = record(event(subscriber_attributes=attrs(**{"$cleverTapId": "ct9"})))
    assert rec["objectId"] == "ct9"


def test_sdk_spelling_wins_when_both_are_set() -> None:
    """With both spellings set, $clevertapId (what the SDKs send) is used."""
    rec = record(event(subscriber_attributes=attrs(**{"$cleverTapId": "b", "$clevertapId": "a"})))
    assert rec["objectId"] == "a"


@pytest.mark.parametrize("value", ["", "   ", None, "has space", "x" * 65, "é-unicode"])
def test_unusable_clevertap_id_falls_back_to_app_user_id(value: str | None) -> None:
    """An empty, null or malformed CleverTap ID is ignored in favour of identity."""
    rec = record(event(subscriber_attributes=attrs(**{"$clevertapId": value})))
    assert rec["identity"] == "user-7" and "objectId" not in rec


def test_clevertap_id_alone_is_enough() -> None:
    """An event without app_user_id is still sent when a CleverTap ID is set."""
    ev = event(subscriber_attributes=attrs(**{"$clevertapId": "ct1"}))
    del ev["app_user_id"]
    assert record(ev)["objectId"] == "ct1"


@pytest.mark.parametrize("app_user_id", [None, "", "  "])
def test_no_identity_at_all_is_skipped(app_user_id: str | None) -> None:
    """With neither a usable app_user_id nor a CleverTap ID the event is skipped."""
    result = map_event(event(app_user_id=app_user_id), CONFIG)
    assert result == Skipped("event has no app_user_id and no $clevertapId")


def test_evt_data_holds_core_context_and_attributes_in_order() -> None:
    """evtData lists core fields, then context, then attributes sorted by key."""
    ev = event(
        transaction_id="t1",
        entitlement_ids=["pro", "extra"],
        country_code="DE",
        renewal_number=3,
        subscriber_attributes=attrs(zeta="z", **{"$email": "a@b.c"}),
    )
    assert list(record(ev)["evtData"].items()) == [
        ("amount", 9.99),
        ("currency", "EUR"),
        ("product_id", "pro.monthly"),
        ("app_id", "app1"),
        ("is_refund", False),
        ("rc_event_id", "evt-1"),
        ("store", "APP_STORE"),
        ("environment", "PRODUCTION"),
        ("period_type", "NORMAL"),
        ("transaction_id", "t1"),
        ("entitlement_ids", "pro,extra"),
        ("country_code", "DE"),
        ("renewal_number", 3),
        ("$email", "a@b.c"),
        ("zeta", "z"),
    ]


def test_deprecated_entitlement_id_used_when_list_missing() -> None:
    """entitlement_id stands in when entitlement_ids is null."""
    data = record(event(entitlement_ids=None, entitlement_id="legacy"))["evtData"]
    assert data["entitlement_ids"] == "legacy"


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [
        (
            {"type": "CANCELLATION", "cancel_reason": "PRICE_INCREASE"},
            "cancel_reason",
            "PRICE_INCREASE",
        ),
        (
            {"type": "EXPIRATION", "expiration_reason": "UNSUBSCRIBE"},
            "expiration_reason",
            "UNSUBSCRIBE",
        ),
        (
            {"type": "PRODUCT_CHANGE", "new_product_id": "pro.yearly"},
            "new_product_id",
            "pro.yearly",
        ),
        (
            {"type": "BILLING_ISSUE", "grace_period_expiration_at_ms": 1_700_100_000_000},
            "grace_period_expiration_at",
            1_700_100_000_000,
        ),
    ],
)
def test_event_specific_field(fields: dict[str, Any], key: str, value: Any) -> None:
    """Each event type carries its own field where it applies."""
    assert record(event(**fields))["evtData"][key] == value


def test_event_specific_field_only_where_it_applies() -> None:
    """A stray cancel_reason on a renewal is not sent."""
    assert "cancel_reason" not in record(event(cancel_reason="UNSUBSCRIBE"))["evtData"]


def test_null_attribute_value_is_dropped() -> None:
    """A deleted (null) attribute does not become a property."""
    assert "gone" not in record(event(subscriber_attributes=attrs(gone=None)))["evtData"]


def test_attribute_does_not_override_core_field() -> None:
    """An attribute named like a core field is dropped; the core value stays."""
    data = record(event(subscriber_attributes=attrs(amount="999", store="x")))["evtData"]
    assert (data["amount"], data["store"]) == (9.99, "APP_STORE")


def test_long_key_is_clipped_to_120_characters() -> None:
    """A property key longer than CleverTap's 120 characters is cut to 120."""
    data = record(event(subscriber_attributes=attrs(**{"k" * 130: "v"})))["evtData"]
    assert data["k" * 120] == "v"


def test_long_value_is_clipped_to_512_bytes() -> None:
    """A property value longer than 512 bytes is cut to 512 bytes."""
    data = record(event(subscriber_attributes=attrs(note="n" * 600)))["evtData"]
    assert data["note"] == "n" * 512


def test_clipping_never_splits_a_character() -> None:
    """A multi-byte character straddling byte 512 is dropped, not mangled."""
    value = "a" + "€" * 200  # 1 + 600 bytes
    clipped = record(event(subscriber_attributes=attrs(note=value)))["evtData"]["note"]
    assert clipped == "a" + "€" * 170 and len(clipped.encode()) <= 512


def test_property_cap_keeps_core_fields_first() -> None:
    """With a small cap, attributes go before context and context before core fields."""
    config = Config(clevertap=CONFIG.clevertap, extras=ExtrasConfig(max_event_properties=7))
    ev = event(subscriber_attributes=attrs(a="1", b="2"))
    assert list(record(ev, config)["evtData"]) == [
        "amount",
        "currency",
        "product_id",
        "app_id",
        "is_refund",
        "rc_event_id",
        "store",
    ]


def test_many_attributes_stay_under_the_default_cap() -> None:
    """Two hundred attributes still yield at most 100 properties."""
    many = attrs(**{f"attr_{i:03}": str(i) for i in range(200)})
    data = record(event(subscriber_attributes=many))["evtData"]
    assert len(data) == 100 and data["rc_event_id"] == "evt-1"


def test_non_string_attribute_values_stay_scalars() -> None:
    """Numeric and boolean attribute values pass through as scalars."""
    data = record(event(subscriber_attributes=attrs(age=31, opted_in=True)))["evtData"]
    assert (data["age"], data["opted_in"]) == (31, True)


def test_production_event_keeps_production_environment() -> None:
    """A PRODUCTION event is mapped for the production account."""
    assert map_event(event(), CONFIG) == Mapped("PRODUCTION", [record(event())])


def test_sandbox_event_without_sandbox_account_is_skipped() -> None:
    """SANDBOX events are skipped when no sandbox account is configured."""
    result = map_event(event(environment="SANDBOX"), CONFIG)
    assert result == Skipped("sandbox event and no sandbox account configured")


def test_sandbox_event_goes_to_sandbox_account() -> None:
    """With a sandbox account, SANDBOX events are mapped and previewed for it."""
    clevertap = CleverTapConfig(
        account_id="ACC-1",
        passcode=Secret("pw"),
        sandbox_account_id="SBX-1",
        sandbox_passcode=Secret("spw"),
    )
    config = Config(clevertap=clevertap)
    result = map_event(event(environment="SANDBOX"), config)
    assert isinstance(result, Mapped) and result.environment == "SANDBOX"
    body = json.dumps({"event": event(environment="SANDBOX")}).encode()
    assert preview(body, config)["account_id"] == "SBX-1"


def test_event_without_environment_is_never_sent() -> None:
    """A forwarded type without an environment is skipped rather than guessed."""
    ev = event()
    del ev["environment"]
    assert map_event(ev, CONFIG) == Skipped("event has no environment")


def test_preview_of_a_skipped_event() -> None:
    """preview prints an empty upload with the skip reason."""
    body = json.dumps({"event": event(type="TEST")}).encode()
    assert preview(body, CONFIG) == {
        "d": [],
        "skipped": "event type TEST is not forwarded to CleverTap",
    }


def test_preview_raises_on_invalid_body() -> None:
    """preview refuses a body the receiver would refuse."""
    with pytest.raises(InvalidWebhook, match="body is not JSON"):
        preview(b"{nope", CONFIG)


def test_map_event_does_not_change_the_event() -> None:
    """Mapping reads the event and never writes to it."""
    ev = event(subscriber_attributes=attrs(a="1"))
    before = json.dumps(ev, sort_keys=True)
    map_event(ev, Config(clevertap=CONFIG.clevertap, extras=ExtrasConfig(profile_records=True)))
    assert json.dumps(ev, sort_keys=True) == before


def test_attribute_allowlist_limits_attributes() -> None:
    """With extras.attribute_allowlist, only the listed attributes become properties."""
    config = Config(
        clevertap=CONFIG.clevertap, extras=ExtrasConfig(attribute_allowlist=("$email", "plan"))
    )
    ev = event(subscriber_attributes=attrs(plan="gold", hobby="chess", **{"$email": "a@b.c"}))
    data = record(ev, config)["evtData"]
    assert (data["$email"], data["plan"], "hobby" in data) == ("a@b.c", "gold", False)


def test_allowlist_does_not_affect_identity() -> None:
    """A CleverTap ID outside the allowlist still addresses the record."""
    config = Config(clevertap=CONFIG.clevertap, extras=ExtrasConfig(attribute_allowlist=()))
    rec = record(event(subscriber_attributes=attrs(**{"$clevertapId": "ct1"})), config)
    assert rec["objectId"] == "ct1" and "$clevertapId" not in rec["evtData"]


def test_every_skip_code_is_one_of_the_documented_codes() -> None:
    """Each way map_event skips carries a code from SKIP_CODES, the metric's label set."""
    import inspect

    from integration import mapping

    source = inspect.getsource(mapping.map_event)
    codes = re.findall(r'Skipped\(.*?"([a-z_]+)"\s*\)', source, flags=re.DOTALL)
    assert len(codes) >= 7
    assert set(codes) <= set(mapping.SKIP_CODES)
