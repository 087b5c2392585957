"""`rc-clevertap set-id --from FILE | --from-clevertap | --demo N`, invoked as a user would.

The mocks run on a loopback port (the CLI builds its own client); API v1 has no rate limit,
so nothing here waits.  The rate limit itself is exercised on the mock's virtual clock by
``--demo`` below and by tests/client/test_bulk.py.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import client
from integration.app.cli import main
from mockserver import CleverTapBackend, RevenueCatBackend, create_app
from mockserver.clevertap import DEFAULT_ACCOUNT
from mockserver.serving import BackgroundServer, LoopThread

SECRET = "sk_mock_secret_key"


class Served:
    """Both mocks on a loopback port, and the requests RevenueCat received."""

    def __init__(self) -> None:
        self.revenuecat = RevenueCatBackend(seed=1, v2_rate_limit=None)
        self.clevertap = CleverTapBackend(seed=1)
        self.loop = LoopThread()
        self.server = BackgroundServer(
            create_app(revenuecat_backend=self.revenuecat, clevertap_backend=self.clevertap)
        )
        self.url = self.loop.run(self.server.start())

    def stored(self, user: str) -> str | None:
        attribute = self.revenuecat.customer(user).attributes.get(client.CLEVERTAP_ID)
        return None if attribute is None else attribute.value

    def close(self) -> None:
        self.loop.run(self.server.stop())
        self.loop.close()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("REVENUECAT_API_KEY", SECRET)
    mocks = Served()
    yield mocks
    mocks.close()


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def _csv(path: Path, n: int, *, header: str = "app_user_id,clevertap_id") -> Path:
    path.write_text(header + "\n" + "".join(f"user-{i},ct-{i}\n" for i in range(n)))
    return path


def _bulk(served: Served, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "set-id",
        "--base-url",
        served.url,
        "--state",
        str(tmp_path / "state.sqlite3"),
        "--json",
        *extra,
    ]


def test_a_thousand_user_csv_is_set_and_verified(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """--from FILE --verify all sets each of 1,000 users and reads every one back equal."""
    mapping = _csv(tmp_path / "users.csv", 1000)
    argv = _bulk(served, tmp_path, "--from", str(mapping), "--verify", "all")
    assert _run(monkeypatch, argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["sent"], summary["refused"]) == (1000, 1000, 0)
    assert summary["verify"] == {"checked": 1000, "mismatches": [], "unreadable": 0}
    assert served.stored("user-0") == "ct-0" and served.stored("user-999") == "ct-999"


def test_a_second_run_of_the_same_file_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """The state file remembers what is set: the rerun reports every user unchanged."""
    argv = _bulk(served, tmp_path, "--from", str(_csv(tmp_path / "users.csv", 20)))
    assert _run(monkeypatch, argv) == 0
    capsys.readouterr()
    assert _run(monkeypatch, argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["sent"], summary["unchanged"]) == (0, 20)


def test_missing_columns_are_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """A file without the columns exits 2 with one line naming them; RevenueCat sees nothing."""
    mapping = _csv(tmp_path / "users.csv", 3, header="user,ct")
    assert _run(monkeypatch, _bulk(served, tmp_path, "--from", str(mapping))) == 2
    err = capsys.readouterr().err
    assert "'app_user_id', 'clevertap_id' columns" in err and len(err.strip().splitlines()) == 1
    assert served.revenuecat.customers() == []


def test_other_column_names_are_accepted(
    monkeypatch: pytest.MonkeyPatch, served: Served, tmp_path: Path
) -> None:
    """--user-column/--id-column name the columns of a file that calls them otherwise."""
    mapping = _csv(tmp_path / "users.csv", 2, header="uid,ctid")
    argv = _bulk(
        served, tmp_path, "--from", str(mapping), "--user-column", "uid", "--id-column", "ctid"
    )
    assert _run(monkeypatch, argv) == 0
    assert served.stored("user-1") == "ct-1"


def test_malformed_rows_are_reported_by_line_and_the_rest_is_set(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """An empty id, a short row and a duplicate user go to --report by line; exit 1."""
    mapping = tmp_path / "users.csv"
    mapping.write_text(
        "app_user_id,clevertap_id\nu1,ct-1\nu2,\nu3\nu1,ct-other\n" + "x" * 3 + ",ct-4\n"
    )
    report = tmp_path / "refused.jsonl"
    argv = _bulk(served, tmp_path, "--from", str(mapping), "--report", str(report))
    assert _run(monkeypatch, argv) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["sent"], summary["refused"]) == (2, 3)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted((r["line"], r["outcome"]) for r in lines) == [
        (3, "refused"),
        (4, "refused"),
        (5, "refused"),
    ]
    assert served.stored("u1") == "ct-1" and served.stored("xxx") == "ct-4"
    assert SECRET not in report.read_text()


def test_json_lines_on_standard_input(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """--from - reads JSON lines from stdin (spooled, so the total and --verify work)."""
    lines = "".join(
        json.dumps({"app_user_id": f"j{i}", "clevertap_id": f"c{i}"}) + "\n" for i in range(5)
    )
    assert _run(monkeypatch, _bulk(served, tmp_path, "--from", "-", "--verify", "2"), lines) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["sent"], summary["verify"]["checked"]) == (5, 5, 2)


def test_a_dry_run_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """--dry-run checks the file and reports what it found, sending nothing, with no key."""
    monkeypatch.delenv("REVENUECAT_API_KEY")  # nothing is sent: no key is needed
    argv = _bulk(served, tmp_path, "--from", str(_csv(tmp_path / "u.csv", 4)), "--dry-run")
    assert _run(monkeypatch, argv) == 0
    assert json.loads(capsys.readouterr().out)["dry_run"] is True
    assert served.revenuecat.customers() == []
    assert not (tmp_path / "state.sqlite3").exists()  # not even the state file is created


def test_a_wrong_key_stops_the_run_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """A 401 exits 1 at once with one line that names neither key nor traceback."""
    monkeypatch.setenv("REVENUECAT_API_KEY", "sk_wrong_key_0123456789")
    argv = _bulk(served, tmp_path, "--from", str(_csv(tmp_path / "u.csv", 200)))
    assert _run(monkeypatch, argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused the API key" in err
    assert "sk_wrong_key_0123456789" not in err and "Traceback" not in err


def test_an_interrupt_exits_130_saying_how_to_resume(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """Ctrl-C during the run: exit 130, one line saying the same command resumes."""

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(client.AttributeSyncer, "set_clevertap_ids", interrupted)
    argv = _bulk(served, tmp_path, "--from", str(_csv(tmp_path / "u.csv", 3)))
    assert _run(monkeypatch, argv) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_from_clevertap_sets_each_identity_to_its_clevertap_id(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    tmp_path: Path,
) -> None:
    """--from-clevertap pages CleverTap's profiles and sets identity -> objectId on RevenueCat."""
    today = int(time.strftime("%Y%m%d", time.gmtime()))
    account = DEFAULT_ACCOUNT.account_id
    records = [
        {
            "type": "event",
            "identity": f"rc-{i}",
            "evtName": "Signed In",
            "evtData": {},
            "ts": int(time.time()),
        }
        for i in range(30)
    ]
    records.append(
        {
            "type": "event",
            "objectId": "anonymous-device-1",
            "evtName": "Signed In",
            "evtData": {},
            "ts": int(time.time()),
        }
    )
    served.clevertap.upload(account, records)
    monkeypatch.setenv("RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID", account)
    monkeypatch.setenv("RC_CLEVERTAP_CLEVERTAP_PASSCODE", DEFAULT_ACCOUNT.passcodes[0])
    monkeypatch.setenv("RC_CLEVERTAP_CLEVERTAP_BASE_URL", served.url)
    monkeypatch.delenv("RC_CLEVERTAP_CONFIG", raising=False)
    query = json.dumps({"event_name": "Signed In", "from": today - 1, "to": today})
    report = tmp_path / "report.jsonl"
    argv = _bulk(
        served,
        tmp_path,
        "--from-clevertap",
        "--ct-query",
        query,
        "--verify",
        "all",
        "--report",
        str(report),
    )
    status = _run(monkeypatch, argv)
    captured = capsys.readouterr()
    assert captured.err == ""
    summary = json.loads(captured.out)
    assert (summary["sent"], summary["verify"]["checked"]) == (30, 30)
    profile = served.clevertap.profile(account, identity="rc-7")
    assert profile is not None and served.stored("rc-7") == profile["objectId"]
    # The profile without an identity cannot be mapped: reported, and the run says so.
    assert status == 1 and summary["refused"] == 1
    assert "no identity" in report.read_text()


def test_the_demo_migrates_users_through_the_rate_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--demo N: API v2 at 480 a minute on the mock's clock, waits shown beside the floor."""
    argv = ["set-id", "--demo", "1000", "--demo-speed", "0", "--json", "--verify", "20"]
    assert _run(monkeypatch, argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["api"] == "v2" and summary["sent"] == 1000
    assert summary["rate_limit_waits"] >= 2 and summary["verify"]["checked"] == 20
    # Three one-minute windows: at least the two minutes the limit forces, about its floor.
    assert 60 <= summary["virtual_s"] <= summary["floor_s"] + 60


def test_no_api_key_is_a_usage_error_before_reading_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without --api-key or REVENUECAT_API_KEY a real run exits 2 with one line."""
    monkeypatch.delenv("REVENUECAT_API_KEY", raising=False)
    argv = [
        "set-id",
        "--from",
        str(_csv(tmp_path / "u.csv", 2)),
        "--state",
        str(tmp_path / "s.sqlite3"),
    ]
    assert _run(monkeypatch, argv) == 2
    assert "REVENUECAT_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite3").exists()
