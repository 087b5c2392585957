"""The property budget per event name (integration/budget.py), on records as the mapping
builds them, and the policy's answer to a 522."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from integration.budget import PropertyBudget
from integration.config import ConfigError, DispatcherConfig, load_config
from integration.mapping import CONTEXT_KEYS, CORE_KEYS
from integration.outbox import SQLiteOutbox
from integration.outbox.base import EventProperties, OutboxEvent
from integration.policy import Pause, plan_upload
from integration.uploader import RecordFailure, UploadResult

ACCOUNT = "W9R-486-4W5Z"
NAME = "rc_initial_purchase_event"
FIXED = {
    "amount": 9.99,
    "currency": "USD",
    "product_id": "pro_monthly",
    "is_refund": False,
    "rc_event_id": "e1",
    "store": "APP_STORE",
    "environment": "PRODUCTION",
    "period_type": "NORMAL",
    "transaction_id": "tx-1",
    "entitlement_ids": "pro",
}


def record(*attributes: str, name: str = NAME, fixed: dict[str, Any] = FIXED) -> dict[str, Any]:
    """An event record as map_event builds it: fixed keys first, then attributes in order."""
    data = dict(fixed) | {key: "v" for key in attributes}
    return {"type": "event", "evtName": name, "ts": 1_790_000_000, "identity": "u", "evtData": data}


def attributes(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i:02d}" for i in range(count)]


def test_fixed_keys_of_the_test_record_are_core_and_context_keys() -> None:
    """The fixture's fixed keys are the mapping's core and context keys (no attribute)."""
    assert FIXED.keys() <= CORE_KEYS | CONTEXT_KEYS


def test_core_and_context_keys_are_kept_past_the_budget() -> None:
    """Under a budget smaller than the fixed keys, every fixed key is still sent and every
    attribute is dropped."""
    budget = PropertyBudget()
    rec = record("plan", "team")
    assert budget.fit(ACCOUNT, [rec], limit=3, context=True) == 2
    assert rec["evtData"].keys() == FIXED.keys()


def test_new_attributes_fit_while_the_name_has_room() -> None:
    """Three users with 40 distinct attributes each: the first two fit whole, the third
    gets the room left (100 - 10 fixed - 80), in key order."""
    budget = PropertyBudget()
    recs = [record(*attributes(user, 40)) for user in ("a", "b", "c")]
    dropped = budget.fit(ACCOUNT, recs, limit=100, context=True)
    assert dropped == 30
    assert [len(r["evtData"]) for r in recs] == [50, 50, 20]
    assert [k for k in recs[2]["evtData"] if k.startswith("c_")] == attributes("c", 10)


def test_known_attributes_are_kept_when_the_name_is_full() -> None:
    """Once the name is full, attribute keys CleverTap already accepted still go, new ones
    do not."""
    budget = PropertyBudget()
    first = record(*attributes("a", 90))
    budget.fit(ACCOUNT, [first], limit=100, context=True)
    budget.confirmed(ACCOUNT, [first])
    later = record("a_05", "zzz_new")
    assert budget.fit(ACCOUNT, [later], limit=100, context=True) == 1
    assert "a_05" in later["evtData"]
    assert "zzz_new" not in later["evtData"]


def test_each_event_name_and_account_has_its_own_budget() -> None:
    """Filling one event name leaves another name, and the same name of another account,
    their whole budget."""
    budget = PropertyBudget()
    budget.fit(ACCOUNT, [record(*attributes("a", 90))], limit=100, context=True)
    other_name = record(*attributes("b", 90), name="rc_renewal_event")
    other_account = record(*attributes("c", 90))
    assert budget.fit(ACCOUNT, [other_name], limit=100, context=True) == 0
    assert budget.fit("SBX-1", [other_account], limit=100, context=True) == 0


def test_without_context_keys_they_count_as_attributes() -> None:
    """With context_properties off, a context-named key is an attribute: dropped past the
    budget like any other new attribute."""
    budget = PropertyBudget()
    rec = record(fixed={"amount": 1.0, "rc_event_id": "e1", "store": "APP_STORE"})
    assert budget.fit(ACCOUNT, [rec], limit=2, context=False) == 1
    assert rec["evtData"].keys() == {"amount", "rc_event_id"}


def test_profile_records_are_not_budgeted() -> None:
    """Profile records pass untouched: the budget counts event properties."""
    budget = PropertyBudget()
    profile = {"type": "profile", "identity": "u", "profileData": {f"k{i}": 1 for i in range(9)}}
    assert budget.fit(ACCOUNT, [profile], limit=1, context=True) == 0
    assert len(profile["profileData"]) == 9


def test_confirmed_returns_only_keys_not_known_before() -> None:
    """Confirming a record returns its new keys, once: the rows to store."""
    budget = PropertyBudget()
    [entry] = budget.confirmed(ACCOUNT, [record("plan")])
    assert entry == EventProperties(ACCOUNT, NAME, tuple(sorted([*FIXED, "plan"])))
    assert budget.confirmed(ACCOUNT, [record("plan")]) == []
    assert budget.keys(ACCOUNT, NAME) == {*FIXED, "plan"}


def test_a_522_caps_the_name_at_its_confirmed_keys() -> None:
    """After a 522 the name takes no new attribute: the limit learned is the number of
    keys CleverTap confirmed."""
    budget = PropertyBudget()
    first = record(*attributes("a", 20))
    budget.fit(ACCOUNT, [first], limit=100, context=True)
    budget.confirmed(ACCOUNT, [first])
    entry = budget.refused(ACCOUNT, NAME, limit=100)
    assert (entry.learned_limit, entry.learned_under) == (30, 100)
    later = record("a_01", "b_new")
    assert budget.fit(ACCOUNT, [later], limit=100, context=True) == 1
    assert "a_01" in later["evtData"]


def test_a_522_forgets_keys_sent_but_not_confirmed() -> None:
    """A key of the refused record is not taken for one CleverTap holds: it is dropped
    from later records instead of being sent as known."""
    budget = PropertyBudget()
    refused = record("b_00", "b_01")
    budget.fit(ACCOUNT, [refused], limit=100, context=True)  # sent, never confirmed
    budget.refused(ACCOUNT, NAME, limit=100)
    later = record("b_00")
    assert budget.fit(ACCOUNT, [later], limit=100, context=True) == 1
    assert "b_00" not in later["evtData"]


def test_a_learned_limit_is_forgotten_when_the_configured_budget_changes() -> None:
    """A limit learned under budget 100 does not apply once the budget is 150."""
    budget = PropertyBudget()
    budget.confirmed(ACCOUNT, [record()])
    budget.refused(ACCOUNT, NAME, limit=100)
    later = record("plan")
    assert budget.fit(ACCOUNT, [later], limit=150, context=True) == 0
    assert "plan" in later["evtData"]


def test_core_only_keeps_the_core_keys() -> None:
    """The record sent again after a 522 keeps its core keys, not its context keys or
    attributes, and says how many keys it gave up."""
    budget = PropertyBudget()
    rec = record("plan", "team")
    trimmed, dropped = budget.core_only(rec)
    assert trimmed["evtData"].keys() == FIXED.keys() & CORE_KEYS
    assert dropped == len(rec["evtData"]) - len(trimmed["evtData"])
    assert trimmed["evtName"] == NAME and rec["evtData"]["plan"] == "v"  # a copy


def test_a_charged_record_has_nothing_to_give_up() -> None:
    """Every key of a Charged record is fixed: core_only has nothing to drop."""
    charged = record(name="Charged", fixed={"Amount": 9.99, "Currency": "USD", "Items": []})
    assert PropertyBudget().core_only(charged) == (charged, 0)


async def test_load_reads_confirmed_keys_and_learned_limits(tmp_path: Path) -> None:
    """A budget loaded from an outbox knows what an earlier process stored there."""
    async with SQLiteOutbox(tmp_path / "outbox.db") as outbox:
        await outbox.add_event_properties(
            [EventProperties(ACCOUNT, NAME, ("plan",), learned_limit=1, learned_under=100)],
            now=1.0,
        )
        budget = PropertyBudget()
        await budget.load(outbox)
    assert budget.keys(ACCOUNT, NAME) == {"plan"}
    later = record("plan", "team")
    assert budget.fit(ACCOUNT, [later], limit=100, context=True) == 1
    assert "plan" in later["evtData"] and "team" not in later["evtData"]


# -- configuration ---------------------------------------------------------------------------

CREDENTIALS = {"RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": ACCOUNT, "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "p"}


def test_the_sandbox_budget_overrides_the_production_one_from_the_environment() -> None:
    """RC_CLEVERTAP_BUDGET_SANDBOX_MAX_EVENT_PROPERTIES_PER_NAME sets the sandbox account's
    budget; production keeps CleverTap's default of 100."""
    environ = CREDENTIALS | {"RC_CLEVERTAP_BUDGET_SANDBOX_MAX_EVENT_PROPERTIES_PER_NAME": "50"}
    budget = load_config(environ=environ).budget
    assert (budget.limit_for("PRODUCTION"), budget.limit_for("SANDBOX")) == (100, 50)
    assert budget.context_properties is True


def test_a_budget_below_one_is_refused_naming_the_key(tmp_path: Path) -> None:
    """A budget of 0 fails at start-up with one line naming budget.max_event_properties_per_name."""
    path = tmp_path / "c.toml"
    path.write_text("[budget]\nmax_event_properties_per_name = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=CREDENTIALS)
    assert str(caught.value) == "budget.max_event_properties_per_name: must be at least 1, got 0"


# -- the policy's answer to a 522 ------------------------------------------------------------

SETTINGS = DispatcherConfig()
NOW = 1_800_000_000.0


def _event(row_id: int) -> OutboxEvent:
    return OutboxEvent(row_id, f"e{row_id}", "PRODUCTION", b"{}", NOW, NOW, 0, None)


def _plan(*failures: RecordFailure, trimmable: set[int], records: int = 2) -> Any:
    result = UploadResult("ok", 200, 0.01, "200", records - len(failures), failures)
    return plan_upload(
        result,
        [_event(1), _event(2)],
        list(range(records)),
        now=NOW,
        settings=SETTINGS,
        pause=Pause(until=0.0, next_s=60.0),
        random=lambda: 0.5,
        trimmable=trimmable,
    )


def test_policy_sends_a_522_again_when_the_record_can_give_up_keys() -> None:
    """A 522 for a record with keys beyond its core is neither dead nor delivered: the plan
    names it to send again."""
    plan = _plan(RecordFailure(1, 522, "Event properties limit exceeded"), trimmable={1})
    assert plan.trim == (1,)
    assert plan.delivered == (1,)
    assert plan.dead == () and plan.release is None
    assert plan.outcome == "partial"


def test_policy_dead_letters_a_522_for_a_core_only_record() -> None:
    """A 522 for a record with nothing left to give up is a dead letter with CleverTap's
    message."""
    plan = _plan(RecordFailure(1, 522, "Event properties limit exceeded"), trimmable=set())
    assert plan.trim == ()
    [(dead, reason)] = plan.dead
    assert dead.row_id == 2 and reason.startswith("clevertap 522")


def test_policy_retries_whole_an_event_that_also_got_a_555() -> None:
    """An event with a 522 and a 555 is retried with backoff, not trimmed: mapped again, it
    meets the budget the 522 taught."""
    failures = (RecordFailure(0, 522, "limit"), RecordFailure(1, 555, "misc"))
    result = UploadResult("ok", 200, 0.01, "200", 0, failures)
    plan = plan_upload(
        result,
        [_event(1)],
        [0, 0],
        now=NOW,
        settings=SETTINGS,
        pause=Pause(until=0.0, next_s=60.0),
        random=lambda: 0.5,
        trimmable={0},
    )
    assert plan.trim == ()
    assert plan.release is not None and plan.release.retried == 1
    assert plan.outcome == "retry"
