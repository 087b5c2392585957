"""What the plugin's fixtures share in one test: a private event loop, virtual time, and
httpx transports that hand requests to ASGI apps in process.

Time::

    RevenueCat's clock   a frozen VirtualClock; moves only on advance() (and when a settle
                         jumps to the next webhook retry)
    downstream time      RevenueCat's time plus a drift; the engine's polls and backoffs, the
                         fault rules' stalls and CleverTap's receive times read it

Downstream time jumps, it never flows: a sleep on the world's loop waits until nothing else
on the loop can run (no callback ready, no call to an executor thread - the SQLite outbox's
- in flight), and then time jumps to the earliest sleeper's deadline and wakes it (trio's
autojump clock, on asyncio).  So a 503 backoff takes no real time, and no time passes while
the outbox commits a webhook.  Waiting on a socket (PostgreSQL) does not hold time back: a
sleeper may wake while a query is out, as if the query were slow.

The split between the two clocks is deliberate: if the engine's polls moved RevenueCat's
clock, the mock's 60 s response limit (revenuecat.md section 4.1) would fail webhooks the
engine answered at once.

The loop: the engine's tasks and the webhook emitter's attempts run on a loop of the world's
own, only while a fixture drives it (``run``), so nothing happens between two lines of a test.
Called from a test that already runs a loop (an async test), ``run`` drives the private loop
on a short-lived thread and joins it before returning: no thread outlives the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Generic, TypeVar

import httpx
from starlette.types import ASGIApp

from mockserver.revenuecat import VirtualClock

T = TypeVar("T")


class _QuietLoop(asyncio.SelectorEventLoop):
    """An event loop that can tell when nothing on it can run: no callback is ready and no
    executor call is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.executor_calls = 0
        self.executor_idle = asyncio.Event()
        self.executor_idle.set()

    def run_in_executor(  # type: ignore[override]  # same signature, typed loosely
        self, executor: concurrent.futures.Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.executor_calls += 1
        self.executor_idle.clear()
        future.add_done_callback(self._executor_done)
        return future

    def _executor_done(self, _: object) -> None:
        self.executor_calls -= 1
        if not self.executor_calls:
            self.executor_idle.set()

    def quiet(self) -> bool:
        return not self._ready and not self.executor_calls  # type: ignore[attr-defined]


class World:
    """The private loop and the clocks of one set of fixtures (a test, or a session)."""

    def __init__(self) -> None:
        # loop_factory keeps the Runner from installing its loop as the thread's current one,
        # which an async test's own loop (pytest-asyncio, anyio) would then trip over.
        self._runner = asyncio.Runner(loop_factory=_QuietLoop)
        self.revenuecat_clock = VirtualClock(time_scale=0)
        self.drift_s = 0.0
        self._closed = False
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._keeper: asyncio.Task[None] | None = None
        self._sleeping = asyncio.Event()

    def now(self) -> float:
        """Downstream time, epoch seconds: RevenueCat's clock plus the drift of every sleep."""
        return self.revenuecat_clock.now_ms() / 1000 + self.drift_s

    async def sleep(self, seconds: float) -> None:
        """An injected sleep: returns once downstream time reaches its deadline, which
        happens as soon as nothing else on the loop can run (see the module docstring)."""
        loop = asyncio.get_running_loop()
        if not isinstance(loop, _QuietLoop):
            # Another loop (an async test's, the live server's): time moves on at once.
            self.drift_s += max(0.0, seconds)
            await asyncio.sleep(0)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken = loop.create_future()
        heapq.heappush(self._sleepers, (self.now() + seconds, next(self._order), woken))
        if self._keeper is None:
            self._keeper = loop.create_task(self._keep_time(loop), name="rc-clevertap clock")
        self._sleeping.set()
        await woken  # cancelled with its caller; the keeper skips it then

    async def _keep_time(self, loop: _QuietLoop) -> None:
        while True:
            await asyncio.sleep(0)
            if loop.executor_calls:
                await loop.executor_idle.wait()
                continue
            if not loop.quiet():
                continue
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                self._sleeping.clear()
                await self._sleeping.wait()
                continue
            deadline = self._sleepers[0][0]
            self.drift_s += max(0.0, deadline - self.now())
            while self._sleepers and self._sleepers[0][0] <= deadline:
                _, _, woken = heapq.heappop(self._sleepers)
                if not woken.done():
                    woken.set_result(None)

    def advance(self, seconds: float) -> None:
        """Move RevenueCat's clock, and so downstream time, forward."""
        self.revenuecat_clock.advance(seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop until it finishes; its result or its exception."""
        if self._closed:
            coro.close()
            raise RuntimeError("the rc-clevertap fixtures of this test are already torn down")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._runner.run(coro)
        return self._run_on_thread(coro)

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """``run`` for an async test: its own loop keeps running while the private one works."""
        if self._closed:
            coro.close()
            raise RuntimeError("the rc-clevertap fixtures of this test are already torn down")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        box: _Box[T] = _Box()

        def work() -> None:
            try:
                box.run(self._runner, coro)
            finally:
                loop.call_soon_threadsafe(_finish, done)

        thread = threading.Thread(target=work, name="rc-clevertap-fixtures")
        thread.start()
        try:
            await asyncio.shield(done)
        finally:
            thread.join()
        return box.result()

    def _run_on_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        box: _Box[T] = _Box()
        thread = threading.Thread(
            target=box.run, args=(self._runner, coro), name="rc-clevertap-fixtures"
        )
        thread.start()
        thread.join()
        return box.result()

    def close(self) -> None:
        """Close the private loop: remaining tasks cancelled, its executor's threads joined."""
        if not self._closed:
            self._closed = True
            self._runner.close()


def _finish(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class _Box(Generic[T]):
    """What a coroutine run on another thread returned or raised."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self, runner: asyncio.Runner, coro: Coroutine[Any, Any, T]) -> None:
        try:
            self._value = runner.run(coro)
        except BaseException as exc:
            self._error = exc

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set by run() when no error


class ASGIRouter(httpx.AsyncBaseTransport):
    """An async transport that hands each request to the ASGI app serving its host.

    A host no app serves is a connection error, as an unknown name would be on a network.
    Routes can be added while clients use the transport (the engine's receiver joins after
    the RevenueCat mock's webhook client exists).
    """

    def __init__(self, apps: Mapping[str, ASGIApp] | None = None) -> None:
        self._apps: dict[str, httpx.ASGITransport] = {}
        for host, app in (apps or {}).items():
            self.add(host, app)

    def add(self, host: str, app: ASGIApp) -> None:
        self._apps = {**self._apps, host.lower(): httpx.ASGITransport(app=app)}

    def serves(self, host: str) -> bool:
        return self.app_for(host) is not None

    def app_for(self, host: str) -> httpx.ASGITransport | None:
        return self._apps.get(host.lower())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.app_for(request.url.host)
        if transport is None:
            raise httpx.ConnectError(
                f"no in-process app serves {request.url.host!r} (rc-clevertap fixtures)",
                request=request,
            )
        return await transport.handle_async_request(request)


class SyncASGITransport(httpx.BaseTransport):
    """A sync transport over :class:`ASGIRouter`: each request runs on the world's loop.

    Starlette's ``TestClient`` would do the same with a thread per request, and warns on httpx
    (a warning a user's ``filterwarnings = error`` turns into a failure).
    """

    def __init__(self, world: World, router: ASGIRouter) -> None:
        self._world = world
        self._router = router

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        inner = httpx.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=body,
            extensions=request.extensions,
        )
        return self._world.run(_read_whole(self._router, inner))


async def _read_whole(router: ASGIRouter, request: httpx.Request) -> httpx.Response:
    response = await router.handle_async_request(request)
    raw = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=raw,
        request=request,
        extensions=response.extensions,
    )
