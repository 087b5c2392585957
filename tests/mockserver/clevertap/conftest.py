"""Fixtures for the CleverTap mock tests: a backend on a fixed clock, an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mockserver.app import create_app
from mockserver.clevertap import Account, CleverTapBackend

ACCOUNT_ID = "W9R-486-4W5Z"
PASSCODE = "test-passcode-1"
HEADERS = {
    "X-CleverTap-Account-Id": ACCOUNT_ID,
    "X-CleverTap-Passcode": PASSCODE,
    "Content-Type": "application/json",
}
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def event(identity: str = "u1", name: str = "Subscribed", **extra: object) -> dict[str, object]:
    record: dict[str, object] = {
        "type": "event",
        "identity": identity,
        "evtName": name,
        "evtData": {},
    }
    record.update(extra)
    return record


def profile(identity: str = "u1", **data: object) -> dict[str, object]:
    return {"type": "profile", "identity": identity, "profileData": dict(data)}


@pytest.fixture
def backend() -> CleverTapBackend:
    return CleverTapBackend(
        accounts=[Account(ACCOUNT_ID, (PASSCODE, "test-passcode-2"), region="eu1")],
        clock=lambda: NOW,
    )


@pytest.fixture
async def client(backend: CleverTapBackend) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(clevertap_backend=backend)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
