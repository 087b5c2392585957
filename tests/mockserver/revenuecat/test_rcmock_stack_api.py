"""The backend's public methods for a local stack: timeout, targets, simulate, acked_at."""

from __future__ import annotations

import asyncio
import time

import pytest
from rcmock_helpers import PUBLIC, SECRET, V2, Receiver
from starlette.requests import Request

from mockserver.revenuecat import (
    STORE_OPERATIONS,
    DeliveryState,
    RevenueCatBackend,
    VirtualClock,
    WebhookEmitter,
    WebhookTarget,
)
from mockserver.revenuecat.webhooks import RESPONSE_TIMEOUT_S

HOOK = "http://receiver/hook"


def make_backend(receiver: Receiver, clock: VirtualClock, **options: float) -> RevenueCatBackend:
    return RevenueCatBackend(
        public_keys=[PUBLIC], secret_keys=[SECRET], v2_keys=[V2], clock=clock, seed=1,
        webhooks=[WebhookTarget(HOOK)], http_client=receiver.client(), **options,
    )  # fmt: skip


def test_the_webhook_response_timeout_defaults_to_revenuecats_60_seconds() -> None:
    """Without the parameter, a receiver has RevenueCat's 60 virtual seconds to answer."""
    assert RESPONSE_TIMEOUT_S == 60
    assert RevenueCatBackend().webhooks.response_timeout_s == RESPONSE_TIMEOUT_S


async def test_webhook_response_timeout_s_sets_the_receivers_limit(clock: VirtualClock) -> None:
    """With webhook_response_timeout_s=5, a 200 after 6 virtual seconds is a failed attempt."""

    async def slow(request: Request) -> None:
        clock.advance(6)

    backend = make_backend(Receiver(on_request=slow), clock, webhook_response_timeout_s=5.0)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    (delivery,) = backend.webhooks.deliveries()
    assert delivery.attempts[0].status_code == 200 and not delivery.attempts[0].ok
    assert delivery.state is DeliveryState.PENDING


async def test_an_added_webhook_target_receives_the_next_events(clock: VirtualClock) -> None:
    """Events emitted after add_webhook_target are delivered to the new target as well."""
    receiver = Receiver()
    backend = make_backend(receiver, clock)
    backend.buy("u1", "pro_monthly")
    backend.add_webhook_target(WebhookTarget("http://second/hook"))
    backend.renew("u1")
    await backend.webhooks.run_until_settled()
    urls = [(d.event["type"], d.target.url) for d in backend.webhooks.deliveries()]
    assert urls == [
        ("INITIAL_PURCHASE", HOOK), ("RENEWAL", HOOK), ("RENEWAL", "http://second/hook")
    ]  # fmt: skip


async def test_a_target_can_be_added_while_the_emitter_runs() -> None:
    """A target added after start() gets its deliveries from the background task."""
    receiver = Receiver()
    backend = RevenueCatBackend(time_scale=1, http_client=receiver.client())
    async with backend:
        backend.add_webhook_target(WebhookTarget(HOOK))
        backend.buy("u1", "pro_monthly")
        async with asyncio.timeout(5):
            await backend.webhooks.wait_settled()
    (delivery,) = backend.webhooks.deliveries()
    assert delivery.state is DeliveryState.DELIVERED


def test_simulate_runs_an_operation_and_returns_its_events(backend: RevenueCatBackend) -> None:
    """simulate("buy", ...) creates the unknown customer and returns the INITIAL_PURCHASE."""
    (event,) = backend.simulate("buy", "new-user", "pro_monthly")
    assert event["type"] == "INITIAL_PURCHASE" and event["app_user_id"] == "new-user"
    assert backend.customer("new-user").purchases
    assert backend.events() == [event]


def test_simulate_passes_positional_and_keyword_arguments(backend: RevenueCatBackend) -> None:
    """Arguments after the app user id go to the operation as given."""
    backend.simulate("buy", "u1", "pro_monthly")
    (event,) = backend.simulate("cancel", "u1", reason="BILLING_ERROR")
    assert event["type"] == "CANCELLATION" and event["cancel_reason"] == "BILLING_ERROR"


def test_simulate_refuses_an_unknown_operation_naming_the_known_ones(
    backend: RevenueCatBackend,
) -> None:
    """An unknown operation is a ValueError listing every store operation; nothing is created."""
    with pytest.raises(ValueError, match="delete_customer") as raised:
        backend.simulate("delete_customer", "u1")
    assert all(name in str(raised.value) for name in STORE_OPERATIONS)
    assert backend.customers() == []


def test_store_operations_are_the_backends_operations(backend: RevenueCatBackend) -> None:
    """Every name in STORE_OPERATIONS is a method of the backend, and there are 20."""
    assert len(STORE_OPERATIONS) == len(set(STORE_OPERATIONS)) == 20
    assert all(callable(getattr(backend, name)) for name in STORE_OPERATIONS)


async def test_acked_at_is_the_wall_clock_when_the_200_came_back(clock: VirtualClock) -> None:
    """A delivered webhook's acked_at is the emitter's wall clock at the 200; None before."""
    emitter = WebhookEmitter(
        clock=clock, targets=[WebhookTarget(HOOK)], http_client=Receiver().client(),
        wall_clock=lambda: 1_700_000_000.5,
    )  # fmt: skip
    (delivery,) = emitter.enqueue({"id": "e1", "type": "TEST"})
    assert delivery.acked_at is None
    await emitter.run_due()
    assert delivery.acked_at == 1_700_000_000.5


async def test_acked_at_stays_none_while_the_receiver_fails(clock: VirtualClock) -> None:
    """A failed attempt leaves acked_at None; the later 200 sets it."""
    backend = make_backend(Receiver([500, 200]), clock)
    backend.buy("u1", "pro_monthly")
    await backend.webhooks.run_due()
    (delivery,) = backend.webhooks.deliveries()
    assert delivery.acked_at is None
    before = time.time()
    await backend.webhooks.run_until_settled()
    assert delivery.acked_at is not None and before <= delivery.acked_at <= time.time()
