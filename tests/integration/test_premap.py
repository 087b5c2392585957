"""Mapping at store time (integration/premap.py): the stored form is the fresh mapping, and
delivery trusts it only under the fingerprint that made it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_helpers import ACCOUNT, make_config, running_stack, webhook
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from integration.config import (
    BudgetConfig,
    CleverTapConfig,
    Config,
    DispatcherConfig,
    EventNames,
    EventStores,
    ExtrasConfig,
    IdentityConfig,
    RevenueConfig,
    Secret,
)
from integration.mapping import Mapped, Skipped, map_event
from integration.premap import fingerprint, from_stored, stored_form
from integration.routes import Routes
from integration.webhook import InvalidWebhook, parse_event, parse_webhook

BASE = Config(
    clevertap=CleverTapConfig(
        account_id="A", passcode=Secret("p"), sandbox_account_id="S", sandbox_passcode=Secret("q")
    )
)
# Configurations that change what the mapping makes, one section at a time.
CONFIGS = [
    BASE,
    dataclasses.replace(
        BASE, extras=ExtrasConfig(profile_records=True, charged_event=True, max_event_properties=9)
    ),
    dataclasses.replace(
        BASE, identity=IdentityConfig(clevertap_id_as="identity", anonymous="skip")
    ),
    dataclasses.replace(BASE, identity=IdentityConfig(fallback="original_app_user_id")),
    dataclasses.replace(
        BASE,
        revenue=RevenueConfig(mode="after_store_commission", currency="usd", refunds="negative"),
    ),
    dataclasses.replace(BASE, budget=BudgetConfig(context_properties=False)),
    dataclasses.replace(BASE, clevertap=CleverTapConfig(account_id="A", passcode=Secret("p"))),
    dataclasses.replace(BASE, events=EventNames(renewal="", initial_purchase="bought")),
]


TYPES = [
    "INITIAL_PURCHASE", "RENEWAL", "CANCELLATION", "UNCANCELLATION", "NON_RENEWING_PURCHASE",
    "EXPIRATION", "BILLING_ISSUE", "PRODUCT_CHANGE", "SUBSCRIPTION_PAUSED", "TRANSFER",
    "SUBSCRIPTION_EXTENDED", "REFUND_REVERSED", "SOMETHING_NEW",
]  # fmt: skip
STORES = ["APP_STORE", "PLAY_STORE", "STRIPE", "PROMOTIONAL", "AMAZON", "RC_BILLING", None]
text = st.text(max_size=600)
ids = st.sampled_from(["alice", "$RCAnonymousID:0ca8fab1c5be85a4", "", " "]) | text
scalar = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | text
    | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
number = st.none() | st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6)
attribute = st.fixed_dictionaries({"value": scalar, "updated_at_ms": st.integers(0, 2**53)})
# Events the receiver accepts, varied where the mapping branches: types, stores, identities
# (a usable $clevertapId, anonymous ids, aliases), revenue fields, attributes of any scalar.
events = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
        "type": st.sampled_from(TYPES),
        "event_timestamp_ms": st.integers(1000, 10**15),
        "environment": st.sampled_from(["PRODUCTION", "SANDBOX"]),
    },
    optional={
        "app_user_id": ids,
        "original_app_user_id": ids,
        "aliases": st.lists(ids, max_size=3),
        "store": st.sampled_from(STORES),
        "product_id": text,
        "new_product_id": text,
        "app_id": text,
        "period_type": st.sampled_from(["TRIAL", "NORMAL", "INTRO", "PREPAID", None]),
        "currency": st.sampled_from(["USD", "EUR", "JPY", None]) | text,
        "country_code": text,
        "transaction_id": text,
        "cancel_reason": text,
        "expiration_reason": text,
        "price": number,
        "price_in_purchased_currency": number,
        "tax_percentage": number,
        "commission_percentage": number,
        "takehome_percentage": number,
        "renewal_number": st.none() | st.integers(0, 2**40),
        "expiration_at_ms": st.none() | st.integers(0, 2**50),
        "is_trial_conversion": st.none() | st.booleans(),
        "entitlement_ids": st.none() | st.lists(text, max_size=3),
        "entitlement_id": st.none() | text,
        "subscriber_attributes": st.dictionaries(
            st.sampled_from(["$clevertapId", "$email", "plan"]) | st.text(max_size=130),
            attribute,
            max_size=25,
        )
        | st.builds(
            lambda v: {"$clevertapId": {"value": v, "updated_at_ms": 1}},
            st.from_regex(r"[0-9a-f]{32}", fullmatch=True) | text,
        ),
    },
)


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps({"api_version": "1.0", "event": event}).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.sampled_from(CONFIGS))
def test_the_stored_form_reads_back_as_mapping_the_body_afresh(
    event: dict[str, Any], config: Config
) -> None:
    """For any body the receiver accepts, the records read back from its stored form are
    those mapping the body again under the same configuration makes, skips included."""
    body = body_of(event)
    try:
        envelope = parse_webhook(body)
    except InvalidWebhook:
        assume(False)
        return
    stored = stored_form(envelope.event, config, fast=envelope.fast)
    fresh = map_event(parse_event(body), config)
    if stored is None:  # only when the records have no exact JSON form here
        assert isinstance(fresh, Mapped)
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps(fresh.records)
        return
    again, fast = from_stored(stored)
    assert again == fresh
    if isinstance(fresh, Skipped):
        assert isinstance(again, Skipped) and again.code == fresh.code
    # "fast": orjson alone reads the event the receiver checked (a transform's input).
    assert fast == envelope.fast
    if fast:
        assert orjson.loads(body)["event"] == parse_event(body)


def test_a_body_orjson_reads_inexactly_is_not_fast() -> None:
    """A body the standard library must read (here a number past 2**63 in a checked field)
    is not marked fast, so a transform gets it parsed and checked again."""
    body = webhook("e1").replace(b'"price": 9.99', b'"price": 1e300')
    envelope = parse_webhook(body)
    assert not envelope.fast and envelope.event["price"] == 1e300
    assert parse_webhook(webhook("e1")).fast


def test_an_integer_past_64_bits_is_left_to_delivery() -> None:
    """A value orjson cannot write exactly gives no stored form: the body is mapped later."""
    event = json.loads(webhook("e1"))["event"]
    event["subscriber_attributes"] = {"big": {"value": 2**70, "updated_at_ms": 1}}
    assert stored_form(event, BASE) is None


def test_each_mapping_section_changes_the_fingerprint() -> None:
    """Every section the mapping reads changes the fingerprint; the dispatcher's does not."""
    prints = [fingerprint(config) for config in CONFIGS]
    stores = dataclasses.replace(
        BASE, events=EventNames(stores=EventStores(renewal=frozenset({"STRIPE"})))
    )
    prints.append(fingerprint(stores))
    assert len(set(prints)) == len(prints)
    assert re.fullmatch(r"[0-9a-f]{16}", prints[0])
    unrelated = dataclasses.replace(BASE, dispatcher=DispatcherConfig(batch_size=10))
    assert fingerprint(unrelated) == fingerprint(BASE)


def test_the_fingerprint_is_the_same_in_every_process() -> None:
    """Sets are hashed in a fixed order: another process, another hash seed, the same print."""
    script = (
        "from integration.config import Config, CleverTapConfig, Secret\n"
        "from integration.premap import fingerprint\n"
        "print(fingerprint(Config(clevertap=CleverTapConfig(account_id='A', "
        "passcode=Secret('p')))))\n"
    )
    here = fingerprint(dataclasses.replace(BASE, clevertap=CONFIGS[6].clevertap))
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


def test_the_fingerprint_covers_every_section_the_mapping_reads() -> None:
    """Each ``config.<section>`` the mapping module reads is one the fingerprint covers, so a
    new setting read by the mapping cannot leave stored forms stale."""
    source = (Path(__file__).parents[2] / "integration" / "mapping.py").read_text()
    read = set(re.findall(r"\bconfig\.(\w+)", source))
    assert read and read <= {"events", "identity", "revenue", "extras", "budget", "clevertap"}
    assert set(re.findall(r"\bconfig\.budget\.(\w+)", source)) == {"context_properties"}
    assert set(re.findall(r"\bconfig\.clevertap\.(\w+)", source)) == {"account_for"}


def test_data_it_did_not_write_is_refused() -> None:
    """from_stored raises for what stored_form never writes, so delivery maps the body."""
    for data in (
        b"not json",
        b"{}",
        b"[1]",
        b'"skipped"',
        b'{"environment": "PRODUCTION", "records": [1]}',
    ):
        with pytest.raises((ValueError, KeyError)):
            from_stored(data)


async def test_the_receiver_stores_the_mapped_form_with_its_fingerprint(outbox_url: str) -> None:
    """A webhook received is stored with its mapped form and the route's fingerprint."""
    config = make_config(outbox_url)
    async with running_stack(config, start=False) as stack:
        await stack.engine.outbox.open()
        stack.engine.receiver.open_intake()  # the receiver alone: nothing is delivered
        assert (await stack.post(webhook("e1", user="alice"))).status_code == 200
        lease = await stack.engine.outbox.lease("PRODUCTION", 10, now=stack.clock(), lease_s=60)
        assert lease is not None
        [row] = lease.events
        route = Routes(config).get("default")
        assert route is not None and row.mapped_fp == route.fingerprint
        assert row.mapped is not None
        assert from_stored(row.mapped) == (map_event(parse_event(row.body), config), True)
        await stack.engine.outbox.close()


async def test_a_matching_stored_form_is_sent_as_stored(outbox_url: str) -> None:
    """Delivery sends the stored records, not the body mapped again, when the fingerprint is
    the route's: a marker put only in the stored form reaches CleverTap."""
    config = make_config(outbox_url)
    async with running_stack(config, start=False) as stack:
        body = webhook("e1", user="alice")
        mapped = map_event(parse_event(body), config)
        assert isinstance(mapped, Mapped)
        mapped.records[0]["evtData"]["marker"] = "stored"
        form = orjson.dumps({"environment": "PRODUCTION", "records": mapped.records})
        route = Routes(config).get("default")
        assert route is not None
        await stack.engine.outbox.open()
        await stack.engine.outbox.enqueue(
            "e1", "PRODUCTION", body, now=0.0, mapped=form, mapped_fp=route.fingerprint
        )
        await stack.engine.outbox.enqueue(
            "e2", "PRODUCTION", webhook("e2", user="bob"), now=0.0, mapped=form, mapped_fp="0" * 16
        )
        await stack.engine.start()
        await stack.drain()
        [alice] = stack.backend.events_for(ACCOUNT, identity="alice")
        [bob] = stack.backend.events_for(ACCOUNT, identity="bob")
        assert alice["evtData"]["marker"] == "stored"
        # Another fingerprint: the body is mapped afresh (bob's own event, no marker).
        assert "marker" not in bob["evtData"] and bob["evtData"]["rc_event_id"] == "e2"


async def test_a_configuration_change_remaps_what_was_stored(outbox_url: str) -> None:
    """An event received under one configuration and delivered under another is sent as the
    new one maps it (the stored form's fingerprint no longer matches)."""
    before = make_config(outbox_url)
    after = dataclasses.replace(before, events=EventNames(initial_purchase="bought"))
    async with running_stack(before, start=False) as stack:
        await stack.engine.outbox.open()
        stack.engine.receiver.open_intake()  # the receiver alone: nothing is delivered
        assert (await stack.post(webhook("e1", user="alice"))).status_code == 200
        await stack.engine.outbox.close()
        engine = stack.new_engine(after)
        stack.extra.append(engine)
        await engine.start()
        await stack.drain(engine)
        [event] = stack.backend.events_for(ACCOUNT, identity="alice")
        assert event["evtName"] == "bought"


async def test_a_stored_skip_is_settled_with_its_reason(outbox_url: str) -> None:
    """An event the mapping skipped at intake is settled skipped at delivery, same reason."""
    async with running_stack(make_config(outbox_url)) as stack:
        assert (await stack.post(webhook("e1", kind="TRANSFER"))).status_code == 200
        await stack.drain()
        stats = await stack.engine.outbox.stats()
        assert (stats.skipped, stats.delivered) == (1, 0)
        assert stack.engine.metrics.value("events_skipped_total", reason="not_forwarded") == 1


async def test_a_form_it_cannot_read_is_mapped_from_the_body(outbox_url: str) -> None:
    """A row whose form does not read back (hand-edited, damaged) under the right fingerprint
    is mapped from its body and delivered, not failed."""
    config = make_config(outbox_url)
    route = Routes(config).get("default")
    assert route is not None
    async with running_stack(config, start=False) as stack:
        await stack.engine.outbox.open()
        for i, form in enumerate((b"[1]", b"not json", b'{"records": "x"}')):
            await stack.engine.outbox.enqueue(
                f"e{i}", "PRODUCTION", webhook(f"e{i}", user=f"u{i}"), now=0.0,
                mapped=form, mapped_fp=route.fingerprint,
            )  # fmt: skip
        await stack.engine.start()
        await stack.drain()
        assert sorted(stack.delivered_ids()) == ["e0", "e1", "e2"]
        assert (await stack.engine.outbox.stats()).dead == 0
