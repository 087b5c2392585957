"""parse_webhook: what the receiver accepts, and a clear reason for everything it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integration.webhook import InvalidWebhook, WebhookEnvelope, parse_webhook


def body(**fields: Any) -> bytes:
    """A minimal valid body; keyword arguments replace event fields (None removes one)."""
    ev: dict[str, Any] = {
        "id": "evt-1",
        "type": "INITIAL_PURCHASE",
        "event_timestamp_ms": 1_700_000_000_000,
        "environment": "PRODUCTION",
        "app_user_id": "user-7",
    }
    ev.update(fields)
    return json.dumps(
        {"api_version": "1.0", "event": {k: v for k, v in ev.items() if v is not None}}
    ).encode()


def test_valid_body_gives_an_envelope() -> None:
    """A valid body yields its id, type, environment and the event itself."""
    envelope = parse_webhook(body())
    assert envelope == WebhookEnvelope(
        "evt-1",
        "INITIAL_PURCHASE",
        "PRODUCTION",
        json.loads(body())["event"],
    )


def test_unknown_type_is_valid() -> None:
    """A type RevenueCat has not invented yet is accepted (it is skipped later)."""
    assert parse_webhook(body(type="BRAND_NEW")).event_type == "BRAND_NEW"


def test_unknown_fields_are_accepted() -> None:
    """Fields this service does not know are accepted and kept."""
    assert parse_webhook(body(shiny={"nested": [1]})).event["shiny"] == {"nested": [1]}


def test_sandbox_environment() -> None:
    """A SANDBOX event keeps its environment."""
    assert parse_webhook(body(environment="SANDBOX")).environment == "SANDBOX"


def test_purchase_environment_stands_in() -> None:
    """purchase_environment (virtual currency events) is read when environment is absent."""
    envelope = parse_webhook(body(environment=None, purchase_environment="SANDBOX"))
    assert envelope.environment == "SANDBOX"


def test_missing_environment_is_queued_as_production() -> None:
    """An event type without an environment is accepted and queued under PRODUCTION."""
    assert parse_webhook(body(environment=None)).environment == "PRODUCTION"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"", "body is not JSON"),
        (b"\xff\xfe\x00", "body is not UTF-8 JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b'{"event": 5}', "event missing or not an object"),
        (b'{"api_version": "1.0"}', "event missing or not an object"),
        (b'{"event": {"price": NaN}}', "body is not JSON"),
        (b'{"event": {"price": 1e999}}', "body is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body is nested too deeply"),
    ],
)
def test_malformed_bodies(raw: bytes, reason: str) -> None:
    """Bodies that are not a JSON object with an event object are refused with a reason."""
    with pytest.raises(InvalidWebhook) as caught:
        parse_webhook(raw)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": None}, "event.id missing or not a non-empty string"),
        ({"id": ""}, "event.id missing or not a non-empty string"),
        ({"id": 42}, "event.id missing or not a non-empty string"),
        ({"id": "x" * 257}, "event.id longer than 256 characters"),
        ({"type": None}, "event.type missing or not a non-empty string"),
        ({"type": ["RENEWAL"]}, "event.type missing or not a non-empty string"),
        ({"event_timestamp_ms": None}, "event.event_timestamp_ms missing or not an integer"),
        (
            {"event_timestamp_ms": "1700000000000"},
            "event.event_timestamp_ms missing or not an integer",
        ),
        ({"event_timestamp_ms": 1.7e12}, "event.event_timestamp_ms missing or not an integer"),
        ({"event_timestamp_ms": True}, "event.event_timestamp_ms missing or not an integer"),
        (
            {"event_timestamp_ms": 0},
            "event.event_timestamp_ms must be a positive epoch in milliseconds",
        ),
        ({"environment": "STAGING"}, "event.environment must be PRODUCTION or SANDBOX"),
        ({"environment": 1}, "event.environment must be PRODUCTION or SANDBOX"),
        ({"app_user_id": 7}, "event.app_user_id must be a string"),
        ({"price": "9.99"}, "event.price must be a number"),
        (
            {"price_in_purchased_currency": True},
            "event.price_in_purchased_currency must be a number",
        ),
        ({"renewal_number": 1.5}, "event.renewal_number must be an integer"),
        ({"is_trial_conversion": "yes"}, "event.is_trial_conversion must be true or false"),
        ({"entitlement_ids": "pro"}, "event.entitlement_ids must be a list of strings"),
        ({"entitlement_ids": [1]}, "event.entitlement_ids must be a list of strings"),
        ({"subscriber_attributes": []}, "event.subscriber_attributes must be an object"),
        (
            {"subscriber_attributes": {"$email": "a@b.c"}},
            "event.subscriber_attributes['$email'] must be an object with a scalar value",
        ),
        (
            {"subscriber_attributes": {"tags": {"value": ["a"]}}},
            "event.subscriber_attributes['tags'] must be an object with a scalar value",
        ),
    ],
)
def test_wrong_fields(fields: dict[str, Any], reason: str) -> None:
    """A missing required field or a known field of the wrong type is named in the reason."""
    with pytest.raises(InvalidWebhook) as caught:
        parse_webhook(body(**fields))
    assert caught.value.reason == reason


def test_null_optional_fields_are_fine() -> None:
    """Known fields may be null, as RevenueCat sends them."""
    fields = {"price": None, "entitlement_ids": None, "renewal_number": None, "currency": None}
    raw = json.loads(body())
    raw["event"].update(fields)
    assert parse_webhook(json.dumps(raw).encode()).event["price"] is None


def test_long_attribute_key_is_shortened_in_the_reason() -> None:
    """A huge bad attribute key does not blow up the reason."""
    with pytest.raises(InvalidWebhook) as caught:
        parse_webhook(body(subscriber_attributes={"k" * 5000: 1}))
    assert len(caught.value.reason) < 120


def test_invalid_webhook_is_a_value_error() -> None:
    """InvalidWebhook is a ValueError, so generic handlers catch it."""
    assert issubclass(InvalidWebhook, ValueError)


@pytest.mark.parametrize("bad_id", ["abc\x00def", "abc\ud800", "line\nbreak"])
def test_event_ids_that_cannot_be_stored_as_text_are_refused(bad_id: str) -> None:
    """An event id holding NUL, a lone surrogate or a control character is an invalid webhook."""
    body = json.dumps(
        {
            "event": {
                "id": bad_id,
                "type": "RENEWAL",
                "event_timestamp_ms": 1,
                "environment": "PRODUCTION",
            }
        }
    ).encode("utf-8", "surrogatepass")
    with pytest.raises(InvalidWebhook, match="printable"):
        parse_webhook(body)


@pytest.mark.parametrize("where", ["app_user_id", "attribute", "unread_field"])
def test_an_unpaired_surrogate_anywhere_is_refused(where: str) -> None:
    """A lone surrogate (valid JSON, not valid text) is refused with a reason, never echoed."""
    fields: dict[str, Any] = {
        "app_user_id": {"app_user_id": "u\ud800"},
        "attribute": {"subscriber_attributes": {"k": {"value": "\udc00x"}}},
        "unread_field": {"shiny": ["\ud800"]},
    }[where]
    with pytest.raises(InvalidWebhook) as caught:
        parse_webhook(body(**fields))
    assert caught.value.reason == "body holds an unpaired surrogate, which is not valid text"


def test_a_surrogate_pair_is_one_character() -> None:
    """An escaped surrogate pair is a valid character, accepted."""
    raw = b'{"event": {"id": "e", "type": "RENEWAL", "event_timestamp_ms": 1700000000000,'
    raw += b' "app_user_id": "\\ud83d\\ude00"}}'
    assert parse_webhook(raw).event["app_user_id"] == "\U0001f600"


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_integers_past_64_bits_stay_exact(number: int) -> None:
    """Integers of any size are read exactly, where a mapped field or attribute holds them."""
    envelope = parse_webhook(
        body(renewal_number=number, subscriber_attributes={"big": {"value": number}})
    )
    assert envelope.event["renewal_number"] == number
    assert type(envelope.event["renewal_number"]) is int
    assert envelope.event["subscriber_attributes"]["big"]["value"] == number


def test_a_huge_timestamp_is_still_an_integer() -> None:
    """event_timestamp_ms past 64 bits is read as an integer, as the standard library reads it."""
    assert parse_webhook(body(event_timestamp_ms=2**70)).event["event_timestamp_ms"] == 2**70


def test_a_utf16_body_is_read_as_before() -> None:
    """JSON in UTF-16, which json.loads detects, is still accepted."""
    assert parse_webhook(body().decode().encode("utf-16")).event_id == "evt-1"
