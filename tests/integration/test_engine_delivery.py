"""The engine against the CleverTap mock in process: what a healthy CleverTap gets."""

from __future__ import annotations

import asyncio

from engine_helpers import (
    ACCOUNT,
    SANDBOX_ACCOUNT,
    make_config,
    running_stack,
    webhook,
)

from integration.config import ExtrasConfig
from integration.outbox import SQLiteOutbox


async def test_webhook_reaches_clevertap_under_the_user(outbox_url: str) -> None:
    """A stored webhook becomes one CleverTap event on the app user's identity."""
    async with running_stack(make_config(outbox_url)) as stack:
        response = await stack.post(webhook("e1", user="alice"))
        assert response.status_code == 200
        assert response.json() == {"status": "stored", "event_id": "e1"}
        await stack.drain()
        [event] = stack.backend.events_for(ACCOUNT, identity="alice")
        assert event["evtName"] == "rc_initial_purchase_event"
        assert event["evtData"]["amount"] == 9.99
        stats = await stack.engine.outbox.stats()
        assert (stats.delivered, stats.pending, stats.dead) == (1, 0, 0)


async def test_duplicates_are_acknowledged_once(outbox_url: str) -> None:
    """A webhook RevenueCat sends three times is answered 200 each time and delivered once."""
    async with running_stack(make_config(outbox_url)) as stack:
        answers = [await stack.post(webhook("e1")) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.json()["status"] for a in answers] == ["stored", "duplicate", "duplicate"]
        await stack.drain()
        assert stack.delivered_ids() == ["e1"]
        assert stack.engine.metrics.value("webhooks_duplicate_total") == 2


async def test_concurrent_duplicates_are_acknowledged_once(outbox_url: str) -> None:
    """The same webhook arriving concurrently is stored and delivered once."""
    async with running_stack(make_config(outbox_url)) as stack:
        answers = await asyncio.gather(*(stack.post(webhook("e1")) for _ in range(10)))
        assert all(a.status_code == 200 for a in answers)
        assert sum(a.json()["status"] == "stored" for a in answers) == 1
        await stack.drain()
        assert stack.delivered_ids() == ["e1"]


async def test_batches_hold_at_most_batch_size_records(outbox_url: str) -> None:
    """Events giving two records each are uploaded in batches of at most batch_size records."""
    config = make_config(outbox_url, batch_size=50, extras=ExtrasConfig(charged_event=True))
    async with running_stack(config, start=False) as stack:
        await stack.engine.outbox.open()
        for i in range(120):
            await stack.engine.outbox.enqueue(f"e{i}", "PRODUCTION", webhook(f"e{i}"), now=0.0)
        await stack.engine.start()
        await stack.drain()
        attempts = await stack.engine.outbox.attempts(limit=100)
        assert all(a.records <= 50 for a in attempts)
        assert sum(a.records for a in attempts) == 240
        assert sorted(set(stack.delivered_ids())) == sorted(f"e{i}" for i in range(120))
        assert len(stack.backend.events(ACCOUNT)) == 240


async def test_sandbox_events_go_to_the_sandbox_account(outbox_url: str) -> None:
    """SANDBOX events are uploaded to the sandbox account, PRODUCTION ones to production."""
    async with running_stack(make_config(outbox_url)) as stack:
        await stack.post(webhook("p1"))
        await stack.post(webhook("s1", environment="SANDBOX"))
        await stack.drain()
        assert stack.delivered_ids(ACCOUNT) == ["p1"]
        assert stack.delivered_ids(SANDBOX_ACCOUNT) == ["s1"]


async def test_events_not_forwarded_are_skipped_with_a_reason(outbox_url: str) -> None:
    """A TEST event and a sandbox event without a sandbox account are skipped, not sent."""
    async with running_stack(make_config(outbox_url, sandbox=False)) as stack:
        await stack.post(webhook("t1", kind="TEST"))
        await stack.post(webhook("s1", environment="SANDBOX"))
        await stack.drain()
        stats = await stack.engine.outbox.stats()
        assert stats.skipped == 2
        assert set(stats.skipped_by_reason) == {
            "event type TEST is not forwarded to CleverTap",
            "sandbox event and no sandbox account configured",
        }
        assert stack.backend.events(ACCOUNT) == []
        assert stack.engine.metrics.total("events_skipped_total") == 2


async def test_every_upload_is_in_the_ledger(outbox_url: str) -> None:
    """Each upload is recorded with its batch, records, status, outcome and event ids."""
    async with running_stack(make_config(outbox_url)) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        [entry] = await stack.engine.outbox.attempts()
        assert (entry.account_id, entry.environment, entry.records) == (ACCOUNT, "PRODUCTION", 1)
        assert (entry.status, entry.outcome, entry.event_ids) == ("200", "delivered", ("e1",))
        assert "processed 1" in entry.summary


async def test_a_backlog_leaves_in_batches_of_up_to_1000_records(outbox_url: str) -> None:
    """2,500 waiting events leave in uploads of at most CleverTap's 1,000 records."""
    async with running_stack(make_config(outbox_url), start=False) as stack:
        await stack.engine.outbox.open()
        await asyncio.gather(
            *(
                stack.engine.outbox.enqueue(f"e{i}", "PRODUCTION", webhook(f"e{i}"), now=0.0)
                for i in range(2500)
            )
        )
        await stack.engine.start()
        await stack.drain()
        sizes = sorted(a.records for a in await stack.engine.outbox.attempts())
        assert sizes == [500, 1000, 1000]
        assert len(set(stack.delivered_ids())) == 2500


async def test_the_engine_opens_the_outbox_its_url_names(outbox_url: str) -> None:
    """[outbox] url picks the backend: a sqlite:/// URL a file, a postgresql:// URL the
    database, in the schema ``?schema=`` names; webhooks in, duplicates acknowledged, events
    out, on either."""
    async with running_stack(make_config(outbox_url)) as stack:
        if outbox_url.startswith("sqlite"):
            assert isinstance(stack.engine.outbox, SQLiteOutbox)
        else:
            from integration.outbox.postgres import PostgresOutbox  # needs psycopg

            assert isinstance(stack.engine.outbox, PostgresOutbox)
            assert outbox_url.endswith(f"?schema={stack.engine.outbox.schema}")
        for event_id in ("e1", "e2", "e1"):
            assert (await stack.post(webhook(event_id))).status_code == 200
        await stack.drain()
        assert sorted(stack.delivered_ids()) == ["e1", "e2"]
