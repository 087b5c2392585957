"""PLACEHOLDER: fault injection is being built (see the CleverTap mock issue)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class FaultRule:
    route: str


class FaultInjector:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []


class FaultMiddleware:
    def __init__(self, app: ASGIApp, *, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def fault_routes(injector: FaultInjector) -> list[BaseRoute]:
    return []
