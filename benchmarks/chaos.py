"""Does anything get lost when the engine is killed mid-flight against a faulty CleverTap?

    python benchmarks/chaos.py [--quick] [--json] [--mode all|kill|fuzz] [--events N]
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

from benchmarks.fuzz import bad_inputs
from benchmarks.procs import Service, free_port, python, wait_for
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


QUICK = ChaosSettings(events=2000, kills=3, fuzz_inputs=400, settle_timeout_s=10.0)
FULL = ChaosSettings(events=100_000, kills=10, fuzz_inputs=5000, drain_timeout_s=3600.0)


class Harness:
    """The mock and engine processes, on loopback, in one work folder."""

    def __init__(self, workdir: Path, settings: ChaosSettings) -> None:
        self.workdir = workdir
        self.settings = settings
        self.rng = random.Random(settings.seed)
        mock_port = free_port()
        self.mock = Service(
            "clevertap-mock",
            python("-m", "integration.app.cli", "mock", "--port", str(mock_port), "--faults",
                   "chaos", "--seed", str(settings.seed), "--log-level", "error"),
            url=f"http://127.0.0.1:{mock_port}",
            ready_path="/_mock/clevertap/accounts",
            log=workdir / "mock.log",
        )  # fmt: skip
        self.http = httpx.AsyncClient(timeout=120.0)

    def engine(self, name: str) -> Service:
        # Short timeouts and backoffs so a run drains in seconds; lease_s > timeout_s as the
        # engine asks, so a slow upload is not leased twice while it is still in flight.
        config = engine_config(
            self.mock.url,
            fresh_outbox_url(None, name, self.workdir),
            timeout_s=2.0,
            lease_s=5.0,
            backoff_initial_s=0.1,
            backoff_max_s=1.0,
        )
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

    async def kill_run(self, factory: WebhookFactory) -> dict[str, Any]:
        s = self.settings
        engine = self.engine("chaos-engine")
        await engine.start()
        ids = [f"chaos-{s.seed}-{i}" for i in range(s.events)]
        acked: set[str] = set()
        gave_up: list[str] = []
        queue = list(reversed(ids))
        split = engine.url.rsplit(":", 1)
        port = int(split[1])
        headers = {"content-type": "application/json", "authorization": WEBHOOK_AUTH}

        async def sender() -> None:
            conn = Connection("127.0.0.1", port, timeout_s=10.0)
            while queue:
                event_id = queue.pop()
                body = factory.body(event_id)
                for _ in range(MAX_SEND_ATTEMPTS):
                    try:
                        status, _ = await conn.post(WEBHOOK_PATH, body, headers)
                    except SendError:
                        status = 0
                    if status == 200:
                        acked.add(event_id)
                        break
                    # RevenueCat retries anything but a 200; here, while the engine restarts.
                    await asyncio.sleep(0.03)
                else:
                    gave_up.append(event_id)
            await conn.close()

        # Kill after a random number of acknowledgements, spread over the run; the last
        # threshold may equal ``events``: a kill during the drain, with uploads in flight.
        low = max(1, s.events // 20)
        thresholds = sorted(self.rng.sample(range(low, s.events + 1), min(s.kills, s.events)))
        kills = 0

        async def killer() -> None:
            nonlocal kills
            for threshold in thresholds:

                async def reached(threshold: int = threshold) -> bool:
                    return len(acked) >= threshold or (
                        not queue and len(acked) + len(gave_up) >= s.events
                    )

                await wait_for(reached, timeout_s=s.drain_timeout_s, what="the next kill")
                engine.kill()
                kills += 1
                await engine.start()

        started = time.perf_counter()
        await asyncio.gather(killer(), *(sender() for _ in range(SENDERS)))
        sent_s = time.perf_counter() - started

        async def drained() -> bool:
            health = await self.health(engine)
            return health.get("pending") == 0 and health.get("leased") == 0

        await wait_for(drained, timeout_s=s.drain_timeout_s, what="the outbox to drain")
        drain_s = time.perf_counter() - started - sent_s
        dead = int((await self.health(engine))["dead"])
        await engine.stop()

        answer = await self.http.get(self.mock.url + "/_mock/clevertap/events")
        answer.raise_for_status()
        copies = Counter(
            str(event["evtData"].get("rc_event_id")) for event in answer.json()["events"]
        )
        expected = {i for i in acked if factory.forwarded(i)}
        held = expected & copies.keys()
        faults = (await self.http.get(self.mock.url + "/_mock/faults/")).json()
        return {
            "events": s.events,
            "kills": kills,
            "delivered_unique": len(held),
            "lost": len(expected - held),
            "duplicates": sum(copies[i] - 1 for i in held),
            "dead_lettered": dead,
            "acknowledged": len(acked),
            "unacknowledged": len(gave_up),
            "skipped_by_mapping": len(acked) - len(expected),
            "send_s": round(sent_s, 1),
            "drain_s": round(drain_s, 1),
            "faults_fired": faults.get("fired", {}),
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


async def run(settings: ChaosSettings, *, mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    factory = WebhookFactory.build(seed=settings.seed)
    results: dict[str, Any] = {"mode": mode}
    with tempfile.TemporaryDirectory(prefix="rc-clevertap-chaos-") as tmp:
        harness = Harness(Path(tmp), settings)
        await harness.mock.start()
        try:
            if mode in ("all", "kill"):
                results.update(await harness.kill_run(factory))
            if mode in ("all", "fuzz"):
                results.update(await harness.fuzz_run(factory))
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
    parser.add_argument("--quick", action="store_true", help="2,000 events, 3 kills, 400 inputs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--mode", choices=["all", "kill", "fuzz"], default="all")
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
                print(f"{key:<18} {value}")
        print("OK" if not problems else "FAILED: " + "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
