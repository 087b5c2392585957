"""Serving the engine with uvicorn, as ``rc-clevertap serve`` does.

uvicorn is imported here and only here (and in the mock's own server), so that importing the
engine does not load a server: tests and notebooks serve ``Engine.app`` in process instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from integration.config import Config
from integration.engine import Engine

if TYPE_CHECKING:
    import uvicorn

__all__ = ["run_server", "serve"]


def _server(
    config: Config, *, host: str, port: int, log_level: str, access_log: bool
) -> uvicorn.Server:
    import uvicorn  # here, so that importing the package does not load the server

    engine = Engine(config)
    # One line per webhook in uvicorn's access log costs more than storing it: off unless
    # asked for (``rc-clevertap serve --access-log``); refusals are logged by the receiver.
    server_config = uvicorn.Config(
        engine.app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=access_log,
    )
    return uvicorn.Server(server_config)


async def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Run receiver and dispatcher on the running event loop until interrupted.

    uvicorn handles SIGINT/SIGTERM: it stops accepting connections, then the app's lifespan
    stops the engine (intake closed, in-flight uploads finished or released, outbox closed).
    """
    server = _server(config, host=host, port=port, log_level=log_level, access_log=access_log)
    await server.serve()


def run_server(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """:func:`serve` on an event loop of uvicorn's choosing (``rc-clevertap serve``).

    uvicorn picks uvloop and its httptools parser when they are installed (they are
    dependencies of rc-clevertap on CPython outside Windows): about twice the requests per
    second of asyncio with h11 on the same core (benchmarks/README.md).
    """
    server = _server(config, host=host, port=port, log_level=log_level, access_log=access_log)
    server.run()
