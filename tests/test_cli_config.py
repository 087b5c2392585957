"""Configuring the command line: environment only, what each command asks for, and the
reference configuration it prints."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from integration.config import example_config
from integration.outbox import open_outbox

CLI = [sys.executable, "-m", "integration.app.cli"]


def _env(**values: str) -> dict[str, str]:
    """The test's environment without any RC_CLEVERTAP_* variable, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RC_CLEVERTAP_")}
    return env | values


def _cli(*argv: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def _existing_outbox(path: Path) -> str:
    """The URL of a SQLite outbox created at ``path``, as ``serve`` would leave it."""
    url = f"sqlite:///{path}"

    async def create() -> None:
        outbox = open_outbox(url)
        await outbox.open()
        await outbox.close()

    asyncio.run(create())
    return url


def test_version_is_the_installed_distribution() -> None:
    """`--version` prints the version from the installed distribution's metadata."""
    result = _cli("--version", env=_env())
    assert result.returncode == 0
    assert result.stdout.strip() == f"rc-clevertap {version('rc-clevertap')}"


def test_config_example_prints_the_shipped_reference() -> None:
    """`config example` prints the package's commented reference configuration verbatim."""
    result = _cli("config", "example", env=_env())
    assert result.returncode == 0
    assert result.stdout == example_config()
    assert "[dispatcher]" in result.stdout and "RC_CLEVERTAP_CONFIG" in result.stdout


def test_status_runs_on_the_environment_alone(tmp_path: Path) -> None:
    """`status` with only RC_CLEVERTAP_OUTBOX_URL set (no file, no CleverTap settings) works."""
    env = _env(RC_CLEVERTAP_OUTBOX_URL=_existing_outbox(tmp_path / "outbox.db"))
    result = _cli("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pending"] == 0


@pytest.mark.parametrize("argv", [["dlq", "list"], ["dlq", "retry", "--all"]])
def test_outbox_commands_need_no_passcode(tmp_path: Path, argv: list[str]) -> None:
    """`dlq list` and `dlq retry` run without CleverTap's account or passcode."""
    env = _env(RC_CLEVERTAP_OUTBOX_URL=_existing_outbox(tmp_path / "outbox.db"))
    result = _cli(*argv, "--json", env=env)
    assert result.returncode == 0, result.stderr


def test_map_needs_the_account_id_but_no_passcode() -> None:
    """`map` routes by account id from the environment without any passcode."""
    fixture = Path(__file__).parent / "integration" / "fixtures" / "webhooks" / "renewal.json"
    body = json.dumps(json.loads(fixture.read_text())["webhook"])
    env = _env(RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID="ENV-ONLY-1")
    result = _cli("map", env=env, stdin=body)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["account_id"] == "ENV-ONLY-1"


def test_serve_still_requires_the_credentials() -> None:
    """`config check` (what serve loads) names both missing keys and exits 2."""
    result = _cli("config", "check", env=_env())
    assert result.returncode == 2
    assert "clevertap.account_id: is required" in result.stderr
    assert "clevertap.passcode: is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_reports_every_problem_on_one_line(tmp_path: Path) -> None:
    """`config check` reports every invalid key in one line, naming variables, no secret."""
    env = _env(
        RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID="A",
        RC_CLEVERTAP_CLEVERTAP_PASSCODE="never-shown-passcode",
        RC_CLEVERTAP_DISPATCHER_BATCH_SIZE="5000",
        RC_CLEVERTAP_REVENUE_MODE="net",
    )
    result = _cli("config", "check", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "RC_CLEVERTAP_DISPATCHER_BATCH_SIZE" in lines[0]
    assert "RC_CLEVERTAP_REVENUE_MODE" in lines[0]
    assert "never-shown-passcode" not in result.stderr


def test_config_check_accepts_a_valid_environment() -> None:
    """`config check` exits 0 when the environment holds a complete configuration."""
    env = _env(RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID="A", RC_CLEVERTAP_CLEVERTAP_PASSCODE="p")
    result = _cli("config", "check", env=env)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
