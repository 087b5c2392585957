"""Serving the engine with uvicorn, as ``rc-clevertap serve`` does.

uvicorn is imported here and only here (and in the mock's own server), so that importing the
engine does not load a server: tests and notebooks serve ``Engine.app`` in process instead.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from integration.config import Config
from integration.engine import Engine

if TYPE_CHECKING:
    import uvicorn

__all__ = ["run_server", "serve"]


def _server(
    config: Config, host: str, port: int, log_level: str, access_log: bool, uvicorn_logging: bool
) -> tuple[Engine, uvicorn.Server]:
    """The engine for ``config`` and the uvicorn server that will serve it."""
    import uvicorn  # here, so that importing the package does not load the server
    from uvicorn.config import LOGGING_CONFIG

    from integration.app.dashboard import with_dashboard
    from integration.app.limits import protocol_class, raise_open_file_limit

    engine = Engine(config)
    raise_open_file_limit(engine.config.server)

    # One line per webhook in uvicorn's access log costs more than storing it: off unless
    # asked for (``rc-clevertap serve --access-log``); refusals are logged by the receiver.
    server_config = uvicorn.Config(
        # The delivery dashboard under /ui when [admin] token is set; engine.app otherwise.
        with_dashboard(engine),
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=access_log,
        # Without its own dictConfig, uvicorn's loggers propagate to the root logger, which the
        # CLI has set up (integration.app.logs): one format for every line.
        log_config=LOGGING_CONFIG if uvicorn_logging else None,
        # httptools with [server]'s limits on header size, header and body time, connections.
        http=protocol_class(engine.config.server),
    )
    return engine, uvicorn.Server(server_config)


async def _run(
    engine: Engine,
    server: uvicorn.Server,
    sock: socket.socket | None,
    on_ready: Callable[[], None] | None,
) -> None:
    await engine.start()  # the lifespan's start is then a no-op; its stop drains
    try:
        serving = asyncio.create_task(server.serve(sockets=None if sock is None else [sock]))
        # on_ready once uvicorn serves, and so owns SIGINT and SIGTERM: a signal from then on
        # drains.  uvicorn offers no startup event to await, only this flag.
        while not server.started and not serving.done():  # noqa: ASYNC110 (a flag, no event)
            await asyncio.sleep(0.005)
        if server.started and on_ready is not None:
            on_ready()
        await serving
    finally:
        await engine.stop()  # idempotent: already stopped by the lifespan on a clean exit


async def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
    sock: socket.socket | None = None,
    on_ready: Callable[[], None] | None = None,
    uvicorn_logging: bool = True,
) -> None:
    """Run receiver and dispatcher on the running event loop until interrupted.

    The engine starts first, so that an outbox that cannot be opened raises its
    :class:`~integration.OutboxError` here rather than being logged by uvicorn as a failed
    lifespan.  ``sock`` is a socket already bound and listening (the CLI binds first, so that
    ``--port 0`` has a known port and a bind error is one line); ``on_ready`` is called once
    the engine runs and uvicorn serves.  ``uvicorn_logging=False`` leaves logging to
    the caller's configuration.

    uvicorn handles SIGINT/SIGTERM: it stops accepting connections, then the app's lifespan
    stops the engine (intake closed, in-flight uploads finished or released, outbox closed).
    """
    engine, server = _server(config, host, port, log_level, access_log, uvicorn_logging)
    await _run(engine, server, sock, on_ready)


def run_server(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
    sock: socket.socket | None = None,
    on_ready: Callable[[], None] | None = None,
    uvicorn_logging: bool = True,
) -> None:
    """:func:`serve` on an event loop of uvicorn's choosing (``rc-clevertap serve``).

    uvicorn picks uvloop and its httptools parser when they are installed (they are
    dependencies of rc-clevertap on CPython outside Windows): about twice the requests per
    second of asyncio with h11 on the same core (benchmarks/README.md).
    """
    engine, server = _server(config, host, port, log_level, access_log, uvicorn_logging)
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(_run(engine, server, sock, on_ready))
