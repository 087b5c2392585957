"""PLACEHOLDER: the revenuecat mock is being built; this stub keeps imports working."""

from __future__ import annotations

from starlette.routing import BaseRoute


class RevenueCatBackend:
    """Placeholder backend: serves nothing yet."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def api_routes(backend: RevenueCatBackend) -> list[BaseRoute]:
    return []


def control_routes(backend: RevenueCatBackend) -> list[BaseRoute]:
    return []


__all__ = ["RevenueCatBackend", "api_routes", "control_routes"]
