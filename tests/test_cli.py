"""The rc-clevertap command line, invoked as a user would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from integration.cli import main

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
        [sys.executable, "-m", "integration.cli", "--help"],
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
    argv = [sys.executable, "-m", "integration.cli", "mock", "--port", str(port)]
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
