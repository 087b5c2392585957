"""The limits ``rc-clevertap serve`` enforces on each connection, before the app sees a byte.

RevenueCat's webhooks come from the internet, so anyone can open connections to the receiver.
uvicorn's httptools protocol bounds none of what an attacker controls before the app runs:
httptools has no header size limit (it appends each piece of an unfinished header to what it
holds, so one 256 MB header took 78 s of CPU and 500 MB), and a connection that never finishes
its request is never closed.  :class:`LimitedHttpToolsProtocol` is uvicorn's protocol with
``[server]``'s limits (:class:`~integration.config.ServerConfig`) added:

- headers: unfinished request line and headers are counted per read and refused (431, then
  closed) once past ``max_header_bytes``, so memory stays below the limit plus one read; a
  complete request's exact size and its header count (``max_headers``) are checked before
  the app is called;
- time: the headers must be complete ``header_timeout_s`` after the connection opens (or after
  a kept-alive connection's next request begins), the body ``body_timeout_s`` after the
  headers; past either the connection is closed (a started request gets 408 first), and an
  app waiting for the body sees a disconnect.  Idle kept-alive connections close after
  ``keep_alive_s`` (uvicorn's own timer);
- connections: one past ``max_connections`` is answered 503 and closed at once, so the open
  file descriptors stay bounded (uvicorn's ``limit_concurrency`` answers 503 only once a
  request's headers are complete, after the connection has been held).

Why a protocol subclass rather than h11 with ``h11_max_incomplete_event_size``: h11 bounds the
header size but has no header or body timeouts either, and costs about half the ingest rate
(benchmarks/README.md); the subclass keeps httptools' speed (the ingest figure with and without
it is in benchmarks/README.md).  A reverse proxy in front (for TLS) may enforce its own limits
as well; these hold without one.

Refusals are logged at most once per ``_NOTICE_EVERY_S`` per kind, with a count, so an attack
cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from integration.config import ServerConfig

__all__ = ["LimitedHttpToolsProtocol", "protocol_class", "raise_open_file_limit"]

logger = logging.getLogger(__name__)

_NOTICE_EVERY_S = 10.0
# After a refusal the connection is half-closed and what the client still sends is read and
# dropped for this long before closing: closing a socket with unread data sends a reset, and
# a reset can destroy the answer before the client reads it (nginx's lingering_close).
_LINGER_S = 1.0
# Descriptors the process needs besides client connections: the outbox file, its WAL and
# shared memory, the checkpointer's connection, PostgreSQL pool connections, CleverTap uploads.
_RESERVED_FDS = 64


class _Notices:
    """Warnings counted per kind and written at most once per ``_NOTICE_EVERY_S``."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def note(self, kind: str, message: str) -> None:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        now = self._clock()
        if now - self._last.get(kind, -_NOTICE_EVERY_S) >= _NOTICE_EVERY_S:
            count = self._counts.pop(kind)
            self._last[kind] = now
            logger.warning("%s (%d in the last %.0f s)", message, count, _NOTICE_EVERY_S)


_notices = _Notices()


class _Refused(Exception):
    """Raised in a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``limits`` enforced (see the module docstring).

    Built per configuration by :func:`protocol_class` (uvicorn instantiates the class itself,
    so the limits travel as a class attribute).
    """

    limits: ClassVar[ServerConfig] = ServerConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn annotates its keep-alive timeout as int; call_later takes any float.
        self.timeout_keep_alive = self.limits.keep_alive_s  # type: ignore[assignment]
        self._in_headers = True
        self._started = False  # a byte of the current request has arrived
        self._unfinished_bytes = 0  # bytes read while the headers were unfinished
        self._header_bytes = 0  # exact size of the request line and headers parsed so far
        self._header_count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _notices.note(
                "connections",
                f"refusing connections: more than server.max_connections "
                f"({self.limits.max_connections}) open",
            )
            self._refuse(503, "too many connections; retry later")
            return
        self._arm(self.limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, with refusals from the callbacks answered as they ask.
        if self._refused:
            return  # lingering after a refusal: read and dropped
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refused):
                _notices.note(str(refusal.status), f"refused requests: {refusal.reason}")
                self._refuse(refusal.status, refusal.reason)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_headers and not self.transport.is_closing():
            # httptools holds an unfinished header line until it ends: count what it holds.
            self._unfinished_bytes += len(data)
            if self._unfinished_bytes > self.limits.max_header_bytes:
                _notices.note("431", "refused requests: request headers too large")
                self._refuse(431, "request headers too large")

    # -- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._started = True
        self._unfinished_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        if self._timer is None:  # a kept-alive connection's next request
            self._arm(self.limits.header_timeout_s, self._headers_late)

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self.limits.max_header_bytes:
            raise _Refused(431, "request line too long")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_count > self.limits.max_headers:
            raise _Refused(431, "too many request headers")
        if self._header_bytes > self.limits.max_header_bytes:
            raise _Refused(431, "request headers too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        self._arm(self.limits.body_timeout_s, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._started = False
        super().on_message_complete()

    # -- timers and refusals ------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        _notices.note("header_timeout", "closed connections: headers not complete in time")
        if self._started:
            self._refuse(408, "request headers not received in time")
        else:
            self.transport.close()  # nothing was asked: nobody to answer

    def _body_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        _notices.note("body_timeout", "closed connections: request body not complete in time")
        # Closing tells an app waiting in receive() that the client is gone (http.disconnect).
        self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        self._disarm()
        self._refused = True
        body = reason.encode()
        self.transport.write(
            b"".join(
                (
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                )
            )
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()  # sent once the answer is, then linger (see _LINGER_S)
            self._timer = self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()


def protocol_class(limits: ServerConfig) -> type[LimitedHttpToolsProtocol]:
    """A :class:`LimitedHttpToolsProtocol` enforcing ``limits``, for ``uvicorn.Config(http=)``."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


def raise_open_file_limit(limits: ServerConfig) -> int:
    """Raise this process's open-file soft limit to its hard limit; returns the new soft limit.

    systemd starts services with a soft limit of 1024, which ~1,000 idle connections exhaust;
    past it, accepting fails and the outbox cannot open its files.  Logged once; a
    ``max_connections`` the limit cannot hold is warned about.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit is still capped by the kernel (fs.nr_open, 1,048,576 by default).
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        else:
            logger.info("open-file limit raised from %d to %d", soft, target)
            soft = target
    if soft != resource.RLIM_INFINITY and limits.max_connections + _RESERVED_FDS > soft:
        logger.warning(
            "server.max_connections (%d) leaves too few of the open-file limit (%d) for the "
            "outbox: lower it, or raise the limit (LimitNOFILE= in the systemd unit)",
            limits.max_connections,
            soft,
        )
    return int(soft)
