"""The fault injector's control routes, mounted under ``/_mock/faults``::

    GET    /                  seed, fired counters, active rules
    GET    /rules             active rules
    POST   /rules             add one rule (JSON object) or several (array); their ids
    DELETE /rules             remove every rule
    DELETE /rules/{id}        remove one rule
    GET    /presets           preset names, descriptions and rules
    POST   /presets/{name}    activate a preset; optional body {"route": "<glob>"}
    POST   /seed              {"seed": <int>}: restart the RNG

A refused request answers ``{"error": <message>}`` with 400 (404 for an unknown rule id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from mockserver._http import ControlError, bound_routes, read_json
from mockserver.faults.injector import FaultInjector
from mockserver.faults.rules import PRESETS, FaultRule

__all__ = ["fault_routes"]

Control = Callable[[FaultInjector, Request], Awaitable[Any]]


async def _body(request: Request) -> Any:
    return await read_json(request, ControlError, empty=None)


async def overview(injector: FaultInjector, request: Request) -> Any:
    return injector.stats()


async def rules(injector: FaultInjector, request: Request) -> Any:
    if request.method == "GET":
        return {"rules": injector.rules()}
    if request.method == "DELETE":
        injector.clear()
        return {"rules": []}
    body = await _body(request)
    items = body if isinstance(body, list) else [body]
    if not all(isinstance(item, dict) for item in items):
        raise ControlError("give a rule object or an array of rule objects")
    parsed = [FaultRule.from_dict(item) for item in items]
    return JSONResponse({"ids": [injector.add(rule) for rule in parsed]}, status_code=201)


async def remove_rule(injector: FaultInjector, request: Request) -> Any:
    raw = request.path_params["rule_id"]
    if not raw.isdigit() or not injector.remove(int(raw)):
        raise ControlError(f"no active rule {raw}", 404)
    return {"removed": int(raw)}


async def presets(injector: FaultInjector, request: Request) -> Any:
    return {
        name: {"description": p.description, "rules": [asdict(r) for r in p.rules]}
        for name, p in PRESETS.items()
    }


async def apply_preset(injector: FaultInjector, request: Request) -> Any:
    body = await _body(request)
    route = body.get("route") if isinstance(body, dict) else None
    if route is not None and not isinstance(route, str):
        raise ControlError("route must be a string")
    ids = injector.apply_preset(request.path_params["name"], route=route)
    return JSONResponse({"ids": ids}, status_code=201)


async def reseed(injector: FaultInjector, request: Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict) or type(body.get("seed")) is not int:
        raise ControlError('give {"seed": <integer>}')
    injector.reseed(body["seed"])
    return {"seed": injector.seed}


_ROUTES: list[tuple[str, Control, list[str]]] = [
    ("/", overview, ["GET"]),
    ("/rules", rules, ["GET", "POST", "DELETE"]),
    ("/rules/{rule_id}", remove_rule, ["DELETE"]),
    ("/presets", presets, ["GET"]),
    ("/presets/{name}", apply_preset, ["POST"]),
    ("/seed", reseed, ["POST"]),
]


def fault_routes(injector: FaultInjector) -> list[BaseRoute]:
    """The control routes of ``injector``, to mount under ``/_mock/faults``."""
    # ValueError: a rule or preset the injector refuses (FaultRule checks its fields).
    return bound_routes(injector, _ROUTES, errors=(ControlError, ValueError))
