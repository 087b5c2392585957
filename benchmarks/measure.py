"""The figures of ``run.py``, one coroutine per section, each beside its ceiling.

Every section gets a fresh outbox (a new SQLite file, or a new PostgreSQL schema with
``--outbox postgresql://...``) and a reset CleverTap mock, which runs in its own process for
the whole run.  What each section measures, and against what, is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.load import (
    LoadResult,
    drive_many,
    merged_percentile,
    poll_probes,
    steady_latencies,
)
from benchmarks.procs import (
    REPO,
    Service,
    beside_ceiling,
    free_port,
    peak_rss_mb,
    per_s,
    python,
    rss_mb,
    wait_for,
)
from benchmarks.senders import client_figures, paced
from benchmarks.workload import (
    ACCOUNT_ID,
    BENCH_ROUTE,
    PASSCODE,
    WebhookFactory,
    as_config,
    drop_outbox,
    engine_config,
    fresh_outbox_url,
    outbox_depths,
    routes_enabled,
    write_config,
)
from integration.engine import Engine
from integration.mapping import Mapped, map_event
from integration.metrics import PREFIX
from integration.outbox import open_outbox
from integration.premap import stored_form
from integration.routes import Routes
from integration.webhook import parse_webhook

__all__ = ["Bench", "Settings"]

SERVERS = str(REPO / "benchmarks" / "servers.py")
Result = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    ingest_s: float
    connections: int
    delivery_events: int
    rate_per_s: int
    end_to_end_s: float
    backlog_events: int
    client_users: int
    client_concurrency: int
    baseline_events: int
    mock_batches: int
    mock_runs: int
    probe_settled_rows: int = 1_000_000  # settled rows in the outbox while probes poll
    probe_s: float = 20.0  # each of the two runs (without and with pollers)


QUICK = Settings(3, 32, 10_000, 1000, 4, 20_000, 1000, 16, 1000, 10, 1, 100_000, 5.0)
FULL = Settings(15, 32, 100_000, 1000, 30, 1_000_000, 10_000, 16, 5000, 100, 3)
# The probes section: 8 monitoring clients, each asking /healthz or /metrics in turn every
# 25 ms (320 probes a second, far more than any load balancer and Prometheus together), while
# one good client sends 100 webhooks a second, one at a time.
PROBE_CLIENTS = 8
PROBE_INTERVAL_S = 0.025
PROBE_WEBHOOKS_PER_S = 100.0


async def profile_gate(name: str) -> None:
    """With ``RC_CLEVERTAP_BENCH_PROFILE_GATE=DIR``, stop before the timed part of a section:
    write ``DIR/<name>.ready`` (this process's id) and wait for ``DIR/<name>.go``, so that a
    profiler attached meanwhile (``py-spy record --pid``) samples that part alone, not the
    prefill.  Unset (always, outside profiling), it does nothing."""
    gate = os.environ.get("RC_CLEVERTAP_BENCH_PROFILE_GATE")
    if not gate:
        return
    folder = Path(gate)
    (folder / f"{name}.ready").write_text(str(os.getpid()))
    # A file another process writes: no event to wait on.
    while not (folder / f"{name}.go").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.1)


class Bench:
    """One run: a work folder, the webhook templates, the mock process, the outbox base URL."""

    def __init__(
        self, workdir: Path, settings: Settings, *, outbox: str | None, seed: int = 1
    ) -> None:
        self.workdir = workdir
        self.settings = settings
        self.outbox_base = outbox
        self.factory = WebhookFactory.build(seed=seed)
        port = free_port()
        self.mock = Service(
            "clevertap-mock",
            python(SERVERS, "mock", "--port", str(port), "--max-events", "200000"),
            url=f"http://127.0.0.1:{port}",
            ready_path="/_mock/clevertap/accounts",
            log=workdir / "mock.log",
        )
        self.http = httpx.AsyncClient(timeout=60.0)

    async def __aenter__(self) -> Bench:
        await self.mock.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.mock.stop(timeout_s=3.0)

    # -- helpers -----------------------------------------------------------------------------

    async def reset_mock(self) -> None:
        (await self.http.post(self.mock.url + "/_mock/clevertap/reset")).raise_for_status()

    async def mock_counters(self) -> dict[str, Any]:
        answer = await self.http.get(
            self.mock.url + "/_mock/clevertap/counters", params={"account_id": ACCOUNT_ID}
        )
        answer.raise_for_status()
        counters: dict[str, Any] = answer.json()
        return counters

    def config(self, outbox_url: str, **options: Any) -> dict[str, Any]:
        return engine_config(self.mock.url, outbox_url, **options)

    def engine_service(self, name: str, config: dict[str, Any], *options: str) -> Service:
        path = write_config(config, self.workdir / f"{name}.toml")
        port = free_port()
        return Service(
            name,
            python(SERVERS, "engine", "--config", str(path), "--port", str(port), *options),
            url=f"http://127.0.0.1:{port}",
            ready_path="/healthz",
            log=self.workdir / f"{name}.log",
        )

    def ceiling_service(self, name: str, kind: str = "ceiling") -> Service:
        port = free_port()
        return Service(
            name,
            python(SERVERS, kind, "--port", str(port)),
            url=f"http://127.0.0.1:{port}",
            ready_path="/healthz",
            log=self.workdir / f"{name}.log",
        )

    @staticmethod
    async def start_all(engines: Sequence[Service]) -> None:
        """The first engine alone, so that it creates the outbox's schema; then the others at
        once (they find it current)."""
        await engines[0].start()
        await asyncio.gather(*(engine.start() for engine in engines[1:]))

    async def waiting(self, outbox_url: str) -> int:
        """Rows pending or leased in the outbox, read from it now (exact, by index): the
        engine's ``/metrics`` depths are a snapshot up to a few seconds old, and ``/healthz``
        shows none."""
        depths = await outbox_depths(outbox_url)
        return depths.pending + depths.leased

    async def prefill(
        self,
        outbox_url: str,
        run: str,
        n: int,
        *,
        features: bool | None = None,
        premapped: bool = True,
    ) -> list[str]:
        """Store ``n`` webhooks in the outbox directly (group commits of 5000), each with the
        mapped form and fingerprint the receiver would store (issue 21, integration/premap.py),
        or with none (``premapped=False``: as rows of an older release, or of a configuration
        since changed, which delivery maps from their bodies); with
        ``features`` (by default RC_CLEVERTAP_BENCH_ROUTES=1), every other one on the second
        route."""
        outbox = open_outbox(outbox_url, group_commit_max=5000)
        await outbox.open()
        ids = [f"{run}-{i}" for i in range(n)]
        now = time.time()
        # The features variant: every other event on the second route (issues 16, 21).
        several = routes_enabled() if features is None else features
        names = ("default", BENCH_ROUTE) if several else ("default",)
        routes = Routes(as_config(self.config(outbox_url, features=features)))

        def stored(event_id: str, route: str) -> dict[str, Any]:
            if not premapped:
                return {}
            chosen = routes.get(route)
            assert chosen is not None
            envelope = parse_webhook(self.factory.body(event_id))
            form = stored_form(envelope.event, chosen.config, fast=envelope.fast)
            return {"mapped": form, "mapped_fp": chosen.fingerprint if form else None}

        try:
            for start in range(0, n, 5000):
                chunk = ids[start : start + 5000]
                await asyncio.gather(
                    *(
                        outbox.enqueue(
                            i,
                            self.factory.environment(i),
                            self.factory.body(i),
                            now=now,
                            route=names[(start + k) % len(names)],
                            **stored(i, names[(start + k) % len(names)]),
                        )
                        for k, i in enumerate(chunk)
                    )
                )
        finally:
            await outbox.close()
        return ids

    async def drained(self, outbox_url: str) -> bool:
        return await self.waiting(outbox_url) == 0

    def batches(self, ids: Sequence[str], size: int = 1000) -> list[bytes]:
        """The records the engine would send for ``ids``, as 1000-record upload bodies."""
        records = [r for i in ids for r in self.factory.records(i)]
        return [
            json.dumps({"d": records[s : s + size]}).encode() for s in range(0, len(records), size)
        ]

    async def ceiling_seconds(self, ids: Sequence[str], concurrency: int) -> float:
        """Seconds a trivial client takes to post ``ids``' records, pre-built into 1000-record
        batches, ``concurrency`` at a time, to an emptied mock (emptied again afterwards)."""
        bodies = self.batches(ids)
        await self.reset_mock()
        seconds = await self.post_all(bodies, concurrency)
        await self.reset_mock()
        return seconds

    async def post_all(self, bodies: Sequence[bytes], concurrency: int) -> float:
        """Post upload bodies to the mock, ``concurrency`` at a time; seconds taken."""
        headers = {
            "X-CleverTap-Account-Id": ACCOUNT_ID,
            "X-CleverTap-Passcode": PASSCODE,
            "Content-Type": "application/json; charset=utf-8",
        }
        queue = list(reversed(bodies))
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60.0) as http:

            async def worker() -> None:
                while queue:
                    answer = await http.post(
                        self.mock.url + "/1/upload", content=queue.pop(), headers=headers
                    )
                    answer.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - started

    # -- sections ----------------------------------------------------------------------------

    async def ingest(self, instances: int = 1, *, features: bool | None = None) -> Result:
        """Durable 200s per second from the real receiver vs. a bare JSON endpoint.

        With ``instances`` > 1, that many engine processes share one outbox and that many bare
        endpoints make the ceiling; the same total of connections is split between them (one
        load generator per process, all at once), as a load balancer would spread it.
        ``features``: the engine runs with two routes, the budget and a transform (the
        webhooks go to the default route's path, so each is routed past the second route's)."""
        s = self.settings
        threads = 2 if instances == 1 else 1  # as many load threads as one instance's wrk -t2
        ceilings = [self.ceiling_service(f"ceiling-{i}") for i in range(instances)]
        try:
            await asyncio.gather(*(c.start() for c in ceilings))
            urls = [c.url for c in ceilings]
            drive_many(urls, self.factory, run="ceil-warm", connections=s.connections,
                       duration_s=1, workdir=self.workdir, threads=threads)  # fmt: skip
            bare = drive_many(urls, self.factory, run="ceil", connections=s.connections,
                              duration_s=s.ingest_s, workdir=self.workdir,
                              threads=threads)  # fmt: skip
        finally:
            await asyncio.gather(*(c.stop() for c in ceilings))
        server: list[LoadResult] = []
        if instances == 1 and not features:
            # The server alone, no framework: how much of the gap is Starlette's, how much ours.
            bare_server = self.ceiling_service("bare", kind="bare")
            await bare_server.start()
            try:
                drive_many([bare_server.url], self.factory, run="bare-warm",
                           connections=s.connections, duration_s=1, workdir=self.workdir,
                           threads=threads)  # fmt: skip
                server = drive_many([bare_server.url], self.factory, run="bare",
                                    connections=s.connections, duration_s=s.ingest_s,
                                    workdir=self.workdir, threads=threads)  # fmt: skip
            finally:
                await bare_server.stop()
        name = f"ingest{instances}" + ("-features" if features else "")
        outbox_url = fresh_outbox_url(self.outbox_base, name, self.workdir)
        # A passcode CleverTap refuses pauses the account (auth_pause_s): the dispatcher stays
        # out of the way and the figure is intake alone.
        config = self.config(outbox_url, passcode="nope", features=features)
        name = "ingest-engine" if instances == 1 else "ingest-engine-{}"
        engines = [self.engine_service(name.format(i), config) for i in range(instances)]
        try:
            await self.start_all(engines)
            urls = [e.url for e in engines]
            drive_many(urls, self.factory, run="ingest-warm", connections=s.connections,
                       duration_s=1, workdir=self.workdir, threads=threads)  # fmt: skip
            before = await self.waiting(outbox_url)
            ours = drive_many(urls, self.factory, run="ingest", connections=s.connections,
                              duration_s=s.ingest_s, workdir=self.workdir,
                              threads=threads)  # fmt: skip
            after = await self.waiting(outbox_url)
        finally:
            await asyncio.gather(*(e.stop() for e in engines))
            drop_outbox(outbox_url)
        ours_per_s = sum(r.ok_per_s for r in ours)
        bare_per_s = sum(r.ok_per_s for r in bare)
        figures: dict[str, Any] = {}
        if instances > 1:
            figures["instances"] = instances
        figures["webhooks_per_s"] = round(ours_per_s, 1)
        figures["ceiling_per_s"] = round(bare_per_s, 1)
        figures["ratio"] = round(ours_per_s / bare_per_s, 3) if bare_per_s else 0.0
        figures["p99_ack_ms"] = round(merged_percentile(ours, 99), 2)
        figures["p50_ack_ms"] = round(merged_percentile(ours, 50), 2)
        figures["ceiling_p99_ms"] = round(merged_percentile(bare, 99), 2)
        if server:
            server_per_s = sum(r.ok_per_s for r in server)
            figures["server_ceiling_per_s"] = round(server_per_s, 1)
            figures["server_ceiling_p99_ms"] = round(merged_percentile(server, 99), 2)
            figures["server_ratio"] = round(ours_per_s / server_per_s, 3) if server_per_s else 0.0
        figures["connections"] = s.connections
        figures["errors"] = sum(r.errors for r in ours)
        # The shared outbox's count of waiting rows: every 200 must be one more row.
        figures["stored"] = after - before
        figures["acknowledged"] = sum(r.ok for r in ours)
        # Requests still in flight when the load stops are stored but not counted as 200s.
        figures["every_200_stored"] = figures["stored"] >= figures["acknowledged"]
        if instances > 1:
            figures["per_instance_per_s"] = [round(r.ok_per_s, 1) for r in ours]
        figures["load_tool"] = ours[0].tool
        return figures

    async def delivery(
        self, instances: int = 1, *, features: bool | None = None, premapped: bool = True
    ) -> Result:
        """Events per second from a pre-filled outbox into the mock vs. posting pre-built
        batches to it with the same concurrency; ``features``: with two routes (every other
        event on the second), the budget and a transform; ``premapped=False``: rows stored
        without their mapped form, so each body is parsed and mapped at delivery."""
        if instances > 1:
            return await self.shared_delivery(instances)
        n = self.settings.delivery_events
        name = "delivery-features" if features else "delivery"
        name += "" if premapped else "-unmapped"
        outbox_url = fresh_outbox_url(self.outbox_base, name, self.workdir)
        ids = await self.prefill(outbox_url, name, n, features=features, premapped=premapped)
        forwarded = sum(self.factory.forwarded(i) for i in ids)
        config = self.config(outbox_url, features=features)
        concurrency = int(config["dispatcher"]["concurrency"])
        await self.reset_mock()
        await profile_gate(name)
        engine = Engine(as_config(config), poll_s=0.05)
        settled_names = ("events_delivered_total", "events_skipped_total")

        async def settled() -> bool:
            return sum(engine.metrics.total(name) for name in settled_names) >= n

        started = time.perf_counter()
        try:
            await engine.start()
            # The engine's own counters, read in process: free, unlike a count of the outbox.
            await wait_for(settled, timeout_s=600, what="the delivery", poll_s=0.005)
            ours_s = time.perf_counter() - started
            await asyncio.wait_for(engine.wait_idle(), timeout=60)
        finally:
            await engine.stop()
            drop_outbox(outbox_url)
        counters = await self.mock_counters()
        if counters.get("records_processed") != forwarded:
            raise RuntimeError(f"delivery: mock holds {counters} for {forwarded} events")
        ceiling_s = await self.ceiling_seconds(ids, concurrency)
        return {
            **beside_ceiling("events_per_s", n, ours_s, ceiling_s),
            "events": n,
            "forwarded": forwarded,
            "concurrency": concurrency,
        }

    async def shared_delivery(self, instances: int) -> Result:
        """Events per second from ``instances`` engine processes draining one pre-filled
        outbox into the mock, and whether any event reached the mock twice.

        The engines start before the outbox is filled, with their clocks held (``servers.py
        --hold``), so none has a head start: the clock runs from the signal that releases all
        of them to the mock holding every forwarded event.  The ceiling is the trivial client
        with as many uploads in flight as all the engines together."""
        n = self.settings.delivery_events
        outbox_url = fresh_outbox_url(self.outbox_base, f"delivery{instances}", self.workdir)
        config = self.config(outbox_url)
        concurrency = int(config["dispatcher"]["concurrency"]) * instances
        hold = ("--hold", "--poll-s", "0.05")  # poll as often as the in-process engine does
        engines = [
            self.engine_service(f"delivery-engine-{i}", config, *hold) for i in range(instances)
        ]
        await self.reset_mock()
        try:
            await self.start_all(engines)
            ids = await self.prefill(outbox_url, f"delivery{instances}", n)
            forwarded = sum(self.factory.forwarded(i) for i in ids)

            async def delivered() -> bool:
                return int((await self.mock_counters())["records_processed"]) >= forwarded

            started = time.perf_counter()
            for engine in engines:
                engine.signal(signal.SIGUSR1)
            await wait_for(delivered, timeout_s=600, what="the shared delivery", poll_s=0.05)
            ours_s = time.perf_counter() - started
            await wait_for(
                lambda: self.drained(outbox_url), timeout_s=60, what="the last rows", poll_s=0.2
            )
            per_instance = [await self.delivered_by(engine) for engine in engines]
        finally:
            await asyncio.gather(*(e.stop() for e in engines))
            drop_outbox(outbox_url)
        answer = await self.http.get(self.mock.url + "/_mock/clevertap/events")
        answer.raise_for_status()
        copies = Counter(
            str(event["evtData"].get("rc_event_id")) for event in answer.json()["events"]
        )
        del answer
        expected = {i for i in ids if self.factory.forwarded(i)}
        ceiling_s = await self.ceiling_seconds(ids, concurrency)
        return {
            "instances": instances,
            **beside_ceiling("events_per_s", n, ours_s, ceiling_s),
            "events": n,
            "forwarded": forwarded,
            "concurrency": concurrency,
            "per_instance_delivered": per_instance,
            # Counted by evtData.rc_event_id in what the mock stored, as chaos.py counts.
            "missing": len(expected - copies.keys()),
            "duplicates": sum(c - 1 for i, c in copies.items() if i in expected and c > 1),
        }

    async def delivered_by(self, engine: Service) -> int:
        """The engine's ``events_delivered_total`` (all environments), from ``/metrics``."""
        answer = await self.http.get(engine.url + "/metrics")
        answer.raise_for_status()
        name = f"{PREFIX}events_delivered_total"
        return round(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in answer.text.splitlines()
                if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
            )
        )

    async def baseline(self, ours_per_s: float | None) -> Result:
        """One upload per event, as a simple integration forwards each webhook it gets: parse
        and map the body, post its records alone, wait for the answer."""
        n = self.settings.baseline_events
        ids = [f"naive-{i}" for i in range(n)]
        headers = {
            "X-CleverTap-Account-Id": ACCOUNT_ID,
            "X-CleverTap-Passcode": PASSCODE,
            "Content-Type": "application/json; charset=utf-8",
        }
        config = as_config(self.config("sqlite:///unused.db"))
        await self.reset_mock()
        queue = list(reversed(ids))
        limits = httpx.Limits(max_connections=4)
        async with httpx.AsyncClient(limits=limits, timeout=60.0) as http:

            async def worker() -> None:
                while queue:
                    event = json.loads(self.factory.body(queue.pop()))["event"]
                    mapped = map_event(event, config)
                    if not isinstance(mapped, Mapped):
                        continue
                    answer = await http.post(
                        self.mock.url + "/1/upload",
                        content=json.dumps({"d": mapped.records}).encode(),
                        headers=headers,
                    )
                    answer.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(4)))
            seconds = time.perf_counter() - started
        await self.reset_mock()
        naive = per_s(n, seconds)
        return {
            "naive_events_per_s": naive,
            "speedup": round(ours_per_s / naive, 1) if ours_per_s and naive else None,
            "events": n,
            "concurrency": 4,
        }

    async def end_to_end(self) -> Result:
        """From the webhook's 200 to the mock storing the event, at a steady offered load."""
        s = self.settings
        outbox_url = fresh_outbox_url(self.outbox_base, "e2e", self.workdir)
        engine = self.engine_service("e2e-engine", self.config(outbox_url))
        await self.reset_mock()
        await engine.start()
        try:
            acks, failures, achieved = await paced(
                engine.url, self.factory, "e2e", s.rate_per_s, s.end_to_end_s
            )
            await wait_for(
                lambda: self.drained(outbox_url), timeout_s=120, what="the e2e drain", poll_s=0.2
            )
        finally:
            await engine.stop()
            drop_outbox(outbox_url)
        answer = await self.http.get(self.mock.url + "/_mock/clevertap/events")
        answer.raise_for_status()
        accepted: dict[str, float] = {}
        for event in answer.json()["events"]:
            event_id = event["evtData"].get("rc_event_id")
            if event_id in acks and event_id not in accepted:
                accepted[event_id] = float(event["_received_at"])
        await self.reset_mock()
        latencies = sorted((accepted[i] - acks[i]) * 1000 for i in accepted)
        expected = sum(self.factory.forwarded(i) for i in acks)

        def pct(q: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

        return {
            "rate_per_s": round(achieved, 1),
            "offered_per_s": s.rate_per_s,
            "p50_ms": pct(0.5) if latencies else None,
            "p99_ms": pct(0.99) if latencies else None,
            "max_ms": round(latencies[-1], 1) if latencies else None,
            "acknowledged": len(acks),
            "failed_sends": failures,
            "matched": len(latencies),
            "expected": expected,
        }

    async def settle_all(self, outbox_url: str) -> None:
        """Mark every row of a pre-filled outbox delivered, as a week of traffic leaves it."""
        outbox = open_outbox(outbox_url)
        await outbox.open()
        try:
            for environment in ("PRODUCTION", "SANDBOX"):
                now = time.time()
                while lease := await outbox.lease(environment, 10_000, now=now, lease_s=600):
                    await outbox.settle(lease, delivered=[e.row_id for e in lease.events], now=now)
        finally:
            await outbox.close()

    async def probes(self) -> Result:
        """A good client's webhook latency on an outbox holding many settled rows, without
        and then with 8 clients polling /healthz and /metrics (issue 13: each probe used to
        count every row on the thread that commits webhooks)."""
        s = self.settings
        outbox_url = fresh_outbox_url(self.outbox_base, "probes", self.workdir)
        await self.prefill(outbox_url, "probes", s.probe_settled_rows)
        await self.settle_all(outbox_url)
        # A passcode CleverTap refuses pauses the account: the figure is intake alone.
        engine = self.engine_service("probes-engine", self.config(outbox_url, passcode="nope"))
        await engine.start(timeout_s=120)
        try:
            pace = {"rate_per_s": PROBE_WEBHOOKS_PER_S}
            await steady_latencies(engine.url, self.factory, "probes-warm", duration_s=1, **pace)
            quiet = await steady_latencies(
                engine.url, self.factory, "probes-quiet", duration_s=s.probe_s, **pace
            )
            pollers = asyncio.create_task(
                poll_probes(
                    engine.url,
                    clients=PROBE_CLIENTS,
                    interval_s=PROBE_INTERVAL_S,
                    duration_s=s.probe_s + 1,
                    workdir=self.workdir,
                )
            )
            probed = await steady_latencies(
                engine.url, self.factory, "probes-probed", duration_s=s.probe_s, **pace
            )
            tool, probes, errors = await pollers
        finally:
            await engine.stop()
            drop_outbox(outbox_url)

        def pct(latencies: list[float], q: float) -> float:
            ordered = sorted(latencies)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        p99_quiet, p99_probed = pct(quiet, 0.99), pct(probed, 0.99)
        return {
            "settled_rows": s.probe_settled_rows,
            "p50_quiet_ms": pct(quiet, 0.5),
            "p99_quiet_ms": p99_quiet,
            "p50_probed_ms": pct(probed, 0.5),
            "p99_probed_ms": p99_probed,
            "p99_ratio": round(p99_probed / p99_quiet, 2) if p99_quiet else None,
            "probes_per_s": per_s(probes, s.probe_s + 1),
            "probe_errors": errors,
            "probe_clients": PROBE_CLIENTS,
            "probe_tool": tool,
            "webhooks": len(quiet) + len(probed),
        }

    async def memory(self) -> Result:
        """Peak RSS of an engine process holding a backlog, then draining it into the mock."""
        n = self.settings.backlog_events
        outbox_url = fresh_outbox_url(self.outbox_base, "memory", self.workdir)
        prefill_started = time.perf_counter()
        ids = await self.prefill(outbox_url, "memory", n)
        forwarded = sum(self.factory.forwarded(i) for i in ids)
        del ids
        prefill_s = time.perf_counter() - prefill_started
        await self.reset_mock()
        engine = self.engine_service("memory-engine", self.config(outbox_url))
        samples: list[float] = []
        await engine.start(timeout_s=120)
        try:
            at_start = rss_mb(engine.pid)
            started = time.perf_counter()

            async def delivered() -> bool:
                # The mock's counters, not /healthz: counting a million outbox rows twice a
                # second would slow the drain it measures.
                samples.append(rss_mb(engine.pid))
                return int((await self.mock_counters())["records_processed"]) >= forwarded

            await wait_for(delivered, timeout_s=3600, what="the backlog to drain", poll_s=0.25)
            drain_s = time.perf_counter() - started
            await wait_for(
                lambda: self.drained(outbox_url), timeout_s=600, what="the last rows", poll_s=1.0
            )
            peak = peak_rss_mb(engine.pid)
        finally:
            await engine.stop()
            drop_outbox(outbox_url)
        await self.reset_mock()
        return {
            "backlog_events": n,
            "peak_rss_mb": round(peak, 1),
            "rss_at_start_mb": round(at_start, 1),
            "rss_max_sampled_mb": round(max(samples, default=at_start), 1),
            "drain_s": round(drain_s, 1),
            "drain_events_per_s": per_s(n, drain_s),
            "prefill_s": round(prefill_s, 1),
        }

    async def client(self) -> Result:
        """``set_clevertap_id`` per second with the async client vs. raw httpx, same requests."""
        s = self.settings
        runs = 2 if s is FULL else 1
        return await client_figures(self.mock.url, s.client_users, s.client_concurrency, runs)

    async def mock_figure(self) -> Result:
        from benchmarks.mock_upload import make_batches, measure

        s = self.settings
        result = await asyncio.to_thread(measure, make_batches(s.mock_batches), s.mock_runs)
        return {
            "records_per_s": result["records_per_s"],
            "with_json_per_s": result["with_json_per_s"],
            "json_ceiling_per_s": result["ceiling_per_s"],
            "records": result["records"],
        }
