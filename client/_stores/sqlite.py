"""An attribute store in a SQLite file, so staged attributes survive a restart.

WAL journal with ``synchronous=FULL``: a staged value is on disk (fsynced) when ``stage``
returns, and a crash loses nothing that was acknowledged.  Several processes may share the
file; each statement is one transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence

from client._stores.base import StagedAttribute

__all__ = ["SQLiteAttributeStore"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS staged_attributes (
    app_user_id TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT,               -- NULL: a staged deletion
    set_time_ms INTEGER NOT NULL,
    synced      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_user_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS staged_attributes_unsynced
    ON staged_attributes (app_user_id) WHERE synced = 0;
"""

# The upsert is skipped (0 rows changed) when the stored value equals the new one, synced or
# not: setting the value already stored is a no-op, as in the SDKs (reference §3.2).
_STAGE = """
INSERT INTO staged_attributes (app_user_id, key, value, set_time_ms, synced)
VALUES (?, ?, ?, ?, 0)
ON CONFLICT (app_user_id, key) DO UPDATE
    SET value = excluded.value, set_time_ms = excluded.set_time_ms, synced = 0
    WHERE staged_attributes.value IS NOT excluded.value
"""


class SQLiteAttributeStore:
    """Keeps staged attributes in a SQLite file (created if missing).

    ```python
    store = SQLiteAttributeStore("attributes.sqlite3")
    ```
    """

    blocking = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise sqlite3.OperationalError(
                f"Cannot open the attribute store at {self.path!r}: {exc}"
            ) from exc
        self._lock = threading.Lock()
        self._conn = conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"{self.path!r} refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.OperationalError(
                    f"{self.path!r} has schema version {version}; this code knows {SCHEMA_VERSION}"
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise

    def __repr__(self) -> str:
        return f"<SQLiteAttributeStore path={self.path!r}>"

    def stage(
        self, app_user_id: str, values: Mapping[str, str | None], set_time_ms: int
    ) -> list[str]:
        changed: list[str] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for key, value in values.items():
                    cursor = self._conn.execute(_STAGE, (app_user_id, key, value, set_time_ms))
                    if cursor.rowcount:
                        changed.append(key)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return changed

    def stage_many(
        self, rows: Sequence[tuple[str, Mapping[str, str | None], int]]
    ) -> list[list[str]]:
        """:meth:`stage` for many users in one transaction (one fsync): the bulk sync's path."""
        changed: list[list[str]] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for app_user_id, values, set_time_ms in rows:
                    keys = []
                    for key, value in values.items():
                        cursor = self._conn.execute(_STAGE, (app_user_id, key, value, set_time_ms))
                        if cursor.rowcount:
                            keys.append(key)
                    changed.append(keys)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return changed

    def mark_synced_many(self, sent: Sequence[tuple[str, Mapping[str, StagedAttribute]]]) -> None:
        """:meth:`mark_synced` for many users in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "UPDATE staged_attributes SET synced = 1 "
                    "WHERE app_user_id = ? AND key = ? AND value IS ? AND synced = 0",
                    [
                        (app_user_id, key, staged.value)
                        for app_user_id, attributes in sent
                        for key, staged in attributes.items()
                    ],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def unsynced(self) -> dict[str, dict[str, StagedAttribute]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT app_user_id, key, value, set_time_ms FROM staged_attributes "
                "WHERE synced = 0 ORDER BY app_user_id, key"
            ).fetchall()
        pending: dict[str, dict[str, StagedAttribute]] = {}
        for user, key, value, set_time_ms in rows:
            pending.setdefault(user, {})[key] = StagedAttribute(value, set_time_ms)
        return pending

    def mark_synced(self, app_user_id: str, sent: Mapping[str, StagedAttribute]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "UPDATE staged_attributes SET synced = 1 "
                    "WHERE app_user_id = ? AND key = ? AND value IS ? AND synced = 0",
                    [(app_user_id, key, staged.value) for key, staged in sent.items()],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def prune_synced(self, app_user_id: str | None = None) -> int:
        with self._lock:
            if app_user_id is None:
                cursor = self._conn.execute("DELETE FROM staged_attributes WHERE synced = 1")
            else:
                cursor = self._conn.execute(
                    "DELETE FROM staged_attributes WHERE synced = 1 AND app_user_id = ?",
                    (app_user_id,),
                )
            return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
