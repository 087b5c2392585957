"""Stopping the long-running commands, and what ``serve`` logs (real processes, loopback)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

PASSCODE = "sig-secret-passcode"
AUTHORIZATION = "Bearer sig-webhook-secret"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) \S+: ")
BODY_MARKER = "body-marker-7f3a"


def _serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``serve --port 0``; returns the process and the base URL of its listening line."""
    env = {
        **os.environ,
        "RC_CLEVERTAP_OUTBOX_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "SIG-PROD-001",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": PASSCODE,
        "RC_CLEVERTAP_CLEVERTAP_BASE_URL": "http://127.0.0.1:9",  # nothing listens: retries
        "RC_CLEVERTAP_WEBHOOK_AUTHORIZATION": AUTHORIZATION,
    }
    env.pop("RC_CLEVERTAP_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "integration.app.cli", "serve", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # bounded by the process: it prints this or exits
    match = re.search(r"listening on (http://\S+?):? ", line)
    assert match, line
    return process, match.group(1)


def test_serve_stops_on_sigint_with_exit_0_and_only_log_lines(tmp_path: Path) -> None:
    """SIGINT drains serve: exit 0, and everything on stderr is a timestamped log line."""
    process, base = _serve(tmp_path)
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert err.splitlines(), "serve logs its start and stop"
    assert all(LOG_LINE.match(line) for line in err.splitlines()), err


def test_serve_stops_on_sigterm_with_exit_0(tmp_path: Path) -> None:
    """SIGTERM (what a container runtime sends) drains serve and exits 0."""
    process, _ = _serve(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_serve_json_logs_parse_and_hold_no_secret_or_body(tmp_path: Path) -> None:
    """With --log-format json every stderr line is a JSON object without secrets or bodies."""
    process, base = _serve(tmp_path, "--log-format", "json", "--log-level", "debug")
    event = {
        "api_version": "1.0",
        "event": {
            "id": "sig-event-1",
            "type": "INITIAL_PURCHASE",
            "app_user_id": BODY_MARKER,
            "environment": "PRODUCTION",
            "event_timestamp_ms": 1_700_000_000_000,
            "product_id": "premium_monthly",
            "price": 9.99,
            "currency": "USD",
        },
    }
    with httpx.Client(base_url=base, timeout=10) as http:
        stored = http.post(
            "/webhooks/revenuecat", json=event, headers={"Authorization": AUTHORIZATION}
        )
        refused = http.post("/webhooks/revenuecat", json=event, headers={"Authorization": "nope"})
        invalid = http.post(
            "/webhooks/revenuecat", content=BODY_MARKER, headers={"Authorization": AUTHORIZATION}
        )
    assert (stored.status_code, refused.status_code, invalid.status_code) == (200, 401, 400)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    records = [json.loads(line) for line in err.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r.get("reason") == "unauthorized" for r in records), err
    assert any(r.get("reason") == "invalid_body" for r in records), err
    for secret in (PASSCODE, AUTHORIZATION, "sig-webhook-secret", BODY_MARKER):
        assert secret not in err


def test_an_interrupted_demo_exits_130_within_5_s(tmp_path: Path) -> None:
    """SIGINT during a long demo stops it within 5 s with exit 130 and one line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "integration.app.cli", "demo", "--users", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    # Without a terminal the demo prints each step on its own line: wait for one mid-run.
    while "setting CleverTap IDs" not in (line := process.stderr.readline()):
        assert line, "the demo ended before it was interrupted"
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5.0
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "rc-clevertap: error: interrupted"
    assert "Traceback" not in err


def test_mock_json_logs_parse_line_by_line(tmp_path: Path) -> None:
    """``mock --log-format json`` writes only JSON objects to stderr and stops on SIGINT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "integration.app.cli", "mock", "--port", "0", "--json",
         "--log-format", "json", "--log-level", "debug"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "}\n":  # --json prints one indented object, then serves
        line = process.stdout.readline()
        assert line, "mock exited before printing its banner"
        lines.append(line)
    base = json.loads("".join(lines))["url"]
    assert httpx.get(f"{base}/v1/subscribers/u1", timeout=10).status_code == 401
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines()]
    assert records, "the mock logs its start and stop"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), err
