"""Shared pieces for the engine tests: a fake clock, configurations, webhook bodies, and an
engine wired to the CleverTap mock in process (no sockets).

The outbox a configuration names is a SQLite file, or, for tests that take the ``outbox_url``
fixture (``conftest.py``), also a throwaway PostgreSQL schema when
``RC_CLEVERTAP_TEST_POSTGRES_URL`` names a database (:func:`postgres_outbox_url`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from integration.config import (
    CleverTapConfig,
    Config,
    DispatcherConfig,
    ExtrasConfig,
    OutboxConfig,
    Secret,
    WebhookConfig,
)
from integration.engine import Engine
from mockserver import create_app
from mockserver.clevertap import Account, CleverTapBackend
from mockserver.faults import FaultInjector

ACCOUNT = "W9R-486-4W5Z"
PASSCODE = "ct-passcode-s3cr3t"
SANDBOX_ACCOUNT = "SBX-486-4W5Z"
SANDBOX_PASSCODE = "ct-sandbox-s3cr3t"
AUTH = "Bearer whsec-test-value"
START = 1_800_000_000.0


class FakeTime:
    """A clock that only moves when something sleeps on it (or a test advances it)."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


POSTGRES_URL = os.environ.get("RC_CLEVERTAP_TEST_POSTGRES_URL", "")
OUTBOX_BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def postgres_outbox_url(schema: str, base: str = POSTGRES_URL) -> str:
    """``base`` with ``?schema=`` added: the engine keeps its tables in that schema."""
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def drop_postgres_schema(schema: str, base: str = POSTGRES_URL) -> None:
    """Remove a test's schema and everything in it (tables, rows)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def make_config(
    where: Path | str,
    *,
    passcode: str = PASSCODE,
    sandbox: bool = True,
    db: str = "outbox.db",
    extras: ExtrasConfig | None = None,
    lease_s: float = 3600.0,
    **dispatcher: Any,
) -> Config:
    settings: dict[str, Any] = {
        "linger_s": 0.01,
        "backoff_initial_s": 1.0,
        "backoff_max_s": 20.0,
    } | dispatcher
    return Config(
        clevertap=CleverTapConfig(
            account_id=ACCOUNT,
            passcode=Secret(passcode),
            base_url="http://clevertap.test",
            sandbox_account_id=SANDBOX_ACCOUNT if sandbox else None,
            sandbox_passcode=Secret(SANDBOX_PASSCODE) if sandbox else None,
            timeout_s=10.0,
        ),
        webhook=WebhookConfig(authorization=Secret(AUTH)),
        outbox=OutboxConfig(url=outbox_url_for(where, db), lease_s=lease_s),
        dispatcher=DispatcherConfig(**settings),
        extras=extras if extras is not None else ExtrasConfig(),
    )


def outbox_url_for(where: Path | str, db: str = "outbox.db") -> str:
    """A folder means a SQLite file ``db`` in it; a string is already an outbox URL."""
    return where if isinstance(where, str) else f"sqlite:///{where / db}"


def webhook(
    event_id: str,
    *,
    kind: str = "INITIAL_PURCHASE",
    environment: str = "PRODUCTION",
    user: str = "user-1",
    price: float = 9.99,
    **fields: Any,
) -> bytes:
    """A RevenueCat webhook body with the fields the mapping reads."""
    event: dict[str, Any] = {
        "id": event_id,
        "type": kind,
        "event_timestamp_ms": 1_790_000_000_000,
        "app_user_id": user,
        "original_app_user_id": user,
        "environment": environment,
        "product_id": "pro_monthly",
        "period_type": "NORMAL",
        "store": "APP_STORE",
        "currency": "USD",
        "price": price,
        "price_in_purchased_currency": price,
        "entitlement_ids": ["pro"],
        "transaction_id": f"tx-{event_id}",
        "subscriber_attributes": {},
    }
    event.update(fields)
    return json.dumps({"api_version": "1.0", "event": event}).encode()


@dataclass
class Stack:
    engine: Engine
    backend: CleverTapBackend
    faults: FaultInjector
    clock: FakeTime
    receiver: httpx.AsyncClient
    clevertap: httpx.AsyncClient
    extra: list[Engine] = field(default_factory=list)

    async def post(self, body: bytes, *, auth: str = AUTH) -> httpx.Response:
        return await self.receiver.post(
            "/webhooks/revenuecat", content=body, headers={"Authorization": auth}
        )

    def delivered_ids(self, account: str = ACCOUNT) -> list[str]:
        """``rc_event_id`` of every RevenueCat event CleverTap holds, in arrival order."""
        events = self.backend.events(account)
        return [e["evtData"]["rc_event_id"] for e in events if "rc_event_id" in e["evtData"]]

    async def drain(self, engine: Engine | None = None) -> None:
        async with asyncio.timeout(20):
            await (engine or self.engine).wait_idle()

    def new_engine(self, config: Config, **options: Any) -> Engine:
        """Another engine on the same mock (e.g. a restarted process)."""
        options.setdefault("clock", self.clock)
        options.setdefault("sleep", self.clock.sleep)
        options.setdefault("poll_s", 0.05)
        options.setdefault("random", lambda: 0.5)
        return Engine(config, http_client=self.clevertap, **options)


def mock_backend(**options: Any) -> CleverTapBackend:
    return CleverTapBackend(
        accounts=[Account(ACCOUNT, (PASSCODE,)), Account(SANDBOX_ACCOUNT, (SANDBOX_PASSCODE,))],
        **options,
    )


@contextlib.asynccontextmanager
async def running_stack(
    config: Config,
    *,
    backend: CleverTapBackend | None = None,
    faults: FaultInjector | None = None,
    start: bool = True,
    **options: Any,
) -> AsyncIterator[Stack]:
    """An engine on ``config`` uploading to the CleverTap mock, both in process."""
    clock = FakeTime()
    backend = backend if backend is not None else mock_backend(clock=clock)
    faults = faults if faults is not None else FaultInjector(seed=3, clock=clock)
    mock = create_app(clevertap_backend=backend, faults=faults)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=mock), base_url="http://clevertap.test"
    ) as clevertap:
        options.setdefault("clock", clock)
        options.setdefault("sleep", clock.sleep)
        options.setdefault("poll_s", 0.05)
        options.setdefault("random", lambda: 0.5)
        engine = Engine(config, http_client=clevertap, **options)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=engine.app), base_url="http://forwarder.test"
        ) as receiver:
            stack = Stack(engine, backend, faults, clock, receiver, clevertap)
            if start:
                await engine.start()
            try:
                yield stack
            finally:
                for other in stack.extra:
                    await other.stop()
                await engine.stop()
