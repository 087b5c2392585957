"""``rc-clevertap demo --backfill``: a history brought in from an export, verified, then live.

RevenueCat's integrations never send history, so a team that turns the integration on starts
with an empty CleverTap.  This demo shows the backfill closing that gap on one machine:

1. the RevenueCat mock simulates a seeded population's history with its webhooks off
   (nothing reaches the engine);
2. it writes that history as a Scheduled Data Export (``mockserver.revenuecat.exports``);
3. :func:`integration.backfill.backfill` reads the file into the engine's outbox, and the
   engine delivers it as it delivers webhooks;
4. CleverTap's read APIs are compared with what the simulator knows happened (below);
5. webhooks are turned on and new customers buy and cancel live; an incremental export of
   those changes and the first file again are backfilled once more: nothing is enqueued and
   CleverTap holds each live event once.

What "what happened" means: every event the simulator emitted, mapped with
:func:`integration.mapping.map_event` and the stack's configuration, counted per CleverTap
account, person (``objectId`` or ``identity``) and event name, with the amount per currency.
An export records transactions, not events, so some events cannot come back from one and are
left out of that truth, counted in the report: UNCANCELLATION, PRODUCT_CHANGE,
SUBSCRIPTION_PAUSED, TRANSFER, and a cancellation or a refund undone before the export (its
row no longer shows it).  The other
way round, an export shows when a subscription ended without an EXPIRATION from the simulator
(a refund, a Google Play upgrade, or a period that ran out while the population played no
further step for that user), and the backfill sends that EXPIRATION: those are expected too,
taken from the simulator's own state (its purchases, as of the export), and counted apart.
An EXPIRATION followed by a resubscription of the same subscription shows in the export as a
gap between two transactions, and the backfill derives it from that gap: those are expected
like any other, and counted (``gap_expirations``).  The verification passes
when CleverTap holds, for every account, person and event name, the expected number of events
and the expected amount in each currency, and nothing more.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from integration.app.demo import _read_events
from integration.app.localstack import LocalStack, StackProgress
from integration.backfill import BackfillReport, backfill
from integration.config import Config
from integration.mapping import Mapped, map_event
from integration.revenue import minor_units
from mockserver.revenuecat import WebhookTarget
from mockserver.revenuecat.exports import LATEST_VERSION
from mockserver.revenuecat.models import Customer

__all__ = ["BackfillDemoReport", "run_backfill_demo"]

Event = Mapping[str, Any]
#: (CleverTap account, event name, "objectId" or "identity", its value)
Key = tuple[str, str, str, str]

#: Webhook types an export cannot bring back (see the module docstring).
NOT_IN_EXPORTS = frozenset({"UNCANCELLATION", "PRODUCT_CHANGE", "SUBSCRIPTION_PAUSED", "TRANSFER"})
_STARTS = frozenset({"INITIAL_PURCHASE", "RENEWAL", "NON_RENEWING_PURCHASE"})

#: New customers who buy (and some cancel) live, after the backfill.
LIVE_USERS = 8


@dataclass
class BackfillDemoReport:
    """What the backfill demo did and found; ``ok`` is the verification verdict."""

    users: int
    clevertap_ids_set: int
    history_events: int  # emitted by the simulator with webhooks off
    export_path: str
    export_rows: int
    export_version: int
    export_format: str
    first_run: dict[str, int]  # the backfill of the full export
    expected_by_name: dict[str, int]  # what happened, per CleverTap event name
    held_by_name: dict[str, int]  # what CleverTap holds from the backfill
    revenue_by_currency: dict[str, str]  # backfilled amounts, to each currency's minor unit
    not_in_exports: dict[str, int]  # simulator events an export cannot carry, by reason
    inferred_expirations: int  # EXPIRATIONs the export implies (see the module docstring)
    gap_expirations: int  # before a resubscription: derived from the gap between two rows
    live_events: int  # webhooks sent live after the backfill
    second_run: dict[str, int]  # full file again + incremental export of the live changes
    sent_twice: int  # CleverTap records of one event more than once
    elapsed_s: float
    workdir: str
    problems: list[str] = field(default_factory=list)
    kept: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def _counts(report: BackfillReport) -> dict[str, int]:
    return {
        "rows_read": report.rows_read,
        "rows_malformed": report.rows_malformed,
        "events_derived": report.events_derived,
        "enqueued": report.enqueued,
        "already_stored": report.already_stored,
        "skipped_live": report.skipped_live,
    }


def run_backfill_demo(
    *,
    users: int = 200,
    seed: int = 7,
    workdir: str | Path | None = None,
    timeout: float = 300.0,
    on_progress: Callable[[str, StackProgress | None], None] | None = None,
    keep: bool = False,
    version: int = LATEST_VERSION,
    fmt: str = "csv",
) -> BackfillDemoReport:
    """Run the backfill demo end to end and verify it; see the module docstring.

    ``version`` and ``fmt`` choose the export's format version (3-7) and file format
    (``csv`` or ``parquet``, which needs pyarrow).
    """
    started = time.monotonic()

    def step(name: str, progress: StackProgress | None = None) -> None:
        if on_progress is not None:
            on_progress(name, progress)

    def settle(name: str) -> None:
        step(name)
        stack.wait_settled(timeout=timeout, on_progress=lambda p: step(name, p))

    with LocalStack(users=users, seed=seed, workdir=workdir, keep=keep) as stack:
        step("turning RevenueCat's webhooks off")
        targets = stack.run(_set_targets(stack, []))
        step("simulating the history (no webhooks)")
        plan = stack.plan_population(users)
        ids_set = stack.set_clevertap_ids(plan)
        stack.play_lifecycles(plan)
        history = stack.revenuecat.events()

        step("exporting the history")
        # The simulated world's "now" is the plan's end: the mock's clock runs faster (for
        # webhook retries), and a subscription whose period ends after the plan's end is live
        # in that world, not lapsed.
        now_ms = plan.end_ms
        export = stack.revenuecat.export_transactions(version=version, fmt=fmt, as_of_ms=now_ms)
        first_file = export.write(stack.workdir / "exports")
        step("backfilling the export")
        first = stack.run(
            backfill(stack.engine.outbox, [first_file], config=stack.config, now=now_ms / 1000)
        )
        settle("delivering the backfill")
        step("verifying from CleverTap's read APIs")
        ended = _ended_silently(stack.revenuecat.customers(), now_ms)
        truth = _expected(history, stack.config, ended=ended)
        expected = truth.expected
        held, held_by_name = _held(stack, {(k[0], k[1]) for k in expected})
        problems = _compare(expected, held, held_by_name)
        if first.rows_malformed:
            problems.append(f"the backfill found {first.rows_malformed} malformed rows")

        step("turning webhooks on: new customers buy live")
        stack.run(_set_targets(stack, targets))
        live = _play_live(stack, seed=seed, at_ms=now_ms)
        settle("delivering the live webhooks")
        step("backfilling again: the same file and an incremental export")
        live_until = now_ms + LIVE_USERS * 2000
        update = stack.revenuecat.export_transactions(
            version=version, fmt=fmt, since_ms=now_ms, as_of_ms=live_until
        )
        second_file = update.write(stack.workdir / "exports-incremental")
        second = stack.run(
            backfill(
                stack.engine.outbox,
                [first_file, second_file],
                config=stack.config,
                now=live_until / 1000,
            )
        )
        settle("delivering")
        step("checking that nothing was sent twice")
        problems += _check_second_run(stack, first, second, live)
        sent_twice = _sent_twice(stack)
        if sent_twice:
            problems.append(f"{sent_twice} events reached CleverTap more than once")
        report = BackfillDemoReport(
            users=users,
            clevertap_ids_set=ids_set,
            history_events=len(history),
            export_path=str(first_file),
            export_rows=len(export.rows),
            export_version=version,
            export_format=fmt,
            first_run=_counts(first),
            expected_by_name=_by_name(expected),
            held_by_name=dict(held_by_name.most_common()),
            revenue_by_currency=_revenue(held, expected),
            not_in_exports=dict(truth.left_out.most_common()),
            inferred_expirations=truth.inferred,
            gap_expirations=truth.gaps,
            live_events=len(live),
            second_run=_counts(second),
            sent_twice=sent_twice,
            elapsed_s=0.0,
            workdir=str(stack.workdir),
            problems=problems,
        )
    report.elapsed_s = time.monotonic() - started
    report.kept = workdir is not None or keep
    return report


async def _set_targets(stack: LocalStack, targets: list[WebhookTarget]) -> list[WebhookTarget]:
    """Replace RevenueCat's webhook targets (on the stack's loop); the previous ones."""
    previous = list(stack.revenuecat.webhooks.targets)
    stack.revenuecat.webhooks.targets = list(targets)
    return previous


# ----------------------------------------------------------------------------- truth


@dataclass
class _Tally:
    count: int = 0
    amounts: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, amount: object, currency: object) -> None:
        self.count += 1
        if isinstance(amount, int | float) and not isinstance(amount, bool) and amount:
            self.amounts[str(currency)] += Decimal(str(amount))


@dataclass
class _Truth:
    """What CleverTap should hold, and what was left out of it or added to it, with why."""

    expected: dict[Key, _Tally]
    left_out: Counter[str]  # simulator events an export cannot carry, by reason
    inferred: int  # EXPIRATIONs an export implies that the simulator did not emit
    gaps: int  # expirations before a resubscription (see _gap_expirations)


def _key(record: Mapping[str, Any], account: str) -> Key:
    kind = "objectId" if "objectId" in record else "identity"
    return (account, str(record["evtName"]), kind, str(record.get(kind)))


def _mapped_events(event: Event, config: Config) -> Iterable[tuple[Key, Mapping[str, Any]]]:
    result = map_event(event, config)
    if not isinstance(result, Mapped):
        return
    account = config.clevertap.account_for(result.environment)
    assert account is not None  # map_event skips environments without an account
    for record in result.records:
        if record["type"] == "event":
            yield _key(record, account.account_id), record


def _expected(history: list[dict[str, Any]], config: Config, *, ended: set[str]) -> _Truth:
    """What happened, as CleverTap should hold it (see the module docstring); ``ended``:
    the subscriptions that ended without an EXPIRATION (:func:`_ended_silently`)."""
    undone = {e["transaction_id"] for e in history if e["type"] == "UNCANCELLATION"}
    reversed_ = {e["transaction_id"] for e in history if e["type"] == "REFUND_REVERSED"}
    gaps = _gap_expirations(history)
    truth = _Truth(expected={}, left_out=Counter(), inferred=0, gaps=0)
    expected: defaultdict[Key, _Tally] = defaultdict(_Tally)
    for index, event in enumerate(history):
        kind, reason = event["type"], event.get("cancel_reason")
        if kind in NOT_IN_EXPORTS:
            truth.left_out[kind] += 1
            continue
        if kind == "CANCELLATION" and reason != "CUSTOMER_SUPPORT":
            later = history[index + 1 :]
            if event["transaction_id"] in undone and _undone(event, later, "UNCANCELLATION"):
                truth.left_out["CANCELLATION undone before the export"] += 1
                continue
        if kind == "CANCELLATION" and reason == "CUSTOMER_SUPPORT":
            later = history[index + 1 :]
            if event["transaction_id"] in reversed_ and _undone(event, later, "REFUND_REVERSED"):
                truth.left_out["refund reversed before the export"] += 1
                continue
        truth.gaps += index in gaps
        for key, record in _mapped_events(event, config):
            expected[key].add(record["evtData"].get("amount"), record["evtData"].get("currency"))
    for event in _implied_expirations(history, ended):
        for key, _ in _mapped_events(event, config):
            expected[key].add(0, None)
            truth.inferred += 1
    truth.expected = dict(expected)
    return truth


def _gap_expirations(history: list[dict[str, Any]]) -> set[int]:
    """Positions of EXPIRATIONs followed by a resubscription of the same subscription.

    The export shows them as a gap between one transaction's end and the next one's start,
    from which the backfill derives them (integration/backfill/run.py): the report counts them.
    """
    open_expirations: dict[str, int] = {}  # original transaction id -> position
    gaps = set()
    for index, event in enumerate(history):
        original = event.get("original_transaction_id")
        if event["type"] == "EXPIRATION" and original is not None:
            open_expirations[original] = index
        elif event["type"] in _STARTS and original in open_expirations:
            gaps.add(open_expirations.pop(original))
    return gaps


def _undone(cancellation: Event, later: list[dict[str, Any]], undoing: str) -> bool:
    """Whether an ``undoing`` event (UNCANCELLATION, REFUND_REVERSED) of the same
    transaction follows before another cancellation."""
    for event in later:
        if event.get("transaction_id") != cancellation["transaction_id"]:
            continue
        if event["type"] == undoing:
            return True
        if event["type"] == "CANCELLATION":
            return False
    return False


def _ended_silently(customers: Iterable[Customer], now_ms: int) -> set[str]:
    """Subscriptions (original transaction ids) that ended without an EXPIRATION by
    ``now_ms``, as the simulator's state knows them: refunded, replaced by a Google Play
    upgrade, or past their period (the population stops playing a user's steps at times)."""
    return {
        purchase.original_transaction_id
        for customer in customers
        for purchase in customer.purchases
        if purchase.is_subscription and not purchase.expired and not purchase.is_active(now_ms)
    }


def _implied_expirations(history: list[dict[str, Any]], ended: set[str]) -> list[dict[str, Any]]:
    """The EXPIRATION an export implies for each subscription in ``ended``: the last
    purchase event of the subscription, as an EXPIRATION without revenue."""
    last: dict[str, dict[str, Any]] = {}
    for event in history:
        original = event.get("original_transaction_id")
        if event["type"] in ("INITIAL_PURCHASE", "RENEWAL") and original in ended:
            last[original] = event
    return [
        {**event, "type": "EXPIRATION", "price": 0.0, "price_in_purchased_currency": 0.0}
        for event in last.values()
    ]


# ----------------------------------------------------------------------------- CleverTap


def _held(
    stack: LocalStack, wanted: set[tuple[str, str]]
) -> tuple[dict[Key, _Tally], Counter[str]]:
    """What CleverTap holds from the backfill (``rc_backfill`` events), read over HTTP: tallies
    under the person's ``objectId`` and under its ``identity``, and the count per event name."""
    held: defaultdict[Key, _Tally] = defaultdict(_Tally)
    by_name: Counter[str] = Counter()
    for (account, name), records in _read_events(stack, wanted | _all_names(stack)).items():
        for record in records:
            props = record["event_props"]
            if props.get("rc_backfill") is not True:
                continue
            by_name[name] += 1
            profile = record["profile"]
            for kind in ("objectId", "identity"):
                if profile.get(kind):
                    tally = held[(account, name, kind, str(profile[kind]))]
                    tally.add(props.get("amount"), props.get("currency"))
    return dict(held), by_name


def _all_names(stack: LocalStack) -> set[tuple[str, str]]:
    """Every (account, event name) CleverTap holds anything for."""
    return {(e["account_id"], e["evtName"]) for e in stack.clevertap_events()}


def _compare(
    expected: dict[Key, _Tally], held: dict[Key, _Tally], held_by_name: Counter[str]
) -> list[str]:
    """Per account, person and event name: the count and the amounts; and nothing more."""
    problems = []
    for key in sorted(expected):
        want, got = expected[key], held.get(key, _Tally())
        account, name, kind, who = key
        if got.count != want.count:
            problems.append(
                f"{name} for {kind} {who} ({account}): CleverTap holds {got.count}, "
                f"expected {want.count}"
            )
        elif dict(want.amounts) != dict(got.amounts):
            problems.append(
                f"{name} for {kind} {who} ({account}): amounts {_money(got.amounts)}, "
                f"expected {_money(want.amounts)}"
            )
    expected_by_name = _by_name(expected)
    for name in sorted(set(held_by_name) | set(expected_by_name)):
        if held_by_name[name] > expected_by_name.get(name, 0):
            problems.append(
                f"CleverTap holds {held_by_name[name]} backfilled {name} events, "
                f"expected {expected_by_name.get(name, 0)}"
            )
    return problems


def _money(amounts: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{c} {v}" for c, v in sorted(amounts.items())) or "none"


def _by_name(tallies: dict[Key, _Tally]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (_, name, _, _), tally in tallies.items():
        counts[name] += tally.count
    return dict(counts.most_common())


def _revenue(held: dict[Key, _Tally], expected: dict[Key, _Tally]) -> dict[str, str]:
    """Backfilled amounts per currency (each record once: under its expected key)."""
    totals: defaultdict[str, Decimal] = defaultdict(Decimal)
    for key in expected:
        for currency, amount in held.get(key, _Tally()).amounts.items():
            totals[currency] += amount
    return {
        c: str(v.quantize(Decimal(1).scaleb(-minor_units(c)))) for c, v in sorted(totals.items())
    }


# ----------------------------------------------------------------------------- live


def _play_live(stack: LocalStack, *, seed: int, at_ms: int) -> list[Any]:
    """New customers buy just after the history, with webhooks on; every third one cancels
    a second later.  Times are explicit: the world's clock, not the mock's faster one."""
    events: list[Any] = []
    for index in range(LIVE_USERS):
        user, at = f"live_{seed}_{index:03d}", at_ms + index * 2000 + 1000
        stack.rc.set_clevertap_id(user, f"{seed:04d}{index:028x}")
        events += stack.simulate("buy", user, "pro_monthly", at_ms=at)
        if index % 3 == 0:
            events += stack.simulate("cancel", user, at_ms=at + 1000)
    return events


def _check_second_run(
    stack: LocalStack, first: BackfillReport, second: BackfillReport, live: list[Any]
) -> list[str]:
    problems = []
    if second.enqueued:
        problems.append(f"the second backfill enqueued {second.enqueued} events again")
    if second.already_stored < first.enqueued:
        problems.append(
            f"the second backfill found {second.already_stored} of the first run's "
            f"{first.enqueued} events stored"
        )
    if second.skipped_live < len(live):
        problems.append(
            f"the incremental export's {len(live)} live events were not all skipped as "
            f"delivered live ({second.skipped_live} skipped)"
        )
    live_ids = {str(e["id"]) for e in live}
    held = Counter(
        str(e["evtData"].get("rc_event_id"))
        for e in stack.clevertap_events()
        if str(e["evtData"].get("rc_event_id")) in live_ids
    )
    missing = len(live_ids) - len(held)
    if missing:
        problems.append(f"{missing} live events never reached CleverTap")
    return problems


def _sent_twice(stack: LocalStack) -> int:
    """CleverTap records beyond the first of one event: by id, and by transaction and name
    (a backfilled twin of a live event)."""
    events = stack.clevertap_events()
    by_id = Counter(str(e["evtData"].get("rc_event_id")) for e in events)
    by_transaction = Counter(
        (e["account_id"], str(e["evtData"].get("transaction_id")), e["evtName"],
         str(e["evtData"].get("cancel_reason")))
        for e in events
    )  # fmt: skip
    return sum(n - 1 for n in by_id.values() if n > 1) + sum(
        n - 1 for n in by_transaction.values() if n > 1
    )
