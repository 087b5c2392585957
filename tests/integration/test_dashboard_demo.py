"""``rc-clevertap demo`` and the dashboard: its URL printed, and served until Ctrl-C with --keep."""

from __future__ import annotations

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
