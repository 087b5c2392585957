"""The dashboard from the command line: ``serve`` with and without ``[admin] token``, and
``demo`` printing its URL and, with ``--keep``, serving it until Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

SERVING = re.compile(r"serving the dashboard at (http://127\.0\.0\.1:\d+/ui) until Ctrl-C")
DASHBOARD = re.compile(r"^dashboard: (http://127\.0\.0\.1:\d+/ui) \(admin token (\S+)\)$")


def test_demo_keep_serves_the_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    """demo --keep prints the dashboard's URL and token, serves it after the report, and exits
    0 on SIGINT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "integration.app.cli", "demo", "--users", "5", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    printed: list[str] = []
    while (serving := SERVING.search(line := process.stderr.readline())) is None:
        assert line, f"the demo ended without serving: {printed}"
        printed.append(line.strip())
    try:
        [(url, token)] = [m.groups() for m in map(DASHBOARD.match, printed) if m]
        assert serving.group(1) == url
        with httpx.Client(timeout=10) as client:
            login = client.get(url)
            assert login.status_code == 200 and 'action="/ui/login"' in login.text
            logged_in = client.post(f"{url}/login", data={"token": token})
            assert logged_in.status_code == 303
            overview = client.get(f"{url}/api/overview")
            assert overview.status_code == 200 and overview.json()["delivered"] > 0
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "verification passed" in out
    assert "Traceback" not in err


def _serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    """``serve --port 0`` on a SQLite outbox; the process and its base URL."""
    variables = {
        **os.environ,
        "RC_CLEVERTAP_OUTBOX_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "DASH-PROD-001",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "dash-passcode",
        "RC_CLEVERTAP_CLEVERTAP_BASE_URL": "http://127.0.0.1:9",  # nothing listens
        "RC_CLEVERTAP_WEBHOOK_AUTHORIZATION": "Bearer dash-webhook",
        **env,
    }
    variables.pop("RC_CLEVERTAP_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "integration.app.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=variables,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # bounded by the process: it prints this or exits
    match = re.search(r"listening on (http://\S+?):? ", line)
    assert match, line
    return process, match.group(1)


def test_serve_answers_ui_with_the_login_page_only_with_an_admin_token(tmp_path: Path) -> None:
    """serve with RC_CLEVERTAP_ADMIN_TOKEN shows the login page at /ui; without it, 404."""
    token = "serve-admin-token-0123456789"
    for env, expected in (({}, 404), ({"RC_CLEVERTAP_ADMIN_TOKEN": token}, 200)):
        process, base = _serve(tmp_path, **env)
        try:
            response = httpx.get(f"{base}/ui", timeout=10)
            assert response.status_code == expected, env
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert token not in err
