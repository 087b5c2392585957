"""Operator commands that change dead letters and quarantined bodies, invoked as a user would."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from integration.app.cli import main
from integration.outbox import Outbox, open_outbox

T = TypeVar("T")

CONFIG = """
[clevertap]
account_id = "CLI-PROD-001"
passcode = "cli-secret-passcode"
"""
EVENT = {
    "api_version": "1.0",
    "event": {
        "id": "EVT-Q-1",
        "type": "RENEWAL",
        "app_user_id": "user-q",
        "environment": "PRODUCTION",
        "event_timestamp_ms": 1_700_000_000_000,
        "product_id": "monthly",
        "price": 4.99,
        "currency": "USD",
        "transaction_id": "txn-q-1",
    },
}


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


class Box:
    """An outbox file and the configuration naming it."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'outbox.db'}"
        self.config = tmp_path / "config.toml"
        self.config.write_text(CONFIG + f'\n[outbox]\nurl = "{self.url}"\n')

    def do(self, work: Callable[[Outbox], Awaitable[T]]) -> T:
        async def run() -> T:
            async with open_outbox(self.url) as outbox:
                return await work(outbox)

        return asyncio.run(run())

    def quarantine(self, body: bytes) -> int:
        async def work(outbox: Outbox) -> int:
            await outbox.quarantine(body, "refused by an older release", now=1.0)
            return (await outbox.quarantined(limit=1))[0].quarantine_id

        return self.do(work)

    def counts(self) -> tuple[int, int, int]:
        """(pending, dead, quarantined)"""

        async def work(outbox: Outbox) -> tuple[int, int, int]:
            stats = await outbox.stats()
            return stats.pending, stats.dead, stats.quarantined

        return self.do(work)

    def dead_letter(self, event_id: str) -> int:
        async def work(outbox: Outbox) -> int:
            await outbox.enqueue(event_id, "PRODUCTION", b"{}", now=1.0)
            lease = await outbox.lease("PRODUCTION", 1, now=2.0, lease_s=30)
            assert lease is not None
            row = lease.events[0].row_id
            await outbox.settle(lease, dead_tried=[(row, "clevertap 513: restricted")], now=3.0)
            return row

        return self.do(work)


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def test_quarantine_requeue_queues_a_body_that_is_now_a_valid_event(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box: Box
) -> None:
    """quarantine requeue ID moves a body that parses into the queue and out of quarantine."""
    qid = box.quarantine(json.dumps(EVENT).encode())
    argv = ["quarantine", "requeue", str(qid), "--json", "--config", str(box.config)]
    assert _run(monkeypatch, argv) == 0
    assert json.loads(capsys.readouterr().out) == {"requeued": 1}
    assert box.counts() == (1, 0, 0)


def test_quarantine_requeue_of_a_body_still_invalid_exits_1_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box: Box
) -> None:
    """With one valid and one invalid body named, requeue exits 1 naming the invalid one and
    both stay quarantined."""
    good = box.quarantine(json.dumps(EVENT).encode())
    bad = box.quarantine(b"not json")
    argv = ["quarantine", "requeue", str(good), str(bad), "--config", str(box.config)]
    assert _run(monkeypatch, argv) == 1
    err = capsys.readouterr().err
    assert f"quarantined body {bad} is still not a RevenueCat event" in err
    assert "Traceback" not in err
    assert box.counts() == (0, 0, 2)


def test_quarantine_requeue_of_an_unknown_id_exits_1_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box: Box
) -> None:
    """An id that names no quarantined body is an error naming it."""
    box.quarantine(b"x")
    assert _run(monkeypatch, ["quarantine", "requeue", "4242", "--config", str(box.config)]) == 1
    assert "no quarantined body with id 4242" in capsys.readouterr().err


def test_quarantine_discard_off_a_terminal_needs_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box: Box
) -> None:
    """Without --yes and no terminal to ask on, discard exits 2 and deletes nothing; with
    --yes it deletes the body."""
    qid = box.quarantine(b"x")
    argv = ["quarantine", "discard", str(qid), "--config", str(box.config)]
    assert _run(monkeypatch, argv) == 2
    assert "--yes" in capsys.readouterr().err
    assert box.counts() == (0, 0, 1)
    assert _run(monkeypatch, [*argv, "--yes"]) == 0
    assert box.counts() == (0, 0, 0)


def test_quarantine_show_of_an_unknown_id_exits_1_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box: Box
) -> None:
    """quarantine show 77 with no such body exits 1 with one line naming 77."""
    box.quarantine(b"x")
    assert _run(monkeypatch, ["quarantine", "show", "77", "--config", str(box.config)]) == 1
    err = capsys.readouterr().err
    assert "no quarantined body with id 77" in err
    assert len(err.strip().splitlines()) == 1


def test_dlq_discard_by_event_id_deletes_that_dead_letter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box: Box
) -> None:
    """dlq discard EVENT_ID --yes deletes that dead letter only."""
    box.dead_letter("dead-1")
    box.dead_letter("dead-2")
    argv = ["dlq", "discard", "dead-1", "--yes", "--json", "--config", str(box.config)]
    assert _run(monkeypatch, argv) == 0
    assert json.loads(capsys.readouterr().out) == {"discarded": 1}
    assert box.counts() == (0, 1, 0)


def test_dlq_discard_of_an_unknown_id_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box: Box
) -> None:
    """dlq discard naming one dead letter and one unknown id exits 1 and deletes neither."""
    row = box.dead_letter("dead-1")
    argv = ["dlq", "discard", str(row), "nope", "--yes", "--config", str(box.config)]
    assert _run(monkeypatch, argv) == 1
    assert "no dead letter with id nope; nothing was discarded" in capsys.readouterr().err
    assert box.counts() == (0, 1, 0)
