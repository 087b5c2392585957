"""Throughput, latency and memory of rc-clevertap, each figure beside its ceiling.

    python benchmarks/run.py [--quick] [--json] [--outbox URL] [--only SECTION ...]
                             [--instances N ...]

Sections (keys as in issue 7; details in benchmarks/README.md)::

    ingest      webhooks_per_s, ceiling_per_s, ratio, p99_ack_ms     (wrk, 32 connections)
    ingest_features     the same with two routes, the property budget and a transform
                        (issue 21), plus plain_webhooks_per_s and vs_plain (this over ingest's)
    delivery    events_per_s, ceiling_per_s, ratio
    delivery_features   likewise: plain_events_per_s, vs_plain
    delivery_unmapped   delivery of rows stored without their mapped form (older releases,
                        a changed configuration): each body parsed and mapped
                        again at delivery, as before issue 21; plain_events_per_s, vs_plain
    end_to_end  rate_per_s, p50_ms, p99_ms
    memory      backlog_events, peak_rss_mb
    client      set_id_per_s, ceiling_per_s, ratio
    set_id_bulk users_per_s, ceiling_per_s, ratio (limit off, v1), limited_wall_s, floor_s
                (API v2 at 480 a minute on the mock's virtual clock; benchmarks/bulk.py)
    baseline    naive_events_per_s, speedup
    mock        records_per_s
    probes      settled_rows, p99_quiet_ms, p99_probed_ms, p99_ratio   (issue 13: one client's
                webhooks beside 8 pollers of /healthz and /metrics, both runs in one)
    backfill    rows, rows_per_s, ceiling_rows_per_s, ratio, dry_run_rows_per_s, peak_rss_mb
                (issue 18: a 1,000,000-row gzip export read and derived, beside gzip + csv
                alone on the same file; benchmarks/backfill.py)
    dashboard   events, p99_ms, query_p99_ms, slowest_page   (issue 17: every /ui page's p99
                on 1,000,000 events beside its outbox reads alone; benchmarks/dashboard.py)

``--quick`` (about a minute on 2 cores) shrinks every workload; the full run is what the
README quotes.  ``--outbox postgresql://...`` runs the outbox sections on PostgreSQL, each in
a throwaway schema; the default is a SQLite file per section in a temporary folder.

Several instances (issue 8).  On PostgreSQL, ``ingest`` and ``delivery`` also run with N
engine processes sharing one outbox schema, for each N of ``--instances`` (default ``1 3``):
their figures are sections of their own, ``ingest_N`` and ``delivery_N`` (``ingest_3``,
``delivery_3``), with the same keys as the one-instance section (which keeps its name) plus::

    ingest_N    instances, per_instance_per_s   (the same 32 connections split between the
                                                 N processes, one wrk each, all at once;
                                                 p99 merged over all requests; the ceiling is
                                                 N bare endpoints under the same split)
    delivery_N  instances, per_instance_delivered, missing, duplicates
                                                (N processes released at one moment on a
                                                 pre-filled outbox; missing and duplicates
                                                 count what the mock holds by rc_event_id)

SQLite is one process's outbox by design (one writer, a file on one machine), so asking for
more than one instance with it is an error.
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

SECTIONS = (
    "ingest",
    "ingest_features",
    "delivery",
    "delivery_features",
    "delivery_unmapped",
    "end_to_end",
    "memory",
    "client",
    "set_id_bulk",
    "baseline",
    "mock",
    "probes",
    "backfill",
    "dashboard",
)
SCALED = ("ingest", "delivery")  # the sections that also run with several instances
# Issue 21: the same sections with two routes, the property budget and a transform, beside
# the plain figure of the same run (``vs_plain``: the variant's figure over the plain one).
# delivery_unmapped: the rows without a stored mapped form (integration/premap.py).
FEATURES: dict[str, tuple[str, str, dict[str, bool]]] = {
    "ingest_features": ("ingest", "webhooks_per_s", {"features": True}),
    "delivery_features": ("delivery", "events_per_s", {"features": True}),
    "delivery_unmapped": ("delivery", "events_per_s", {"premapped": False}),
}

# Targets from issue 7: (section, key, comparison, value).
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("ingest", "ratio", ">=", 0.5),
    ("ingest", "p99_ack_ms", "<", 10.0),
    # Issue 8: instances sharing one queue never deliver an event twice nor lose one.
    ("delivery_3", "duplicates", "<", 1),
    ("delivery_3", "missing", "<", 1),
    ("delivery", "events_per_s", ">=", 20_000),
    ("delivery", "ratio", ">=", 0.5),
    ("end_to_end", "p99_ms", "<", 250.0),
    ("memory", "peak_rss_mb", "<", 200.0),
    ("client", "ratio", ">=", 0.8),
    ("baseline", "speedup", ">=", 20.0),
    ("mock", "records_per_s", ">=", 100_000),
    # Issue 13: probes cost intake nothing measurable, on an outbox holding settled rows.
    ("probes", "p99_ratio", "<", 1.5),
    # Issue 17: every dashboard page under 100 ms at the p99 on a million-event outbox.
    ("dashboard", "p99_ms", "<", 100.0),
    # Issue 21: closer to the ceilings, and every feature configured costs at most 15%.
    ("delivery", "ratio", ">=", 0.6),
    ("delivery", "events_per_s", ">=", 50_000),
    ("baseline", "speedup", ">=", 50.0),
    ("ingest", "ratio", ">=", 0.6),
    ("ingest_features", "vs_plain", ">=", 0.85),
    ("delivery_features", "vs_plain", ">=", 0.85),
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


def is_postgres(outbox: str | None) -> bool:
    return bool(outbox) and str(outbox).startswith(("postgresql://", "postgres://"))


def plan(sections: list[str], instances: list[int]) -> list[tuple[str, str, int]]:
    """(result key, section, instances) in running order: each scaled section once per N."""
    steps: list[tuple[str, str, int]] = []
    for section in sections:
        for n in instances if section in SCALED else [1]:
            steps.append((section if n == 1 else f"{section}_{n}", section, n))
    return steps


async def run(
    sections: list[str], *, quick: bool, outbox: str | None, instances: list[int] | None = None
) -> dict[str, Any]:
    settings = QUICK if quick else FULL
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "machine": machine()}
    started = time.perf_counter()
    counts = instances or ([1, 3] if is_postgres(outbox) else [1])
    with tempfile.TemporaryDirectory(prefix="rc-clevertap-bench-") as tmp:
        async with Bench(Path(tmp), settings, outbox=outbox) as bench:
            for key, section, n in plan(sections, counts):
                t0 = time.perf_counter()
                if section == "baseline":
                    ours = results.get("delivery", {}).get("events_per_s")
                    figures = await bench.baseline(ours)
                elif section == "backfill":
                    from benchmarks.backfill import backfill_figures

                    figures = await asyncio.to_thread(backfill_figures, Path(tmp), quick=quick)
                elif section == "mock":
                    figures = await bench.mock_figure()
                elif section == "dashboard":
                    from benchmarks.dashboard import dashboard_figures

                    figures = await dashboard_figures(
                        Path(tmp),
                        events=100_000 if quick else 1_000_000,
                        requests=50 if quick else 200,
                        outbox=outbox,
                    )
                elif section == "set_id_bulk":
                    from benchmarks.bulk import set_id_bulk_figures

                    figures = await set_id_bulk_figures(bench.mock.url, quick=quick)
                elif section in FEATURES:
                    plain, figure, options = FEATURES[section]
                    figures = await getattr(bench, plain)(**options)
                    if figure in results.get(plain, {}):
                        figures["plain_" + figure] = results[plain][figure]
                        figures["vs_plain"] = round(figures[figure] / results[plain][figure], 3)
                elif section in SCALED:
                    figures = await getattr(bench, section)(n)
                else:
                    figures = await getattr(bench, section)()
                figures["seconds"] = round(time.perf_counter() - t0, 1)
                results[key] = figures
                print(f"  {key}: done in {figures['seconds']} s", file=sys.stderr, flush=True)
    results["targets"] = verdicts(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


HEADLINE = {
    "ingest": ("webhooks_per_s", "ceiling_per_s", "ratio", "p99_ack_ms"),
    "ingest_3": ("instances", "webhooks_per_s", "ceiling_per_s", "ratio", "p99_ack_ms"),
    "delivery": ("events_per_s", "ceiling_per_s", "ratio"),
    "ingest_features": ("webhooks_per_s", "plain_webhooks_per_s", "vs_plain", "ratio"),
    "delivery_features": ("events_per_s", "plain_events_per_s", "vs_plain", "ratio"),
    "delivery_unmapped": ("events_per_s", "plain_events_per_s", "vs_plain", "ratio"),
    "delivery_3": ("instances", "events_per_s", "ceiling_per_s", "ratio", "duplicates"),
    "end_to_end": ("rate_per_s", "p50_ms", "p99_ms"),
    "memory": ("backlog_events", "peak_rss_mb"),
    "client": ("set_id_per_s", "ceiling_per_s", "ratio"),
    "set_id_bulk": ("users_per_s", "ceiling_per_s", "ratio", "limited_wall_s", "floor_s"),
    "baseline": ("naive_events_per_s", "speedup"),
    "mock": ("records_per_s",),
    "probes": ("settled_rows", "p99_quiet_ms", "p99_probed_ms", "p99_ratio"),
    "backfill": ("rows", "rows_per_s", "ceiling_rows_per_s", "ratio", "peak_rss_mb"),
    "dashboard": ("events", "p99_ms", "query_p99_ms", "slowest_page"),
}


def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"rc-clevertap benchmarks ({results['mode']} run, {results['seconds']} s)",
        f"machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}",
        f"HTTP load: {m['load_tool']}; servers: uvicorn with {m['uvicorn']}",
        "",
    ]
    for section, figures in results.items():
        if not isinstance(figures, dict) or section in ("machine", "targets"):
            continue
        keys = HEADLINE.get(section) or HEADLINE[section.split("_")[0]]
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
    parser.add_argument(
        "--instances",
        nargs="+",
        type=int,
        help="engine processes for ingest and delivery (default: 1 3 on PostgreSQL, else 1)",
    )
    args = parser.parse_args(argv)
    if args.outbox and not args.outbox.startswith(("sqlite", "postgresql://", "postgres://")):
        parser.error("--outbox must be sqlite or a postgresql:// URL")
    if args.instances and min(args.instances) < 1:
        parser.error("--instances must be positive")
    if args.instances and max(args.instances) > 1 and not is_postgres(args.outbox):
        parser.error(
            "several instances need --outbox postgresql://...: the SQLite outbox is one "
            "process's by design (a single writer on a file on one machine)"
        )
    sections = [s for s in SECTIONS if not args.only or s in args.only]
    results = asyncio.run(
        run(sections, quick=args.quick, outbox=args.outbox, instances=args.instances)
    )
    print(json.dumps(results) if args.json else table(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
