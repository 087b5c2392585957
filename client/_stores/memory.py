"""An attribute store in a dict: fast, and lost when the process ends."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from client._stores.base import StagedAttribute

__all__ = ["MemoryAttributeStore"]


class MemoryAttributeStore:
    """Keeps staged attributes in memory; pass a ``path`` to the syncer to survive restarts."""

    blocking = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # user -> key -> (staged value, synced?)
        self._rows: dict[str, dict[str, tuple[StagedAttribute, bool]]] = {}

    def stage(
        self, app_user_id: str, values: Mapping[str, str | None], set_time_ms: int
    ) -> list[str]:
        changed: list[str] = []
        with self._lock:
            rows = self._rows.setdefault(app_user_id, {})
            for key, value in values.items():
                current = rows.get(key)
                if current is not None and current[0].value == value:
                    continue
                rows[key] = (StagedAttribute(value, set_time_ms), False)
                changed.append(key)
        return changed

    def unsynced(self) -> dict[str, dict[str, StagedAttribute]]:
        with self._lock:
            pending = {
                user: {key: staged for key, (staged, synced) in rows.items() if not synced}
                for user, rows in self._rows.items()
            }
        return {user: rows for user, rows in pending.items() if rows}

    def mark_synced(self, app_user_id: str, sent: Mapping[str, StagedAttribute]) -> None:
        with self._lock:
            rows = self._rows.get(app_user_id, {})
            for key, staged in sent.items():
                current = rows.get(key)
                if current is not None and current[0].value == staged.value:
                    rows[key] = (current[0], True)

    def prune_synced(self, app_user_id: str | None = None) -> int:
        dropped = 0
        with self._lock:
            users = list(self._rows) if app_user_id is None else [app_user_id]
            for user in users:
                rows = self._rows.get(user, {})
                for key in [k for k, (_, synced) in rows.items() if synced]:
                    del rows[key]
                    dropped += 1
                if not rows:
                    self._rows.pop(user, None)
        return dropped

    def close(self) -> None:
        return None
