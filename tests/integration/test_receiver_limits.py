"""A real ``rc-clevertap serve`` on loopback under attack: huge headers, silent and slowloris
connections, a stalled body, too many connections; a well-behaved client still gets its 200s.

These are socket-level tests of the limits in ``integration/app/limits.py`` (``[server]``).
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from engine_helpers import AUTH, webhook

HEADER_TIMEOUT_S = 1.0
SILENT = 400
SLOWLORIS = 300
# The CLI, exactly as ``rc-clevertap serve`` runs it (uvloop, httptools, the limits).
SERVE = "import sys; from integration.app.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Served:
    url: str
    port: int
    pid: int

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


def raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    """``rc-clevertap serve`` with a 1 s header and body timeout; ``max_connections`` 900,
    or the test's indirect parameter."""
    max_connections = getattr(request, "param", 900)
    config = tmp_path / "rc-clevertap.toml"
    config.write_text(
        f"""
[clevertap]
account_id = "W9R-486-4W5Z"
passcode = "ct-passcode"
base_url = "http://127.0.0.1:9"
[webhook]
authorization = "{AUTH}"
[outbox]
url = "sqlite:///{tmp_path / "outbox.db"}"
[server]
header_timeout_s = {HEADER_TIMEOUT_S}
body_timeout_s = {HEADER_TIMEOUT_S}
max_connections = {max_connections}
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RC_CLEVERTAP_")}
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", SERVE, "serve", "--config", str(config), "--port", "0"),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
        )
    assert proc.stdout is not None
    try:
        # serve prints where it listens once the engine runs (the socket is already bound).
        async with asyncio.timeout(20.0):
            line = (await proc.stdout.readline()).decode()
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+))", line)
        assert match is not None, log.read_text()
        drain = asyncio.create_task(proc.stdout.read())
        yield Served(match[1], int(match[2]), proc.pid)
        proc.terminate()
        async with asyncio.timeout(10.0):
            await proc.wait()
        await drain
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server wrote before closing; fails if it has not closed within ``seconds``."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def good_client(url: str, count: int) -> list[float]:
    """Post ``count`` webhooks one after another; each must be a 200 within 2 s."""
    took: list[float] = []
    async with httpx.AsyncClient(timeout=2.0) as http:
        for n in range(count):
            started = time.monotonic()
            response = await http.post(
                f"{url}/webhooks/revenuecat",
                content=webhook(f"good-{n}"),
                headers={"Authorization": AUTH},
            )
            assert response.status_code == 200, response.text
            took.append(time.monotonic() - started)
    return took


async def test_attacks_leave_a_good_client_served_and_memory_flat(served: Served) -> None:
    """With a 1 MB header, 400 silent and 300 slowloris connections open, every good webhook
    gets a 200 within 2 s, memory grows by less than 50 MB, and the idle connections are
    closed within the header timeout."""
    raise_own_file_limit(SILENT + SLOWLORIS + 200)
    before_mb = served.rss_mb()
    silent = [await connect(served.port) for _ in range(SILENT)]
    opened_at = time.monotonic()
    slow = [await connect(served.port) for _ in range(SLOWLORIS)]
    for _, writer in slow:
        writer.write(b"POST /webhooks/revenuecat HTTP/1.1\r\nHost: x\r\nX-Drip: a")

    async def drip(writer: asyncio.StreamWriter) -> None:
        # The attacker's pace, one header byte every 0.2 s until the server hangs up.
        while not writer.is_closing():
            try:
                writer.write(b"a")
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(0.2)

    drips = [asyncio.create_task(drip(writer)) for _, writer in slow]
    reader, writer = await connect(served.port)
    writer.write(b"POST /webhooks/revenuecat HTTP/1.1\r\nHost: x\r\nX-Big: ")
    writer.write(b"b" * 1_048_576 + b"\r\n\r\n")
    huge = asyncio.create_task(closed_within(reader, 5.0))

    took = await good_client(served.url, 30)
    peak_mb = served.rss_mb()

    answer = await huge
    assert answer.startswith(b"HTTP/1.1 431 ")
    deadline = opened_at + HEADER_TIMEOUT_S + 2.0  # the timer's own slack, and the loop's
    for silent_reader, _ in silent:
        assert await closed_within(silent_reader, max(0.0, deadline - time.monotonic())) == b""
    for slow_reader, _ in slow:
        assert (await closed_within(slow_reader, 3.0)).startswith(b"HTTP/1.1 408 ")
    for task in drips:
        task.cancel()
    await asyncio.gather(*drips, return_exceptions=True)
    for _, w in [*silent, *slow, (reader, writer)]:
        w.close()
    assert len(took) == 30 and max(took) < 2.0
    assert max(peak_mb, served.rss_mb()) - before_mb < 50


async def test_too_many_headers_are_refused_with_431(served: Served) -> None:
    """A request with more headers than server.max_headers is answered 431 and closed."""
    reader, writer = await connect(served.port)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert (await closed_within(reader, 3.0)).startswith(b"HTTP/1.1 431 ")
    writer.close()


async def test_a_stalled_body_is_closed_after_the_body_timeout(served: Served) -> None:
    """An authenticated webhook whose body stops half-way is closed by server.body_timeout_s,
    and nothing is stored for it."""
    body = webhook("stalled")
    reader, writer = await connect(served.port)
    writer.write(
        b"POST /webhooks/revenuecat HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (AUTH.encode(), len(body))
    )
    writer.write(body[: len(body) // 2])
    assert await closed_within(reader, HEADER_TIMEOUT_S + 2.0) == b""
    writer.close()


@pytest.mark.parametrize("served", [4], indirect=True)
async def test_a_connection_past_max_connections_gets_503(served: Served) -> None:
    """With server.max_connections connections open, the next is answered 503 and closed,
    and one is accepted again once a connection goes."""
    held = [await connect(served.port) for _ in range(4)]
    reader, writer = await connect(served.port)
    assert (await closed_within(reader, 3.0)).startswith(b"HTTP/1.1 503 ")
    writer.close()
    held.pop()[1].close()
    async with asyncio.timeout(5.0):
        while True:  # the server notices the close on its next loop turn
            reader, writer = await connect(served.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await closed_within(reader, 3.0)
            writer.close()
            if not answer.startswith(b"HTTP/1.1 503 "):
                break
    assert answer.startswith(b"HTTP/1.1 200 ")
    for _, w in held:
        w.close()
