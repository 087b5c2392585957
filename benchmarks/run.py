"""Throughput, latency and memory of rc-clevertap, each figure beside its ceiling.

    python benchmarks/run.py [--quick] [--json] [--outbox URL] [--only SECTION ...]

Sections (keys as in issue 7; details in benchmarks/README.md)::

    ingest      webhooks_per_s, ceiling_per_s, ratio, p99_ack_ms     (wrk, 32 connections)
    delivery    events_per_s, ceiling_per_s, ratio
    end_to_end  rate_per_s, p50_ms, p99_ms
    memory      backlog_events, peak_rss_mb
    client      set_id_per_s, ceiling_per_s, ratio
    baseline    naive_events_per_s, speedup
    mock        records_per_s

``--quick`` (about a minute on 2 cores) shrinks every workload; the full run is what the
README quotes.  ``--outbox postgresql://...`` runs the outbox sections on PostgreSQL, each in
a throwaway schema; the default is a SQLite file per section in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import FULL, QUICK, Bench
from benchmarks.workload import tool_path

SECTIONS = ("ingest", "delivery", "end_to_end", "memory", "client", "baseline", "mock")

# Targets from issue 7: (section, key, comparison, value).
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("ingest", "ratio", ">=", 0.5),
    ("ingest", "p99_ack_ms", "<", 10.0),
    ("delivery", "events_per_s", ">=", 20_000),
    ("delivery", "ratio", ">=", 0.5),
    ("end_to_end", "p99_ms", "<", 250.0),
    ("memory", "peak_rss_mb", "<", 200.0),
    ("client", "ratio", ">=", 0.8),
    ("baseline", "speedup", ">=", 20.0),
    ("mock", "records_per_s", ">=", 100_000),
)


def machine() -> dict[str, Any]:
    """Where the figures come from: cores, memory, CPU model, Python."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb: float | None = None
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        # uvicorn picks httptools and uvloop when they are importable (uvicorn[standard]).
        "uvicorn": "httptools+uvloop" if _importable("httptools", "uvloop") else "h11+asyncio",
        "cpu": cpu,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "load_tool": "wrk" if tool_path("wrk") else "python (wrk not found: apt-get install wrk)",
    }


def _importable(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


def verdicts(results: dict[str, Any]) -> dict[str, str]:
    """``"met"`` or ``"missed"`` per target whose section ran."""
    out: dict[str, str] = {}
    for section, key, op, value in TARGETS:
        figure = results.get(section, {}).get(key)
        if figure is None:
            continue
        met = figure >= value if op == ">=" else figure < value
        out[f"{section}.{key} {op} {value:g}"] = "met" if met else "missed"
    return out


async def run(sections: list[str], *, quick: bool, outbox: str | None) -> dict[str, Any]:
    settings = QUICK if quick else FULL
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "machine": machine()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rc-clevertap-bench-") as tmp:
        async with Bench(Path(tmp), settings, outbox=outbox) as bench:
            for section in sections:
                t0 = time.perf_counter()
                if section == "baseline":
                    ours = results.get("delivery", {}).get("events_per_s")
                    figures = await bench.baseline(ours)
                elif section == "mock":
                    figures = await bench.mock_figure()
                else:
                    figures = await getattr(bench, section)()
                figures["seconds"] = round(time.perf_counter() - t0, 1)
                results[section] = figures
                print(f"  {section}: done in {figures['seconds']} s", file=sys.stderr, flush=True)
    results["targets"] = verdicts(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


HEADLINE = {
    "ingest": ("webhooks_per_s", "ceiling_per_s", "ratio", "p99_ack_ms"),
    "delivery": ("events_per_s", "ceiling_per_s", "ratio"),
    "end_to_end": ("rate_per_s", "p50_ms", "p99_ms"),
    "memory": ("backlog_events", "peak_rss_mb"),
    "client": ("set_id_per_s", "ceiling_per_s", "ratio"),
    "baseline": ("naive_events_per_s", "speedup"),
    "mock": ("records_per_s",),
}


def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"rc-clevertap benchmarks ({results['mode']} run, {results['seconds']} s)",
        f"machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}",
        f"HTTP load: {m['load_tool']}; servers: uvicorn with {m['uvicorn']}",
        "",
    ]
    for section, keys in HEADLINE.items():
        if section not in results:
            continue
        figures = results[section]
        shown = "  ".join(f"{k}={figures.get(k)}" for k in keys)
        lines.append(f"{section:<11} {shown}")
        extra = {k: v for k, v in figures.items() if k not in keys}
        lines.append(f"{'':<11} ({', '.join(f'{k}={v}' for k, v in extra.items())})")
    lines.append("")
    for target, verdict in results["targets"].items():
        lines.append(f"{verdict:<7} {target}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads (~1 minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--outbox", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections")
    args = parser.parse_args(argv)
    if args.outbox and not args.outbox.startswith(("sqlite", "postgresql://", "postgres://")):
        parser.error("--outbox must be sqlite or a postgresql:// URL")
    sections = [s for s in SECTIONS if not args.only or s in args.only]
    results = asyncio.run(run(sections, quick=args.quick, outbox=args.outbox))
    print(json.dumps(results) if args.json else table(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
