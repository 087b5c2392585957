"""The ``rc_clevertap_engine`` fixture's object: the forwarder between the two mocks, in process.

The flow, with no socket and no sleep::

    RevenueCat mock --webhook--> engine receiver --outbox--> dispatcher --upload--> CleverTap
       (flush on the world's loop)  (its ASGI app)   (SQLite file or PostgreSQL schema)  mock

:meth:`LocalEngine.settle` sends the webhooks due, lets the engine work until it is idle
(``Engine.idle``: nothing pending, leased or in flight), jumps RevenueCat's clock to the next
webhook retry if one is pending, and repeats until nothing is left.  The engine's waits
(polls, backoffs, pauses) pass on downstream virtual time, so a retry after a 503 takes no
real time; a budget of downstream seconds bounds an engine that never drains (an account
whose credentials CleverTap refuses is paused, then paused again).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from integration.app.pytest_plugin._world import World
from integration.app.pytest_plugin.clevertap import CleverTapMock
from integration.app.pytest_plugin.revenuecat import RevenueCatMock
from integration.config import (
    CleverTapConfig,
    Config,
    DispatcherConfig,
    OutboxConfig,
    Secret,
    WebhookConfig,
)
from integration.engine import Engine
from integration.outbox import DeadLetter, OutboxStats

__all__ = ["ENGINE_HOST", "WEBHOOK_AUTHORIZATION", "LocalEngine", "NotSettled", "default_config"]

#: The host the engine's receiver answers on, for the RevenueCat mock's webhooks (in process).
ENGINE_HOST = "rc-clevertap.test"
WEBHOOK_AUTHORIZATION = "Bearer rc-clevertap-fixture"

#: Downstream seconds between two looks for rows that fell due (the engine's idle lanes) and
#: at whether the flow is done (``settle``).  Coarse on purpose: each look is an outbox query
#: in real time, and a backoff found up to this late costs only virtual time.
POLL_S = 10.0

#: Downstream seconds ``settle`` gives the flow by default: RevenueCat's whole retry schedule
#: (155 minutes) with room to spare.  An engine that never drains reaches it fast: its pauses
#: and backoffs pass as virtual time too.
SETTLE_BUDGET_S = 3 * 3600.0


class NotSettled(AssertionError):
    """The flow did not settle within the budget; the message says what was left."""


def default_config(outbox_url: str, clevertap: CleverTapMock) -> Config:
    """The engine's configuration against the mocks: both accounts, fast backoffs."""
    production, sandbox = clevertap.account, clevertap.sandbox_account
    return Config(
        clevertap=CleverTapConfig(
            account_id=production.account_id,
            passcode=Secret(production.passcodes[0]),
            region="eu1",
            sandbox_account_id=sandbox.account_id,
            sandbox_passcode=Secret(sandbox.passcodes[0]),
            timeout_s=10.0,
        ),
        webhook=WebhookConfig(authorization=Secret(WEBHOOK_AUTHORIZATION)),
        outbox=OutboxConfig(url=outbox_url, lease_s=3600.0),
        dispatcher=DispatcherConfig(linger_s=0.01, backoff_initial_s=1.0, backoff_max_s=60.0),
    )


class LocalEngine:
    """The forwarding engine wired to ``revenuecat_mock`` and ``clevertap_mock``, started.

    Example::

        def test_trial_reaches_clevertap(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            revenuecat_mock.simulate("start_trial", "user-1", "pro_monthly")
            rc_clevertap_engine.settle()
            clevertap_mock.assert_event("user-1", "rc_trial_started_event")

    Attributes:
        engine: the :class:`~integration.engine.Engine` (its ``metrics``, ``outbox``...).
        config: its :class:`~integration.config.Config` (override the
            ``rc_clevertap_config`` fixture to change it).
        webhook_url: where the RevenueCat mock sends webhooks (in process).
    """

    webhook_url = f"http://{ENGINE_HOST}/webhooks/revenuecat"

    def __init__(
        self,
        world: World,
        revenuecat: RevenueCatMock,
        clevertap: CleverTapMock,
        config: Config,
    ) -> None:
        self._world = world
        self.revenuecat = revenuecat
        self.clevertap = clevertap
        self.config = config
        self._uploads = httpx.AsyncClient(transport=clevertap.async_transport())
        self.engine = Engine(
            config,
            http_client=self._uploads,
            clock=world.now,
            sleep=world.sleep,
            random=lambda: 0.5,  # backoff jitter in the middle: reproducible runs
            poll_s=POLL_S,
            shutdown_grace_s=1.0,
        )
        world.run(self.engine.start())
        revenuecat.add_webhook_target(
            self.webhook_url,
            app=self.engine.app,
            authorization=_authorization(config),
        )

    def __repr__(self) -> str:
        return f"LocalEngine({self.engine!r})"

    # -- driving -----------------------------------------------------------------------------

    def settle(self, *, budget_s: float = SETTLE_BUDGET_S) -> OutboxStats:
        """Deliver until nothing is left: webhooks sent (retries included), every event
        delivered, skipped or dead-lettered.  The outbox's counts then; :class:`NotSettled`
        when ``budget_s`` downstream seconds were not enough."""
        __tracebackhide__ = True  # a failure points at the test's line, not at asyncio's
        try:
            return self._world.run(self._settle(budget_s))
        except NotSettled as exc:
            raise NotSettled(str(exc)) from None

    async def asettle(self, *, budget_s: float = SETTLE_BUDGET_S) -> OutboxStats:
        """:meth:`settle` for an async test."""
        __tracebackhide__ = True
        try:
            return await self._world.arun(self._settle(budget_s))
        except NotSettled as exc:
            raise NotSettled(str(exc)) from None

    async def _settle(self, budget_s: float) -> OutboxStats:
        webhooks = self.revenuecat.backend.webhooks
        deadline = self._world.now() + budget_s
        while True:
            await webhooks.run_due()
            while not await self.engine.idle():
                if self._world.now() > deadline:
                    raise NotSettled(await self._describe(budget_s))
                await self._world.sleep(POLL_S)
            next_due = webhooks.next_due_ms()
            if next_due is None:
                return await self.engine.outbox.stats()
            gap_s = (next_due - self.revenuecat.now_ms()) / 1000
            if self._world.now() + gap_s > deadline:
                raise NotSettled(await self._describe(budget_s))
            if gap_s > 0:
                self._world.advance(gap_s)

    async def _describe(self, budget_s: float) -> str:
        stats = await self.engine.outbox.stats()
        pending_webhooks = self.revenuecat.backend.webhooks.pending_count()
        paused = [a.account_id for a in self.engine.dispatcher.accounts() if a.paused_until]
        return (
            f"not settled within {budget_s:g} s of virtual time: {stats.pending} event(s) "
            f"pending, {stats.leased} leased, {pending_webhooks} webhook(s) still to deliver"
            + (f"; CleverTap account(s) paused: {', '.join(paused)}" if paused else "")
            + (f"; last upload: {stats.last_attempt}" if stats.last_attempt else "")
        )

    # -- reading -----------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        """The outbox's counts: pending, leased, delivered, skipped (and why), dead."""
        return self._world.run(self.engine.outbox.stats())

    def dead_letters(self, *, limit: int = 1000) -> list[DeadLetter]:
        return self._world.run(self.engine.dead_letters(limit=limit))

    def status(self) -> dict[str, Any]:
        """What ``rc-clevertap status`` shows: outbox counts, accounts, counters."""
        return dataclasses.asdict(self._world.run(self.engine.status()))

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the engine (its outbox closed, its threads joined); run at teardown."""
        self._world.run(self._close())

    async def _close(self) -> None:
        await self.engine.stop()
        await self._uploads.aclose()


def _authorization(config: Config) -> str | None:
    secret = config.webhook.authorization
    return None if secret is None else secret.reveal()
