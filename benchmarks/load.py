"""HTTP load for the ingest figure: wrk when installed, else a Python load generator process.

wrk (Debian package ``wrk``) gets a generated Lua script holding realistic webhook templates;
each request gets a unique ``event.id`` (``<run>-<thread>-<n>``), so every 200 is a fresh row
stored durably, not a duplicate answered from the unique index.  Without wrk the same load
comes from ``python benchmarks/load.py`` in its own process, a bare asyncio HTTP/1.1 client
(:mod:`benchmarks.rawhttp`); Python is slower than wrk, so the figures are lower bounds.

Both print one line ``BENCH_JSON {...}`` with ``requests``, ``ok`` (status 200 answers),
``errors``, ``duration_s``, ``p50_ms``, ``p99_ms`` and ``quantiles``: the latency at every
percentile of :data:`QUANTILES`, so that :func:`drive_many` (several load generators at once,
one per engine instance) can merge their distributions into one p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procs import python
from benchmarks.rawhttp import Connection, SendError
from benchmarks.workload import WEBHOOK_AUTH, WebhookFactory, tool_path
from integration.receiver import WEBHOOK_PATH

__all__ = [
    "QUANTILES",
    "LoadResult",
    "drive",
    "drive_many",
    "merged_percentile",
    "poll_probes",
    "steady_latencies",
    "wrk_script",
]

MARK = "BENCH_JSON "
# Percentiles each load generator reports: every whole percent, then tenths above 99, enough
# to merge several generators' p99 to within a tenth of a percent.
QUANTILES: tuple[float, ...] = (
    *(float(p) for p in range(1, 100)),
    *(round(99 + t / 10, 1) for t in range(1, 11)),
)


@dataclass(frozen=True)
class LoadResult:
    tool: str  # "wrk" or "python" (the fallback)
    requests: int
    ok: int
    errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    # (percentile, latency in ms) at each of QUANTILES, for merging (empty if none answered).
    quantiles: tuple[tuple[float, float], ...] = ()

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0


async def steady_latencies(
    url: str, factory: WebhookFactory, run: str, *, rate_per_s: float, duration_s: float
) -> list[float]:
    """One well-behaved client: webhooks one at a time at ``rate_per_s`` for ``duration_s``
    over one kept-alive connection; each one's round trip in ms (every answer must be 200)."""
    parts = urlsplit(url)
    connection = Connection(parts.hostname or "127.0.0.1", parts.port or 80, timeout_s=10.0)
    headers = {"authorization": WEBHOOK_AUTH, "content-type": "application/json"}
    latencies: list[float] = []
    started = time.perf_counter()
    try:
        n = 0
        while (now := time.perf_counter()) - started < duration_s:
            due = started + n / rate_per_s
            if due > now:
                await asyncio.sleep(due - now)  # the client's pace, not a synchronisation
            event_id = f"{run}-{n}"
            sent = time.perf_counter()
            status, body = await connection.post(WEBHOOK_PATH, factory.body(event_id), headers)
            latencies.append((time.perf_counter() - sent) * 1000)
            if status != 200:
                raise SendError(f"webhook {event_id} answered {status}: {body[:200]!r}")
            n += 1
    finally:
        await connection.close()
    return latencies


# The pollers run in a process of their own, so that their HTTP work shares neither the
# measuring client's event loop nor (with wrk, written in C) much of the CPU: each client
# asks for /healthz and /metrics in turn, one probe every ``interval`` seconds.
_WRK_POLLER = """
local paths = {"/healthz", "/metrics"}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% 2) + 1])
end
delay = function() return %d end
"""
_PYTHON_POLLER = """
import asyncio, sys, time, httpx
async def main(url, clients, interval, duration):
    counts = {"ok": 0, "errors": 0}
    async def one():
        async with httpx.AsyncClient(timeout=5.0) as http:
            end = time.monotonic() + duration
            n = 0
            while time.monotonic() < end:
                n += 1
                try:
                    path = "/healthz" if n % 2 else "/metrics"
                    ok = (await http.get(url + path)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                counts["ok" if ok else "errors"] += 1
                await asyncio.sleep(interval)
    await asyncio.gather(*(one() for _ in range(clients)))
    print(counts["ok"] + counts["errors"], counts["errors"], flush=True)
asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
"""


async def poll_probes(
    url: str, *, clients: int, interval_s: float, duration_s: float, workdir: Path
) -> tuple[str, int, int]:
    """``clients`` pollers of /healthz and /metrics for ``duration_s``: (tool, probes
    answered, probes not answered 200)."""
    wrk = tool_path("wrk")
    if wrk is not None:
        script = workdir / "probes.lua"
        script.write_text(_WRK_POLLER % round(interval_s * 1000), encoding="utf-8")
        command = [wrk, "-t1", f"-c{clients}", f"-d{round(duration_s)}s", "-s", str(script), url]
    else:
        command = python("-c", _PYTHON_POLLER, url, str(clients), str(interval_s), str(duration_s))
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    out = (await proc.communicate())[0].decode()
    if wrk is None:
        total, errors = (int(n) for n in out.split())
        return "python", total, errors
    total = int(out.split(" requests in ")[0].split()[-1])
    errors = 0
    for line in out.splitlines():
        if "Non-2xx" in line or "Socket errors" in line:
            errors += sum(int(n) for n in line.replace(",", " ").split() if n.isdigit())
    return "wrk", total, errors


def _lua_string(text: str) -> str:
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk_script(factory: WebhookFactory, run: str, templates: int = 64) -> str:
    """A wrk script posting the factory's templates with unique ids; prints BENCH_JSON."""
    rows = ",\n".join(
        f"  {{{_lua_string(p.decode())}, {_lua_string(s.decode())}}}"
        for p, s in factory.templates[:templates]
    )
    return f"""
local templates = {{
{rows}
}}
local n = #templates
local headers = {{
  ["Content-Type"] = "application/json",
  ["Authorization"] = {_lua_string(WEBHOOK_AUTH)},
}}
local threads = {{}}
local counter = 0
tid = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function request()
  counter = counter + 1
  local t = templates[(counter % n) + 1]
  local id = "{run}-" .. tid .. "-" .. counter
  return wrk.format("POST", "{WEBHOOK_PATH}", headers, t[1] .. id .. t[2])
end

local quantiles = {{{", ".join(f"{q:g}" for q in QUANTILES)}}}

function done(summary, latency, requests)
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.timeout + e.status
  local pct = {{}}
  for i, q in ipairs(quantiles) do
    -- wrk's percentile(100) answers 0; the maximum is latency.max.
    local us = q >= 100 and latency.max or latency:percentile(q)
    pct[i] = string.format("[%g, %d]", q, us)
  end
  io.write(string.format(
    '{MARK}{{"requests": %d, "errors": %d, "status_errors": %d, "duration_us": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "quantiles_us": [%s]}}\\n',
    summary.requests, failed, e.status, summary.duration,
    latency:percentile(50), latency:percentile(99), table.concat(pct, ", ")))
end
"""


def _parse(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith(MARK):
            parsed: dict[str, Any] = json.loads(line[len(MARK) :])
            return parsed
    raise RuntimeError(f"no {MARK.strip()} line in the load generator's output:\n{output[-2000:]}")


def drive(
    url: str,
    factory: WebhookFactory,
    *,
    run: str,
    connections: int,
    duration_s: float,
    workdir: Path,
    seed: int = 1,
) -> LoadResult:
    """Load ``url`` for ``duration_s`` with ``connections`` keep-alive connections."""
    [result] = drive_many(
        [url], factory, run=run, connections=connections, duration_s=duration_s,
        workdir=workdir, seed=seed, threads=2,
    )  # fmt: skip
    return result


def drive_many(
    urls: Sequence[str],
    factory: WebhookFactory,
    *,
    run: str,
    connections: int,
    duration_s: float,
    workdir: Path,
    seed: int = 1,
    threads: int = 1,
) -> list[LoadResult]:
    """Load every URL at once, ``connections`` split between them, one generator process each.

    Several engine instances behind a load balancer see the load split this way; the total
    stays ``connections`` so the figure compares with one instance under the same load.  Each
    generator's event ids start with ``<run>-<i>`` so that no two of them send the same id."""
    split = [connections // len(urls) + (i < connections % len(urls)) for i in range(len(urls))]
    if min(split) < 1:
        raise ValueError(f"{connections} connections cannot load {len(urls)} URLs")
    wrk = tool_path("wrk")
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, (url, conns) in enumerate(zip(urls, split, strict=True)):
            name = run if len(urls) == 1 else f"{run}-{i}"
            if wrk is not None:
                script = workdir / f"{name}.lua"
                script.write_text(wrk_script(factory, name))
                argv = [wrk, f"-t{min(threads, conns)}", f"-c{conns}",
                        f"-d{max(1, round(duration_s))}s", "--timeout", "10s", "-s", str(script),
                        url]  # fmt: skip
            else:
                argv = python(__file__, "--url", url, "--run", name, "--connections", str(conns),
                              "--duration", str(duration_s), "--seed", str(seed))  # fmt: skip
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        return [_result(proc, "wrk" if wrk else "python", duration_s + 60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _result(proc: subprocess.Popen[str], tool: str, timeout_s: float) -> LoadResult:
    stdout, stderr = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} exited with {proc.returncode}:\n{stderr[-2000:]}")
    data = _parse(stdout)
    if tool == "python":
        quantiles = tuple((float(q), float(ms)) for q, ms in data.pop("quantiles"))
        return LoadResult(tool="python", quantiles=quantiles, **data)
    requests = int(data["requests"])
    return LoadResult(
        tool="wrk",
        requests=requests,
        ok=requests - int(data["status_errors"]),
        errors=int(data["errors"]),
        duration_s=int(data["duration_us"]) / 1e6,
        p50_ms=int(data["p50_us"]) / 1000,
        p99_ms=int(data["p99_us"]) / 1000,
        quantiles=tuple((float(q), int(us) / 1000) for q, us in data["quantiles_us"]),
    )


def merged_percentile(results: Sequence[LoadResult], q: float) -> float:
    """The ``q``-th percentile latency (ms) of all requests of ``results`` together.

    Each generator's distribution is known at :data:`QUANTILES`; the merged one at a latency
    ``x`` is the request-weighted sum of each generator's highest percentile at or below ``x``
    (a lower bound, so the answer errs high by at most one step of the grid)."""
    weighted = [(r.requests, r.quantiles) for r in results if r.requests and r.quantiles]
    if not weighted:
        return 0.0
    total = sum(n for n, _ in weighted)
    for x in sorted({ms for _, quantiles in weighted for _, ms in quantiles}):
        below = sum(n * max((p for p, ms in qs if ms <= x), default=0.0) for n, qs in weighted)
        if below >= q * total:
            return x
    return max(ms for _, quantiles in weighted for _, ms in quantiles)


async def _raw_load(
    url: str, factory: WebhookFactory, *, run: str, connections: int, duration_s: float
) -> dict[str, Any]:
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    latencies: list[float] = []
    counts = {"requests": 0, "ok": 0, "errors": 0}
    headers = {"content-type": "application/json", "authorization": WEBHOOK_AUTH}
    started = time.perf_counter()
    stop_at = started + duration_s

    async def worker(worker_id: int) -> None:
        conn = Connection(host, port, timeout_s=10.0)
        n = 0
        while time.perf_counter() < stop_at:
            n += 1
            sent = time.perf_counter()
            counts["requests"] += 1
            try:
                status, _ = await conn.post(
                    WEBHOOK_PATH, factory.body(f"{run}-{worker_id}-{n}"), headers
                )
            except SendError:
                counts["errors"] += 1
                continue
            latencies.append(time.perf_counter() - sent)
            counts["ok" if status == 200 else "errors"] += 1
        await conn.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        **counts,
        "duration_s": elapsed,
        "p50_ms": pct(0.5) if latencies else 0.0,
        "p99_ms": pct(0.99) if latencies else 0.0,
        "quantiles": [(q, pct(q / 100)) for q in QUANTILES] if latencies else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Python load generator (the fallback when wrk is missing)"
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--run", required=True, help="prefix of the event ids")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    factory = WebhookFactory.build(seed=args.seed)
    result = asyncio.run(
        _raw_load(
            args.url,
            factory,
            run=args.run,
            connections=args.connections,
            duration_s=args.duration,
        )
    )
    print(MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
