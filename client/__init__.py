"""PLACEHOLDER: the RevenueCat client is being built (issue 2)."""

from __future__ import annotations

__all__: list[str] = []
