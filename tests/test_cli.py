"""The rc-clevertap command line, invoked as a user would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from integration.app.cli import main, parse_since

FIXTURES = Path(__file__).parent / "integration" / "fixtures"
WEBHOOKS = FIXTURES / "webhooks"

CONFIG = """
[clevertap]
account_id = "CLI-PROD-001"
passcode = "cli-secret-passcode"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: bytes = b"") -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_map_prints_the_upload_for_a_forwarded_event(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """`map` prints the account and the records a RENEWAL webhook becomes."""
    body = json.dumps(json.loads((WEBHOOKS / "renewal.json").read_text())["webhook"]).encode()
    status = _run(monkeypatch, ["map", "--config", str(config_file)], body)
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["account_id"] == "CLI-PROD-001"
    assert out["d"][0]["evtName"] == "rc_renewal_event"


def test_map_reports_a_skipped_event_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """`map` prints an empty upload and the reason for an event type that is not forwarded."""
    body = json.dumps(json.loads((WEBHOOKS / "transfer.json").read_text())["webhook"]).encode()
    status = _run(monkeypatch, ["map", "--config", str(config_file)], body)
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["d"] == []
    assert "TRANSFER" in out["skipped"]


def test_map_refuses_invalid_input_with_exit_2_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """A body that is not JSON exits 2 with a single error line and no traceback."""
    status = _run(monkeypatch, ["map", "--config", str(config_file)], b"{not json")
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("rc-clevertap: error: invalid webhook")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_map_refuses_an_invalid_config_without_printing_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An invalid configuration exits 2 and the message never shows the passcode."""
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG + '\n[revenue]\nmode = "net"\n')
    status = _run(monkeypatch, ["map", "--config", str(path)], b"{}")
    err = capsys.readouterr().err
    assert status == 2
    assert "revenue" in err
    assert "cli-secret-passcode" not in err


def test_console_script_shows_help() -> None:
    """The installed `rc-clevertap` script runs and lists its commands."""
    result = subprocess.run(
        [sys.executable, "-m", "integration.app.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "map" in result.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mock_command_serves_both_mocks_on_one_port() -> None:
    """`rc-clevertap mock` serves RevenueCat and CleverTap with the printed default keys."""
    import httpx

    port = _free_port()
    argv = [sys.executable, "-m", "integration.app.cli", "mock", "--port", str(port)]
    with subprocess.Popen(
        [*argv, "--log-level", "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            for line in proc.stderr:  # uvicorn logs this line once the socket is bound
                if "Application startup complete" in line:
                    break
            base = f"http://127.0.0.1:{port}"
            subscriber = httpx.get(
                f"{base}/v1/subscribers/user-1",
                headers={"Authorization": "Bearer sk_mock_secret_key"},
            )
            upload = httpx.post(
                f"{base}/1/upload",
                headers={
                    "X-CleverTap-Account-Id": "TEST-RCC-MOCK",
                    "X-CleverTap-Passcode": "mock-passcode",
                },
                json={
                    "d": [{"type": "event", "identity": "user-1", "evtName": "e", "evtData": {}}]
                },
            )
        finally:
            proc.terminate()
            printed, _ = proc.communicate(timeout=10)
    assert subscriber.status_code == 201
    assert upload.json() == {"status": "success", "processed": 1, "unprocessed": []}
    assert "sk_mock_secret_key" in printed  # the documented defaults are printed


def test_mock_command_refuses_an_unknown_fault_preset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown --faults preset exits 2 and names the known presets."""
    status = _run(monkeypatch, ["mock", "--faults", "nope"])
    err = capsys.readouterr().err
    assert status == 2
    assert "flaky" in err


@pytest.fixture
def outbox_config(tmp_path: Path) -> Path:
    """A configuration naming an empty outbox that exists (operator commands create none)."""
    import asyncio

    from integration.outbox import open_outbox

    url = f"sqlite:///{tmp_path / 'outbox.db'}"

    async def create() -> None:
        async with open_outbox(url):
            pass

    asyncio.run(create())
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + f'\n[outbox]\nurl = "{url}"\n')
    return path


def test_status_reports_an_empty_outbox_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """`status --json` on a new outbox shows zero pending events and no dead letters."""
    status = _run(monkeypatch, ["status", "--config", str(outbox_config), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (out["pending"], out["dead"], out["last_attempt"]) == (0, 0, None)


def test_dlq_list_and_retry_on_an_empty_outbox(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """`dlq list` shows no dead letters and `dlq retry --all` requeues none."""
    assert _run(monkeypatch, ["dlq", "list", "--config", str(outbox_config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert (
        _run(monkeypatch, ["dlq", "retry", "--all", "--config", str(outbox_config), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == {"requeued": 0}


def test_dlq_retry_without_ids_or_all_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """`dlq retry` with neither ids nor --all exits 2 and says what to pass."""
    assert _run(monkeypatch, ["dlq", "retry", "--config", str(outbox_config)]) == 2
    assert "--all" in capsys.readouterr().err


def test_replay_refuses_an_unreadable_since(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """`replay --since` with a value that is no time exits 2 and lists the accepted forms."""
    assert (
        _run(monkeypatch, ["replay", "--since", "yesterday", "--config", str(outbox_config)]) == 2
    )
    assert "duration" in capsys.readouterr().err


def test_replay_requeues_nothing_on_an_empty_outbox(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """`replay --since 2h` on a new outbox requeues zero events."""
    assert (
        _run(
            monkeypatch,
            ["replay", "--since", "2h", "--yes", "--config", str(outbox_config), "--json"],
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["requeued"] == 0


@pytest.fixture
def delivered_config(outbox_config: Path, tmp_path: Path) -> Path:
    """The outbox of ``outbox_config`` holding one RENEWAL delivered just now."""
    import asyncio
    import time

    from integration.outbox import open_outbox

    body = json.dumps(json.loads((WEBHOOKS / "renewal.json").read_text())["webhook"]).encode()

    async def deliver() -> None:
        async with open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}") as outbox:
            now = time.time()
            await outbox.enqueue("renewal-1", "PRODUCTION", body, now=now)
            lease = await outbox.lease("PRODUCTION", 10, now=now, lease_s=30)
            assert lease is not None
            await outbox.settle(lease, delivered=[lease.events[0].row_id], now=now)

    asyncio.run(deliver())
    return outbox_config


def _delivered(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> int:
    assert _run(monkeypatch, ["status", "--config", str(config), "--json"]) == 0
    return int(json.loads(capsys.readouterr().out)["delivered"])


def test_replay_without_yes_off_a_terminal_refuses_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], delivered_config: Path
) -> None:
    """Without --yes and no terminal to ask on, replay exits 2, warns, and requeues nothing."""
    assert _run(monkeypatch, ["replay", "--since", "1h", "--config", str(delivered_config)]) == 2
    assert "CleverTap will receive" in capsys.readouterr().err
    assert _delivered(delivered_config, monkeypatch, capsys) == 1


def test_replay_dry_run_lists_what_would_be_sent_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], delivered_config: Path
) -> None:
    """replay --dry-run shows each delivered event's CleverTap records; the row stays delivered."""
    argv = ["replay", "--since", "1h", "--dry-run", "--json", "--config", str(delivered_config)]
    assert _run(monkeypatch, argv) == 0
    [row] = json.loads(capsys.readouterr().out)["would_requeue"]
    assert (row["event_id"], row["account_id"]) == ("renewal-1", "CLI-PROD-001")
    assert "rc_renewal_event" in row["records"]
    assert _delivered(delivered_config, monkeypatch, capsys) == 1


def test_replay_until_leaves_out_what_was_delivered_after_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], delivered_config: Path
) -> None:
    """`replay --since 2h --until 1h` requeues nothing of an event delivered just now."""
    argv = ["replay", "--since", "2h", "--until", "1h", "--yes", "--json"]
    assert _run(monkeypatch, [*argv, "--config", str(delivered_config)]) == 0
    assert json.loads(capsys.readouterr().out)["requeued"] == 0
    assert _delivered(delivered_config, monkeypatch, capsys) == 1


def test_replay_dry_run_with_an_end_lists_what_was_delivered_before_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], delivered_config: Path
) -> None:
    """`replay --dry-run --until` in the future lists the event delivered just now."""
    import time

    future = str(int(time.time()) + 3600)
    argv = ["replay", "--since", "1h", "--until", future, "--dry-run", "--json"]
    assert _run(monkeypatch, [*argv, "--config", str(delivered_config)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["event_id"] for row in out["would_requeue"]] == ["renewal-1"]
    assert out["until"] == float(future)


def test_replay_refuses_an_until_before_its_since(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """`replay --since 1h --until 2h` exits 2 saying --until must be after --since."""
    argv = ["replay", "--since", "1h", "--until", "2h", "--yes", "--config", str(outbox_config)]
    assert _run(monkeypatch, argv) == 2
    assert "--until" in capsys.readouterr().err


def test_status_lists_the_events_waiting_for_a_route_no_longer_configured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """status names the unconfigured route, its waiting count and what to do, in text and JSON."""
    import asyncio

    from integration.outbox import open_outbox

    url = f"sqlite:///{tmp_path / 'outbox.db'}"

    async def enqueue() -> None:
        async with open_outbox(url) as outbox:
            await outbox.enqueue("gone-1", "PRODUCTION", b"{}", now=1.0, route="gone")

    asyncio.run(enqueue())
    config = tmp_path / "config.toml"
    config.write_text(CONFIG + f'\n[outbox]\nurl = "{url}"\n')
    assert _run(monkeypatch, ["status", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unrouted"] == {"gone": 1}
    assert _run(monkeypatch, ["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "waiting for route gone (not configured)" in out
    assert "no lane delivers them until [[routes]] names them again" in out


def test_dlq_retry_of_an_unknown_id_exits_1_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """dlq retry 9999 on an outbox without that dead letter exits 1 and names 9999."""
    assert _run(monkeypatch, ["dlq", "retry", "9999", "--config", str(outbox_config)]) == 1
    assert "no dead letter with id 9999" in capsys.readouterr().err


def test_dlq_retry_refuses_ids_with_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outbox_config: Path
) -> None:
    """dlq retry 14 --all is a usage error: ids and --all exclude each other."""
    assert _run(monkeypatch, ["dlq", "retry", "14", "--all", "--config", str(outbox_config)]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_set_id_sets_and_clears_the_clevertap_id_on_the_mock(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`set-id` writes $clevertapId on the RevenueCat mock, and without an id deletes it."""
    from mockserver import RevenueCatBackend, create_app
    from mockserver.serving import BackgroundServer, LoopThread

    backend = RevenueCatBackend()
    loop = LoopThread()
    server = BackgroundServer(create_app(revenuecat_backend=backend))
    url = loop.run(server.start())
    try:
        monkeypatch.setenv("REVENUECAT_API_KEY", "sk_mock_secret_key")
        assert _run(monkeypatch, ["set-id", "user 1", "ct-42", "--base-url", url]) == 0
        stored = backend.customer("user 1").attributes.get("$clevertapId")
        assert _run(monkeypatch, ["set-id", "user 1", "--base-url", url]) == 0
        cleared = backend.customer("user 1").attributes.get("$clevertapId")
    finally:
        loop.run(server.stop())
        loop.close()
    assert stored is not None and stored.value == "ct-42"
    assert cleared is None
    assert "sk_mock_secret_key" not in capsys.readouterr().out


def test_set_id_without_an_api_key_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`set-id` with no --api-key and no REVENUECAT_API_KEY exits 2 before any request."""
    monkeypatch.delenv("REVENUECAT_API_KEY", raising=False)
    assert _run(monkeypatch, ["set-id", "user-1", "ct-1"]) == 2
    assert "REVENUECAT_API_KEY" in capsys.readouterr().err


def test_serve_forwards_a_webhook_to_clevertap(tmp_path: Path) -> None:
    """`rc-clevertap serve` acknowledges a webhook and uploads its event to CleverTap."""
    import threading

    import httpx
    from starlette.types import Receive, Scope, Send

    from mockserver import CleverTapBackend, create_app
    from mockserver.clevertap import DEFAULT_ACCOUNT
    from mockserver.serving import BackgroundServer, LoopThread

    clevertap = CleverTapBackend()
    uploaded = threading.Event()
    mock = create_app(clevertap_backend=clevertap)

    async def signalling(scope: Scope, receive: Receive, send: Send) -> None:
        await mock(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == "/1/upload":
            uploaded.set()

    loop = LoopThread()
    server = BackgroundServer(signalling)
    ct_url = loop.run(server.start())
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[clevertap]\naccount_id = "{DEFAULT_ACCOUNT.account_id}"\n'
        f'passcode = "{DEFAULT_ACCOUNT.passcodes[0]}"\nbase_url = "{ct_url}"\n'
        f'[webhook]\nauthorization = "Bearer hook-secret"\n'
        f'[outbox]\nurl = "sqlite:///{tmp_path / "serve.db"}"\n'
    )
    webhook = json.loads((WEBHOOKS / "renewal.json").read_text())["webhook"]
    port = _free_port()
    argv = [sys.executable, "-m", "integration.app.cli", "serve", "--config", str(config)]
    try:
        with subprocess.Popen(
            [*argv, "--port", str(port)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stderr is not None
            try:
                for line in proc.stderr:
                    if "Application startup complete" in line:
                        break
                hook = f"http://127.0.0.1:{port}/webhooks/revenuecat"
                refused = httpx.post(hook, json=webhook, headers={"Authorization": "Bearer no"})
                accepted = httpx.post(
                    hook, json=webhook, headers={"Authorization": "Bearer hook-secret"}
                )
                assert uploaded.wait(timeout=30)
            finally:
                proc.terminate()
                _, logs = proc.communicate(timeout=30)
    finally:
        loop.run(server.stop())
        loop.close()
    events = clevertap.events(DEFAULT_ACCOUNT.account_id)
    assert (refused.status_code, accepted.status_code) == (401, 200)
    assert [e["evtName"] for e in events] == ["rc_renewal_event"]
    assert "hook-secret" not in logs
    assert DEFAULT_ACCOUNT.passcodes[0] not in logs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", 1000.0 - 90),
        ("30m", 1000.0 - 1800),
        ("2h", 1000.0 - 7200),
        ("1.5d", 1000.0 - 129600),
        ("1w", 1000.0 - 604800),
        ("1800000000", 1800000000.0),
        ("2027-01-15T08:00:00Z", 1800000000.0),
        ("2027-01-15T08:00:00", 1800000000.0),
        ("2027-01-15T09:00:00+01:00", 1800000000.0),
    ],
)
def test_since_accepts_durations_times_and_epochs(text: str, expected: float) -> None:
    """--since takes a duration back from now, an ISO 8601 time (naive is UTC) or an epoch."""
    assert parse_since(text, now=1000.0) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "5x", "-3h", "2027-13-01"])
def test_since_refuses_anything_else_with_the_accepted_forms(text: str) -> None:
    """An unreadable --since names the accepted forms."""
    with pytest.raises(ValueError, match="duration"):
        parse_since(text, now=1000.0)


def test_demo_refuses_a_negative_population_in_user_terms(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """demo --users -5 exits 2 saying --users must be 1 or more."""
    assert _run(monkeypatch, ["demo", "--users", "-5"]) == 2
    assert "--users: must be 1 or more, got -5" in capsys.readouterr().err


def test_demo_json_prints_money_to_each_currencys_minor_unit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """demo --json totals have no decimals for JPY and two for the two-decimal currencies."""
    assert _run(monkeypatch, ["demo", "--users", "40", "--seed", "7", "--json"]) == 0
    revenue = json.loads(capsys.readouterr().out)["revenue_by_currency"]
    assert revenue, "the seeded population buys something"
    for currency, amount in revenue.items():
        decimals = len(amount.partition(".")[2])
        assert decimals == (0 if currency in ("JPY", "KRW") else 2), (currency, amount)


def test_quarantine_list_and_show_give_back_a_refused_body(
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    tmp_path: Path,
    outbox_config: Path,
) -> None:
    """quarantine list names a quarantined body and quarantine show prints it byte for byte."""
    import asyncio

    from integration.outbox import open_outbox

    async def quarantine() -> None:
        async with open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}") as outbox:
            await outbox.quarantine(b"not json \xff", "not JSON", now=1.0)

    asyncio.run(quarantine())
    assert _run(monkeypatch, ["quarantine", "list", "--json", "--config", str(outbox_config)]) == 0
    [listed] = json.loads(capsysbinary.readouterr().out)
    assert (listed["reason"], listed["bytes"]) == ("not JSON", 10)
    argv = ["quarantine", "show", str(listed["id"]), "--config", str(outbox_config)]
    assert _run(monkeypatch, argv) == 0
    assert capsysbinary.readouterr().out == b"not json \xff"
