"""The identity and store rules through the whole engine: webhook in, CleverTap mock out."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

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


def test_serve_refuses_unknown_identity_and_store_values_at_start(tmp_path: Path) -> None:
    """`serve` with an unknown identity or store value exits 2 with one line naming each key
    and its variable, before it opens an outbox or a port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RC_CLEVERTAP_")} | {
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "ACC-1",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "never-shown-passcode",
        "RC_CLEVERTAP_OUTBOX_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "RC_CLEVERTAP_IDENTITY_FALLBACK": "user_id",
        "RC_CLEVERTAP_EVENTS_STORES_RENEWAL": "APP_STORE,ITUNES",
    }
    result = subprocess.run(
        [sys.executable, "-m", "integration.app.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (line,) = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert "identity.fallback: must be one of" in line and "RC_CLEVERTAP_IDENTITY_FALLBACK" in line
    assert "events.stores.renewal: unknown store 'ITUNES'" in line
    assert "never-shown-passcode" not in line and not (tmp_path / "outbox.db").exists()
