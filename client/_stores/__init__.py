"""Attribute stores for the syncer: one module per variant."""

from __future__ import annotations

from client._stores.base import AttributeStore, StagedAttribute
from client._stores.memory import MemoryAttributeStore
from client._stores.sqlite import SQLiteAttributeStore

__all__ = ["AttributeStore", "MemoryAttributeStore", "SQLiteAttributeStore", "StagedAttribute"]
