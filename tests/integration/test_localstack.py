"""The local stack and the demo: the whole flow on loopback (these tests use real sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integration.app.demo import _compare, run_demo
from integration.app.localstack import PRODUCTION_ACCOUNT, LocalStack


def test_one_user_from_set_clevertap_id_to_clevertap(tmp_path: Path) -> None:
    """A purchase by a user whose CleverTap ID was set through the client lands on that ID."""
    with LocalStack(workdir=tmp_path) as stack:
        stack.rc.set_clevertap_id("reader-1", "ct-reader-1")
        stack.simulate("buy", "reader-1", "premium_monthly")
        stack.wait_settled(timeout=60)
        events = stack.clevertap_events()
    assert [e["evtName"] for e in events] == ["rc_initial_purchase_event"]
    assert events[0]["objectId"] == "ct-reader-1"
    assert events[0]["account_id"] == PRODUCTION_ACCOUNT.account_id
    assert events[0]["latency_ms"] is not None


def test_a_user_without_clevertap_id_is_sent_by_app_user_id(tmp_path: Path) -> None:
    """Without $clevertapId the event is addressed by identity = the app user id."""
    with LocalStack(workdir=tmp_path) as stack:
        stack.simulate("start_trial", "reader-2", "pro_monthly")
        stack.wait_settled(timeout=60)
        events = stack.clevertap_events()
    assert [(e["evtName"], e["identity"]) for e in events] == [
        ("rc_trial_started_event", "reader-2")
    ]


def test_simulate_refuses_an_unknown_operation(tmp_path: Path) -> None:
    """An operation that is not a store operation is refused before anything runs."""
    with LocalStack(workdir=tmp_path) as stack, pytest.raises(ValueError, match="delete"):
        stack.simulate("delete_customer", "reader-3")


def test_demo_verifies_a_small_population(tmp_path: Path) -> None:
    """The demo on 30 users ends with every event accounted for and verified."""
    report = run_demo(users=30, seed=3, workdir=tmp_path, timeout=120)
    assert report.problems == []
    assert report.webhooks > 30
    assert sum(report.events_by_name.values()) > 0
    assert (tmp_path / "outbox.db").exists()


def test_demo_survives_a_flaky_clevertap(tmp_path: Path) -> None:
    """Against the flaky preset the demo retries uploads and still verifies."""
    report = run_demo(users=30, seed=3, faults="flaky", workdir=tmp_path, timeout=120)
    assert report.problems == []
    assert report.retries > 0


def test_verification_notices_an_event_on_the_wrong_user() -> None:
    """An event read back under another CleverTap ID is reported as a problem."""
    expected = {"objectId": "ct-1", "evtData": {"amount": 9.99, "currency": "USD"}}
    arrived = {
        "profile": {"objectId": "ct-2"},
        "event_props": {"amount": 9.99, "currency": "USD"},
    }
    assert _compare(expected, arrived, "e-1") == [
        "event e-1 landed on 'ct-2', expected CleverTap ID 'ct-1'"
    ]


def test_verification_notices_a_wrong_amount() -> None:
    """An event read back with another amount is reported as a problem."""
    expected = {"identity": "u-1", "evtData": {"amount": 9.99, "currency": "USD"}}
    arrived = {"profile": {"identity": "u-1"}, "event_props": {"amount": 0, "currency": "USD"}}
    assert _compare(expected, arrived, "e-2") == ["event e-2: amount 0, expected 9.99"]


def test_dataframes_hold_what_arrived(tmp_path: Path) -> None:
    """The stack gives CleverTap's events and the ledger as pandas DataFrames."""
    with LocalStack(workdir=tmp_path) as stack:
        stack.simulate("buy", "reader-4", "premium_monthly")
        stack.wait_settled(timeout=60)
        events = stack.dataframe("clevertap_events")
        ledger = stack.dataframe("ledger")
    assert list(events["evtName"]) == ["rc_initial_purchase_event"]
    assert list(ledger["outcome"]) == ["delivered"]
    assert json.loads(json.dumps(list(events.columns)))  # plain column names


def test_a_temporary_folder_is_removed_on_close() -> None:
    """Without a workdir the stack's temporary folder is gone once the stack is closed."""
    with LocalStack() as stack:
        workdir = stack.workdir
        assert workdir.is_dir()
    assert not workdir.exists()


def test_a_temporary_folder_is_kept_on_request() -> None:
    """With keep=True the temporary folder and its outbox stay after close."""
    import shutil

    with LocalStack(keep=True) as stack:
        workdir = stack.workdir
    try:
        assert (workdir / "outbox.db").exists()
    finally:
        shutil.rmtree(workdir)


def test_the_demo_can_reuse_its_workdir(tmp_path: Path) -> None:
    """A second demo in the same workdir starts from a fresh outbox and verifies again."""
    first = run_demo(users=5, seed=3, workdir=tmp_path, timeout=60)
    second = run_demo(users=5, seed=3, workdir=tmp_path, timeout=60)
    assert (first.problems, second.problems) == ([], [])


def test_a_stalled_upload_neither_delays_close_nor_writes_noise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A stack closed while the CleverTap mock stalls an upload (a ``timeout`` fault, 120 s)
    closes without waiting it out and writes nothing on stderr."""
    from mockserver.faults import FaultRule

    with LocalStack(workdir=tmp_path) as stack:
        stack.faults.add(FaultRule("timeout", route="/1/upload", count=1))
        stack.simulate("buy", "reader-9", "premium_monthly")
        stack.wait_settled(timeout=60)  # the engine gives up after 5 s and sends it again
    assert capfd.readouterr().err == ""
