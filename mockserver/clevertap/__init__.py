"""PLACEHOLDER: the clevertap mock is being built; this stub keeps imports working."""

from __future__ import annotations

from starlette.routing import BaseRoute


class CleverTapBackend:
    """Placeholder backend: serves nothing yet."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def api_routes(backend: CleverTapBackend) -> list[BaseRoute]:
    return []


def control_routes(backend: CleverTapBackend) -> list[BaseRoute]:
    return []


__all__ = ["CleverTapBackend", "api_routes", "control_routes"]
