"""The webhook receiver: RevenueCat's POSTs in, durably stored, answered only once on disk.

Routes::

    POST /webhooks/revenuecat   the shared path; with [[routes]], an event goes to the route
                                its app_id and environment match, else to "default"
                                (integration/routes.py); 404 when neither takes it
    POST /webhooks/revenuecat/<path>
                                a route's own path, checked against that route's
                                Authorization value; 404 when no route claims the path (the
                                body is not read, nothing is stored); otherwise as below
    Either path answers:        401 wrong Authorization (nothing stored)
                                413 body over webhook.max_body_bytes (not read past the limit)
                                400 not a RevenueCat event (body quarantined with the reason)
                                503 not accepting now (shutting down, or the outbox failed):
                                    RevenueCat retries later (revenuecat.md §4.1)
                                200 stored, or a repeated event id already stored
    GET  /healthz               200 {"status": "ok"} while intake is open and the outbox's last
                                write committed; 503 otherwise (shutting down, or the disk or
                                database refuses writes).  Answered from state the engine
                                holds: no query, whatever the number of probes
    GET  /metrics               Prometheus text (see integration/metrics.py); with
                                metrics.token set, only to "Authorization: Bearer <token>"
                                (401 otherwise).  Queue depths come from a snapshot at most
                                a few seconds old (Engine), never from the committing thread

RevenueCat counts only a 200 as delivered and retries anything else after 5, 10, 20, 40 and
80 minutes with the same event id (revenuecat.md §4.1), so a 200 is sent only after the event
is committed (fsync'd) and a repeated id is answered 200 without storing it twice.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

from integration.config import Secret, WebhookConfig
from integration.metrics import Metrics
from integration.outbox.base import Outbox
from integration.premap import stored_form
from integration.routes import DEFAULT_ROUTE, WEBHOOK_PATH, Routes
from integration.webhook import InvalidWebhook, parse_webhook

__all__ = ["WEBHOOK_PATH", "Gauge", "Receiver"]

logger = logging.getLogger(__name__)

#: Lines logged per refusal reason code and minute (see :class:`RefusalLog`).
REFUSALS_LOGGED_PER_MINUTE = 10

_ROUTE_PREFIX = WEBHOOK_PATH + "/"
Gauge = tuple[str, str, Mapping[str, str], float]
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Receiver:
    """The receiver's state and its Starlette app (``receiver.app``).

    Example::

        receiver = Receiver(config.webhook, outbox, metrics=metrics)
        # serve receiver.app; on shutdown:
        receiver.close_intake()

    Parameters:
        webhook: the ``[webhook]`` configuration (Authorization value, body limit).
        outbox: an opened outbox; only ``enqueue``, ``quarantine`` and ``stats`` are used.
        metrics: counters shared with the dispatcher.
        clock: epoch seconds, stored as each event's ``received_at``.
        on_stored: called with the environment after each newly stored event (wakes the
            dispatcher).
        gauges: awaited on each scrape for the gauges ``/metrics`` adds to the counters.
        metrics_token: when set, ``/metrics`` answers only ``Authorization: Bearer <token>``.
        lifespan: the app's lifespan (the engine starts and stops itself with it).
        routes: the configuration's routes; ``None`` is the one route ``default`` (every
            webhook on the shared path, ``webhook``'s Authorization).
        wake: called with the environment and the route after each newly stored event,
            instead of ``on_stored``.
    """

    def __init__(
        self,
        webhook: WebhookConfig,
        outbox: Outbox,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        on_stored: Callable[[str], None] | None = None,
        gauges: Callable[[], Awaitable[Iterable[Gauge]]] | None = None,
        lifespan: Lifespan[Starlette] | None = None,
        metrics_token: Secret | None = None,
        routes: Routes | None = None,
        wake: Callable[[str, str], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.routes = routes
        self._wake = wake
        # The route label only when [[routes]] are configured: today's metrics stay as they were.
        self._labelled = routes is not None and routes.several
        # A route's own path: its name and the Authorization value it expects.
        self._by_path: dict[str, tuple[str, bytes | None]] = {
            route.path: (
                route.name,
                None if route.authorization is None else route.authorization.reveal().encode(),
            )
            for route in (routes or ())
            if route.path is not None
        }
        self.metrics = metrics if metrics is not None else Metrics()
        self.max_body_bytes = webhook.max_body_bytes
        self._expected = (
            None if webhook.authorization is None else webhook.authorization.reveal().encode()
        )
        if self._expected is None:
            logger.warning(
                "webhook.authorization is not set: any caller can post webhooks. Set it to the "
                "Authorization value configured in RevenueCat"
            )
        self._clock = clock
        self._refusals = RefusalLog(clock)
        self._on_stored = on_stored
        self._gauges = gauges
        self._metrics_expected = (
            None if metrics_token is None else b"Bearer " + metrics_token.reveal().encode()
        )
        self.accepting = True
        self._routes = Starlette(
            routes=[
                # POSTs never reach this route (see app); it answers 405 to other methods.
                Route(WEBHOOK_PATH, _unreachable, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.metrics_text, methods=["GET"]),
            ],
            lifespan=lifespan,
        )
        self.app: ASGIApp = _ReceiverApp(self)

    def __repr__(self) -> str:
        return f"Receiver(outbox={self.outbox!r}, accepting={self.accepting})"

    def close_intake(self) -> None:
        """Answer 503 to new webhooks from now on (RevenueCat will retry them)."""
        self.accepting = False

    def open_intake(self) -> None:
        self.accepting = True

    def _authorized(self, headers: list[tuple[bytes, bytes]], expected: bytes | None) -> bool:
        if expected is None:
            return True
        given = _header(headers, b"authorization") or b""
        return hmac.compare_digest(given, expected)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._accept(scope["headers"], receive, scope["path"])
        except Exception:
            logger.exception("webhook handling failed; answering 500")
            answer = (500, {"error": "internal error"})
        if answer is None:
            return  # the client hung up before sending its body: nothing stored, nobody to tell
        status, document = answer
        body = orjson.dumps(document)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _accept(
        self, headers: list[tuple[bytes, bytes]], receive: Receive, path: str = WEBHOOK_PATH
    ) -> tuple[int, dict[str, Any]] | None:
        """Store one webhook; the status and JSON document to answer, or ``None`` when the
        client disconnected before its body was read."""
        if not self.accepting:
            self.metrics.inc("webhooks_rejected_total", reason="unavailable")
            return _error(503, "not accepting webhooks now (shutting down); retry later")
        route: str | None = None  # known from the path, or from the event on the shared path
        expected = self._expected
        if path != WEBHOOK_PATH:
            claimed = self._by_path.get(path)
            if claimed is None:
                self.metrics.inc("webhooks_rejected_total", reason="no_route")
                self._refusals.log("no_route", 404, "no route claims this path")
                return _error(404, "no route claims this path")
            route, expected = claimed
        if not self._authorized(headers, expected):
            self.metrics.inc("webhooks_rejected_total", reason="unauthorized")
            self._refusals.log("unauthorized", 401, "wrong or missing Authorization header")
            return _error(401, "wrong or missing Authorization header")
        try:
            body = await self._read_body(headers, receive)
        except _Disconnected:
            return None
        if body is None:
            self.metrics.inc("webhooks_rejected_total", reason="too_large")
            self._refusals.log("too_large", 413, f"body larger than {self.max_body_bytes} bytes")
            return _error(413, f"body larger than {self.max_body_bytes} bytes")
        now = self._clock()
        try:
            envelope = parse_webhook(body)
        except InvalidWebhook as exc:
            self.metrics.inc("webhooks_rejected_total", reason="invalid_body")
            # The reason may quote the body: it goes to the quarantine row, not to the log.
            self._refusals.log("invalid_body", 400, "not a RevenueCat event (quarantined)")
            try:
                await self.outbox.quarantine(body, exc.reason, now=now)
            except Exception:
                logger.exception("cannot quarantine an invalid webhook body")
            return _error(400, f"not a RevenueCat event: {exc.reason}")
        if route is None:
            if self.routes is None:
                route = DEFAULT_ROUTE
            else:
                app_id = envelope.text("app_id")
                match = self.routes.for_event(app_id, envelope.environment)
                if match is None:
                    # RevenueCat retries a 404 on its schedule (revenuecat.md §4.1): a route
                    # configured meanwhile still gets the event.  Nothing is stored.
                    self.metrics.inc("webhooks_rejected_total", reason="no_route")
                    text = f"no route takes app_id {app_id!r:.80} in {envelope.environment}"
                    self._refusals.log("no_route", 404, text)
                    return _error(404, text)
                route = match.name
        labels = {"route": route} if self._labelled else {}
        # Mapped now, while the event is parsed, so that delivery need not parse it again
        # (integration/premap.py).  Without routes, delivery maps every body.
        mapped = mapped_fp = None
        chosen = self.routes.get(route) if self.routes is not None else None
        if chosen is not None:
            mapped = stored_form(envelope.event, chosen.config, fast=envelope.fast)
            mapped_fp = None if mapped is None else chosen.fingerprint
        try:
            stored = await self.outbox.enqueue(
                envelope.event_id,
                envelope.environment,
                body,
                now=now,
                app_user_id=envelope.text("app_user_id"),
                event_type=envelope.event_type,
                transaction_id=envelope.text("transaction_id"),
                route=route,
                mapped=mapped,
                mapped_fp=mapped_fp,
            )
        except Exception:
            logger.exception("cannot store webhook %s; answering 503", envelope.event_id)
            self.metrics.inc("webhooks_rejected_total", reason="unavailable")
            return _error(503, "cannot store the event now; retry later")
        if not stored:
            self.metrics.inc("webhooks_duplicate_total", **labels)
            return 200, {"status": "duplicate", "event_id": envelope.event_id}
        self.metrics.inc("webhooks_received_total", **labels)
        if self._wake is not None:
            self._wake(envelope.environment, route)
        elif self._on_stored is not None:
            self._on_stored(envelope.environment)
        return 200, {"status": "stored", "event_id": envelope.event_id}

    async def _read_body(
        self, headers: list[tuple[bytes, bytes]], receive: Receive
    ) -> bytes | None:
        """The body, or ``None`` as soon as it is known to exceed the limit."""
        declared = _header(headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    return None
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def healthz(self, request: Request) -> Response:
        """From state held in memory only: a load balancer may probe as often as it likes.

        The outbox's health is its last write's outcome, so a full disk (every webhook then
        answered 503) makes this 503 too, until a write commits again (the engine probes).
        The reason stays in the log: this route is open to anyone.
        """
        if not self.accepting:
            return JSONResponse({"status": "stopping"}, status_code=503)
        if not self.outbox.health().writable:
            return JSONResponse({"status": "outbox not writable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        if self._metrics_expected is not None:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, self._metrics_expected):
                return JSONResponse(
                    {"error": "wrong or missing metrics bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        gauges: Iterable[Gauge] = ()
        if self._gauges is not None:
            try:
                gauges = await self._gauges()
            except Exception as exc:
                logger.warning("metrics: cannot read gauges: %s", type(exc).__name__)
        return PlainTextResponse(self.metrics.render(gauges=gauges), media_type=PROMETHEUS_TYPE)


class _ReceiverApp:
    """The receiver's ASGI app: webhook POSTs handled here, everything else by Starlette.

    The webhook POST is the hot path and is answered without Starlette's middleware, routing
    and Request objects, which cost about as much as the receiver's own work
    (benchmarks/README.md, ingest); health, metrics, 404s, 405s and the lifespan go through
    Starlette.  A class with an async ``__call__`` rather than a bound method, so that uvicorn
    recognises an ASGI 3 app.
    """

    __slots__ = ("_receiver",)

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if (path == WEBHOOK_PATH or path.startswith(_ROUTE_PREFIX)) and scope["method"] == "POST":
            await self._receiver._webhook(scope, receive, send)
        else:
            await self._receiver._routes(scope, receive, send)


class RefusalLog:
    """Logs refused webhooks, at most :data:`REFUSALS_LOGGED_PER_MINUTE` lines per reason code
    a minute, so that a flood of bad requests cannot fill a disk; the lines held back are
    counted and reported in one "suppressed" line when the next minute's first one is logged.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # code: (start, logged, held)

    def log(self, code: str, status: int, text: str) -> None:
        now = self._clock()
        start, logged, held = self._windows.get(code, (now, 0, 0))
        if now - start >= 60.0:
            if held:
                logger.warning(
                    "suppressed %d more refused webhooks (%s) in the last minute",
                    held,
                    code,
                    extra={"reason": code, "status": status, "count": held},
                )
            start, logged, held = now, 0, 0
        if logged < REFUSALS_LOGGED_PER_MINUTE:
            logger.warning(
                "webhook refused (%s, HTTP %d): %s",
                code,
                status,
                text,
                extra={"reason": code, "status": status},
            )
            logged += 1
        else:
            held += 1
        self._windows[code] = (start, logged, held)


class _Disconnected(Exception):
    """The client hung up before its body was read."""


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case, as ASGI servers give names)."""
    for key, value in headers:
        if key == name:
            return value
    return None


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": message}


async def _unreachable(request: Request) -> Response:  # pragma: no cover - see Receiver.app
    raise AssertionError("webhook POSTs are handled by Receiver.app")
