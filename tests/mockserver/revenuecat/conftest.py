"""Fixtures for the RevenueCat mock tests: a backend on a frozen clock, in-process clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from rcmock_helpers import PUBLIC, SECRET, START_MS, V2

from mockserver.app import create_app
from mockserver.revenuecat import RevenueCatBackend, VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(time_scale=0, start_ms=START_MS)


@pytest.fixture
def backend(clock: VirtualClock) -> RevenueCatBackend:
    return RevenueCatBackend(
        public_keys=[PUBLIC], secret_keys=[SECRET], v2_keys=[V2], clock=clock, seed=1
    )


@pytest.fixture
async def client(backend: RevenueCatBackend) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(revenuecat_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
