"""The ``backfill`` section: reading and deriving a RevenueCat export, beside csv's own speed.

    python benchmarks/run.py --only backfill [--quick]

One gzip-compressed, semicolon-separated v6 export of ``rows`` transactions (1,000,000; 100,000
with ``--quick``; subscriptions of 12 monthly periods, a tenth refunded, a fifth cancelled) is
written once, then read three times, each in a fresh process so that its peak RSS is its own:

    ceiling        gzip + csv.reader alone, every row iterated: no reader can beat it
    read_derive    integration.backfill.read_export + derive(): rows parsed (dates, numbers,
                   JSON attributes) and their events built, as the backfill's first pass does
    dry_run        the whole ``backfill(None, [file], dry_run=True)``: both passes (the
                   second re-reads for expirations) and the mapping of every event for the
                   report; no outbox, so no disk writes are timed
    enqueue        ``backfill`` into a new SQLite outbox (lookups of stored ids and live
                   transactions, group commits with fsync), on the first 100,000 rows

Keys: ``rows``, ``ceiling_rows_per_s``, ``rows_per_s`` (read_derive), ``ratio`` (of the
ceiling), ``dry_run_rows_per_s``, ``events``, ``peak_rss_mb`` (read_derive) and
``dry_run_peak_rss_mb``, ``ceiling_peak_rss_mb``, ``file_mb``, ``enqueue_rows``,
``enqueue_rows_per_s``, ``enqueue_events_per_s``.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
PERIODS = 12  # monthly renewals per subscription
T0 = 1_700_000_000  # 2023-11-14, epoch seconds
MONTH = 30 * 86_400

COLUMNS = (
    "rc_original_app_user_id", "rc_last_seen_app_user_id_alias", "country", "product_identifier",
    "start_time", "end_time", "effective_end_time", "store", "is_auto_renewable",
    "is_trial_period", "is_in_intro_offer_period", "is_sandbox", "price_in_usd",
    "purchase_price_in_usd", "tax_percentage", "commission_percentage", "store_transaction_id",
    "original_store_transaction_id", "refunded_at", "unsubscribe_detected_at",
    "billing_issues_detected_at", "purchased_currency", "price_in_purchased_currency",
    "purchase_price_in_purchased_currency", "entitlement_identifiers", "renewal_number",
    "is_trial_conversion", "presented_offering", "ownership_type",
    "reserved_subscriber_attributes", "custom_subscriber_attributes", "platform", "updated_at",
)  # fmt: skip


def _time(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def write_export(path: Path, rows: int) -> None:
    """A v6 export of ``rows`` transactions, deterministic."""
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6) as file:
        writer = csv.writer(file, delimiter=";", lineterminator="\n")
        writer.writerow(COLUMNS)
        for n in range(rows):
            subscription, period = divmod(n, PERIODS)
            user = f"user-{subscription}"
            start = T0 + period * MONTH + subscription % 86_400
            refunded = _time(start + 86_400) if n % 10 == 3 else ""
            unsubscribed = _time(start + 3 * 86_400) if period == PERIODS - 1 and n % 5 else ""
            attributes = json.dumps({
                "$email": {"value": f"{user}@example.com", "updated_at_ms": start * 1000},
                "$clevertapId": {"value": f"ct-{subscription}", "updated_at_ms": start * 1000},
            })  # fmt: skip
            writer.writerow([
                f"$RCAnonymousID:{subscription:032x}", user, "DE", "pro.monthly", _time(start),
                _time(start + MONTH), _time(start + MONTH), "app_store", "true",
                "true" if period == 0 and n % 4 == 0 else "false", "false", "false", "10.99",
                "10.99", "0.16", "0.3", f"{subscription}-{period}", f"{subscription}-0",
                refunded, unsubscribed, "", "EUR", "9.99", "9.99", '["pro"]', period + 1,
                "true" if period == 1 and n % 4 == 1 else "false", "default", "PURCHASED",
                attributes, '{"plan": {"value": "gold", "updated_at_ms": 0}}', "iOS",
                _time(start + 86_400),
            ])  # fmt: skip


def _worker(kind: str, path: str) -> dict[str, Any]:
    started = time.perf_counter()
    rows = events = 0
    if kind == "ceiling":
        with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
            for _ in csv.reader(file, delimiter=";"):
                rows += 1
        rows -= 1  # the header
    elif kind == "read_derive":
        from integration.backfill import ExportRow, derive, read_export

        for item in read_export(path):
            if isinstance(item, ExportRow):
                rows += 1
                events += len(derive(item.values))
    elif kind == "enqueue":
        import asyncio

        from integration.backfill import backfill
        from integration.config import CleverTapConfig, Config, Secret
        from integration.outbox import SQLiteOutbox

        config = Config(clevertap=CleverTapConfig(account_id="BENCH", passcode=Secret("x")))

        async def enqueue() -> tuple[int, int]:
            outbox = SQLiteOutbox(Path(path).with_suffix(".db"))
            await outbox.open()
            try:
                report = await backfill(outbox, [path], config=config)
            finally:
                await outbox.close()
            return report.rows_read, report.enqueued

        rows, events = asyncio.run(enqueue())
    else:
        import asyncio

        from integration.backfill import backfill
        from integration.config import CleverTapConfig, Config, Secret

        config = Config(clevertap=CleverTapConfig(account_id="BENCH", passcode=Secret("x")))
        report = asyncio.run(backfill(None, [path], config=config, dry_run=True))
        rows, events = report.rows_read, sum(report.by_type.values())
    seconds = time.perf_counter() - started
    return {"rows": rows, "events": events, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, not ru_maxrss, which Linux carries over from the
    parent across exec (it would report the benchmark runner's size)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: the best this platform offers

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(kind: str, path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(path)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return dict(json.loads(result.stdout))


def backfill_figures(workdir: Path, *, quick: bool) -> dict[str, Any]:
    """The section's figures (see the module docstring)."""
    rows = QUICK_ROWS if quick else FULL_ROWS
    path = workdir / "transactions.csv.gz"
    write_export(path, rows)
    ceiling = _measure("ceiling", path)
    ours = _measure("read_derive", path)
    dry = _measure("dry_run", path)
    assert ceiling["rows"] == ours["rows"] == dry["rows"] == rows
    small = workdir / "enqueue.csv.gz"
    write_export(small, min(rows, QUICK_ROWS))
    enqueued = _measure("enqueue", small)
    ceiling_rate = ceiling["rows"] / ceiling["seconds"]
    rate = ours["rows"] / ours["seconds"]
    return {
        "rows": rows,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "ceiling_rows_per_s": round(ceiling_rate),
        "rows_per_s": round(rate),
        "ratio": round(rate / ceiling_rate, 3),
        "dry_run_rows_per_s": round(dry["rows"] / dry["seconds"]),
        "events": dry["events"],
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "dry_run_peak_rss_mb": round(dry["peak_rss_mb"], 1),
        "ceiling_peak_rss_mb": round(ceiling["peak_rss_mb"], 1),
        "enqueue_rows": enqueued["rows"],
        "enqueue_rows_per_s": round(enqueued["rows"] / enqueued["seconds"]),
        "enqueue_events_per_s": round(enqueued["events"] / enqueued["seconds"]),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(_worker(sys.argv[2], sys.argv[3])))
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            quick = "--quick" in sys.argv
            print(json.dumps(backfill_figures(Path(tmp), quick=quick), indent=2))
