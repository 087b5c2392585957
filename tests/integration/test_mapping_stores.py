"""[events.stores]: which stores' events are forwarded, by default RevenueCat's matrix."""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from integration.config import (
    STORES,
    CleverTapConfig,
    Config,
    ConfigError,
    EventNames,
    EventStores,
    Secret,
    config_from_mapping,
    load_config,
)
from integration.mapping import SKIP_CODES, Mapped, Skipped, map_event

CONFIG = Config(clevertap=CleverTapConfig(account_id="ACC-1", passcode=Secret("pw")))
MINIMAL = {"clevertap": {"account_id": "ACC-1", "passcode": "pw"}}
README = Path(__file__).parents[2] / "README.md"


def grant(**fields: Any) -> dict[str, Any]:
    """A promotional entitlement granted from RevenueCat's dashboard: no app_id, no price."""
    event: dict[str, Any] = {
        "type": "INITIAL_PURCHASE",
        "id": "5e8a0b3c-6f1d-4a27-b9c4-1d2e3f405162",
        "event_timestamp_ms": 1_731_600_000_000,
        "environment": "PRODUCTION",
        "app_user_id": "member-0815",
        "original_app_user_id": "member-0815",
        "aliases": ["member-0815"],
        "product_id": "rc_promo_pro_monthly",
        "period_type": "PROMOTIONAL",
        "store": "PROMOTIONAL",
        "entitlement_ids": ["pro"],
        "currency": None,
        "price": 0,
        "price_in_purchased_currency": 0,
        "subscriber_attributes": {},
    }
    event.update(fields)
    return event


def with_stores(**stores: list[str]) -> Config:
    return config_from_mapping({**MINIMAL, "events": {"stores": stores}})


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "INITIAL_PURCHASE"},
        {"type": "INITIAL_PURCHASE", "period_type": "TRIAL"},
        {"type": "RENEWAL"},
        {"type": "RENEWAL", "is_trial_conversion": True},
        {"type": "CANCELLATION", "period_type": "TRIAL"},
        {"type": "BILLING_ISSUE"},
        {"type": "UNCANCELLATION"},
        {"type": "PRODUCT_CHANGE", "new_product_id": "rc_promo_pro_yearly"},
    ],
)
def test_promotional_purchases_and_renewals_are_skipped_by_default(fields: dict[str, Any]) -> None:
    """A promotional grant is not sent as a purchase, trial, renewal, billing issue,
    uncancellation or product change (RevenueCat's CleverTap matrix, Promo column)."""
    result = map_event(grant(**fields), CONFIG)
    assert isinstance(result, Skipped)
    assert result.code == "store_not_forwarded" and result.code in SKIP_CODES
    assert "PROMOTIONAL" in result.reason


@pytest.mark.parametrize("kind", ["CANCELLATION", "NON_RENEWING_PURCHASE", "EXPIRATION"])
def test_promotional_cancellations_and_expirations_are_sent_by_default(kind: str) -> None:
    """The matrix marks Promo for Cancellation, Non Subscription Purchase and Expiration."""
    result = map_event(grant(type=kind), CONFIG)
    assert isinstance(result, Mapped), result


@pytest.mark.parametrize(
    ("kind", "store"), [("UNCANCELLATION", "STRIPE"), ("PRODUCT_CHANGE", "AMAZON")]
)
def test_the_matrix_gaps_of_other_stores_are_skipped_by_default(kind: str, store: str) -> None:
    """Stripe uncancellations and Amazon product changes are not in RevenueCat's matrix."""
    result = map_event(grant(type=kind, store=store, period_type="NORMAL"), CONFIG)
    assert isinstance(result, Skipped) and result.code == "store_not_forwarded"


@pytest.mark.parametrize("store", ["APP_STORE", "MAC_APP_STORE", "PLAY_STORE", "RC_BILLING"])
def test_store_purchases_are_sent_by_default(store: str) -> None:
    """Purchases from the stores the matrix supports (and those it does not list) are sent."""
    assert isinstance(map_event(grant(store=store, period_type="NORMAL"), CONFIG), Mapped)


@pytest.mark.parametrize("store", [None, "GALAXY_STORE", 7, ["PROMOTIONAL"]])
def test_a_missing_or_unknown_store_is_forwarded(store: object) -> None:
    """A store this release does not know (or none) is forwarded, as before [events.stores]."""
    event = grant(store=store, period_type="NORMAL")
    assert isinstance(map_event(event, CONFIG), Mapped)


def test_configured_stores_forward_promotional_renewals() -> None:
    """Naming PROMOTIONAL for renewal forwards promotional renewals; other events keep the
    matrix."""
    settings = with_stores(renewal=["APP_STORE", "PROMOTIONAL"])
    assert isinstance(map_event(grant(type="RENEWAL"), settings), Mapped)
    assert isinstance(map_event(grant(type="INITIAL_PURCHASE"), settings), Skipped)


def test_configured_stores_skip_stores_left_out() -> None:
    """A store not listed for an event is skipped for it, and only for it."""
    settings = with_stores(renewal=["APP_STORE"])
    play = {"store": "PLAY_STORE", "period_type": "NORMAL"}
    result = map_event(grant(type="RENEWAL", **play), settings)
    assert result == Skipped("renewal from store PLAY_STORE is not forwarded (events.stores)")
    assert isinstance(map_event(grant(type="EXPIRATION", **play), settings), Mapped)


def test_an_empty_store_list_forwards_none() -> None:
    """An empty list forwards the event from no store."""
    settings = with_stores(expiration=[])
    assert isinstance(map_event(grant(type="EXPIRATION", store="APP_STORE"), settings), Skipped)


def test_a_disabled_event_is_skipped_as_disabled_before_its_store() -> None:
    """An event turned off by name is reported as disabled, whatever its store."""
    settings = config_from_mapping({**MINIMAL, "events": {"initial_purchase": ""}})
    result = map_event(grant(), settings)
    assert isinstance(result, Skipped) and result.code == "disabled"


def test_store_rules_name_every_integration_event() -> None:
    """[events.stores] has exactly one entry per integration event name."""
    names = [f.name for f in dataclasses.fields(EventNames) if f.name != "stores"]
    assert [f.name for f in dataclasses.fields(EventStores)] == names


@pytest.mark.parametrize(
    ("stores", "problem"),
    [
        (
            {"renewal": ["APP_STORE", "app_store"]},
            "events.stores.renewal: unknown store 'app_store'",
        ),
        ({"renewals": ["APP_STORE"]}, "events.stores.renewals: unknown integration event"),
        ({"renewal": "APP_STORE"}, "events.stores.renewal: must be a list of store names"),
        (["renewal"], "events.stores: must be a table"),
    ],
)
def test_a_bad_store_setting_fails_naming_the_key(stores: object, problem: str) -> None:
    """An unknown store or event, or a value of the wrong shape, is one line naming the key."""
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({**MINIMAL, "events": {"stores": stores}})
    (line,) = caught.value.problems
    assert line.startswith(problem) and "\n" not in line


def test_every_bad_store_entry_is_reported_at_once() -> None:
    """An unknown event and an unknown store in one table are both reported."""
    stores = {"renewals": ["APP_STORE"], "expiration": ["NOPE"]}
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({**MINIMAL, "events": {"stores": stores}})
    assert [line.split(":")[0] for line in caught.value.problems] == [
        "events.stores.renewals",
        "events.stores.expiration",
    ]


def test_store_variables_merge_with_the_file_table(tmp_path: Path) -> None:
    """RC_CLEVERTAP_EVENTS_STORES_<EVENT> sets one event's stores; the file's others stay."""
    path = tmp_path / "rc.toml"
    path.write_text(
        '[clevertap]\naccount_id = "ACC-1"\npasscode = "pw"\n'
        '[events.stores]\nrenewal = ["APP_STORE"]\nexpiration = ["STRIPE"]\n'
    )
    environ = {"RC_CLEVERTAP_EVENTS_STORES_EXPIRATION": "PLAY_STORE,PROMOTIONAL"}
    stores = load_config(path, environ=environ).events.stores
    assert stores.renewal == frozenset({"APP_STORE"})
    assert stores.expiration == frozenset({"PLAY_STORE", "PROMOTIONAL"})
    assert stores.initial_purchase == EventStores().initial_purchase


def test_a_bad_store_variable_names_the_variable() -> None:
    """A refused store set by a variable is reported with the variable's name."""
    environ = {
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "ACC-1",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "pw",
        "RC_CLEVERTAP_EVENTS_STORES_RENEWAL": '["APP_STORE", "ITUNES"]',
    }
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)
    (line,) = caught.value.problems
    assert line.startswith("events.stores.renewal: unknown store 'ITUNES'")
    assert line.endswith("(set by RC_CLEVERTAP_EVENTS_STORES_RENEWAL)")


def test_the_readme_store_table_is_the_default() -> None:
    """The README's stores table lists, per event, exactly the stores not forwarded by default."""
    text = README.read_text(encoding="utf-8")
    lines = text[text.index("| `[events.stores]` key |") :].splitlines()[2:]
    table: dict[str, set[str]] = {}
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines):
        events, stores = line.strip("|").split("|")[:2]
        for event in re.findall(r"`(\w+)`", events):
            table[event] = set(re.findall(r"`(\w+)`", stores))
    defaults = EventStores()
    expected = {
        f.name: set(STORES) - getattr(defaults, f.name) for f in dataclasses.fields(EventStores)
    }
    assert table == expected


def test_the_readme_stores_example_forwards_promotional_renewals() -> None:
    """The README's [events.stores] example loads and forwards promotional renewals."""
    text = README.read_text(encoding="utf-8")
    (block,) = re.findall(r"```toml\n(\[events\.stores\]\n.*?)```", text, flags=re.S)
    settings = config_from_mapping({**MINIMAL, **tomllib.loads(block)})
    assert isinstance(map_event(grant(type="RENEWAL"), settings), Mapped)


def test_the_readme_lists_every_skip_code() -> None:
    """The README's metrics list names each reason code events_skipped_total can take."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    listed = text[text.index("`reason` of `events_skipped_total` is") :].split("(", 1)[0]
    assert set(re.findall(r"`(\w+)`", listed)) - {"reason", "events_skipped_total"} == set(
        SKIP_CODES
    )
