"""What only the SQLite outbox does: its file, pragmas, schema version, group commit and URLs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from integration.outbox import (
    OutboxURLError,
    SQLiteOutbox,
    SQLiteOutboxError,
    open_outbox,
    sqlite_path,
)
from integration.outbox._sqlite_schema import MIGRATIONS, SCHEMA_VERSION


async def test_rows_survive_reopening(tmp_path: Path) -> None:
    """An acknowledged enqueue is in the file for the next process that opens it."""
    path = tmp_path / "o.db"
    async with SQLiteOutbox(path) as first:
        assert await first.enqueue("e1", "PRODUCTION", b"{}", now=1.0)
    async with SQLiteOutbox(path) as second:
        assert (await second.stats()).pending == 1
        assert not await second.enqueue("e1", "PRODUCTION", b"{}", now=2.0)


async def test_file_uses_wal_and_full_sync(tmp_path: Path) -> None:
    """The database runs in WAL mode, and the outbox connection syncs every commit fully."""
    path = tmp_path / "o.db"
    async with SQLiteOutbox(path) as outbox:
        assert outbox._conn is not None
        assert outbox._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_commits_never_checkpoint_the_wal_themselves(tmp_path: Path) -> None:
    """Automatic checkpoints are off on the outbox's connection: no commit pays for one."""
    async with SQLiteOutbox(tmp_path / "o.db") as outbox:
        assert outbox._conn is not None
        assert outbox._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


async def test_the_checkpointer_copies_committed_rows_into_the_database(tmp_path: Path) -> None:
    """A checkpoint copies every committed WAL frame while the outbox stays open."""
    path = tmp_path / "o.db"
    # A long interval: the test runs the checkpoint itself, so the thread never interferes.
    async with SQLiteOutbox(path, checkpoint_interval_s=3600) as outbox:
        await asyncio.gather(
            *(outbox.enqueue(f"e{i}", "PRODUCTION", b"{}" * 500, now=1.0) for i in range(200))
        )
        assert outbox.checkpointer is not None
        busy, frames, copied = outbox.checkpointer.checkpoint()
        assert (busy, copied) == (0, frames)
        assert frames > 0


async def test_closing_stops_the_checkpointer(tmp_path: Path) -> None:
    """close() ends the checkpoint thread; the outbox holds no thread after it."""
    outbox = SQLiteOutbox(tmp_path / "o.db")
    await outbox.open()
    checkpointer = outbox.checkpointer
    assert checkpointer is not None
    await outbox.close()
    assert outbox.checkpointer is None
    assert not checkpointer._thread.is_alive()


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    """A fresh file is stamped with the schema version."""
    path = tmp_path / "o.db"
    async with SQLiteOutbox(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file migrated by a newer release is refused with an upgrade hint."""
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    outbox = SQLiteOutbox(path)
    with pytest.raises(SQLiteOutboxError, match="upgrade"):
        await outbox.open()
    await outbox.close()


async def test_concurrent_enqueues_share_commits(tmp_path: Path) -> None:
    """Two hundred concurrent enqueues are stored in far fewer transactions than rows."""
    async with SQLiteOutbox(tmp_path / "o.db") as outbox:
        results = await asyncio.gather(
            *(outbox.enqueue(f"e{i}", "PRODUCTION", b"{}", now=float(i)) for i in range(200))
        )
        assert all(results)
        assert outbox.commits <= 20
        assert (await outbox.stats()).pending == 200


async def test_group_commit_is_capped(tmp_path: Path) -> None:
    """One transaction carries at most ``group_commit_max`` rows."""
    async with SQLiteOutbox(tmp_path / "o.db", group_commit_max=10) as outbox:
        await asyncio.gather(
            *(outbox.enqueue(f"e{i}", "PRODUCTION", b"{}", now=float(i)) for i in range(50))
        )
        assert outbox.commits >= 5


async def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    """Opening a file in a folder that does not exist names the folder."""
    outbox = SQLiteOutbox(tmp_path / "nope" / "o.db")
    with pytest.raises(SQLiteOutboxError, match="missing"):
        await outbox.open()


async def test_unopened_outbox_refuses_work(tmp_path: Path) -> None:
    """Calls before open fail and say to call open()."""
    outbox = SQLiteOutbox(tmp_path / "o.db")
    with pytest.raises(SQLiteOutboxError, match="open"):
        await outbox.stats()


def test_bad_options_are_refused(tmp_path: Path) -> None:
    """A quarantine cap below one is refused at construction."""
    with pytest.raises(SQLiteOutboxError, match="quarantine_cap"):
        SQLiteOutbox(tmp_path / "o.db", quarantine_cap=0)


def test_a_non_positive_checkpoint_interval_is_refused(tmp_path: Path) -> None:
    """A checkpoint interval of zero is refused at construction, naming the option."""
    with pytest.raises(SQLiteOutboxError, match="checkpoint_interval_s"):
        SQLiteOutbox(tmp_path / "o.db", checkpoint_interval_s=0)


@pytest.mark.parametrize(
    ("url", "path"),
    [("sqlite:///rc.db", "rc.db"), ("sqlite:////var/lib/rc.db", "/var/lib/rc.db")],
)
def test_sqlite_urls_name_relative_and_absolute_files(url: str, path: str) -> None:
    """Three slashes name a relative path, four an absolute one."""
    assert sqlite_path(url) == path


def test_open_outbox_picks_sqlite(tmp_path: Path) -> None:
    """A sqlite:/// URL gives a SQLiteOutbox on that file."""
    outbox = open_outbox(f"sqlite:///{tmp_path}/o.db")
    assert isinstance(outbox, SQLiteOutbox)
    assert outbox.path == tmp_path / "o.db"


@pytest.mark.parametrize("url", ["mysql://u:hunter2@h/db", "sqlite:///", "sqlite://rel.db"])
def test_open_outbox_refuses_unknown_urls_without_echoing_them(url: str) -> None:
    """Unknown schemes and malformed SQLite URLs are refused, never quoting the URL."""
    with pytest.raises(OutboxURLError) as info:
        open_outbox(url)
    assert "hunter2" not in str(info.value)


def _version_1_file(path: Path) -> None:
    """A file as release 1 of the schema left it: two live rows, one pruned id, one dead."""
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        rows = [
            (1, "e1", "PRODUCTION", b'{"n": 1}', 10.0, "pending", 10.0, 0, None),
            (2, "e2", "SANDBOX", b'{"n": 2}', 20.0, "dead", None, 3, "clevertap 513: x"),
            (5, "e5", "PRODUCTION", b'{"n": 5}', 50.0, "pending", 70.0, 1, None),
        ]
        conn.executemany(
            "INSERT INTO events (row_id, event_id, environment, body, received_at, state,"
            " due_at, attempts, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute(
            "INSERT INTO events (event_id, environment, body, received_at)"
            " VALUES ('gone', 'PRODUCTION', x'00', 60.0)"
        )
        conn.execute("DELETE FROM events WHERE event_id = 'gone'")  # pruned: id 6 is used


async def test_a_version_1_file_is_migrated_with_its_rows(tmp_path: Path) -> None:
    """Opening a file of schema version 1 keeps every row, body and state, queues rows since
    they were received, and never hands out the id of a pruned row again."""
    path = tmp_path / "o.db"
    _version_1_file(path)
    async with SQLiteOutbox(path) as outbox:
        lease = await outbox.lease("PRODUCTION", 10, now=100.0, lease_s=30.0)
        assert lease is not None
        assert [
            (e.row_id, e.body, e.received_at, e.queued_at, e.attempts) for e in lease.events
        ] == [
            (1, b'{"n": 1}', 10.0, 10.0, 0),
            (5, b'{"n": 5}', 50.0, 50.0, 1),
        ]
        [dead] = await outbox.dead_letters()
        assert (dead.event_id, dead.reason, dead.attempts) == ("e2", "clevertap 513: x", 3)
        assert await outbox.enqueue("e7", "PRODUCTION", b"{}", now=110.0)
        again = await outbox.lease("PRODUCTION", 10, now=120.0, lease_s=30.0)
        assert again is not None and [e.row_id for e in again.events] == [7]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_pruning_a_row_deletes_its_body(tmp_path: Path) -> None:
    """A pruned row's body goes with it: the file does not keep bodies of rows it dropped."""
    path = tmp_path / "o.db"
    async with SQLiteOutbox(path) as outbox:
        assert await outbox.enqueue("e1", "PRODUCTION", b"{}", now=1.0)
        lease = await outbox.lease("PRODUCTION", 1, now=2.0, lease_s=30.0)
        assert lease is not None
        assert await outbox.settle(lease, delivered=[lease.events[0].row_id], now=3.0) == 1
        assert await outbox.prune(delivered_before=4.0) == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM event_bodies").fetchone()[0] == 0


async def test_version_9_makes_settled_at_say_which_rows_wait(tmp_path: Path) -> None:
    """Schema 9 selects waiting rows by settled_at IS NULL: a file of version 8 whose pending
    row still carries a settled_at, and whose dead row has none, is put right on opening, so
    the pending row is leased and the dead one is not."""
    path = tmp_path / "o.db"
    _version_1_file(path)
    with sqlite3.connect(path) as conn:
        for statements in MIGRATIONS[1:8]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 8")
        conn.execute("UPDATE events SET settled_at = 15.0 WHERE event_id = 'e1'")
    async with SQLiteOutbox(path) as outbox:
        lease = await outbox.lease("SANDBOX", 10, now=100.0, lease_s=30.0)
        assert lease is None  # e2 is dead
        lease = await outbox.lease("PRODUCTION", 10, now=100.0, lease_s=30.0)
        assert lease is not None and [e.event_id for e in lease.events] == ["e1", "e5"]
        assert (await outbox.stats()).dead == 1
