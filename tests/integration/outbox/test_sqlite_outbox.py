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


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    """A fresh file is stamped with the schema version."""
    path = tmp_path / "o.db"
    async with SQLiteOutbox(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


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
