"""[identity]: which CleverTap user an event lands on, on RevenueCat-shaped webhooks.

The webhooks are written for this project in the shape RevenueCat's CleverTap samples show:
a user who bought before ``logIn()`` (an ``$RCAnonymousID:`` original id, named later), with
the ``$clevertapId`` attribute set or not.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from integration.config import (
    CleverTapConfig,
    Config,
    ConfigError,
    ExtrasConfig,
    IdentityConfig,
    Secret,
    config_from_mapping,
    load_config,
)
from integration.mapping import SKIP_CODES, Mapped, Skipped, map_event, preview

CLEVERTAP = CleverTapConfig(account_id="ACC-1", passcode=Secret("pw"))
ANONYMOUS = "$RCAnonymousID:5b2f0c1e9d8a47f6b3c2a1d0e9f8a7b6"
CLEVERTAP_ID = "7c1e3a52-94d0-4f1b-8a6e-2d5c9b0f4e13"


def config(**identity: str) -> Config:
    return Config(clevertap=CLEVERTAP, identity=IdentityConfig(**identity))  # type: ignore[arg-type]


def renewal(*, clevertap_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """An INR renewal for a user who bought anonymously and then logged in as member-0815."""
    attributes: dict[str, Any] = {
        "$email": {"value": "kiran@example.net", "updated_at_ms": 1_700_000_000_000},
        "$ip": {"value": "198.51.100.23", "updated_at_ms": 1_700_000_000_000},
    }
    if clevertap_id is not None:
        attributes["$clevertapId"] = {"value": clevertap_id, "updated_at_ms": 1_700_000_000_001}
    event: dict[str, Any] = {
        "type": "RENEWAL",
        "id": "0d6c1f7e-31a2-4c55-9e0b-7a8d2f4c6b91",
        "event_timestamp_ms": 1_731_500_000_250,
        "environment": "PRODUCTION",
        "app_id": "app52e1",
        "app_user_id": "member-0815",
        "original_app_user_id": ANONYMOUS,
        "aliases": [ANONYMOUS, "member-0815"],
        "product_id": "plus.monthly",
        "period_type": "NORMAL",
        "store": "PLAY_STORE",
        "currency": "INR",
        "price": 1.67,
        "price_in_purchased_currency": 139.99,
        "subscriber_attributes": attributes,
        "is_trial_conversion": False,
    }
    event.update(fields)
    return event


def before_login(**fields: Any) -> dict[str, Any]:
    """The same renewal for a user who never logged in: every id is the anonymous one."""
    return renewal(app_user_id=ANONYMOUS, aliases=[ANONYMOUS], **fields)


def record(event: dict[str, Any], settings: Config) -> dict[str, Any]:
    result = map_event(event, settings)
    assert isinstance(result, Mapped), result
    return result.records[0]


def user_of(event: dict[str, Any], settings: Config) -> dict[str, str]:
    """The record's addressing keys: {"objectId": ...} or {"identity": ...}."""
    rec = record(event, settings)
    return {key: rec[key] for key in ("objectId", "identity") if key in rec}


def test_defaults_reproduce_the_seed_sample() -> None:
    """By default a $clevertapId goes as objectId (the seed's sample and the Uncancellation one)."""
    assert user_of(renewal(clevertap_id=CLEVERTAP_ID), config()) == {"objectId": CLEVERTAP_ID}


def test_defaults_fall_back_to_app_user_id() -> None:
    """Without $clevertapId the default identity is app_user_id, as the seed's text says."""
    assert user_of(renewal(), config()) == {"identity": "member-0815"}


def test_clevertap_id_as_identity_sends_it_as_identity() -> None:
    """clevertap_id_as = "identity" sends the CleverTap ID as identity, not objectId."""
    settings = config(clevertap_id_as="identity")
    assert user_of(renewal(clevertap_id=CLEVERTAP_ID), settings) == {"identity": CLEVERTAP_ID}


def test_clevertap_id_as_none_addresses_by_the_fallback_id() -> None:
    """clevertap_id_as = "none" ignores $clevertapId for the user; it stays a property."""
    rec = record(renewal(clevertap_id=CLEVERTAP_ID), config(clevertap_id_as="none"))
    assert rec["identity"] == "member-0815" and "objectId" not in rec
    assert rec["evtData"]["$clevertapId"] == CLEVERTAP_ID


def test_unusable_clevertap_id_falls_back_under_identity_too() -> None:
    """A malformed CleverTap ID is not sent as identity either; the fallback id is."""
    settings = config(clevertap_id_as="identity")
    assert user_of(renewal(clevertap_id="not a clevertap id"), settings) == {
        "identity": "member-0815"
    }


def test_fallback_original_app_user_id_sends_the_first_id() -> None:
    """fallback = "original_app_user_id" sends the id the webhook carries as original."""
    settings = config(fallback="original_app_user_id")
    assert user_of(renewal(), settings) == {"identity": ANONYMOUS}


def test_fallback_original_without_it_is_skipped_naming_it() -> None:
    """An event without the configured fallback id is skipped, the reason naming the field."""
    event = renewal()
    del event["original_app_user_id"]
    result = map_event(event, config(fallback="original_app_user_id"))
    assert result == Skipped("event has no original_app_user_id and no $clevertapId")
    assert isinstance(result, Skipped) and result.code == "no_identity"


def test_the_samples_setting_reproduces_revenuecats_shape() -> None:
    """clevertap_id_as = none and fallback = original_app_user_id give what four of
    RevenueCat's samples show: identity = the anonymous id with $clevertapId in evtData."""
    settings = config(clevertap_id_as="none", fallback="original_app_user_id")
    rec = record(renewal(clevertap_id=CLEVERTAP_ID), settings)
    assert (rec["identity"], rec["evtName"], rec["ts"]) == (
        ANONYMOUS,
        "rc_renewal_event",
        1731500000,
    )
    assert {"$clevertapId", "$email", "$ip"} <= rec["evtData"].keys()
    assert "objectId" not in rec


def test_anonymous_send_is_the_default() -> None:
    """An anonymous id is sent as it is by default, as RevenueCat does."""
    assert user_of(before_login(), config()) == {"identity": ANONYMOUS}


def test_anonymous_alias_prefers_a_named_alias() -> None:
    """anonymous = "alias" sends the first non-anonymous id among the event's aliases."""
    event = renewal(aliases=[ANONYMOUS, "  ", "member-0815", "member-old"])
    settings = config(fallback="original_app_user_id", anonymous="alias")
    assert user_of(event, settings) == {"identity": "member-0815"}


def test_anonymous_alias_without_a_named_alias_sends_the_anonymous_id() -> None:
    """With only anonymous aliases, "alias" sends the anonymous id rather than nothing."""
    assert user_of(before_login(), config(anonymous="alias")) == {"identity": ANONYMOUS}


@pytest.mark.parametrize("aliases", [None, "member-0815", [17, None, {"id": "x"}]])
def test_anonymous_alias_ignores_aliases_that_are_not_a_list_of_ids(aliases: object) -> None:
    """Aliases that are not a list of strings name no one; the anonymous id is sent."""
    event = before_login()
    event["aliases"] = aliases
    assert user_of(event, config(anonymous="alias")) == {"identity": ANONYMOUS}


def test_anonymous_alias_leaves_a_named_id_alone() -> None:
    """A fallback id that is not anonymous is sent as it is, whatever the aliases hold."""
    event = renewal(aliases=["member-other", "member-0815"])
    assert user_of(event, config(anonymous="alias")) == {"identity": "member-0815"}


def test_anonymous_skip_skips_with_a_reason_code() -> None:
    """anonymous = "skip" acknowledges an anonymous user's event and sends nothing."""
    result = map_event(before_login(), config(anonymous="skip"))
    assert isinstance(result, Skipped)
    assert result.code == "anonymous_identity" and result.code in SKIP_CODES
    assert "anonymous" in result.reason and ANONYMOUS not in result.reason


def test_anonymous_skip_sends_a_named_user() -> None:
    """Under "skip" an event whose fallback id is not anonymous is sent."""
    assert user_of(renewal(), config(anonymous="skip")) == {"identity": "member-0815"}


def test_anonymous_skip_sends_when_the_clevertap_id_is_set() -> None:
    """A CleverTap ID is a known user: "skip" does not drop an anonymous buyer who has one."""
    event = before_login(subscriber_attributes={"$clevertapId": {"value": CLEVERTAP_ID}})
    assert user_of(event, config(anonymous="skip")) == {"objectId": CLEVERTAP_ID}


def test_anonymous_skip_ignores_the_clevertap_id_under_none() -> None:
    """With clevertap_id_as = "none" only the fallback id counts, so the event is skipped."""
    event = before_login(subscriber_attributes={"$clevertapId": {"value": CLEVERTAP_ID}})
    result = map_event(event, config(clevertap_id_as="none", anonymous="skip"))
    assert isinstance(result, Skipped) and result.code == "anonymous_identity"


def test_extra_records_follow_the_chosen_identity() -> None:
    """The profile and Charged records are addressed like the event record."""
    settings = Config(
        clevertap=CLEVERTAP,
        identity=IdentityConfig(fallback="original_app_user_id", anonymous="alias"),
        extras=ExtrasConfig(profile_records=True, charged_event=True),
    )
    result = map_event(renewal(), settings)
    assert isinstance(result, Mapped) and len(result.records) == 3
    assert [rec.get("identity") for rec in result.records] == ["member-0815"] * 3


def test_preview_shows_the_chosen_identity() -> None:
    """rc-clevertap map's output shows the identity the configuration chooses."""
    body = json.dumps({"api_version": "1.0", "event": before_login()}).encode()
    shown = preview(body, config(anonymous="skip"))
    assert shown == {
        "d": [],
        "skipped": "event's app_user_id is anonymous and identity.anonymous is skip",
    }


def test_identity_settings_come_from_the_file_section() -> None:
    """[identity] keys are read from the configuration file's table."""
    data = {
        "clevertap": {"account_id": "ACC-1", "passcode": "pw"},
        "identity": {"clevertap_id_as": "none", "fallback": "original_app_user_id"},
    }
    assert config_from_mapping(data).identity == IdentityConfig(
        clevertap_id_as="none", fallback="original_app_user_id", anonymous="send"
    )


def test_identity_settings_come_from_the_environment() -> None:
    """RC_CLEVERTAP_IDENTITY_<KEY> variables set [identity] like any other section."""
    environ = {
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "ACC-1",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "pw",
        "RC_CLEVERTAP_IDENTITY_FALLBACK": "original_app_user_id",
        "RC_CLEVERTAP_IDENTITY_ANONYMOUS": "alias",
        "RC_CLEVERTAP_IDENTITY_CLEVERTAP_ID_AS": "identity",
    }
    assert load_config(environ=environ).identity == IdentityConfig(
        clevertap_id_as="identity", fallback="original_app_user_id", anonymous="alias"
    )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("clevertap_id_as", "objectid", "identity.clevertap_id_as: must be one of objectId"),
        ("fallback", "user_id", "identity.fallback: must be one of app_user_id"),
        ("anonymous", "drop", "identity.anonymous: must be one of send, alias, skip"),
    ],
)
def test_an_unknown_identity_value_fails_naming_the_key(key: str, value: str, problem: str) -> None:
    """An unknown [identity] value is one problem line that names the key and the value."""
    data = {"clevertap": {"account_id": "ACC-1", "passcode": "pw"}, "identity": {key: value}}
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data)
    (line,) = caught.value.problems
    assert line.startswith(problem) and repr(value) in line and "\n" not in line


def test_an_unknown_identity_value_from_the_environment_names_the_variable() -> None:
    """A refused value set by a variable is reported with the variable's name."""
    environ = {
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "ACC-1",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "pw",
        "RC_CLEVERTAP_IDENTITY_ANONYMOUS": "drop",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)
    (line,) = caught.value.problems
    assert line.startswith("identity.anonymous:") and "RC_CLEVERTAP_IDENTITY_ANONYMOUS" in line


def test_the_readme_identity_example_is_the_samples_setting() -> None:
    """The README's [identity] example loads, and is the setting the samples test uses."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```toml\n(\[identity\]\n.*?)```", readme, flags=re.S)
    data = {"clevertap": {"account_id": "ACC-1", "passcode": "pw"}, **tomllib.loads(block)}
    assert config_from_mapping(data).identity == IdentityConfig(
        clevertap_id_as="none", fallback="original_app_user_id", anonymous="send"
    )
