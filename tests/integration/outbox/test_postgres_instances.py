"""Three engine processes on one PostgreSQL queue: one is killed, nothing is lost.

This test is about processes and sockets, so it uses both: three ``rc-clevertap`` engines run
as child processes on loopback ports, the CleverTap mock runs on a loopback port in this
process, and time is real (lease expiry is what brings the killed engine's rows back).

Like the other PostgreSQL tests it exists only when ``RC_CLEVERTAP_TEST_POSTGRES_URL`` names a
database: without it pytest collects nothing from this module (``__test__`` is false).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver import create_app
from mockserver.clevertap import Account, CleverTapBackend
from mockserver.serving import BackgroundServer

URL = os.environ.get("RC_CLEVERTAP_TEST_POSTGRES_URL", "")
__test__ = bool(URL)

ACCOUNT = "W9R-486-4W5Z"
AUTH = "Bearer whsec-instances-test"
INSTANCES = 3
ROUND = 15  # webhooks sent at a time
MAX_ROUNDS = 20
ROUNDS_AFTER_KILL = 3
LEASE_S = 2.0
DEADLINE_S = 60.0

# The engine as `rc-clevertap serve` runs it: uvicorn, graceful on SIGTERM.
SERVE = (
    "import asyncio, sys\n"
    "from integration.config import load_config\n"
    "from integration.app.server import serve\n"
    "asyncio.run(serve(load_config(sys.argv[1]), port=int(sys.argv[2]), log_level='warning'))\n"
)


@dataclass
class Upload:
    """One upload the CleverTap mock answered, by the engine whose passcode it carried."""

    instance: int
    started: float
    ended: float
    status: int
    event_ids: list[str]


class UploadRecorder:
    """ASGI wrapper noting who uploaded which events, and when (monotonic seconds).

    Once the ``doomed`` engine has had one upload answered, its next uploads are held without
    an answer until :attr:`gate` opens: that engine is then killed while it holds a lease.
    """

    def __init__(self, app: ASGIApp, *, doomed: int) -> None:
        self.app = app
        self.doomed = doomed
        self.uploads: list[Upload] = []
        self.held = 0
        self.gate = asyncio.Event()

    def answered(self, instance: int) -> int:
        return sum(1 for u in self.uploads if u.instance == instance and u.status == 200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/1/upload":
            await self.app(scope, receive, send)
            return
        passcode = dict(scope["headers"]).get(b"x-clevertap-passcode", b"pass--1")
        instance = int(passcode.decode().rpartition("-")[2])
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        records = json.loads(body)["d"]
        ids = [r["evtData"]["rc_event_id"] for r in records if r.get("type") == "event"]
        started = time.monotonic()
        if instance == self.doomed and self.answered(instance):
            self.held += 1
            await self.gate.wait()  # the engine is dead by then: this answer reaches no one
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            self.uploads.append(Upload(instance, started, time.monotonic(), 503, ids))
            return
        status = 0

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, replay, send_status)
        self.uploads.append(Upload(instance, started, time.monotonic(), status, ids))


def webhook(event_id: str, user: str) -> bytes:
    event: dict[str, Any] = {
        "id": event_id,
        "type": "INITIAL_PURCHASE",
        "event_timestamp_ms": 1_790_000_000_000,
        "app_user_id": user,
        "original_app_user_id": user,
        "environment": "PRODUCTION",
        "product_id": "pro_monthly",
        "period_type": "NORMAL",
        "store": "APP_STORE",
        "currency": "USD",
        "price": 9.99,
        "price_in_purchased_currency": 9.99,
        "entitlement_ids": ["pro"],
        "transaction_id": f"tx-{event_id}",
        "subscriber_attributes": {},
    }
    return json.dumps({"api_version": "1.0", "event": event}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, *, instance: int, clevertap_url: str, outbox_url: str) -> None:
    path.write_text(
        f"""
[clevertap]
account_id = "{ACCOUNT}"
passcode = "pass-{instance}"
base_url = "{clevertap_url}"
timeout_s = 1.0

[webhook]
authorization = "{AUTH}"

[outbox]
url = "{outbox_url}"
lease_s = {LEASE_S}

[dispatcher]
batch_size = 10
linger_s = 0.02
concurrency = 2
"""
    )


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> bool:
    """Poll ``check`` in real time (the processes under test run on the real clock)."""
    try:
        async with asyncio.timeout(within):
            while True:
                if await check():
                    return True
                await asyncio.sleep(0.05)
    except TimeoutError:
        return False


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    if not await eventually(check, within=within):
        raise AssertionError(f"timed out waiting for {what}")


async def count_states(schema: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT state, count(*) FROM {}.events GROUP BY state").format(
                sql.Identifier(schema)
            )
        )
        return {str(state): int(n) for state, n in await cur.fetchall()}


async def test_three_engines_share_one_queue_and_survive_a_kill(
    schema: str, tmp_path: Path
) -> None:
    """Webhooks sent to three engines all arrive, none uploaded twice at once, one engine killed."""
    backend = CleverTapBackend(
        accounts=[Account(ACCOUNT, tuple(f"pass-{i}" for i in range(INSTANCES)))],
    )
    victim = INSTANCES - 1
    recorder = UploadRecorder(create_app(clevertap_backend=backend), doomed=victim)
    mock = BackgroundServer(recorder)
    clevertap_url = await mock.start()
    separator = "&" if "?" in URL else "?"
    outbox_url = f"{URL}{separator}schema={schema}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RC_CLEVERTAP_")}
    procs: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    logs: list[Path] = []
    try:
        for i in range(INSTANCES):
            config = tmp_path / f"engine-{i}.toml"
            write_config(config, instance=i, clevertap_url=clevertap_url, outbox_url=outbox_url)
            port = free_port()
            log = tmp_path / f"engine-{i}.log"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        *(sys.executable, "-c", SERVE, str(config), str(port)),
                        stdout=out,
                        stderr=asyncio.subprocess.STDOUT,
                        env=env,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")

        async with httpx.AsyncClient(timeout=5.0) as client:

            async def healthy(url: str) -> bool:
                try:
                    return (await client.get(f"{url}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            for url in urls:
                await until(lambda url=url: healthy(url), f"{url} to start", 30.0)

            acknowledged: set[str] = set()
            alive = list(range(INSTANCES))

            async def send(n: int) -> None:
                event_id = f"evt-{n:04d}"
                # Like RevenueCat: an answer other than 200 (or none) is retried, on any instance.
                for attempt in range(len(alive) * 3):
                    url = urls[alive[(n + attempt) % len(alive)]]
                    try:
                        response = await client.post(
                            f"{url}/webhooks/revenuecat",
                            content=webhook(event_id, f"user-{n % 17}"),
                            headers={"Authorization": AUTH},
                        )
                    except httpx.TransportError:
                        continue
                    if response.status_code == 200:
                        acknowledged.add(event_id)
                        return
                raise AssertionError(f"no engine accepted {event_id}")

            sent = 0

            async def send_round() -> None:
                nonlocal sent
                first, sent = sent, sent + ROUND
                await asyncio.gather(*(send(n) for n in range(first, sent)))

            # Traffic until the engine to be killed has delivered a batch and holds another.
            async def victim_holds_a_lease() -> bool:
                return recorder.answered(victim) > 0 and recorder.held > 0

            for _ in range(MAX_ROUNDS):
                await send_round()
                if await eventually(victim_holds_a_lease, within=1.0):
                    break
            else:
                raise AssertionError("the engine to be killed never took a second batch")
            procs[victim].send_signal(signal.SIGKILL)
            await procs[victim].wait()
            killed_at = time.monotonic()
            recorder.gate.set()
            alive.remove(victim)
            for _ in range(ROUNDS_AFTER_KILL):
                await send_round()

            # RevenueCat retrying an event on another instance: acknowledged, not queued again.
            for n, url in zip(range(ROUND), itertools.cycle(urls[:victim]), strict=False):
                response = await client.post(
                    f"{url}/webhooks/revenuecat",
                    content=webhook(f"evt-{n:04d}", f"user-{n % 17}"),
                    headers={"Authorization": AUTH},
                )
                assert response.status_code == 200
                assert response.json()["status"] == "duplicate"

        async def all_delivered() -> bool:
            return await count_states(schema) == {"delivered": sent}

        await until(all_delivered, "every event to be delivered", DEADLINE_S)
    except BaseException:
        for i, log in enumerate(logs):
            sys.stderr.write(f"--- engine {i} ---\n{log.read_text(errors='replace')}\n")
        raise
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await mock.stop()

    assert acknowledged == {f"evt-{n:04d}" for n in range(sent)}
    stored = {e["evtData"]["rc_event_id"] for e in backend.events(ACCOUNT)}
    assert stored == acknowledged

    delivered = [u for u in recorder.uploads if u.status == 200]
    assert {u.instance for u in delivered} == set(range(INSTANCES))
    assert not [u for u in delivered if u.instance == victim and u.started > killed_at]
    # The batch the killed engine held came back when its lease expired, and a survivor sent it.
    held = {e for u in recorder.uploads if u.status == 503 for e in u.event_ids}
    assert held
    assert held <= {e for u in delivered if u.instance != victim for e in u.event_ids}
    # No event was ever in two uploads at the same time: a second upload of an event (the killed
    # engine's batch, sent again after its lease expired) starts after the first one ended.
    by_event: dict[str, list[Upload]] = {}
    for upload in recorder.uploads:
        for event_id in upload.event_ids:
            by_event.setdefault(event_id, []).append(upload)
    for event_id, uploads in by_event.items():
        uploads.sort(key=lambda u: u.started)
        for first, second in itertools.pairwise(uploads):
            assert second.started >= first.ended, f"{event_id} was uploaded twice at once"
