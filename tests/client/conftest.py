"""Fixtures for the client tests: clients around a scripted transport, with no real waiting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from rc_helpers import API_KEY, Script, Sleeps, fixed_clock

from client import AsyncRevenueCat, RevenueCat


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., RevenueCat]]:
    """Build a sync client around a Script, with a fixed clock and recorded sleeps."""
    opened: list[httpx.Client] = []

    def make(script: Script, **kwargs: Any) -> RevenueCat:
        http = httpx.Client(transport=httpx.MockTransport(script))
        opened.append(http)
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("clock", fixed_clock)
        kwargs.setdefault("sleep", sleeps)
        return RevenueCat(http_client=http, **kwargs)

    yield make
    for http in opened:
        http.close()


@pytest.fixture
async def make_async_client(sleeps: Sleeps) -> Any:
    """Build an async client around a Script, with a fixed clock and recorded sleeps."""
    opened: list[httpx.AsyncClient] = []

    def make(script: Script, **kwargs: Any) -> AsyncRevenueCat:
        http = httpx.AsyncClient(transport=httpx.MockTransport(script.handle_async))
        opened.append(http)
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("clock", fixed_clock)
        kwargs.setdefault("sleep", sleeps.async_sleep)
        return AsyncRevenueCat(http_client=http, **kwargs)

    yield make
    for http in opened:
        await http.aclose()
