"""A minimal HTTP/1.1 client over asyncio streams, for sending webhooks fast and measuring them.

httpx costs a few hundred microseconds of CPU per request and, with hundreds of requests queued
on its pool, far more; a sender that slow measures itself instead of the engine.  This client
keeps one keep-alive connection per worker, writes pre-built requests and reads answers that
carry a ``content-length`` (uvicorn's always do).  Any failure closes the connection and raises
:class:`SendError`; the next call reconnects.

Example::

    conn = Connection("127.0.0.1", 8000)
    status, body = await conn.post("/webhooks/revenuecat", payload, {"authorization": "..."})
    await conn.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

__all__ = ["Connection", "SendError"]


class SendError(Exception):
    """The request could not be sent or its answer not read (connection refused, reset...)."""


class Connection:
    """One keep-alive connection, reopened after any failure."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        head = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head.append(f"content-length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            return await asyncio.wait_for(self._exchange(request), self.timeout_s)
        except (OSError, EOFError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise SendError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        keep_alive = True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                keep_alive = False
        body = await self._reader.readexactly(length) if length else b""
        if not keep_alive:
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await writer.wait_closed()
