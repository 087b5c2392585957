"""The SQLite store: staged attributes and the no-op memory survive a restart."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
from rc_helpers import API_KEY, Script, Sleeps

from client import CLEVERTAP_ID, AttributeSyncer, RevenueCat, SQLiteAttributeStore


def _client(script: Script, http: httpx.Client) -> RevenueCat:
    return RevenueCat(api_key=API_KEY, http_client=http, sleep=Sleeps(), max_retries=0)


def test_unsynced_attributes_survive_a_restart(tmp_path: Path) -> None:
    """Attributes that failed to sync are sent, with their original set times, after a restart."""
    path = tmp_path / "attrs.sqlite3"
    down = Script(httpx.Response(503))
    with (
        httpx.Client(transport=httpx.MockTransport(down)) as http,
        AttributeSyncer(_client(down, http), path=path, clock=lambda: 1000.0) as syncer,
    ):
        syncer.set_clevertap_id("u1", "ct-1")
    assert len(down.requests) == 1  # the flush on close was tried and failed

    up = Script(httpx.Response(200, json={}))
    with httpx.Client(transport=httpx.MockTransport(up)) as http:
        syncer = AttributeSyncer(_client(up, http), path=path, clock=lambda: 9999.0)
        assert syncer.pending()["u1"][CLEVERTAP_ID].set_time_ms == 1_000_000
        report = syncer.sync()
        syncer.close()
    assert len(report.synced) == 1
    sent = json.loads(up.requests[0].content)["attributes"]
    assert sent == {CLEVERTAP_ID: {"value": "ct-1", "updated_at_ms": 1_000_000}}


def test_synced_values_survive_a_restart(tmp_path: Path) -> None:
    """After a restart, re-setting an already synced value is still a no-op."""
    path = tmp_path / "attrs.sqlite3"
    script = Script(httpx.Response(200, json={}))
    with httpx.Client(transport=httpx.MockTransport(script)) as http:
        with AttributeSyncer(_client(script, http), path=path) as syncer:
            syncer.set_clevertap_id("u1", "ct-1")
        with AttributeSyncer(_client(script, http), path=path) as syncer:
            assert syncer.set_clevertap_id("u1", "ct-1") == []
    assert len(script.requests) == 1


def test_the_store_uses_wal_and_full_sync(tmp_path: Path) -> None:
    """The file is in WAL mode, and each connection asks for synchronous=FULL."""
    store = SQLiteAttributeStore(tmp_path / "attrs.sqlite3")
    try:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "attrs.sqlite3") as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_prune_forgets_only_synced_rows(tmp_path: Path) -> None:
    """prune_synced drops synced values and keeps unsynced ones."""
    store = SQLiteAttributeStore(tmp_path / "attrs.sqlite3")
    try:
        store.stage("u1", {"a": "1", "b": "2"}, 5)
        store.mark_synced("u1", {"a": store.unsynced()["u1"]["a"]})
        assert store.prune_synced() == 1
        assert list(store.unsynced()["u1"]) == ["b"]
        assert store.stage("u1", {"a": "1"}, 6) == ["a"]
    finally:
        store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer schema version is not silently reused."""
    path = tmp_path / "attrs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()
    try:
        SQLiteAttributeStore(path)
    except sqlite3.OperationalError as exc:
        assert "schema version 99" in str(exc)
    else:
        raise AssertionError("expected the newer schema to be refused")
