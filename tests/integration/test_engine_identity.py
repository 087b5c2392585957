"""The identity and store rules through the whole engine: webhook in, CleverTap mock out."""

from __future__ import annotations

import dataclasses

from engine_helpers import ACCOUNT, make_config, running_stack, webhook

from integration.config import IdentityConfig

ANONYMOUS = "$RCAnonymousID:3c9d0a7e1f2b4c5d8e6f7a8b9c0d1e2f"
# A buyer who purchased anonymously and logged in as member-1 later.
NAMED_LATER = {"original_app_user_id": ANONYMOUS, "aliases": [ANONYMOUS, "member-1"]}


async def test_grants_and_anonymous_buyers_are_counted_not_sent(outbox_url: str) -> None:
    """A promotional grant (by default) and, under anonymous = skip, events whose
    original_app_user_id is anonymous are acknowledged, counted by code and not sent."""
    identity = IdentityConfig(fallback="original_app_user_id", anonymous="skip")
    config = dataclasses.replace(make_config(outbox_url), identity=identity)
    async with running_stack(config) as stack:
        await stack.post(webhook("grant", store="PROMOTIONAL", period_type="PROMOTIONAL"))
        await stack.post(webhook("anon", user=ANONYMOUS, original_app_user_id=ANONYMOUS))
        await stack.post(webhook("later", user="member-1", **NAMED_LATER))
        await stack.post(webhook("named", user="member-1", original_app_user_id="member-1"))
        await stack.drain()
        text = (await stack.receiver.get("/metrics")).text
    assert 'rc_clevertap_events_skipped_total{reason="store_not_forwarded"} 1\n' in text
    assert 'rc_clevertap_events_skipped_total{reason="anonymous_identity"} 2\n' in text
    assert stack.delivered_ids() == ["named"]


async def test_anonymous_alias_lands_on_the_named_profile(outbox_url: str) -> None:
    """Under anonymous = alias, the anonymous buyer's event reaches CleverTap under the id
    they logged in with; one who never did is sent under the anonymous id."""
    identity = IdentityConfig(fallback="original_app_user_id", anonymous="alias")
    config = dataclasses.replace(make_config(outbox_url), identity=identity)
    async with running_stack(config) as stack:
        await stack.post(webhook("later", user="member-1", **NAMED_LATER))
        await stack.post(webhook("anon", user=ANONYMOUS, original_app_user_id=ANONYMOUS))
        await stack.drain()
        events = stack.backend.events(ACCOUNT)
    users = {e["evtData"]["rc_event_id"]: e.get("identity") for e in events}
    assert users == {"later": "member-1", "anon": ANONYMOUS}
