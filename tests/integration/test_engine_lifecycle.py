"""Starting, stopping, crashing and restarting the engine: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import pytest
from engine_helpers import make_config, mock_backend, running_stack, webhook

from integration.outbox import Outbox, open_outbox


class UploadGate:
    """A CleverTap mock hook holding uploads while ``holding`` is true."""

    def __init__(self) -> None:
        self.holding = True
        self.held = 0
        self.opened = asyncio.Event()

    async def __call__(self, account_id: str) -> None:
        if self.holding:
            self.held += 1
            await self.opened.wait()


class FrozenOutbox:
    """An outbox that, once frozen, never answers: a process stopped dead (SIGKILL, power)."""

    def __init__(self, inner: Outbox) -> None:
        self._inner = inner
        self.frozen = False
        self._dead = asyncio.Event()
        self.leased_at: list[float] = []  # the ``now`` of each lease that took rows

    def kill(self) -> None:
        """After the test: calls still waiting fail, so the abandoned engine can be torn down."""
        self._dead.set()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(target):
            # health() and the like are plain methods: wrapped as coroutines, the engine's
            # probe made one it never awaited, and its warning failed a later test.
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.frozen and name not in ("close",):
                await self._dead.wait()
                raise RuntimeError("this process is dead")
            result = await target(*args, **kwargs)
            if name == "lease" and result is not None:
                self.leased_at.append(kwargs["now"])
            return result

        return call


async def _until(predicate: Any, clock_sleep: Any, *, timeout_s: float = 30.0) -> None:
    # The outbox works in its own thread (fsync included), so the bound is wall-clock time,
    # not a count of event-loop turns: a loaded machine may need many turns.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await clock_sleep(0.0)
    raise AssertionError("condition never met")


async def test_events_leased_by_a_dead_process_are_delivered_after_restart(
    outbox_url: str,
) -> None:
    """Rows a stopped-dead engine had leased come back at lease expiry to the next engine,
    which delivers each of them once."""
    gate = UploadGate()
    config = make_config(outbox_url, lease_s=60.0)
    backend = mock_backend()
    backend.on_upload = gate
    frozen = FrozenOutbox(open_outbox(config.outbox.url))
    dead_engine = {"outbox": frozen, "shutdown_grace_s": 0.0}
    async with running_stack(config, backend=backend, start=False, **dead_engine) as stack:
        try:
            backend.clock = stack.clock
            ids = [f"e{i}" for i in range(5)]
            await frozen.open()
            for event_id in ids:
                await frozen.enqueue(event_id, "PRODUCTION", webhook(event_id), now=stack.clock())
            await stack.engine.start()
            stats_of = stack.engine.outbox.stats

            async def all_leased() -> bool:
                return gate.held >= 1 and (await stats_of()).leased == 5

            await _until(all_leased, stack.clock.sleep)
            frozen.frozen = True  # the first process stops dead, its batch in flight
            gate.holding = False
            # The lease's own time: idle lanes move the shared fake clock on while we wait.
            [leased_at] = frozen.leased_at

            restarted = stack.new_engine(config)
            stack.extra.append(restarted)
            await restarted.start()
            await stack.drain(restarted)
            assert sorted(stack.delivered_ids()) == ids
            [attempt] = await restarted.outbox.attempts()
            assert attempt.at >= leased_at + 60.0  # not before the dead lease expired
        finally:
            frozen.kill()  # even after a failure, or the dead engine's teardown waits for ever


async def test_stop_releases_uploads_still_in_flight(outbox_url: str) -> None:
    """An upload outliving the shutdown grace is cancelled and its rows go back to pending
    with no attempt counted; the next engine delivers them once."""
    gate = UploadGate()
    backend = mock_backend()
    backend.on_upload = gate
    config = make_config(outbox_url)
    async with running_stack(config, backend=backend, shutdown_grace_s=0.0) as stack:
        backend.clock = stack.clock
        for i in range(3):
            await stack.post(webhook(f"e{i}"))

        async def held() -> bool:
            return gate.held >= 1

        await _until(held, stack.clock.sleep)
        await stack.engine.stop()
        gate.holding = False

        async with open_outbox(config.outbox.url) as outbox:
            stats = await outbox.stats()
            assert (stats.pending, stats.leased, stats.delivered) == (3, 0, 0)
            lease = await outbox.lease("PRODUCTION", 10, now=stack.clock(), lease_s=1)
            assert lease is not None
            assert {e.attempts for e in lease.events} == {0}
            await outbox.release(
                lease, [e.row_id for e in lease.events], retry_at=0, error="", count=False
            )

        restarted = stack.new_engine(config)
        stack.extra.append(restarted)
        await restarted.start()
        await stack.drain(restarted)
        assert sorted(stack.delivered_ids()) == ["e0", "e1", "e2"]


async def test_stop_closes_intake_then_finishes_uploads_in_flight(outbox_url: str) -> None:
    """While stopping, new webhooks get 503 and an upload in flight is allowed to finish."""
    gate = UploadGate()
    backend = mock_backend()
    backend.on_upload = gate
    async with running_stack(make_config(outbox_url), backend=backend) as stack:
        backend.clock = stack.clock
        await stack.post(webhook("e1"))

        async def held() -> bool:
            return gate.held >= 1

        await _until(held, stack.clock.sleep)
        stopping = asyncio.create_task(stack.engine.stop())
        await asyncio.sleep(0)
        late = await stack.post(webhook("e2"))
        assert late.status_code == 503
        gate.opened.set()
        await stopping
        assert stack.delivered_ids() == ["e1"]
        async with open_outbox(stack.engine.config.outbox.url) as outbox:
            stats = await outbox.stats()
        assert (stats.delivered, stats.pending, stats.leased) == (1, 0, 0)


async def test_an_engine_is_not_started_twice(outbox_url: str) -> None:
    """Start and stop are idempotent, and a stopped engine refuses to start again."""
    async with running_stack(make_config(outbox_url)) as stack:
        await stack.engine.start()
        assert stack.engine.running
        await stack.engine.stop()
        await stack.engine.stop()
        with pytest.raises(RuntimeError, match="new one"):
            await stack.engine.start()


async def test_webhooks_before_start_get_503(outbox_url: str) -> None:
    """Until the engine is started the receiver answers 503, which RevenueCat retries."""
    async with running_stack(make_config(outbox_url), start=False) as stack:
        assert (await stack.post(webhook("e1"))).status_code == 503


async def test_dead_letters_can_be_retried(outbox_url: str) -> None:
    """A dead-lettered event retried by the operator is delivered."""
    from mockserver.faults import FaultInjector, FaultRule

    faults = FaultInjector(rules=[FaultRule("reject_records", code=513, share=1.0, count=1)])
    async with running_stack(make_config(outbox_url), faults=faults) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        [dead] = await stack.engine.dead_letters()
        assert dead.reason.startswith("clevertap 513")
        assert await stack.engine.retry_dead([dead.row_id]) == 1
        await stack.drain()
        assert stack.delivered_ids() == ["e1"]
        assert await stack.engine.dead_letters() == []


async def test_replay_sends_delivered_events_again(outbox_url: str) -> None:
    """Replay re-sends events delivered since the given time, mapped again."""
    async with running_stack(make_config(outbox_url)) as stack:
        await stack.post(webhook("e1"))
        await stack.drain()
        assert await stack.engine.replay(since=stack.clock() - 3600) == 1
        await stack.drain()
        assert stack.delivered_ids() == ["e1", "e1"]
