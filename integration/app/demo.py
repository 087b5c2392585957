"""``rc-clevertap demo``: the whole flow on embedded defaults, then proof that it worked.

The demo starts a :class:`~integration.app.localstack.LocalStack`, creates a seeded population
on the RevenueCat mock, sets most users' CleverTap IDs through the client, plays their
lifecycles (each step emits RevenueCat's webhooks to the engine), waits until everything is
settled, and then verifies from the CleverTap mock's *read APIs* (as a user would, over
HTTP) that every event arrived under the right identity with the right amount.

What "right" means is computed independently of the engine's delivery path: each webhook
the RevenueCat mock sent is mapped with :func:`integration.mapping.map_event` and the same
configuration, giving the expected CleverTap records.  The verification passes when

- every expected event record is in CleverTap, once or more (retries after a lost answer may
  legitimately deliver twice: duplicates are counted and reported, not failed), under the
  expected ``objectId`` or ``identity``, with the expected amount and currency;
- every webhook the mapping skips is skipped by the engine too, and none reached CleverTap;
- every webhook is accounted for: delivered, skipped with a reason, or dead-lettered with a
  reason (a dead letter fails verification only when it has no reason);
- RevenueCat's webhook deliveries all succeeded (the engine acknowledged each one).

The engine serves the delivery dashboard (``/ui``, logged in with the stack's admin token)
while the demo runs; ``serve`` keeps the stack, dashboard included, up after the verification
until it returns (``rc-clevertap demo --keep`` waits for Ctrl-C there).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from integration.app.localstack import (
    PRODUCTION_ACCOUNT,
    SANDBOX_ACCOUNT,
    LocalStack,
    StackProgress,
)
from integration.mapping import Mapped, map_event
from integration.revenue import minor_units

__all__ = ["DemoReport", "run_demo"]

#: Read API page size (CleverTap allows up to 5000).
READ_BATCH = 5000


@dataclass
class DemoReport:
    """What the demo did and found; ``ok`` is the verification verdict."""

    users: int
    clevertap_ids_set: int
    webhooks: int
    events_by_name: dict[str, int]
    revenue_by_currency: dict[str, str]
    skipped_by_reason: dict[str, int]
    dead_letters: list[dict[str, Any]]
    retries: int
    uploads: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    duplicates: int
    elapsed_s: float
    workdir: str
    outbox_path: str
    log_path: str
    faults: str | None
    problems: list[str] = field(default_factory=list)
    kept: bool = True  # whether workdir (outbox and log) is still there
    dashboard_url: str = ""  # the delivery dashboard while the stack ran (or still runs)

    @property
    def ok(self) -> bool:
        return not self.problems


def run_demo(
    *,
    users: int = 200,
    seed: int = 7,
    faults: str | None = None,
    workdir: str | Path | None = None,
    timeout: float = 300.0,
    on_progress: Callable[[str, StackProgress | None], None] | None = None,
    keep: bool = False,
    on_dashboard: Callable[[str, str], None] | None = None,
    serve: Callable[[DemoReport], None] | None = None,
) -> DemoReport:
    """Run the demo end to end and verify it; see the module docstring.

    Without ``workdir`` the outbox and log go to a temporary folder, removed at the end unless
    ``keep``; a ``workdir`` is kept, and its outbox replaced at the next run.
    ``on_dashboard`` is called with the dashboard's URL and admin token once the stack runs;
    ``serve``, given the finished report, runs before the stack stops (it keeps the dashboard
    up for as long as it takes to return).
    """
    started = time.monotonic()

    def step(name: str, progress: StackProgress | None = None) -> None:
        if on_progress is not None:
            on_progress(name, progress)

    with LocalStack(users=users, seed=seed, faults=faults, workdir=workdir, keep=keep) as stack:
        if on_dashboard is not None:
            on_dashboard(stack.dashboard_url, stack.admin_token)
        step("creating customers on the RevenueCat mock")
        plan = stack.plan_population(users)
        step("setting CleverTap IDs through the client")
        ids_set = stack.set_clevertap_ids(plan)
        step("playing subscription lifecycles")
        stack.play_lifecycles(plan)
        step("delivering")
        stack.wait_settled(timeout=timeout, on_progress=lambda p: step("delivering", p))
        step("verifying from CleverTap's read APIs")
        report = _verify(stack, users=users, ids_set=ids_set, faults=faults)
        report.elapsed_s = time.monotonic() - started
        report.kept = workdir is not None or keep
        report.dashboard_url = stack.dashboard_url
        if serve is not None:
            serve(report)
    return report


# ----------------------------------------------------------------------------- verify


def _verify(stack: LocalStack, *, users: int, ids_set: int, faults: str | None) -> DemoReport:
    webhooks = stack.webhooks()
    status = stack.status()
    dead = stack.dead_letters()
    ledger = stack.ledger()
    problems: list[str] = []

    expected: dict[tuple[str, str, str], dict[str, Any]] = {}  # (account, name, event id)
    skipped_ids: set[str] = set()
    for delivery in webhooks:
        if delivery["state"] != "delivered":
            problems.append(f"webhook {delivery['event_id']} was not acknowledged by the engine")
        result = map_event(delivery["event"], stack.config)
        if not isinstance(result, Mapped):
            skipped_ids.add(delivery["event_id"])
            continue
        account = stack.config.clevertap.account_for(result.environment)
        assert account is not None  # map_event skips environments without an account
        for record in result.records:
            if record["type"] == "event":
                key = (account.account_id, record["evtName"], delivery["event_id"])
                expected[key] = record

    dead_ids = {d["event_id"] for d in dead}
    problems += [f"dead letter {d['event_id']} has no reason" for d in dead if not d["reason"]]
    arrived = _read_events(stack, {(a, n) for a, n, _ in expected})
    found: Counter[tuple[str, str, str]] = Counter()
    for (account_id, name), records in arrived.items():
        for record in records:
            event_id = str(record["event_props"].get("rc_event_id"))
            key = (account_id, name, event_id)
            found[key] += 1
            if event_id in skipped_ids:
                problems.append(f"event {event_id} should have been skipped but reached CleverTap")
            elif key in expected:
                problems += _compare(expected[key], record, event_id)
    for key in expected:
        if found[key] == 0 and key[2] not in dead_ids:
            problems.append(f"event {key[2]} ({key[1]}) never reached CleverTap")

    skipped_by_engine = sum(status["outbox"]["skipped_by_reason"].values())
    if skipped_by_engine != len(skipped_ids):
        problems.append(
            f"the engine skipped {skipped_by_engine} events, the mapping expects {len(skipped_ids)}"
        )

    events = stack.clevertap_events()
    latencies = sorted(e["latency_ms"] for e in events if e["latency_ms"] is not None)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        amount = event["evtData"].get("amount")
        if isinstance(amount, int | float) and amount:
            revenue[str(event["evtData"].get("currency"))] += Decimal(str(amount))
    return DemoReport(
        users=users,
        clevertap_ids_set=ids_set,
        webhooks=len(webhooks),
        events_by_name=dict(Counter(e["evtName"] for e in events).most_common()),
        # Each total to its currency's minor unit (JPY 66317, EUR 1241.12), as revenue.py
        # rounds each amount: a float sum would print JPY 66317.0 and 0.1 + 0.2 artefacts.
        revenue_by_currency={
            c: str(v.quantize(Decimal(1).scaleb(-minor_units(c))))
            for c, v in sorted(revenue.items())
        },
        skipped_by_reason=dict(status["outbox"]["skipped_by_reason"]),
        dead_letters=dead,
        retries=sum(1 for attempt in ledger if attempt["outcome"] != "delivered"),
        uploads=len(ledger),
        latency_p50_ms=statistics.median(latencies) if latencies else None,
        latency_p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else None,
        duplicates=sum(count - 1 for count in found.values() if count > 1),
        elapsed_s=0.0,
        workdir=str(stack.workdir),
        outbox_path=str(stack.outbox_path),
        log_path=str(stack.log_path),
        faults=faults,
        problems=problems,
    )


def _compare(expected: dict[str, Any], record: dict[str, Any], event_id: str) -> list[str]:
    """Differences between an expected upload record and what the read API returned."""
    problems = []
    profile = record["profile"]
    if "objectId" in expected:
        if profile.get("objectId") != expected["objectId"]:
            problems.append(f"event {event_id} landed on {profile.get('objectId')!r}, "
                            f"expected CleverTap ID {expected['objectId']!r}")  # fmt: skip
    elif profile.get("identity") != expected["identity"]:
        problems.append(f"event {event_id} landed on identity {profile.get('identity')!r}, "
                        f"expected {expected['identity']!r}")  # fmt: skip
    props = record["event_props"]
    for key in ("amount", "currency"):
        if props.get(key) != expected["evtData"].get(key):
            problems.append(f"event {event_id}: {key} {props.get(key)!r}, "
                            f"expected {expected['evtData'].get(key)!r}")  # fmt: skip
    return problems


def _read_events(
    stack: LocalStack, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every stored event per (account, event name), through the Get Events cursor flow."""
    accounts = {a.account_id: a for a in (PRODUCTION_ACCOUNT, SANDBOX_ACCOUNT)}
    today = int(datetime.now(UTC).strftime("%Y%m%d"))
    result: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with httpx.Client(base_url=stack.mock_url, timeout=30.0) as http:
        for account_id, name in sorted(wanted):
            account = accounts[account_id]
            http.headers.update(
                {
                    "X-CleverTap-Account-Id": account.account_id,
                    "X-CleverTap-Passcode": account.passcodes[0],
                }
            )
            query = {"event_name": name, "from": 20000101, "to": today}
            result[(account_id, name)] = list(_pages(http, query))
    return result


def _pages(http: httpx.Client, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
    opened = http.post("/1/events.json", params={"batch_size": READ_BATCH}, json=query)
    opened.raise_for_status()
    cursor: str | None = opened.json()["cursor"]
    while cursor is not None:
        page = http.get("/1/events.json", params={"cursor": cursor})
        page.raise_for_status()
        body = page.json()
        yield from body.get("records", [])
        cursor = body.get("next_cursor")
