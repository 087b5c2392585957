"""Every command that opens the outbox fails in one line when it cannot (no traceback)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    ["status"],
    ["dlq", "list"],
    ["dlq", "retry", "--all"],
    ["replay", "--since", "1h", "--yes"],
    ["quarantine", "list"],
    ["quarantine", "show", "1"],
    ["quarantine", "requeue", "1"],
    ["quarantine", "discard", "1", "--yes"],
    ["dlq", "discard", "1", "--yes"],
    # the path "1" is stripped like an id by the guard test below; it is never read, since
    # the outbox is opened before any export
    ["backfill", "1"],
    ["serve", "--port", "0"],
]
# Commands that never open the outbox (the guard test below makes every command one or other).
NO_OUTBOX = {"map", "config example", "config check", "mock", "demo", "set-id"}
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/x"  # port 1: refused at once


def _run(argv: list[str], outbox_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RC_CLEVERTAP_OUTBOX_URL": outbox_url,
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "ERR-PROD-001",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "err-secret-passcode",
        "RC_CLEVERTAP_WEBHOOK_AUTHORIZATION": "Bearer err-webhook-secret",
    }
    env.pop("RC_CLEVERTAP_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "integration.app.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
        check=False,
    )


def _assert_one_line(result: subprocess.CompletedProcess[str]) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rc-clevertap: error: outbox unavailable")
    assert "secret" not in result.stderr


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_an_unreachable_postgres_outbox_is_one_line_and_exit_1(
    argv: list[str], tmp_path: Path
) -> None:
    """With PostgreSQL down the command prints one error line, no traceback, and exits 1."""
    _assert_one_line(_run(argv, UNREACHABLE_POSTGRES, tmp_path))


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_missing_sqlite_folder_is_one_line_and_exit_1(argv: list[str], tmp_path: Path) -> None:
    """With the SQLite file's folder missing the command prints one line and exits 1."""
    _assert_one_line(_run(argv, "sqlite:///no-such-folder/outbox.db", tmp_path))


@pytest.mark.parametrize("argv", COMMANDS[:-1], ids=" ".join)
def test_operator_commands_do_not_create_a_missing_outbox(argv: list[str], tmp_path: Path) -> None:
    """status, dlq and replay on a SQLite path that does not exist fail and create no file."""
    result = _run(argv, "sqlite:///mistyped.db", tmp_path)
    _assert_one_line(result)
    assert "run rc-clevertap serve once" in result.stderr
    assert not (tmp_path / "mistyped.db").exists()


def _leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every runnable command of ``parser``, as words ("dlq retry")."""
    leaves: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                leaves |= _leaf_commands(sub, f"{prefix}{name} ") or {f"{prefix}{name}"}
    return leaves


def test_every_command_is_checked_here_or_opens_no_outbox() -> None:
    """A new command is added to COMMANDS above (it opens the outbox: its failure is checked
    to be one line) or to NO_OUTBOX (it never opens one)."""
    from integration.app.cli import build_parser

    checked = {" ".join(w for w in argv if not w.startswith("-") and not w.isdigit())
               for argv in COMMANDS}  # fmt: skip
    checked = {c.replace(" 1h", "") for c in checked}
    unclassified = _leaf_commands(build_parser()) - checked - NO_OUTBOX
    assert not unclassified, f"add to COMMANDS or NO_OUTBOX: {sorted(unclassified)}"
