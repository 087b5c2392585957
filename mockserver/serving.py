"""Serve ASGI apps on free loopback ports in the background.

Used by ``rc-clevertap mock``, by the local stack (``integration.app.localstack``), by the
benchmarks and by the few tests that are about real sockets.  Two pieces:

- :class:`BackgroundServer`: one uvicorn server as a task of the *current* event loop,
  started on a free port, stopped cleanly.
- :class:`LoopThread`: an event loop in a daemon thread, so synchronous code (a notebook, a
  ``with`` block) can run coroutines there and keep going.

Example::

    server = BackgroundServer(app)
    url = await server.start()          # "http://127.0.0.1:53817"
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp

T = TypeVar("T")

#: How long ``start`` waits for uvicorn to bind before giving up, in seconds.
STARTUP_TIMEOUT_S = 10.0


class ServerStartError(RuntimeError):
    """uvicorn did not come up (port taken, lifespan failed, or it timed out)."""


class BackgroundServer:
    """One uvicorn server on ``host``:``port`` (0 = a free port), run as an asyncio task.

    Parameters:
        app: the ASGI app.
        host: the loopback address to bind.
        port: the port, or 0 for a free one.
        log_level: uvicorn's log level; "warning" keeps access logs quiet.
        timeout_graceful_shutdown: seconds ``stop`` lets requests in flight finish before
            cancelling them (``None``: wait for them, however long they take).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        timeout_keep_alive: int = 5,
        timeout_graceful_shutdown: int | None = None,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            access_log=False,
            timeout_keep_alive=timeout_keep_alive,
            timeout_graceful_shutdown=timeout_graceful_shutdown,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        """Start serving; returns the base URL once the socket is bound."""
        self._task = asyncio.create_task(self._server.serve(), name=f"uvicorn:{self.host}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception()
                raise ServerStartError(f"server on {self.host} failed to start: {exc!r}")
            if loop.time() > deadline:
                raise ServerStartError(f"server on {self.host} did not start in time")
            # Polling a flag uvicorn sets; uvicorn offers no startup event to await.
            await asyncio.sleep(0.005)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self.url

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, run the lifespan shutdown."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


class LoopThread:
    """An asyncio event loop running in a daemon thread.

    ``run(coro)`` blocks the caller until the coroutine finishes in that loop and returns its
    result (or raises its exception).  ``close()`` stops the loop and joins the thread.
    """

    def __init__(self, *, name: str = "rc-clevertap-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
