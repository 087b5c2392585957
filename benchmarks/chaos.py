"""Does anything get lost when the engine is killed mid-flight against a faulty CleverTap?

    python benchmarks/chaos.py [--quick] [--json] [--mode all|kill|fuzz|hostile] [--events N]
                               [--kills K] [--fuzz-inputs N] [--seed S]

Kill mode: the CleverTap mock (``rc-clevertap mock --faults chaos``: 5xx, 429 bursts,
timeouts, dropped connections, 555 partial rejections) and the engine (``rc-clevertap
serve``) run as separate processes.  ``events`` unique webhooks are sent, each until it gets
its 200 (as RevenueCat retries); meanwhile the engine is SIGKILLed ``kills`` times at random
moments and restarted on the same outbox.  Once the queue has drained, the events CleverTap
holds are counted by ``evtData.rc_event_id``::

    events            webhooks sent, each acknowledged with a 200 exactly once counted
    delivered_unique  acknowledged (and forwardable) events CleverTap holds at least once
    lost              acknowledged, forwardable events CleverTap does not hold   (must be 0)
    duplicates        extra copies: batches in flight at a kill, or whose answer was lost
    dead_lettered     events the engine gave up on (0: the faults are all retryable)

Fuzz mode: malformed, truncated, oversized, wrongly typed and mis-encoded bodies go to the
receiver (hand-rolled seeded generators); ``bad_inputs`` counts them, ``server_errors`` counts
5xx answers and broken connections (must be 0), ``engine_stayed_up`` checks that the process
is alive and still stores a valid webhook afterwards, and ``accepted_settled`` that what the
receiver accepted also left the queue (delivered, skipped or dead-lettered).

Hostile mode (not part of ``all``): the mock runs the ``hostile`` preset (answers dripped a
byte at a time, 200s that contradict success, failures naming no record, whole-upload
redirects and 404s) against an engine with a 1 s upload deadline, while ``events`` webhooks
are sent and the receiver is attacked from plain sockets (``benchmarks/attacks.py``):
``huge_headers`` requests each with one header of ``huge_header_bytes``, and
``silent_connections`` that never send a byte, held up to ``silent_hold_s``.  Besides the kill
mode's keys (``lost`` must be 0): how the huge headers ended (``huge_header_answers``), how
many silent connections the server closed and the slowest close, the well-behaved sender's
acknowledgement times (``ack_p50_ms``, ``ack_p99_ms``, ``ack_max_ms``), the engine's memory
growth (peak minus start), and the upload ledger by status and outcome.

The exit status is 1 when a property fails (something lost, a 5xx, the engine down).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.attacks import huge_headers, silent_connections
from benchmarks.fuzz import bad_inputs
from benchmarks.procs import Service, free_port, peak_rss_mb, python, rss_mb, wait_for
from benchmarks.rawhttp import Connection, SendError
from benchmarks.workload import (
    WEBHOOK_AUTH,
    WebhookFactory,
    engine_config,
    fresh_outbox_url,
    outbox_depths,
    write_config,
)
from integration.admin import list_dead_letters
from integration.config import load_config
from integration.outbox import open_outbox
from integration.receiver import WEBHOOK_PATH

__all__ = ["ChaosSettings", "main", "run"]

SENDERS = 16
MAX_SEND_ATTEMPTS = 2000  # per webhook; with the pause below, about a minute of outage


@dataclass(frozen=True)
class ChaosSettings:
    events: int
    kills: int
    fuzz_inputs: int
    seed: int = 7
    drain_timeout_s: float = 600.0
    settle_timeout_s: float = 60.0
    huge_headers: int = 8
    huge_header_bytes: int = 1_048_576
    silent_connections: int = 200
    silent_hold_s: float = 15.0  # the receiver's header timeout is 5 s by default


QUICK = ChaosSettings(events=2000, kills=3, fuzz_inputs=400, settle_timeout_s=10.0)
FULL = ChaosSettings(
    events=100_000,
    kills=10,
    fuzz_inputs=5000,
    drain_timeout_s=3600.0,
    huge_headers=32,
    huge_header_bytes=8 * 1_048_576,
    silent_connections=400,
)


class Harness:
    """The mock and engine processes, on loopback, in one work folder."""

    def __init__(self, workdir: Path, settings: ChaosSettings, *, faults: str = "chaos") -> None:
        self.workdir = workdir
        self.settings = settings
        self.rng = random.Random(settings.seed)
        mock_port = free_port()
        self.mock = Service(
            "clevertap-mock",
            python("-m", "integration.app.cli", "mock", "--port", str(mock_port), "--faults",
                   faults, "--seed", str(settings.seed), "--log-level", "error"),
            url=f"http://127.0.0.1:{mock_port}",
            ready_path="/_mock/clevertap/accounts",
            log=workdir / "mock.log",
        )  # fmt: skip
        self.http = httpx.AsyncClient(timeout=120.0)

    def engine(self, name: str, *, timeout_s: float = 2.0, **dispatcher: float) -> Service:
        # Short timeouts and backoffs so a run drains in seconds; lease_s > timeout_s as the
        # configuration demands, so a slow upload is not leased twice while still in flight.
        config = engine_config(
            self.mock.url,
            fresh_outbox_url(None, name, self.workdir),
            timeout_s=timeout_s,
            lease_s=5.0,
            backoff_initial_s=0.1,
            backoff_max_s=1.0,
        )
        config["dispatcher"].update(dispatcher)
        path = write_config(config, self.workdir / f"{name}.toml")
        port = free_port()
        return Service(
            name,
            python("-m", "integration.app.cli", "serve", "--config", str(path), "--host",
                   "127.0.0.1", "--port", str(port), "--log-level", "error"),
            url=f"http://127.0.0.1:{port}",
            ready_path="/healthz",
            log=self.workdir / f"{name}.log",
        )  # fmt: skip

    async def health(self, engine: Service) -> dict[str, Any]:
        """/healthz's status, with the exact depths of the engine's outbox (its file, named by
        :meth:`engine`): /healthz shows no counts since issue 13."""
        answer = await self.http.get(engine.url + "/healthz")
        health: dict[str, Any] = answer.json()
        depths = await outbox_depths(f"sqlite:///{(self.workdir / f'{engine.name}.db').resolve()}")
        return {**health, "pending": depths.pending, "leased": depths.leased, "dead": depths.dead}

    # -- kill mode ---------------------------------------------------------------------------

    async def send_all(
        self,
        engine: Service,
        factory: WebhookFactory,
        ids: list[str],
        acked: set[str],
        gave_up: list[str],
    ) -> list[float]:
        """Send each webhook until it gets its 200 (as RevenueCat retries), :data:`SENDERS` at
        a time; adds to ``acked`` and ``gave_up`` as it goes; returns each 200's seconds."""
        queue = list(reversed(ids))
        port = int(engine.url.rsplit(":", 1)[1])
        headers = {"content-type": "application/json", "authorization": WEBHOOK_AUTH}
        took: list[float] = []

        async def sender() -> None:
            conn = Connection("127.0.0.1", port, timeout_s=10.0)
            while queue:
                event_id = queue.pop()
                body = factory.body(event_id)
                for _ in range(MAX_SEND_ATTEMPTS):
                    started = time.perf_counter()
                    try:
                        status, _ = await conn.post(WEBHOOK_PATH, body, headers)
                    except SendError:
                        status = 0
                    if status == 200:
                        took.append(time.perf_counter() - started)
                        acked.add(event_id)
                        break
                    # RevenueCat retries anything but a 200; here, while the engine restarts.
                    await asyncio.sleep(0.03)
                else:
                    gave_up.append(event_id)
            await conn.close()

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        return took

    async def drain(self, engine: Service) -> int:
        """Wait until nothing is pending or leased; the dead letters then."""

        async def drained() -> bool:
            health = await self.health(engine)
            return health.get("pending") == 0 and health.get("leased") == 0

        await wait_for(drained, timeout_s=self.settings.drain_timeout_s, what="the outbox to drain")
        return int((await self.health(engine))["dead"])

    async def tally(self, factory: WebhookFactory, acked: set[str]) -> dict[str, Any]:
        """What CleverTap holds of the acknowledged events, by ``rc_event_id``."""
        answer = await self.http.get(self.mock.url + "/_mock/clevertap/events")
        answer.raise_for_status()
        copies = Counter(
            str(event["evtData"].get("rc_event_id")) for event in answer.json()["events"]
        )
        expected = {i for i in acked if factory.forwarded(i)}
        held = expected & copies.keys()
        return {
            "delivered_unique": len(held),
            "lost": len(expected - held),
            "duplicates": sum(copies[i] - 1 for i in held),
            "skipped_by_mapping": len(acked) - len(expected),
        }

    async def faults_fired(self) -> dict[str, int]:
        fired: dict[str, int] = (await self.http.get(self.mock.url + "/_mock/faults/")).json()[
            "fired"
        ]
        return fired

    async def kill_run(self, factory: WebhookFactory) -> dict[str, Any]:
        s = self.settings
        engine = self.engine("chaos-engine")
        await engine.start()
        ids = [f"chaos-{s.seed}-{i}" for i in range(s.events)]
        acked: set[str] = set()
        gave_up: list[str] = []

        # Kill after a random number of acknowledgements, spread over the run; the last
        # threshold may equal ``events``: a kill during the drain, with uploads in flight.
        low = max(1, s.events // 20)
        thresholds = sorted(self.rng.sample(range(low, s.events + 1), min(s.kills, s.events)))
        kills = 0

        async def killer() -> None:
            nonlocal kills
            for threshold in thresholds:

                async def reached(threshold: int = threshold) -> bool:
                    return len(acked) >= threshold or len(acked) + len(gave_up) >= s.events

                await wait_for(reached, timeout_s=s.drain_timeout_s, what="the next kill")
                engine.kill()
                kills += 1
                await engine.start()

        started = time.perf_counter()
        await asyncio.gather(killer(), self.send_all(engine, factory, ids, acked, gave_up))
        sent_s = time.perf_counter() - started
        dead = await self.drain(engine)
        drain_s = time.perf_counter() - started - sent_s
        await engine.stop()
        tally = await self.tally(factory, acked)
        return {
            "events": s.events,
            "kills": kills,
            "delivered_unique": tally["delivered_unique"],
            "lost": tally["lost"],
            "duplicates": tally["duplicates"],
            "dead_lettered": dead,
            "acknowledged": len(acked),
            "unacknowledged": len(gave_up),
            "skipped_by_mapping": tally["skipped_by_mapping"],
            "send_s": round(sent_s, 1),
            "drain_s": round(drain_s, 1),
            "faults_fired": await self.faults_fired(),
        }

    # -- hostile mode ------------------------------------------------------------------------

    async def hostile_run(self, factory: WebhookFactory) -> dict[str, Any]:
        s = self.settings
        # A 1 s deadline cuts the drips; short pauses, since redirects, 404s and a suspended
        # account pause it each time (the account would pause a minute by default).
        engine = self.engine(
            "hostile-engine", timeout_s=1.0, auth_pause_s=0.5, auth_pause_max_s=2.0
        )
        await engine.start()
        rss_at_start = rss_mb(engine.pid)
        port = int(engine.url.rsplit(":", 1)[1])
        ids = [f"hostile-{s.seed}-{i}" for i in range(s.events)]
        acked: set[str] = set()
        gave_up: list[str] = []
        started = time.perf_counter()
        took, huge, silent = await asyncio.gather(
            self.send_all(engine, factory, ids, acked, gave_up),
            huge_headers(port, count=s.huge_headers, size=s.huge_header_bytes),
            silent_connections(port, count=s.silent_connections, hold_s=s.silent_hold_s),
        )
        sent_s = time.perf_counter() - started
        dead = await self.drain(engine)
        drain_s = time.perf_counter() - started - sent_s
        rss_peak = peak_rss_mb(engine.pid)
        await engine.stop()
        tally = await self.tally(factory, acked)
        took.sort()
        return {
            "events": s.events,
            **tally,
            "dead_lettered": dead,
            "acknowledged": len(acked),
            "unacknowledged": len(gave_up),
            "send_s": round(sent_s, 1),
            "drain_s": round(drain_s, 1),
            "ack_p50_ms": _ms(took, 0.5),
            "ack_p99_ms": _ms(took, 0.99),
            "ack_max_ms": _ms(took, 1.0),
            "huge_headers": s.huge_headers,
            "huge_header_bytes": s.huge_header_bytes,
            "huge_header_answers": huge,
            "silent_connections": silent.count,
            "silent_closed_by_server": silent.closed_by_server,
            "silent_slowest_close_s": silent.slowest_close_s,
            "engine_rss_growth_mb": round(rss_peak - rss_at_start, 1),
            "uploads": await self.ledger(engine),
            "faults_fired": await self.faults_fired(),
        }

    async def ledger(self, engine: Service) -> dict[str, dict[str, int]]:
        """The engine's upload ledger counted by HTTP status (or kind) and by outcome."""
        outbox = open_outbox(f"sqlite:///{(self.workdir / f'{engine.name}.db').resolve()}")
        await outbox.open()
        try:
            attempts = await outbox.attempts(limit=1_000_000)
        finally:
            await outbox.close()
        return {
            "by_status": dict(sorted(Counter(a.status for a in attempts).items())),
            "by_outcome": dict(sorted(Counter(a.outcome for a in attempts).items())),
        }

    # -- fuzz mode ---------------------------------------------------------------------------

    async def fuzz_run(self, factory: WebhookFactory) -> dict[str, Any]:
        s = self.settings
        engine = self.engine("fuzz-engine")
        await engine.start()
        port = int(engine.url.rsplit(":", 1)[1])
        statuses: Counter[str] = Counter()
        server_errors = 0
        conn = Connection("127.0.0.1", port, timeout_s=30.0)
        inputs = bad_inputs(factory, random.Random(s.seed), s.fuzz_inputs)
        for item in inputs:
            headers = {"content-type": item.content_type}
            if item.authorization is not None:
                headers["authorization"] = item.authorization
            try:
                status, _ = await conn.post(WEBHOOK_PATH, item.body, headers)
            except SendError:
                # The receiver may close a connection after refusing an oversized body unread;
                # that is not an error unless a fresh connection also fails.
                status = -1
            if (status == -1 and not item.oversized) or status >= 500:
                server_errors += 1
            statuses[f"{item.kind}:{status}"] += 1
        await conn.close()
        alive = engine.alive()
        stays_up = False
        if alive:
            probe = f"fuzz-probe-{s.seed}-0"
            probe_conn = Connection("127.0.0.1", port)
            try:
                status, _ = await probe_conn.post(
                    WEBHOOK_PATH,
                    factory.body(probe),
                    {"content-type": "application/json", "authorization": WEBHOOK_AUTH},
                )
                stays_up = status == 200 and (await self.health(engine)).get("status") == "ok"
            except SendError:
                stays_up = False
            await probe_conn.close()
        # What the receiver accepted must also leave the queue: delivered, skipped or
        # dead-lettered, not stuck leased by a dispatcher that chokes on it.
        drained: bool | None = None
        if stays_up and s.settle_timeout_s > 0:

            async def settled() -> bool:
                health = await self.health(engine)
                return health.get("pending") == 0 and health.get("leased") == 0

            try:
                await wait_for(
                    settled, timeout_s=s.settle_timeout_s, what="accepted events", poll_s=0.2
                )
                drained = True
            except TimeoutError:
                drained = False
        final = await self.health(engine) if stays_up else {}
        await engine.stop()
        # Why accepted bodies were dead-lettered, so a run shows they were refused for cause.
        dead = await list_dead_letters(load_config(self.workdir / "fuzz-engine.toml"), limit=1000)
        reasons = Counter(letter.reason.split(" Skipped record")[0][:100] for letter in dead)
        by_status: Counter[str] = Counter()
        for key, count in statuses.items():
            by_status[key.rsplit(":", 1)[1]] += count
        return {
            "bad_inputs": len(inputs),
            "server_errors": server_errors,
            "engine_stayed_up": stays_up,
            "accepted_settled": drained,
            "accepted_dead_lettered": final.get("dead"),
            "dead_letter_reasons": dict(reasons.most_common()),
            "statuses": dict(sorted(by_status.items())),
            "by_kind": dict(sorted(statuses.items())),
        }


def _ms(sorted_seconds: list[float], quantile: float) -> float:
    if not sorted_seconds:
        return 0.0
    at = min(len(sorted_seconds) - 1, int(quantile * len(sorted_seconds)))
    return round(sorted_seconds[at] * 1000, 1)


async def run(settings: ChaosSettings, *, mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    factory = WebhookFactory.build(seed=settings.seed)
    results: dict[str, Any] = {"mode": mode}
    with tempfile.TemporaryDirectory(prefix="rc-clevertap-chaos-") as tmp:
        harness = Harness(Path(tmp), settings, faults="hostile" if mode == "hostile" else "chaos")
        await harness.mock.start()
        try:
            if mode in ("all", "kill"):
                results.update(await harness.kill_run(factory))
            if mode in ("all", "fuzz"):
                results.update(await harness.fuzz_run(factory))
            if mode == "hostile":
                results.update(await harness.hostile_run(factory))
        finally:
            await harness.http.aclose()
            await harness.mock.stop(
                timeout_s=3.0
            )  # its state is read; a 70 s timeout fault need not finish
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def failed(results: dict[str, Any]) -> list[str]:
    problems = []
    if results.get("lost", 0):
        problems.append(f"{results['lost']} acknowledged events lost")
    if results.get("unacknowledged", 0):
        problems.append(f"{results['unacknowledged']} events never acknowledged")
    if results.get("server_errors", 0):
        problems.append(f"{results['server_errors']} server errors while fuzzing")
    if results.get("engine_stayed_up") is False:
        problems.append("the engine did not stay up under fuzzing")
    if results.get("accepted_settled") is False:
        problems.append("fuzzed events the receiver accepted did not leave the queue")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2,000 events, 3 kills, 400 inputs; hostile: 8 headers of 1 MiB, 200 silent",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--mode", choices=["all", "kill", "fuzz", "hostile"], default="all")
    parser.add_argument("--events", type=int, help="unique webhooks to send")
    parser.add_argument("--kills", type=int, help="SIGKILLs during the run")
    parser.add_argument("--fuzz-inputs", type=int, help="malformed bodies to send")
    parser.add_argument("--seed", type=int, help="seed for kill moments, faults and fuzzing")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        help="seconds fuzzed events the receiver accepted get to leave the queue (0: no check)",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    settings = ChaosSettings(
        events=args.events if args.events is not None else base.events,
        kills=args.kills if args.kills is not None else base.kills,
        fuzz_inputs=args.fuzz_inputs if args.fuzz_inputs is not None else base.fuzz_inputs,
        seed=args.seed if args.seed is not None else base.seed,
        drain_timeout_s=base.drain_timeout_s,
        settle_timeout_s=(
            args.settle_timeout if args.settle_timeout is not None else base.settle_timeout_s
        ),
        huge_headers=base.huge_headers,
        huge_header_bytes=base.huge_header_bytes,
        silent_connections=base.silent_connections,
        silent_hold_s=base.silent_hold_s,
    )
    if settings.events < 1 or settings.kills < 0 or settings.fuzz_inputs < 1:
        parser.error("--events and --fuzz-inputs must be at least 1, --kills at least 0")
    results = asyncio.run(run(settings, mode=args.mode))
    problems = failed(results)
    if args.json:
        print(json.dumps(results), flush=True)
    else:
        for key, value in results.items():
            if key != "by_kind":
                print(f"{key:<24} {value}")
        print("OK" if not problems else "FAILED: " + "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
