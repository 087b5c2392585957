"""The contract of an attribute store: staged values per user, and which are synced.

A row is ``(app_user_id, key) -> (value, set_time_ms, synced)``, as the SDKs keep it
(reference §3.2).  Its life::

    stage(v)  --> unsynced (set_time_ms = now)  --sync() ok-->  synced
        ^              |  stage(same v): no-op          |
        |              +--- 5xx / 404 / no response ----+ (stays unsynced, resent next sync)
        +-------------------- stage(new v) <------------+

``value`` ``None`` is a staged deletion.  ``mark_synced`` marks a row only while its value
still equals what was sent, so a value staged during the request stays unsynced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AttributeStore", "StagedAttribute"]


@dataclass(frozen=True, slots=True)
class StagedAttribute:
    """A staged value (``None`` deletes) and when it was set, in epoch milliseconds."""

    value: str | None
    set_time_ms: int


class AttributeStore(Protocol):
    """Where an attribute syncer keeps staged attributes; safe to call from several threads."""

    #: Whether calls may block on disk (the async syncer then runs them in a thread).
    blocking: bool

    def stage(
        self, app_user_id: str, values: Mapping[str, str | None], set_time_ms: int
    ) -> list[str]:
        """Stage values as unsynced, skipping any equal to the stored one; return changed keys."""
        ...

    def unsynced(self) -> dict[str, dict[str, StagedAttribute]]:
        """Every user's unsynced attributes."""
        ...

    def mark_synced(self, app_user_id: str, sent: Mapping[str, StagedAttribute]) -> None:
        """Mark sent attributes synced where the stored value still equals the sent one."""
        ...

    def prune_synced(self, app_user_id: str | None = None) -> int:
        """Forget synced rows (of one user, or all); return how many were dropped."""
        ...

    def close(self) -> None:
        """Release resources; the store is unusable afterwards."""
        ...
