"""API v2 rate limit: per key per minute, usage headers, 429 with Retry-After and backoff_ms."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from rcmock_helpers import START_MS, V2_AUTH, v2_url
from rcmock_schemas import problems, v2_error

from mockserver import create_app
from mockserver.revenuecat import RevenueCatBackend, VirtualClock

OTHER_V2 = "sk_second_v2_key"


async def make_client(limit: int | None, clock: VirtualClock) -> AsyncIterator[httpx.AsyncClient]:
    backend = RevenueCatBackend(
        v2_keys=["sk_test_v2_value", OTHER_V2], v2_rate_limit=limit, clock=clock
    )
    backend.create_customer("u1")
    transport = httpx.ASGITransport(app=create_app(revenuecat_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


@pytest.fixture
async def limited(clock: VirtualClock) -> AsyncIterator[httpx.AsyncClient]:
    async for http in make_client(3, clock):
        yield http


async def test_usage_headers_on_every_answer(limited: httpx.AsyncClient) -> None:
    """Successful answers carry the current usage and limit."""
    first = await limited.get(v2_url("u1", "/attributes"), headers=V2_AUTH)
    second = await limited.get(v2_url("u1"), headers=V2_AUTH)
    assert first.headers["RevenueCat-Rate-Limit-Current-Usage"] == "1"
    assert second.headers["RevenueCat-Rate-Limit-Current-Usage"] == "2"
    assert second.headers["RevenueCat-Rate-Limit-Current-Limit"] == "3"


async def test_over_the_limit_is_a_429_with_retry_after_and_backoff(
    limited: httpx.AsyncClient,
) -> None:
    """The request past the limit gets 429 rate_limit_error, Retry-After (s) and backoff_ms."""
    assert START_MS % 60_000 == 20_000  # 20 s into the minute: 40 s remain
    for _ in range(3):
        assert (await limited.get(v2_url("u1"), headers=V2_AUTH)).status_code == 200
    response = await limited.get(v2_url("u1"), headers=V2_AUTH)
    assert response.status_code == 429
    body = response.json()
    assert problems(body, v2_error(backoff=True)) == []
    assert (body["type"], body["retryable"], body["backoff_ms"]) == (
        "rate_limit_error",
        True,
        40_000,
    )
    assert response.headers["Retry-After"] == "40"
    assert response.headers["RevenueCat-Rate-Limit-Current-Limit"] == "3"


async def test_the_limit_resets_the_next_minute(
    limited: httpx.AsyncClient, clock: VirtualClock
) -> None:
    """After the window ends, requests are served again."""
    for _ in range(4):
        await limited.get(v2_url("u1"), headers=V2_AUTH)
    clock.advance(60)
    assert (await limited.get(v2_url("u1"), headers=V2_AUTH)).status_code == 200


async def test_each_key_has_its_own_budget(limited: httpx.AsyncClient) -> None:
    """Exhausting one key does not limit another."""
    for _ in range(4):
        await limited.get(v2_url("u1"), headers=V2_AUTH)
    other = await limited.get(v2_url("u1"), headers={"Authorization": f"Bearer {OTHER_V2}"})
    assert other.status_code == 200


async def test_bad_keys_do_not_count(limited: httpx.AsyncClient) -> None:
    """A 401 does not use up the key's budget."""
    for _ in range(5):
        await limited.get(v2_url("u1"), headers={"Authorization": "Bearer nope"})
    assert (await limited.get(v2_url("u1"), headers=V2_AUTH)).status_code == 200


async def test_the_limit_can_be_off(clock: VirtualClock) -> None:
    """``v2_rate_limit=None`` never answers 429."""
    async for http in make_client(None, clock):
        statuses = {(await http.get(v2_url("u1"), headers=V2_AUTH)).status_code for _ in range(20)}
        assert statuses == {200}


def test_default_is_480_per_minute() -> None:
    """The default limit is RevenueCat's Customer Information domain's 480 per minute."""
    assert RevenueCatBackend().rate_limiter.limit == 480


def test_a_limit_below_one_is_refused() -> None:
    """A zero or negative limit is a configuration error."""
    with pytest.raises(ValueError, match="rate limit"):
        RevenueCatBackend(v2_rate_limit=0, clock=VirtualClock(time_scale=0, start_ms=START_MS))
