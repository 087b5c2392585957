"""The ASGI middleware applying a :class:`~.injector.FaultInjector`, and the error bodies it sends.

How a dropped connection is modelled is described in :mod:`mockserver.faults`.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Final

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver._http import DumpsJSON
from mockserver.faults.injector import REJECT_SCOPE_KEY, FaultInjector

__all__ = ["ConnectionDropped", "FaultMiddleware", "error_body"]


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the middleware to drop a connection (see the module docstring)."""


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for each connection a fault rule drops.

    The drop is deliberate and counted in :attr:`FaultInjector.fired`; any other exception is
    still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        return not (info and isinstance(info[1], ConnectionDropped))


_QUIET_DROPS: Final = _QuietDrops()


_CLEVERTAP_MESSAGES: Final = {
    429: "Too many concurrent requests",  # DOC-LIM
    500: "Internal Server Error",
    503: "Service Unavailable. Please retry later.",  # DOC-ERR
}


def error_body(path: str, status: int) -> dict[str, Any]:
    """The error body the mocked API answers with for ``status`` on ``path``.

    CleverTap (``/1/...``): ``{"status": "fail", "error": ..., "code": status}`` (reference
    §3.3).  RevenueCat v2: its error object with ``retryable`` and ``backoff_ms``; v1:
    ``{"code": ..., "message": ...}`` (7110 internalServerError is RevenueCat's only documented
    server-side code; 429 has no documented v1 code).
    """
    if path.startswith("/1/"):
        message = _CLEVERTAP_MESSAGES.get(
            status, "Server Error" if status >= 500 else "Bad Request"
        )
        return {"status": "fail", "error": message, "code": status}
    if path.startswith("/v2/"):
        limited = status == 429
        body: dict[str, Any] = {
            "object": "error",
            "type": "rate_limit_error" if limited else "server_error",
            "message": "Rate limit exceeded" if limited else "The server had an error.",
            "retryable": True,
            "doc_url": "https://errors.rev.cat/"
            + ("rate-limit-error" if limited else "server-error"),
        }
        if limited:
            body["backoff_ms"] = 1000
        return body
    if status == 429:
        return {"code": 7638, "message": "Too many requests. Please retry later."}
    return {"code": 7110, "message": "Internal server error."}


def _error_response(path: str, status: int) -> DumpsJSON:
    headers: dict[str, str] = {}
    media_type = "application/json"
    if path.startswith("/1/"):
        media_type = "application/json;charset=utf-8"  # as CleverTap's answers (reference §3.1)
    elif path.startswith("/v2/") and status == 429:
        headers["Retry-After"] = "1"  # RevenueCat v2 sends Retry-After with its 429s
    return DumpsJSON(
        error_body(path, status), status_code=status, headers=headers, media_type=media_type
    )


class FaultMiddleware:
    """Pure ASGI middleware applying a :class:`FaultInjector` to every HTTP request."""

    def __init__(self, app: ASGIApp, *, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector
        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)  # idempotent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        account = None
        for name, value in scope["headers"]:
            if name == b"x-clevertap-account-id":
                account = value.decode("latin-1")
                break
        decision = self.injector.decide(scope["method"], path, account)
        if decision.delay:
            await self.injector.sleep(decision.delay)
        rule = decision.rule
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.kind == "timeout":
            # Read the request before stalling: the server has it, and processes it late even
            # when the client gave up meanwhile (a send after a disconnect is dropped).
            replay = await _buffered(receive)
            await self.injector.sleep(rule.delay)
            await self.app(scope, replay, send)
        elif rule.kind in ("error", "rate_limit"):
            status = 429 if rule.kind == "rate_limit" else rule.status
            await _error_response(path, status)(scope, receive, send)
        elif rule.kind == "drop":
            if rule.after:
                await self.app(scope, receive, _discard)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
                }
            )
            raise ConnectionDropped("connection dropped by a fault rule (mock)")
        else:  # reject_records
            inner: MutableMapping[str, Any] = dict(scope)
            inner[REJECT_SCOPE_KEY] = decision.rejection
            await self.app(inner, receive, send)


async def _discard(message: Message) -> None:
    return None


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned receive hands it out, then defers."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return receive  # disconnected already: the app will see it as usual
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    ]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
