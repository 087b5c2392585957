"""The operator's functions (dlq, replay, status), /metrics and the lifespan."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from engine_helpers import ACCOUNT, AUTH, PASSCODE, make_config, running_stack, webhook
from starlette.testclient import TestClient

from integration.admin import (
    UnknownDeadLetters,
    list_dead_letters,
    list_quarantined,
    read_status,
    replay_delivered,
    retry_dead_letters,
)
from integration.config import Config
from integration.engine import Engine
from mockserver.faults import FaultInjector, FaultRule


async def test_operator_functions_work_on_the_configured_outbox(outbox_url: str) -> None:
    """dlq list, dlq retry, replay and status read and change the configured outbox."""
    config = make_config(outbox_url)
    faults = FaultInjector(rules=[FaultRule("reject_records", code=513, share=1.0, count=1)])
    async with running_stack(config, faults=faults) as stack:
        await stack.post(webhook("dead"))
        await stack.drain()
        await stack.post(webhook("fine"))
        await stack.drain()
        await stack.post(b"garbage")
        now = stack.clock()
    status = await read_status(config)
    assert (status.delivered, status.dead, status.pending, status.quarantined) == (1, 1, 0, 1)
    assert status.last_attempt is not None and status.last_attempt.outcome == "delivered"
    [dead] = await list_dead_letters(config)
    assert dead.event_id == "dead"
    assert (await list_quarantined(config))[0].body == b"garbage"
    assert await retry_dead_letters(config, None, now=now) == 1
    assert await replay_delivered(config, since=now - 3600, now=now) == 1
    assert (await read_status(config)).pending == 2


async def test_engine_status_shows_queue_and_accounts(outbox_url: str) -> None:
    """status() reports the outbox counts, each account's slots and the counters."""
    async with running_stack(make_config(outbox_url, concurrency=6)) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        status = await stack.engine.status()
    assert status.running
    assert status.outbox.delivered == 1
    production = next(a for a in status.accounts if a.account_id == ACCOUNT)
    assert (production.concurrency_limit, production.paused_until) == (6, None)
    assert status.counters["events_delivered_total"] == 1


async def test_metrics_endpoint_reports_delivery_and_queue(outbox_url: str) -> None:
    """GET /metrics on the engine counts deliveries and shows the queue depth and latency."""
    async with running_stack(make_config(outbox_url)) as stack:
        await stack.post(webhook("e1"))
        await stack.post(webhook("t1", kind="TEST"))
        await stack.drain()
        text = (await stack.receiver.get("/metrics")).text
    assert 'rc_clevertap_events_delivered_total{environment="PRODUCTION"} 1\n' in text
    assert 'rc_clevertap_events_skipped_total{reason="not_forwarded"} 1\n' in text
    assert 'rc_clevertap_uploads_total{environment="PRODUCTION",outcome="delivered"} 1\n' in text
    assert 'rc_clevertap_queue_depth{state="pending"} 0\n' in text
    assert "rc_clevertap_upload_latency_seconds_count" in text
    assert f'rc_clevertap_account_concurrency{{account="{ACCOUNT}"}} 4\n' in text
    assert PASSCODE not in text


def test_serving_the_app_starts_and_stops_the_engine(outbox_url: str) -> None:
    """The app's lifespan starts the engine and stops it (outbox closed) on shutdown."""
    success = {"status": "success", "processed": 1, "unprocessed": []}
    clevertap = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=success))
    )
    engine = Engine(make_config(outbox_url), http_client=clevertap, poll_s=0.05)
    with TestClient(engine.app) as client:
        assert engine.running
        response = client.post(
            "/webhooks/revenuecat", content=webhook("e1"), headers={"Authorization": AUTH}
        )
        assert response.status_code == 200
        assert client.get("/healthz").json()["status"] == "ok"
    assert not engine.running


# Only the configuration's secrets: no outbox is opened, so one backend is enough.
def test_engine_repr_hides_secrets(tmp_path: Path) -> None:
    """Neither the passcode nor the webhook secret shows in the engine's repr."""
    text = repr(Engine(make_config(tmp_path)))
    assert PASSCODE not in text
    assert AUTH not in text


async def test_metric_labels_are_codes_and_configured_accounts_only(outbox_url: str) -> None:
    """/metrics labels a skipped sandbox event by its code and names no pseudo-account."""
    async with running_stack(make_config(outbox_url, sandbox=False)) as stack:
        await stack.post(webhook("s1", environment="SANDBOX"))
        await stack.post(webhook("u1", kind="LOYALTY_POINTS_AWARDED"))
        await stack.drain()
        text = (await stack.receiver.get("/metrics")).text
    assert 'rc_clevertap_events_skipped_total{reason="sandbox_no_account"} 1\n' in text
    assert 'rc_clevertap_events_skipped_total{reason="unknown_type"} 1\n' in text
    assert "(no " not in text


async def _one_dead_letter(outbox_url: str) -> tuple[Config, float]:
    config = make_config(outbox_url)
    faults = FaultInjector(rules=[FaultRule("reject_records", code=513, share=1.0, count=1)])
    async with running_stack(config, faults=faults) as stack:
        await stack.post(webhook("dead-1"))
        await stack.drain()
        now = stack.clock()
    return config, now


async def test_a_dead_letter_is_retried_by_its_event_id(outbox_url: str) -> None:
    """dlq retry takes the event id an operator reads in the logs, as well as the row id."""
    config, now = await _one_dead_letter(outbox_url)
    assert await retry_dead_letters(config, ["dead-1"], now=now) == 1
    assert (await read_status(config)).pending == 1


async def test_unknown_dead_letter_ids_are_an_error_that_changes_no_row(outbox_url: str) -> None:
    """Retrying a known and an unknown id raises, naming the unknown one, and requeues none."""
    config, now = await _one_dead_letter(outbox_url)
    [dead] = await list_dead_letters(config)
    with pytest.raises(UnknownDeadLetters, match="9999") as raised:
        await retry_dead_letters(config, [dead.row_id, 9999], now=now)
    assert raised.value.ids == ("9999",)
    assert (await read_status(config)).dead == 1
