"""How fast the CleverTap mock validates and stores 1000-record batches, beside a ceiling.

    python benchmarks/mock_upload.py [--batches N] [--runs N] [--json]

Measured on one core, in process, without HTTP:

- ``records_per_s``: ``CleverTapBackend.upload`` on parsed batches: validate every record,
  resolve identities, store events and profiles (the issue's figure);
- ``with_json_per_s``: ``json.loads`` of the body plus the upload, what the route does;
- ``ceiling_per_s``: ``json.loads`` of the same bodies alone, the least any JSON API must do;
- ``ratio``: with_json_per_s / ceiling_per_s.

Each figure is the best of ``--runs`` runs (the machines are shared; noise only slows).

The batches look like the forwarder's: mostly RevenueCat-derived events with a dozen
properties, some profile updates, 2,000 distinct users.  Target (issue 4): >= 100,000 records/s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mockserver.clevertap import Account, CleverTapBackend

ACCOUNT = Account("BEN-CHM-ARK1", ("bench-passcode",))
EVENT_NAMES = ["rc_initial_purchase_event", "rc_renewal_event", "rc_cancellation_event"]


def make_batches(count: int, size: int = 1000, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    batches = []
    for b in range(count):
        records: list[dict[str, Any]] = []
        for i in range(size):
            user = f"user-{rng.randrange(2000)}"
            if i % 10 == 9:
                records.append(
                    {
                        "type": "profile",
                        "identity": user,
                        "ts": 1_700_000_000 + b,
                        "profileData": {"rc_product_id": "pro_monthly", "Plan": "pro"},
                    }
                )
                continue
            records.append(
                {
                    "type": "event",
                    "identity": user,
                    "ts": 1_700_000_000 + b * size + i,
                    "evtName": rng.choice(EVENT_NAMES),
                    "evtData": {
                        "rc_event_id": f"evt-{b}-{i}",
                        "product_id": "pro_monthly",
                        "price": 9.99,
                        "currency": "USD",
                        "price_in_purchased_currency": 9.99,
                        "store": "APP_STORE",
                        "environment": "PRODUCTION",
                        "period_type": "NORMAL",
                        "country_code": "US",
                        "is_trial_conversion": False,
                        "renewal_number": 3,
                        "transaction_id": f"tx-{b}-{i}",
                    },
                }
            )
        batches.append(json.dumps({"d": records}).encode())
    return batches


def _best(runs: int, work: Any) -> float:
    """The shortest of ``runs`` timings of ``work()``: the machine is shared, noise only adds."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def measure(batches: list[bytes], runs: int = 3) -> dict[str, Any]:
    parsed = [json.loads(b)["d"] for b in batches]
    records = sum(len(p) for p in parsed)

    def parse_only() -> None:
        for body in batches:
            json.loads(body)

    def fresh() -> CleverTapBackend:
        return CleverTapBackend(accounts=[ACCOUNT], max_events_per_account=10_000_000)

    def upload_only() -> None:
        backend = fresh()
        for records_ in parsed:
            answer = backend.upload(ACCOUNT.account_id, records_)
            if answer["status"] != "success":
                raise SystemExit(f"benchmark batch refused: {answer['unprocessed'][:1]}")

    def parse_and_upload() -> None:
        backend = fresh()
        for body in batches:
            backend.upload(ACCOUNT.account_id, backend.parse_upload(body))

    mock_s = _best(runs, upload_only)
    full_s = _best(runs, parse_and_upload)
    ceiling_s = _best(runs, parse_only)
    return {
        "records": records,
        "records_per_s": round(records / mock_s),
        "with_json_per_s": round(records / full_s),
        "ceiling_per_s": round(records / ceiling_s),
        "ratio": round(ceiling_s / full_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100, help="1000-record batches (100)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; best kept (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.runs < 1:
        parser.error("--batches and --runs must be at least 1")
    result = measure(make_batches(args.batches), runs=args.runs)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{'measure':<16}{'records/s':>12}")
        print(f"{'validate+store':<16}{result['records_per_s']:>12,}")
        print(f"{'json+upload':<16}{result['with_json_per_s']:>12,}")
        print(f"{'json ceiling':<16}{result['ceiling_per_s']:>12,}")
        print(f"{'ratio':<16}{result['ratio']:>12}")
        print(f"({result['records']:,} records in 1000-record batches, one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
