"""The webhook emitter: RevenueCat's body, auth, 200-only success, retry schedule, timeouts."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging

import httpx
import pytest
from rcmock_helpers import PUBLIC, SECRET, START_MS, V2, Receiver
from starlette.requests import Request

from mockserver import create_app
from mockserver.revenuecat import (
    DeliveryState,
    Environment,
    RevenueCatBackend,
    VirtualClock,
    WebhookTarget,
)

HOOK = "http://receiver/hook"
MINUTE_MS = 60_000


def make_backend(receiver: Receiver, clock: VirtualClock, **target: object) -> RevenueCatBackend:
    return RevenueCatBackend(
        public_keys=[PUBLIC], secret_keys=[SECRET], v2_keys=[V2], clock=clock, seed=1,
        webhooks=[WebhookTarget(HOOK, **target)],  # type: ignore[arg-type]
        http_client=receiver.client(),
    )  # fmt: skip


async def test_receiver_failing_three_times_gets_retries_after_5_10_and_20_minutes(
    clock: VirtualClock,
) -> None:
    """Three failures are retried 5, 10 and 20 virtual minutes apart, with the same id and time."""
    receiver = Receiver([500, 503, 404, 200])
    backend = make_backend(receiver, clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_until_settled()
    (delivery,) = backend.webhooks.deliveries()
    starts = [a.started_at_ms for a in delivery.attempts]
    assert [b - a for a, b in itertools.pairwise(starts)] == [
        5 * MINUTE_MS, 10 * MINUTE_MS, 20 * MINUTE_MS
    ]  # fmt: skip
    assert [a.status_code for a in delivery.attempts] == [500, 503, 404, 200]
    assert delivery.state is DeliveryState.DELIVERED
    events = [r["body"]["event"] for r in receiver.requests]
    assert len({e["id"] for e in events}) == 1
    assert {e["event_timestamp_ms"] for e in events} == {START_MS}


async def test_retries_happen_only_when_due(clock: VirtualClock) -> None:
    """Nothing is re-sent before the 5 minutes have passed on the virtual clock."""
    receiver = Receiver([500, 200])
    backend = make_backend(receiver, clock)
    backend.buy("u1", "pro_monthly")
    assert await backend.webhooks.run_due() == 1
    clock.advance(299)
    assert await backend.webhooks.run_due() == 0
    clock.advance(1)
    assert await backend.webhooks.run_due() == 1
    assert len(receiver.requests) == 2


async def test_after_five_retries_the_delivery_fails(clock: VirtualClock) -> None:
    """A receiver that always fails gets 6 attempts over 155 virtual minutes, then no more."""
    receiver = Receiver([500] * 10)
    backend = make_backend(receiver, clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_until_settled()
    (delivery,) = backend.webhooks.deliveries()
    assert delivery.state is DeliveryState.FAILED and len(delivery.attempts) == 6
    assert delivery.attempts[-1].started_at_ms - START_MS == 155 * MINUTE_MS
    clock.advance(24 * 3600)
    assert await backend.webhooks.run_due() == 0


@pytest.mark.parametrize("status", [201, 202, 204, 301, 400, 429])
async def test_only_200_counts(clock: VirtualClock, status: int) -> None:
    """Any status other than 200, even another 2xx, is a failure to be retried."""
    receiver = Receiver([status])
    backend = make_backend(receiver, clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    (delivery,) = backend.webhooks.deliveries()
    assert delivery.state is DeliveryState.PENDING
    assert delivery.next_attempt_at_ms == START_MS + 5 * MINUTE_MS


async def test_a_response_slower_than_60_virtual_seconds_fails(clock: VirtualClock) -> None:
    """A 200 that took 61 virtual seconds counts as a failure and is retried."""

    async def slow(request: Request) -> None:
        clock.advance(61)

    receiver = Receiver([200, 200], on_request=slow)
    backend = make_backend(receiver, clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    (delivery,) = backend.webhooks.deliveries()
    attempt = delivery.attempts[0]
    assert attempt.status_code == 200 and not attempt.ok
    assert attempt.error is not None and "61" in attempt.error
    assert delivery.state is DeliveryState.PENDING


async def test_a_response_within_60_virtual_seconds_succeeds(clock: VirtualClock) -> None:
    """A 200 after 59 virtual seconds is a success."""

    async def slowish(request: Request) -> None:
        clock.advance(59)

    backend = make_backend(Receiver(on_request=slowish), clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    assert backend.webhooks.deliveries()[0].state is DeliveryState.DELIVERED


async def test_a_hanging_receiver_times_out_in_real_time_when_the_clock_runs() -> None:
    """With a running clock, a receiver that never answers is cut off after 60 virtual s."""
    never = asyncio.Event()

    async def hang(request: Request) -> None:
        await never.wait()

    clock = VirtualClock(time_scale=60_000, start_ms=START_MS)  # 60 virtual s = 1 real ms
    backend = make_backend(Receiver(on_request=hang), clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    attempt = backend.webhooks.deliveries()[0].attempts[0]
    assert attempt.status_code is None and attempt.error == "no response within 60 s"


async def test_connection_errors_are_failures(clock: VirtualClock) -> None:
    """A receiver that cannot be reached is a failed attempt, not a crash."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    backend = RevenueCatBackend(
        clock=clock, webhooks=[WebhookTarget(HOOK)],
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)),
    )  # fmt: skip
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    attempt = backend.webhooks.deliveries()[0].attempts[0]
    assert attempt.error == "ConnectError: could not deliver"


async def test_body_and_authorization_are_revenuecats(clock: VirtualClock) -> None:
    """The POST carries ``{"api_version": "1.0", "event": ...}`` and the auth value verbatim."""
    receiver = Receiver()
    backend = make_backend(receiver, clock, authorization="my-shared-secret 123")
    (event,) = backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    (request,) = receiver.requests
    assert request["headers"]["authorization"] == "my-shared-secret 123"
    assert request["headers"]["content-type"] == "application/json"
    assert request["body"] == {"api_version": "1.0", "event": json.loads(json.dumps(event))}


async def test_no_authorization_header_when_none_is_configured(clock: VirtualClock) -> None:
    """Without a configured value no Authorization header is sent."""
    receiver = Receiver()
    backend = make_backend(receiver, clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    assert "authorization" not in receiver.requests[0]["headers"]


async def test_environment_filter(clock: VirtualClock) -> None:
    """A production-only target gets production events and not sandbox ones."""
    receiver = Receiver()
    backend = make_backend(receiver, clock, environments=frozenset({Environment.PRODUCTION}))
    backend.buy("u1", "pro_monthly", environment="SANDBOX")
    backend.buy("u2", "pro_monthly")
    await backend.webhooks.run_due()
    assert [r["body"]["event"]["app_user_id"] for r in receiver.requests] == ["u2"]
    assert len(backend.events()) == 2


def test_target_validation() -> None:
    """A relative URL or an empty environment filter is refused."""
    with pytest.raises(ValueError, match="absolute"):
        WebhookTarget("/hook")
    with pytest.raises(ValueError, match="environment"):
        WebhookTarget(HOOK, environments=frozenset())


async def test_emission_never_blocks_an_api_request() -> None:
    """While the receiver hangs, simulator calls and API requests still answer at once."""
    release, entered = asyncio.Event(), asyncio.Event()

    async def hang(request: Request) -> None:
        entered.set()
        await release.wait()

    clock = VirtualClock(time_scale=1, start_ms=START_MS)
    receiver = Receiver(on_request=hang)
    backend = make_backend(receiver, clock)
    app = create_app(revenuecat_backend=backend)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        simulate = await http.post(
            "/_mock/revenuecat/simulate/buy",
            json={"app_user_id": "u1", "product_id": "pro_monthly"},
        )
        async with asyncio.timeout(5):
            await entered.wait()  # the emitter is now blocked inside the receiver
        api = await http.get("/v1/subscribers/u1", headers={"Authorization": SECRET})
        assert (simulate.status_code, api.status_code) == (200, 200)
        assert backend.webhooks.deliveries()[0].state is DeliveryState.IN_FLIGHT
        release.set()
        async with asyncio.timeout(5):
            await backend.webhooks.wait_settled()
    assert backend.webhooks.deliveries()[0].state is DeliveryState.DELIVERED


async def test_background_task_replays_the_whole_schedule_in_well_under_a_second() -> None:
    """At time_scale 200,000 the 155-minute retry schedule runs in under a second of real time."""
    clock = VirtualClock(time_scale=200_000, start_ms=START_MS)
    receiver = Receiver([500] * 6)
    backend = make_backend(receiver, clock)
    loop = asyncio.get_running_loop()
    async with backend:
        began = loop.time()
        backend.buy("u1", "pro_monthly")
        async with asyncio.timeout(5):
            await backend.webhooks.wait_settled()
        elapsed = loop.time() - began
    (delivery,) = backend.webhooks.deliveries()
    assert delivery.state is DeliveryState.FAILED and len(delivery.attempts) == 6
    starts = [a.started_at_ms for a in delivery.attempts]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(
        gap >= minutes * MINUTE_MS for gap, minutes in zip(gaps, [5, 10, 20, 40, 80], strict=True)
    )
    assert elapsed < 1.0


async def test_stop_cancels_a_hanging_attempt_cleanly() -> None:
    """stop() with a receiver that never answers returns promptly, the attempt recorded."""
    never, entered = asyncio.Event(), asyncio.Event()

    async def hang(request: Request) -> None:
        entered.set()
        await never.wait()

    receiver = Receiver(on_request=hang)
    backend = make_backend(receiver, VirtualClock(time_scale=1, start_ms=START_MS))
    await backend.start()
    backend.buy("u1", "pro_monthly")
    async with asyncio.timeout(5):
        await entered.wait()
    async with asyncio.timeout(5):
        await backend.webhooks.stop(grace_s=0.01)
    (delivery,) = backend.webhooks.deliveries()
    assert delivery.attempts[0].error == "cancelled at shutdown"
    assert delivery.state is DeliveryState.PENDING


async def test_the_delivery_log_is_bounded(clock: VirtualClock) -> None:
    """Beyond ``max_deliveries`` the oldest finished deliveries are forgotten first."""
    receiver = Receiver()
    backend = RevenueCatBackend(
        clock=clock, webhooks=[WebhookTarget(HOOK)], http_client=receiver.client(),
        max_deliveries=3,
    )  # fmt: skip
    backend.buy("u1", "pro_monthly")
    backend.buy("u2", "pro_monthly")
    await backend.webhooks.run_due()
    backend.buy("u3", "pro_monthly")
    backend.buy("u4", "pro_monthly")
    users = [d.event["app_user_id"] for d in backend.webhooks.deliveries()]
    assert users == ["u2", "u3", "u4"] and backend.webhooks.dropped == 0
    backend.buy("u5", "pro_monthly")
    backend.buy("u6", "pro_monthly")
    assert len(backend.webhooks.deliveries()) == 3 and backend.webhooks.dropped == 1


async def test_deliveries_and_attempts_over_http(clock: VirtualClock) -> None:
    """The control API lists deliveries with attempts, runs due attempts and moves the clock."""
    receiver = Receiver([500, 200])
    backend = make_backend(receiver, clock, authorization="hook-secret-xyz")
    transport = httpx.ASGITransport(app=create_app(revenuecat_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        backend.buy("u1", "pro_monthly")
        assert (await http.post("/_mock/revenuecat/webhooks/run-due")).json() == {"attempts": 1}
        advanced = await http.post("/_mock/revenuecat/clock/advance", json={"seconds": 300})
        assert advanced.json()["now_ms"] == START_MS + 5 * MINUTE_MS
        await http.post("/_mock/revenuecat/webhooks/run-due")
        listed = (await http.get("/_mock/revenuecat/webhooks/deliveries")).json()["items"]
        one = (await http.get(f"/_mock/revenuecat/webhooks/deliveries/{listed[0]['id']}")).json()
        summary = await http.get("/_mock/revenuecat/")
    assert [a["status_code"] for a in listed[0]["attempts"]] == [500, 200]
    assert listed[0]["state"] == "delivered"
    assert one["event"]["type"] == "INITIAL_PURCHASE"
    assert "hook-secret-xyz" not in summary.text and SECRET not in summary.text
    assert summary.json()["deliveries"] == {"delivered": 1}


async def test_event_type_filter(clock: VirtualClock) -> None:
    """A target with an event-type filter gets only those types."""
    receiver = Receiver()
    backend = make_backend(receiver, clock, event_types=frozenset({"CANCELLATION"}))
    backend.buy("u1", "pro_monthly")
    backend.cancel("u1")
    await backend.webhooks.run_due()
    assert [r["body"]["event"]["type"] for r in receiver.requests] == ["CANCELLATION"]


def test_authorization_must_be_one_line() -> None:
    """An Authorization value with a line break (header injection) is refused."""
    with pytest.raises(ValueError, match="one non-empty line"):
        WebhookTarget(HOOK, authorization="Bearer x\r\nX-Evil: 1")


async def test_failed_deliveries_never_log_the_authorization(
    clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs of failing attempts name the URL and status, never the Authorization value."""
    caplog.set_level(logging.DEBUG)
    backend = make_backend(Receiver([500] * 6), clock, authorization="Bearer very-secret-hook")
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_until_settled()
    assert "failed" in caplog.text
    assert "very-secret-hook" not in caplog.text
    assert "very-secret-hook" not in repr(backend.webhooks.deliveries())
