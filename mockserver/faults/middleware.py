"""The ASGI middleware applying a :class:`~.injector.FaultInjector`, and the error bodies it sends.

How a dropped connection is modelled is described in :mod:`mockserver.faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import httpx
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver._http import DumpsJSON
from mockserver.faults.injector import REJECT_SCOPE_KEY, FaultInjector

__all__ = ["ConnectionDropped", "FaultMiddleware", "error_body", "lying_answer"]


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


def lying_answer(lie: str, records: int) -> dict[str, Any]:
    """What a ``lying_200`` rule answers (HTTP 200) to an upload of ``records`` records."""
    if lie == "empty":
        return {}
    if lie == "suspended":  # CleverTap's request-level fail body (reference §3.3), in a 200
        return {"status": "fail", "error": "Account suspended", "code": 401}
    missing = max(1, records // 10)  # 45 of 50 processed, and nothing said of the other 5
    return {"status": "success", "processed": max(0, records - missing), "unprocessed": []}


_CLEVERTAP_TYPE: Final = "application/json;charset=utf-8"  # CleverTap's answers (reference §3.1)
_RECORD_NUMBER: Final = re.compile(r"Skipped record number\s*:\s*(\d+)")


def _error_response(path: str, status: int) -> DumpsJSON:
    headers: dict[str, str] = {}
    media_type = "application/json"
    if path.startswith("/1/"):
        media_type = _CLEVERTAP_TYPE
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
            status = 429 if rule.kind == "rate_limit" else rule.answer_status
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
        elif rule.kind == "slow_drip":
            drip = _dripping(send, receive, self.injector.sleep, rule.delay)
            await self.app(scope, receive, drip)
        elif rule.kind == "redirect":
            await _redirect(scope, rule.answer_status)(scope, receive, send)
        elif rule.kind == "lying_200":
            assert decision.lie is not None
            records = _record_count(await _read_body(receive))
            answer = DumpsJSON(lying_answer(decision.lie, records), media_type=_CLEVERTAP_TYPE)
            await answer(scope, receive, send)
        else:  # reject_records, unlocatable_partial
            assert decision.rejection is not None
            inner: MutableMapping[str, Any] = dict(scope)
            inner[REJECT_SCOPE_KEY] = decision.rejection
            if rule.kind == "unlocatable_partial":
                rng = random.Random(decision.rejection.seed)
                send = _edited(send, lambda answer: _unlocate(answer, rng))
            await self.app(inner, receive, send)


def _redirect(scope: Scope, status: int) -> Response:
    """``status`` with a ``Location`` at the same path over https: as a proxy in front of
    the API, or an API that moved, would answer."""
    host = dict(scope["headers"]).get(b"host", b"eu1.api.clevertap.com").decode("latin-1")
    return Response(status_code=status, headers={"location": f"https://{host}{scope['path']}"})


async def _discard(message: Message) -> None:
    return None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client left before sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _record_count(body: bytes | None) -> int:
    try:
        document = json.loads(body or b"")
    except (ValueError, RecursionError):
        return 0
    records = document.get("d") if isinstance(document, dict) else None
    return len(records) if isinstance(records, list) else 0


def _dripping(
    send: Send, receive: Receive, sleep: Callable[[float], Awaitable[None]], delay: float
) -> Send:
    """A send that passes the headers at once and the body one byte per ``delay`` seconds,
    stopping once the client has gone (a server that noticed would)."""

    async def drip(message: Message) -> None:
        body: bytes = message.get("body", b"")
        if message["type"] != "http.response.body" or not body:
            await send(message)
            return
        more = message.get("more_body", False)
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            for at in range(len(body)):
                await sleep(delay)
                if gone.done():
                    return
                last = at == len(body) - 1
                chunk = body[at : at + 1]
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": more or not last}
                )
        finally:
            gone.cancel()

    return drip


async def _disconnect(receive: Receive) -> None:
    """Returns when the client disconnects (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _edited(send: Send, edit: Callable[[Any], Any]) -> Send:
    """A send that holds the app's JSON answer, passes it through ``edit`` and sends that."""
    start: Message = {}
    chunks: list[bytes] = []

    async def hold(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        with contextlib.suppress(ValueError):  # not JSON (an error page): sent as it was
            body = json.dumps(edit(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return hold


def _unlocate(answer: Any, rng: random.Random) -> Any:
    """The upload answer with no failure tied to its record: each ``unprocessed`` entry's
    "Skipped record number : N" is dropped, pointed past the upload, or reworded."""
    if not isinstance(answer, dict) or not isinstance(answer.get("unprocessed"), list):
        return answer
    entries: list[Any] = answer["unprocessed"]
    processed = answer.get("processed")
    sent = len(entries) + (processed if isinstance(processed, int) else 0)
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("error"), str):
            continue
        how = rng.choice(("dropped", "past the upload", "reworded"))

        def unlocated(match: re.Match[str], how: str = how) -> str:
            number = int(match.group(1))
            if how == "dropped":
                return ""
            if how == "past the upload":
                return f"Skipped record number : {sent + number}"
            return f"Skipped record #{number}"

        entry["error"] = _RECORD_NUMBER.sub(unlocated, entry["error"]).strip()
    return answer


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned receive hands it out, then defers."""
    body = await _read_body(receive)
    if body is None:
        return receive  # disconnected already: the app will see it as usual
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
