"""The property budget through the engine, against the CleverTap mock, on each outbox backend:
every event delivered within CleverTap's per-event-type limit, a 522 sent again with core keys
only, and what the budget learned kept across a restart."""

from __future__ import annotations

from typing import Any

from engine_helpers import ACCOUNT, make_config, mock_backend, running_stack, webhook

from integration.config import BudgetConfig, Config
from integration.mapping import CORE_KEYS
from integration.outbox import open_outbox
from integration.outbox.base import EventProperties
from mockserver.clevertap.validation import Limits

NAME = "rc_initial_purchase_event"


def user_event(user: str, count: int = 40, *, event_id: str | None = None) -> bytes:
    """An INITIAL_PURCHASE of ``user`` carrying ``count`` custom attributes of its own."""
    attrs = {f"{user}_attr_{i:02d}": {"value": "x", "updated_at_ms": 1} for i in range(count)}
    return webhook(event_id or f"ev-{user}", user=user, subscriber_attributes=attrs)


def with_budget(config: Config, **budget: Any) -> Config:
    return Config(**{**config.__dict__, "budget": BudgetConfig(**budget)})


async def test_outbox_stores_each_key_once_and_replaces_the_learned_limit(
    outbox_url: str,
) -> None:
    """Keys added twice are stored once; a limit learned again replaces the first; both are
    read back after the outbox is reopened."""
    async with open_outbox(outbox_url) as outbox:
        await outbox.add_event_properties(
            [EventProperties(ACCOUNT, NAME, ("b", "a")), EventProperties("SBX", NAME, ("a",))],
            now=1.0,
        )
        await outbox.add_event_properties(
            [EventProperties(ACCOUNT, NAME, ("a", "c"), learned_limit=3, learned_under=100)],
            now=2.0,
        )
        await outbox.add_event_properties(
            [EventProperties(ACCOUNT, NAME, (), learned_limit=5, learned_under=90)], now=3.0
        )
    async with open_outbox(outbox_url) as outbox:
        assert await outbox.event_properties() == [
            EventProperties("SBX", NAME, ("a",)),
            EventProperties(ACCOUNT, NAME, ("a", "b", "c"), learned_limit=5, learned_under=90),
        ]


async def test_three_users_with_40_attributes_each_are_all_delivered(outbox_url: str) -> None:
    """Issue 15's case: 120 distinct custom attributes for one event name, against the mock's
    default limit of 100, end with every event delivered, nothing dead-lettered, and the name
    at exactly its budget (the third user's last attributes dropped and counted)."""
    async with running_stack(make_config(outbox_url)) as stack:
        for user in ("u1", "u2", "u3"):
            assert (await stack.post(user_event(user))).status_code == 200
        await stack.drain()
        stats = await stack.engine.outbox.stats()
        assert (stats.delivered, stats.dead, stats.pending) == (3, 0, 0)
        assert sorted(stack.delivered_ids()) == ["ev-u1", "ev-u2", "ev-u3"]
        held = stack.backend.store(ACCOUNT).event_properties[NAME]
        assert len(held) == Limits().max_event_properties == 100
        [third] = stack.backend.events_for(ACCOUNT, identity="u3")
        kept = [key for key in third["evtData"] if key.startswith("u3_")]
        dropped = stack.engine.metrics.value("event_properties_dropped_total", reason="budget")
        assert len(kept) + dropped == 40 and dropped > 0
        assert {a.outcome for a in await stack.engine.outbox.attempts()} == {"delivered"}


async def test_a_522_is_sent_again_with_core_keys_and_teaches_the_limit(outbox_url: str) -> None:
    """Against an account whose real limit (30) is below the configured budget (100), the
    event refused with 522 is delivered with its core keys only, nothing is dead-lettered,
    and the next user's new attributes are no longer sent."""
    backend = mock_backend(limits=Limits(max_event_properties=30))
    async with running_stack(make_config(outbox_url), backend=backend) as stack:
        backend.clock = stack.clock
        await stack.post(user_event("u1", 10))  # 10 fixed keys + 10: fits the real limit
        await stack.drain()
        await stack.post(user_event("u2", 40))
        await stack.drain()
        await stack.post(user_event("u3", 5))
        await stack.drain()
        stats = await stack.engine.outbox.stats()
        assert (stats.delivered, stats.dead) == (3, 0)
        [second] = stack.backend.events_for(ACCOUNT, identity="u2")
        assert second["evtData"].keys() <= CORE_KEYS
        [third] = stack.backend.events_for(ACCOUNT, identity="u3")
        assert not [key for key in third["evtData"] if key.startswith("u3_")]
        metrics = stack.engine.metrics
        assert metrics.value("event_properties_dropped_total", reason="core_only") > 0
        assert metrics.value("event_properties_dropped_total", reason="budget") == 5
        [stored] = [e for e in await stack.engine.outbox.event_properties() if e.event_name == NAME]
        assert (stored.learned_limit, stored.learned_under) == (20, 100)


async def test_the_budget_survives_a_restart(outbox_url: str) -> None:
    """A restarted engine remembers the keys CleverTap confirmed: the third user gets only
    the room the first two left, and no upload is refused."""
    config = make_config(outbox_url)
    async with running_stack(config) as stack:
        for user in ("u1", "u2"):
            await stack.post(user_event(user))
        await stack.drain()
        await stack.engine.stop()
        restarted = stack.new_engine(config)
        stack.extra.append(restarted)
        await restarted.start()
        await restarted.outbox.enqueue("ev-u3", "PRODUCTION", user_event("u3"), now=stack.clock())
        await stack.drain(restarted)
        [third] = stack.backend.events_for(ACCOUNT, identity="u3")
        assert len(third["evtData"]) == 100 - 90 + 10  # its fixed keys and the 10 left
        assert len(stack.backend.store(ACCOUNT).event_properties[NAME]) == 100
        assert {a.outcome for a in await restarted.outbox.attempts()} == {"delivered"}


async def test_a_learned_limit_survives_a_restart(outbox_url: str) -> None:
    """After a 522 taught the limit, a restarted engine sends no new attribute for the name
    and meets no 522."""
    backend = mock_backend(limits=Limits(max_event_properties=30))
    config = make_config(outbox_url)
    async with running_stack(config, backend=backend) as stack:
        backend.clock = stack.clock
        await stack.post(user_event("u1", 10))
        await stack.drain()
        await stack.post(user_event("u2", 40))
        await stack.drain()
        await stack.engine.stop()
        restarted = stack.new_engine(config)
        stack.extra.append(restarted)
        await restarted.start()
        await restarted.outbox.enqueue(
            "ev-u3", "PRODUCTION", user_event("u3", 5), now=stack.clock()
        )
        await stack.drain(restarted)
        [third] = stack.backend.events_for(ACCOUNT, identity="u3")
        assert not [key for key in third["evtData"] if key.startswith("u3_")]
        assert restarted.metrics.value("event_properties_dropped_total", reason="budget") == 5
        assert restarted.metrics.value("event_properties_dropped_total", reason="core_only") == 0


async def test_context_keys_off_leaves_their_room_to_attributes(outbox_url: str) -> None:
    """With budget.context_properties off, events carry no context key and the budget's
    room goes to attributes."""
    config = with_budget(make_config(outbox_url), context_properties=False)
    async with running_stack(config) as stack:
        await stack.post(user_event("u1", 95))
        await stack.drain()
        [event] = stack.backend.events_for(ACCOUNT, identity="u1")
        assert "store" not in event["evtData"] and "environment" not in event["evtData"]
        assert len([key for key in event["evtData"] if key.startswith("u1_")]) == 95
