"""The chaos harness, small: real processes, one SIGKILL, a faulty or hostile CleverTap, a fuzzed
and attacked receiver.

These run ``benchmarks/chaos.py`` as a user would and read its ``--json`` output; each is
bounded by a subprocess timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHAOS = REPO / "benchmarks" / "chaos.py"


def _chaos(*args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(CHAOS), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_no_acknowledged_event_is_lost_across_a_sigkill_under_faults() -> None:
    """Every webhook acknowledged with a 200 reaches CleverTap although the engine was killed."""
    result = _chaos("--mode", "kill", "--events", "300", "--kills", "1", "--seed", "11")
    assert result["kills"] == 1
    assert result["unacknowledged"] == 0
    assert result["delivered_unique"] == result["acknowledged"] - result["skipped_by_mapping"]
    assert result["lost"] == 0


@pytest.fixture(scope="module")
def fuzzed() -> dict[str, Any]:
    """One fuzz run (150 bad inputs) shared by the tests that read its figures."""
    return _chaos(
        "--mode", "fuzz", "--fuzz-inputs", "150", "--seed", "11", "--settle-timeout", "30"
    )


def test_fuzzed_bodies_get_no_server_error_and_the_engine_stays_up(
    fuzzed: dict[str, Any],
) -> None:
    """Malformed, truncated, oversized and mistyped bodies get 4xx answers, never a 5xx."""
    result = fuzzed
    assert result["bad_inputs"] == 150
    assert result["server_errors"] == 0
    assert result["engine_stayed_up"] is True


def test_every_fuzzed_body_the_receiver_accepted_leaves_the_queue(
    fuzzed: dict[str, Any],
) -> None:
    """What the receiver acknowledged among fuzzed bodies is delivered, skipped or dead-lettered:
    none stays queued for ever (an unpaired surrogate once stalled its whole batch)."""
    result = fuzzed
    assert result["statuses"].get("200", 0) > 0  # some fuzzed bodies were valid events
    assert result["accepted_settled"] is True


def test_a_hostile_clevertap_and_receiver_attacks_lose_nothing() -> None:
    """Drips, contradicting 200s, unlocatable failures and redirects on the CleverTap side,
    huge headers and silent connections on the receiver's: every acknowledged event arrives,
    and the server refused or hung up on every attacker."""
    result = _chaos("--mode", "hostile", "--quick", "--events", "300", "--seed", "11")
    assert result["unacknowledged"] == 0
    assert result["lost"] == 0
    assert result["dead_lettered"] == 0
    answers = result["huge_header_answers"]
    assert set(answers) <= {"431", "closed"} and sum(answers.values()) == 8
    assert result["silent_closed_by_server"] == result["silent_connections"] == 200
