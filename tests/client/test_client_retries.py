"""Retries: what is retried, how long the client waits, and what every retry sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from rc_helpers import NOW_MS, Script, Sleeps

import client
from client import AsyncRevenueCat, RetryPolicy, RevenueCat


def test_updated_at_ms_is_reused_on_every_retry(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A write retried after 500, a timeout and 429 sends byte-identical bodies each time."""
    ticks = iter(range(1_700_000_000, 1_800_000_000))
    script = Script(
        httpx.Response(500),
        httpx.ReadTimeout("slow"),
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.Response(200, json={}),
    )
    rc = make_client(script, clock=lambda: float(next(ticks)))
    rc.set_clevertap_id("u", "ct-1")
    assert len(script.requests) == 4
    assert len({r.content for r in script.requests}) == 1
    assert script.bodies()[0]["attributes"]["$clevertapId"]["updated_at_ms"] == 1_700_000_000_000


def test_retry_after_header_is_honoured(
    make_client: Callable[..., RevenueCat], sleeps: Sleeps
) -> None:
    """The client sleeps exactly the Retry-After seconds before retrying a 429."""
    script = Script(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200))
    make_client(script).set_attributes("u", {"plan": "pro"})
    assert sleeps.durations == [3.0]


def test_backoff_ms_is_honoured(make_client: Callable[..., RevenueCat], sleeps: Sleeps) -> None:
    """Without a header, the v2 body's backoff_ms sets the sleep."""
    limited = {"object": "error", "type": "rate_limit_error", "retryable": True, "backoff_ms": 2500}
    script = Script(httpx.Response(429, json=limited), httpx.Response(200, json={}))
    make_client(script).set_attributes("u", {"plan": "pro"})
    assert sleeps.durations == [2.5]


def test_server_requested_waits_are_capped(
    make_client: Callable[..., RevenueCat], sleeps: Sleeps
) -> None:
    """A Retry-After beyond max_retry_after sleeps the cap instead."""
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200))
    make_client(script).set_attributes("u", {"plan": "pro"})
    assert sleeps.durations == [RetryPolicy().max_retry_after]


def test_5xx_backs_off_exponentially_with_jitter(
    make_client: Callable[..., RevenueCat], sleeps: Sleeps
) -> None:
    """Each 5xx retry waits within the upper half of a doubling step."""
    script = Script(httpx.Response(503))
    with pytest.raises(client.InternalServerError):
        make_client(script, max_retries=3).set_attributes("u", {"plan": "pro"})
    assert len(script.requests) == 4
    policy = RetryPolicy()
    for number, slept in enumerate(sleeps.durations, start=1):
        step = policy.initial_backoff * 2 ** (number - 1)
        assert step / 2 <= slept <= step


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 423])
def test_other_4xx_are_never_retried(
    make_client: Callable[..., RevenueCat], sleeps: Sleeps, status: int
) -> None:
    """A 4xx other than 429 is raised after one attempt, with no sleep."""
    script = Script(httpx.Response(status, json={"message": "no"}))
    with pytest.raises(client.APIStatusError):
        make_client(script).set_attributes("u", {"plan": "pro"})
    assert len(script.requests) == 1
    assert sleeps.durations == []


def test_attribute_errors_are_not_retried(make_client: Callable[..., RevenueCat]) -> None:
    """A 400 with code 7263 is raised after one attempt."""
    script = Script(httpx.Response(400, json={"code": 7263, "attribute_errors": []}))
    with pytest.raises(client.AttributeValidationError):
        make_client(script).set_attributes("u", {"plan": "pro"})
    assert len(script.requests) == 1


def test_connection_errors_are_retried_until_attempts_run_out(
    make_client: Callable[..., RevenueCat],
) -> None:
    """max_retries=2 means three attempts, then the APIConnectionError surfaces."""
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(client.APIConnectionError):
        make_client(script, max_retries=2).set_attributes("u", {"plan": "pro"})
    assert len(script.requests) == 3


def test_is_retryable_false_suppresses_the_retry(make_client: Callable[..., RevenueCat]) -> None:
    """A 429 with "Is-Retryable: false" (honoured by the iOS SDK) is not retried."""
    script = Script(httpx.Response(429, headers={"Is-Retryable": "false", "Retry-After": "1"}))
    with pytest.raises(client.RateLimitError):
        make_client(script).set_attributes("u", {"plan": "pro"})
    assert len(script.requests) == 1


def test_v2_retryable_false_suppresses_the_retry(make_client: Callable[..., RevenueCat]) -> None:
    """A 5xx whose v2 body says retryable: false is not retried."""
    body = {"object": "error", "type": "server_error", "retryable": False, "message": "no"}
    script = Script(httpx.Response(500, json=body))
    with pytest.raises(client.InternalServerError):
        make_client(script).set_attributes("u", {"plan": "pro"})
    assert len(script.requests) == 1


def test_max_retries_zero_sends_once(make_client: Callable[..., RevenueCat]) -> None:
    """With max_retries=0 a 503 is raised after the first attempt."""
    script = Script(httpx.Response(503))
    with pytest.raises(client.InternalServerError):
        make_client(script, max_retries=0).get_subscriber("u")
    assert len(script.requests) == 1


async def test_async_client_retries_with_the_same_body(
    make_async_client: Callable[..., AsyncRevenueCat], sleeps: Sleeps
) -> None:
    """The async client honours Retry-After and resends the same updated_at_ms."""
    script = Script(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200))
    rc = make_async_client(script)
    await rc.set_clevertap_id("u", "ct-1")
    assert sleeps.durations == [2.0]
    bodies: list[Any] = script.bodies()
    assert bodies[0] == bodies[1]
    assert bodies[0]["attributes"]["$clevertapId"]["updated_at_ms"] == NOW_MS


async def test_async_client_does_not_retry_401(
    make_async_client: Callable[..., AsyncRevenueCat],
) -> None:
    """The async client raises AuthenticationError after one attempt."""
    script = Script(httpx.Response(401, json={"message": "Invalid API key", "code": 7225}))
    with pytest.raises(client.AuthenticationError):
        await make_async_client(script).get_subscriber("u")
    assert len(script.requests) == 1
