"""The webhook receiver on its own: authentication, size limit, quarantine, durable 200s."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from engine_helpers import AUTH, webhook

from integration.config import Secret, WebhookConfig
from integration.metrics import Metrics
from integration.outbox import SQLiteOutbox
from integration.receiver import Receiver


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[SQLiteOutbox]:
    async with SQLiteOutbox(tmp_path / "o.db") as box:
        yield box


def make_receiver(outbox: SQLiteOutbox, **options: object) -> tuple[Receiver, list[str]]:
    woken: list[str] = []
    receiver = Receiver(
        WebhookConfig(authorization=Secret(AUTH), max_body_bytes=1024),
        outbox,
        clock=lambda: 100.0,
        on_stored=woken.append,
        **options,  # type: ignore[arg-type]
    )
    return receiver, woken


def client(receiver: Receiver) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app), base_url="http://r")


async def post(receiver: Receiver, body: bytes, **headers: str) -> httpx.Response:
    async with client(receiver) as http:
        return await http.post(
            "/webhooks/revenuecat", content=body, headers={"Authorization": AUTH} | headers
        )


async def test_valid_webhook_is_stored_before_200(outbox: SQLiteOutbox) -> None:
    """A valid webhook is answered 200 once it is in the outbox, and wakes its lane."""
    receiver, woken = make_receiver(outbox)
    response = await post(receiver, webhook("e1", environment="SANDBOX"))
    assert response.status_code == 200
    assert response.json() == {"status": "stored", "event_id": "e1"}
    assert (await outbox.stats()).pending == 1
    assert woken == ["SANDBOX"]


async def test_repeated_event_id_is_acknowledged_not_stored(outbox: SQLiteOutbox) -> None:
    """A retried webhook gets 200 "duplicate" and is not queued again."""
    receiver, woken = make_receiver(outbox)
    await post(receiver, webhook("e1"))
    response = await post(receiver, webhook("e1"))
    assert (response.status_code, response.json()["status"]) == (200, "duplicate")
    assert (await outbox.stats()).pending == 1
    assert woken == ["PRODUCTION"]
    assert receiver.metrics.value("webhooks_duplicate_total") == 1


@pytest.mark.parametrize("auth", ["", "Bearer wrong", AUTH + "x", AUTH.lower()])
async def test_wrong_authorization_gets_401_and_nothing_is_stored(
    outbox: SQLiteOutbox, auth: str
) -> None:
    """Any Authorization other than the configured one is refused and nothing is kept."""
    receiver, _ = make_receiver(outbox)
    response = await post(receiver, webhook("e1"), Authorization=auth)
    assert response.status_code == 401
    stats = await outbox.stats()
    assert (stats.pending, stats.quarantined) == (0, 0)


async def test_missing_authorization_gets_401(outbox: SQLiteOutbox) -> None:
    """A request without an Authorization header is refused."""
    receiver, _ = make_receiver(outbox)
    async with client(receiver) as http:
        response = await http.post("/webhooks/revenuecat", content=webhook("e1"))
    assert response.status_code == 401


async def test_refusals_never_log_the_authorization_values(
    outbox: SQLiteOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the expected nor the offered Authorization value reaches the logs."""
    caplog.set_level(logging.DEBUG)
    receiver, _ = make_receiver(outbox)
    await post(receiver, webhook("e1"), Authorization="Bearer offered-secret")
    assert "offered-secret" not in caplog.text
    assert AUTH not in caplog.text
    assert "whsec" not in repr(receiver)


async def test_declared_oversized_body_gets_413(outbox: SQLiteOutbox) -> None:
    """A Content-Length over the limit is refused with 413 and nothing is stored."""
    receiver, _ = make_receiver(outbox)
    response = await post(receiver, b"x" * 2000)
    assert response.status_code == 413
    stats = await outbox.stats()
    assert (stats.pending, stats.quarantined) == (0, 0)


async def test_streamed_oversized_body_is_not_read_to_the_end(outbox: SQLiteOutbox) -> None:
    """A chunked body without Content-Length is cut off with 413 once past the limit."""
    receiver, _ = make_receiver(outbox)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(1000):
            sent.append(i)
            yield b"x" * 512

    async with client(receiver) as http:
        response = await http.post(
            "/webhooks/revenuecat", content=chunks(), headers={"Authorization": AUTH}
        )
    assert response.status_code == 413
    assert len(sent) < 10


async def test_invalid_body_is_quarantined_with_its_reason(outbox: SQLiteOutbox) -> None:
    """An authenticated body that is not an event gets 400 and is kept with the reason."""
    receiver, _ = make_receiver(outbox)
    response = await post(receiver, b'{"event": {"type": "RENEWAL"}}')
    assert response.status_code == 400
    assert "event.id" in response.json()["error"]
    [kept] = await outbox.quarantined()
    assert (kept.body, kept.received_at) == (b'{"event": {"type": "RENEWAL"}}', 100.0)
    assert "event.id" in kept.reason
    assert (await outbox.stats()).pending == 0


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'{"event": 3}'])
async def test_malformed_bodies_get_400_never_500(outbox: SQLiteOutbox, body: bytes) -> None:
    """Malformed, non-object and non-UTF-8 bodies are answered 400."""
    receiver, _ = make_receiver(outbox)
    assert (await post(receiver, body)).status_code == 400


async def test_closed_intake_answers_503(outbox: SQLiteOutbox) -> None:
    """After close_intake new webhooks get 503, which RevenueCat retries."""
    receiver, _ = make_receiver(outbox)
    receiver.close_intake()
    assert (await post(receiver, webhook("e1"))).status_code == 503
    assert (await outbox.stats()).pending == 0


async def test_a_failing_outbox_answers_503(tmp_path: Path) -> None:
    """When the outbox cannot store, the answer is 503 (retry later), not 500."""
    box = SQLiteOutbox(tmp_path / "o.db")
    await box.open()
    await box.close()
    receiver, _ = make_receiver(box)
    response = await post(receiver, webhook("e1"))
    assert response.status_code == 503
    assert "retry later" in response.json()["error"]


async def test_healthz_says_ok_and_nothing_more(outbox: SQLiteOutbox) -> None:
    """GET /healthz answers {"status": "ok"} while intake is open: no counts, no account."""
    receiver, _ = make_receiver(outbox)
    await post(receiver, webhook("e1"))
    async with client(receiver) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_healthz_is_503_while_stopping(outbox: SQLiteOutbox) -> None:
    """GET /healthz answers 503 once intake is closed."""
    receiver, _ = make_receiver(outbox)
    receiver.close_intake()
    async with client(receiver) as http:
        assert (await http.get("/healthz")).status_code == 503


async def test_metrics_counts_what_the_receiver_saw(outbox: SQLiteOutbox) -> None:
    """GET /metrics serves Prometheus text counting stored, duplicate and refused webhooks."""

    async def gauges() -> list[tuple[str, str, dict[str, str], float]]:
        return [("queue_depth", "Rows.", {"state": "pending"}, 1.0)]

    receiver, _ = make_receiver(outbox, metrics=Metrics(), gauges=gauges)
    await post(receiver, webhook("e1"))
    await post(receiver, webhook("e1"))
    await post(receiver, b"nope")
    await post(receiver, webhook("e2"), Authorization="wrong")
    async with client(receiver) as http:
        response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "rc_clevertap_webhooks_received_total 1\n" in text
    assert "rc_clevertap_webhooks_duplicate_total 1\n" in text
    assert 'rc_clevertap_webhooks_rejected_total{reason="invalid_body"} 1\n' in text
    assert 'rc_clevertap_webhooks_rejected_total{reason="unauthorized"} 1\n' in text
    assert 'rc_clevertap_queue_depth{state="pending"} 1\n' in text


async def test_without_configured_authorization_any_caller_is_accepted(
    outbox: SQLiteOutbox,
) -> None:
    """With no webhook.authorization configured, requests without the header are stored."""
    receiver = Receiver(WebhookConfig(), outbox)
    async with client(receiver) as http:
        response = await http.post("/webhooks/revenuecat", content=webhook("e1"))
    assert response.status_code == 200


async def test_authorization_is_compared_in_constant_time(
    outbox: SQLiteOutbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Authorization check goes through hmac.compare_digest on the raw bytes."""
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("integration.receiver.hmac.compare_digest", spy)
    receiver, _ = make_receiver(outbox)
    await post(receiver, webhook("e1"), Authorization="Bearer nope")
    assert compared == [(b"Bearer nope", AUTH.encode())]


async def test_a_webhook_answer_is_json_with_its_length(outbox: SQLiteOutbox) -> None:
    """The 200 names the stored event in a JSON body with Content-Type and Content-Length."""
    receiver, _ = make_receiver(outbox)
    response = await post(receiver, webhook("e1"))
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json() == {"status": "stored", "event_id": "e1"}


async def test_other_methods_on_the_webhook_path_get_405(outbox: SQLiteOutbox) -> None:
    """GET on the webhook path is refused with 405, as any route refuses a wrong method."""
    receiver, _ = make_receiver(outbox)
    async with client(receiver) as http:
        response = await http.get("/webhooks/revenuecat")
    assert response.status_code == 405


async def test_a_client_that_hangs_up_mid_body_stores_nothing(outbox: SQLiteOutbox) -> None:
    """A disconnect before the body is complete stores nothing and sends no answer."""
    receiver, woken = make_receiver(outbox)
    body = webhook("e1")
    messages = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/revenuecat",
        "headers": [(b"authorization", AUTH.encode())],
    }
    await receiver.app(scope, receive, send)  # type: ignore[arg-type]
    assert sent == []
    assert woken == []
    assert (await outbox.stats()).pending == 0


async def test_an_unexpected_failure_answers_500_without_details(
    outbox: SQLiteOutbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in handling answers 500 with a generic message, so RevenueCat retries later."""
    receiver, _ = make_receiver(outbox)

    def broken(body: bytes) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr("integration.receiver.parse_webhook", broken)
    response = await post(receiver, webhook("e1"))
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}


def test_refused_webhooks_are_logged_at_most_ten_a_minute_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood of refusals logs 10 lines a minute per reason, then one line counting the rest."""
    from integration.receiver import RefusalLog

    now = [0.0]
    refusals = RefusalLog(lambda: now[0])
    with caplog.at_level("WARNING", logger="integration.receiver"):
        for _ in range(25):
            refusals.log("unauthorized", 401, "wrong or missing Authorization header")
        assert len(caplog.records) == 10
        now[0] = 61.0
        refusals.log("unauthorized", 401, "wrong or missing Authorization header")
    assert "suppressed 15 more" in caplog.records[10].getMessage()
    assert [r.reason for r in caplog.records] == ["unauthorized"] * 12  # type: ignore[attr-defined]
