"""The webhook receiver: RevenueCat's POSTs in, durably stored, answered only once on disk.

Routes::

    POST /webhooks/revenuecat   401 wrong Authorization (nothing stored)
                                413 body over webhook.max_body_bytes (not read past the limit)
                                400 not a RevenueCat event (body quarantined with the reason)
                                503 not accepting now (shutting down, or the outbox failed):
                                    RevenueCat retries later (revenuecat.md §4.1)
                                200 stored, or a repeated event id already stored
    GET  /healthz               200 {"status": "ok", ...} while intake is open and the outbox
                                answers; 503 otherwise
    GET  /metrics               Prometheus text (see integration/metrics.py)

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

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Lifespan

from integration.config import WebhookConfig
from integration.mapping import InvalidWebhook, parse_webhook
from integration.metrics import Metrics
from integration.outbox.base import Outbox

__all__ = ["WEBHOOK_PATH", "Gauge", "Receiver"]

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/revenuecat"
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
        lifespan: the app's lifespan (the engine starts and stops itself with it).
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
    ) -> None:
        self.outbox = outbox
        self.metrics = metrics if metrics is not None else Metrics()
        self.max_body_bytes = webhook.max_body_bytes
        self._expected = (
            None if webhook.authorization is None else webhook.authorization.reveal().encode()
        )
        if self._expected is None:
            logger.warning("webhook.authorization is not set: any caller can post webhooks")
        self._clock = clock
        self._on_stored = on_stored
        self._gauges = gauges
        self.accepting = True
        self.app = Starlette(
            routes=[
                Route(WEBHOOK_PATH, self.webhook, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.metrics_text, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    def __repr__(self) -> str:
        return f"Receiver(outbox={self.outbox!r}, accepting={self.accepting})"

    def close_intake(self) -> None:
        """Answer 503 to new webhooks from now on (RevenueCat will retry them)."""
        self.accepting = False

    def open_intake(self) -> None:
        self.accepting = True

    def _authorized(self, request: Request) -> bool:
        if self._expected is None:
            return True
        # Header values arrive as latin-1 text; back to bytes, they are what was sent.
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        return hmac.compare_digest(given, self._expected)

    async def webhook(self, request: Request) -> Response:
        if not self.accepting:
            self.metrics.inc("webhooks_rejected_total", reason="unavailable")
            return _error(503, "not accepting webhooks now (shutting down); retry later")
        if not self._authorized(request):
            self.metrics.inc("webhooks_rejected_total", reason="unauthorized")
            logger.warning("webhook refused: wrong or missing Authorization header")
            return _error(401, "wrong or missing Authorization header")
        body = await self._read_body(request)
        if body is None:
            self.metrics.inc("webhooks_rejected_total", reason="too_large")
            return _error(413, f"body larger than {self.max_body_bytes} bytes")
        now = self._clock()
        try:
            envelope = parse_webhook(body)
        except InvalidWebhook as exc:
            self.metrics.inc("webhooks_rejected_total", reason="invalid")
            try:
                await self.outbox.quarantine(body, exc.reason, now=now)
            except Exception:
                logger.exception("cannot quarantine an invalid webhook body")
            return _error(400, f"not a RevenueCat event: {exc.reason}")
        try:
            stored = await self.outbox.enqueue(
                envelope.event_id, envelope.environment, body, now=now
            )
        except Exception:
            logger.exception("cannot store webhook %s; answering 503", envelope.event_id)
            self.metrics.inc("webhooks_rejected_total", reason="unavailable")
            return _error(503, "cannot store the event now; retry later")
        if not stored:
            self.metrics.inc("webhooks_duplicate_total")
            return JSONResponse({"status": "duplicate", "event_id": envelope.event_id})
        self.metrics.inc("webhooks_received_total")
        if self._on_stored is not None:
            self._on_stored(envelope.environment)
        return JSONResponse({"status": "stored", "event_id": envelope.event_id})

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or ``None`` as soon as it is known to exceed the limit."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                return None
        return bytes(body)

    async def healthz(self, request: Request) -> Response:
        if not self.accepting:
            return JSONResponse({"status": "stopping"}, status_code=503)
        try:
            stats = await self.outbox.stats()
        except Exception as exc:
            logger.warning("health check: outbox unavailable: %s", type(exc).__name__)
            return JSONResponse({"status": "outbox unavailable"}, status_code=503)
        return JSONResponse(
            {"status": "ok", "pending": stats.pending, "leased": stats.leased, "dead": stats.dead}
        )

    async def metrics_text(self, request: Request) -> Response:
        gauges: Iterable[Gauge] = ()
        if self._gauges is not None:
            try:
                gauges = await self._gauges()
            except Exception as exc:
                logger.warning("metrics: cannot read gauges: %s", type(exc).__name__)
        return PlainTextResponse(self.metrics.render(gauges=gauges), media_type=PROMETHEUS_TYPE)


def _error(status: int, message: str) -> Response:
    body: dict[str, Any] = {"error": message}
    return JSONResponse(body, status_code=status)
