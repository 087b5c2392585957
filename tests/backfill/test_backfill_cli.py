"""``rc-clevertap backfill``, invoked as an operator does: output, exit codes, interruption."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from exportfiles import DAY, T0, csv_text, row, write_export

from integration.outbox import SQLiteOutbox

ENV = {
    "RC_CLEVERTAP_OUTBOX_URL": "sqlite:///outbox.db",
    "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "BF-PROD-001",
    "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "bf-secret-passcode",
}


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "integration.app.cli", "backfill", *argv]


def env() -> dict[str, str]:
    environment = {**os.environ, **ENV}
    environment.pop("RC_CLEVERTAP_CONFIG", None)
    return environment


def run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*argv), capture_output=True, text=True, env=env(), cwd=cwd, timeout=60, check=False
    )


def create_outbox(cwd: Path) -> None:
    async def create() -> None:
        outbox = SQLiteOutbox(cwd / "outbox.db")
        await outbox.open()
        await outbox.close()

    asyncio.run(create())


def test_a_dry_run_prints_what_would_be_sent_and_creates_nothing(tmp_path: Path) -> None:
    """--dry-run --json: counts by type and route, revenue; no outbox file appears.

    The fixture's subscriptions (2023) have ended by now: each also expires."""
    write_export(tmp_path / "t.csv.gz", [row("t1"), row("t2", refunded_at=T0 + DAY)])
    result = run(tmp_path, "t.csv.gz", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["enqueued"] == 0
    assert report["by_type"] == {"CANCELLATION": 1, "EXPIRATION": 2, "INITIAL_PURCHASE": 2}
    assert report["by_route"] == {"BF-PROD-001": 5}
    assert report["revenue_by_currency"] == {"EUR": "19.98"}
    assert not (tmp_path / "outbox.db").exists()


def test_a_second_run_enqueues_nothing_and_says_so(tmp_path: Path) -> None:
    """The table of a re-run shows every event already in the outbox, none enqueued."""
    create_outbox(tmp_path)
    write_export(tmp_path / "t.csv.gz", [row("t1"), row("t2")])
    first = run(tmp_path, "t.csv.gz", "--json")
    assert json.loads(first.stdout)["enqueued"] == 4, first.stderr  # 2 purchases, 2 expirations
    second = run(tmp_path, "t.csv.gz")
    assert second.returncode == 0
    assert re.search(r"already in the outbox\s+│\s+4\s", second.stdout), second.stdout
    assert re.search(r"enqueued\s+│\s+0\s", second.stdout)
    assert "secret" not in second.stdout + second.stderr


def test_a_file_that_is_not_an_export_is_exit_2_naming_what_is_missing(tmp_path: Path) -> None:
    """A comma-separated file: one line naming the missing columns, exit 2, nothing written."""
    create_outbox(tmp_path)
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    result = run(tmp_path, "t.csv")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("rc-clevertap: error: t.csv is not a RevenueCat transactions export")
    assert "missing columns rc_original_app_user_id" in line


def test_without_an_outbox_a_backfill_refuses_and_creates_none(tmp_path: Path) -> None:
    """Enqueueing needs the outbox serve created: one line, exit 1, no new file."""
    write_export(tmp_path / "t.csv.gz", [row("t1")])
    result = run(tmp_path, "t.csv.gz")
    assert result.returncode == 1
    assert "run rc-clevertap serve once" in result.stderr
    assert not (tmp_path / "outbox.db").exists()


def test_a_truncated_file_is_exit_1_and_says_a_rerun_resumes(tmp_path: Path) -> None:
    """A gzip stream cut short: one line naming the file and how to resume, exit 1."""
    create_outbox(tmp_path)
    whole = gzip.compress(csv_text([row(f"t{i}") for i in range(3000)]).encode())
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    result = run(tmp_path, "cut.csv.gz")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    *progress, line = result.stderr.splitlines()  # progress lines: stderr is no terminal
    assert all(p.startswith("backfill: ") for p in progress)
    assert "cut.csv.gz ends early" in line and "run the same command again to resume" in line


def test_an_interrupted_backfill_exits_130_within_5_s_and_resumes(tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130 in under 5 s; the next run enqueues only the remainder."""
    create_outbox(tmp_path)
    rows = 20_000
    write_export(tmp_path / "big.csv.gz", [row(f"t{i}") for i in range(rows)])
    process = subprocess.Popen(
        command("big.csv.gz"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env(), cwd=tmp_path,
    )  # fmt: skip
    assert process.stderr is not None
    # Without a terminal, progress comes as lines; the first follows the first durable batch.
    line = process.stderr.readline()
    assert line.startswith("backfill: "), line
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5.0
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("rc-clevertap: error: interrupted")
    assert "Traceback" not in err
    resumed = run(tmp_path, "big.csv.gz", "--json")
    report = json.loads(resumed.stdout)
    assert report["already_stored"] > 0
    assert report["already_stored"] + report["enqueued"] == 2 * rows  # purchases, expirations


def test_status_shows_backfilled_rows_apart(tmp_path: Path) -> None:
    """status --json counts backfilled rows by state beside the totals."""
    create_outbox(tmp_path)
    write_export(tmp_path / "t.csv.gz", [row("t1", effective_end_time=None, end_time=None)])
    assert run(tmp_path, "t.csv.gz").returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "integration.app.cli", "status", "--json"],
        capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    status = json.loads(result.stdout)
    assert (status["pending"], status["backfilled"]) == (1, {"pending": 1})


def test_an_unknown_route_is_exit_2_naming_the_known_ones(tmp_path: Path) -> None:
    """--route with a name the configuration lacks exits 2 and lists the routes it has."""
    create_outbox(tmp_path)
    write_export(tmp_path / "t.csv.gz", [row("t1")])
    result = run(tmp_path, "t.csv.gz", "--route", "ios")
    assert result.returncode == 2
    assert "--route: unknown route 'ios'; known: default" in result.stderr
