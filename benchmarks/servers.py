"""What the benchmark's child processes run, each under uvicorn with the same settings.

    python benchmarks/servers.py engine  --config FILE --port N [--poll-s S] [--hold]
                                                                  the receiver and dispatcher
    python benchmarks/servers.py ceiling --port N                 a bare Starlette endpoint
    python benchmarks/servers.py bare    --port N                 the same without Starlette
    python benchmarks/servers.py mock    --port N [--faults P] [--seed S] [--max-events N]

The engine and the ceilings share one uvicorn configuration (:func:`uvicorn_config`): one
worker, no access log, log level warning, and the event loop and HTTP parser uvicorn picks
(uvloop and httptools, dependencies of rc-clevertap, as ``rc-clevertap serve`` runs), so the
ingest ratio compares the apps alone.  Both ceilings parse with orjson, as the receiver does.  The
mock is the project's own (``mockserver.create_app``) with caps raised for large runs.

``--hold`` lets several engine processes start on a pre-filled outbox and begin delivering at
one moment: the engine's clock stands still at its start-up time until the process gets
SIGUSR1, so rows stored after start-up are not yet due (the outbox leases rows whose due time,
their arrival time, has come); after the signal the clock is the real one again, and the next
idle poll (``--poll-s``) finds them.  The benchmark times the drain from that signal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integration.app.limits import protocol_class, raise_open_file_limit
from integration.config import load_config
from integration.engine import Engine
from integration.receiver import WEBHOOK_PATH
from mockserver import create_app
from mockserver.clevertap import CleverTapBackend
from mockserver.faults import FaultInjector
from mockserver.revenuecat import RevenueCatBackend

__all__ = ["HeldClock", "bare_app", "ceiling_app", "main", "uvicorn_config"]


class HeldClock:
    """Epoch seconds that stand still at creation until :meth:`release` (see ``--hold``)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._held_at: float | None = clock()

    def __call__(self) -> float:
        held = self._held_at
        return self._clock() if held is None else held

    def release(self, *_signal: object) -> None:
        self._held_at = None


def uvicorn_config(app: Any, port: int, *, http: Any = "auto") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=http,
    )


def ceiling_app() -> Starlette:
    """The least a webhook endpoint does: read the body, parse the JSON, answer 200."""

    async def webhook(request: Request) -> Response:
        document = orjson.loads(await request.body())
        return JSONResponse({"status": "stored", "event_id": document["event"]["id"]})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same endpoint as raw ASGI, no framework: what the server alone allows."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == WEBHOOK_PATH:
        answer = orjson.dumps({"status": "stored", "event_id": orjson.loads(body)["event"]["id"]})
    else:
        answer = b'{"status":"ok"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def mock_app(*, faults: str | None, seed: int, max_events: int) -> Starlette:
    clevertap = CleverTapBackend(
        max_events_per_account=max_events, max_profiles_per_account=max_events, seed=seed
    )
    revenuecat = RevenueCatBackend(seed=seed, v2_rate_limit=None, max_customers=max_events)
    injector = FaultInjector(seed=seed)
    if faults:
        injector.apply_preset(faults)
    return create_app(revenuecat_backend=revenuecat, clevertap_backend=clevertap, faults=injector)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["engine", "ceiling", "bare", "mock"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", help="engine configuration (TOML)")
    parser.add_argument("--poll-s", type=float, default=1.0, help="engine idle poll (1.0)")
    parser.add_argument("--hold", action="store_true", help="engine clock held until SIGUSR1")
    parser.add_argument("--faults", help="mock fault preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-events", type=int, default=200_000, help="mock event cap")
    args = parser.parse_args(argv)
    app: Any
    http: Any = "auto"
    if args.kind == "engine":
        if not args.config:
            parser.error("engine needs --config")
        options: dict[str, Any] = {"poll_s": args.poll_s}
        if args.hold:
            clock = HeldClock()
            # Installed before uvicorn starts, which replaces only SIGINT's and SIGTERM's.
            signal.signal(signal.SIGUSR1, clock.release)
            options["clock"] = clock
        config = load_config(args.config)
        app = Engine(config, **options).app
        # The engine with the limits rc-clevertap serve enforces (integration/app/limits.py):
        # the ingest figure includes their cost; the ceilings run uvicorn's plain protocol.
        raise_open_file_limit(config.server)
        http = protocol_class(config.server)
    elif args.kind == "ceiling":
        app = ceiling_app()
    elif args.kind == "bare":
        app = bare_app
    else:
        app = mock_app(faults=args.faults, seed=args.seed, max_events=args.max_events)
    # Server.run sets up the event loop uvicorn picks (uvloop when installed), as uvicorn.run
    # and rc-clevertap serve do; asyncio.run(server.serve()) would keep asyncio's own.
    uvicorn.Server(uvicorn_config(app, args.port, http=http)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
