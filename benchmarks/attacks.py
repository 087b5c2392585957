"""Plain-socket attacks on the receiver for ``chaos.py --mode hostile``: huge headers and silent
connections, each bounded in count and in time, on loopback only.

Example::

    answers = await huge_headers(port, count=8, size=1_048_576)   # {"431": 8}
    silent = await silent_connections(port, count=200, hold_s=15.0)
    silent.closed_by_server, silent.slowest_close_s               # 200, 5.0

Neither raises for what the server does (answers, resets, closes); each only reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass

__all__ = ["SilentResult", "huge_headers", "silent_connections"]

HOST = "127.0.0.1"  # loopback only: these are attacks
CHUNK = 65_536
AT_ONCE = 8  # huge-header connections open together


async def huge_headers(
    port: int, *, count: int, size: int, timeout_s: float = 10.0
) -> dict[str, int]:
    """``count`` unauthenticated webhook requests, each with one header value of ``size``
    bytes, :data:`AT_ONCE` at a time; how each ended: its status, ``"closed"`` (the server hung
    up before answering) or ``"timeout"`` (neither within ``timeout_s``)."""
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(AT_ONCE)

    async def one() -> None:
        async with gate:
            try:
                async with asyncio.timeout(timeout_s):
                    outcomes[await _huge_header(port, size)] += 1
            except TimeoutError:
                outcomes["timeout"] += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return dict(sorted(outcomes.items()))


async def _huge_header(port: int, size: int) -> str:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"POST /webhooks/revenuecat HTTP/1.1\r\nhost: x\r\nx-pad: ")
        left = size
        while left > 0:
            writer.write(b"a" * min(CHUNK, left))
            left -= CHUNK
            await writer.drain()
        writer.write(b"\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
    except OSError:
        pass  # the server refused the rest and closed: read what it said first
    try:
        line = await reader.readline()
    except OSError:
        line = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = line.split()
    return parts[1].decode("latin-1") if len(parts) > 1 and parts[1].isdigit() else "closed"


@dataclass(frozen=True)
class SilentResult:
    """What ``count`` silent connections met: how many the server closed within the hold,
    and the slowest such close, in seconds after the connection opened."""

    count: int
    closed_by_server: int
    slowest_close_s: float


async def silent_connections(port: int, *, count: int, hold_s: float) -> SilentResult:
    """Open ``count`` connections that never send a byte; hold each up to ``hold_s`` seconds
    waiting for the server to close it, then close the rest."""
    opened = 0

    async def one() -> float | None:
        nonlocal opened
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            return None
        opened += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(hold_s):
                await reader.read()  # b"" (or a reset) once the server hangs up
            return time.monotonic() - started
        except TimeoutError:
            return None
        except OSError:
            return time.monotonic() - started
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    closes = [s for s in await asyncio.gather(*(one() for _ in range(count))) if s is not None]
    return SilentResult(opened, len(closes), round(max(closes, default=0.0), 2))
