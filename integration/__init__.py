"""The forwarding engine: RevenueCat webhooks in, CleverTap Upload API events out."""

from __future__ import annotations

__all__: list[str] = []
