"""Control and inspection of the RevenueCat mock over HTTP (mounted under ``/_mock/revenuecat``).

=======================================  ====================================================
``GET  /``                               configuration summary (no keys) and counters
``POST /reset``                          forget customers, events and deliveries
``GET  /customers``                      customers (``?limit=``)
``POST /customers``                      create one: ``{"app_user_id", "attributes"?, ...}``
``GET  /customers/{app_user_id}``        one customer: Customer Info with attributes
``POST /simulate/{operation}``           run a store operation: ``{"app_user_id", ...}``
``GET  /events``                         emitted events (``?type=&app_user_id=&limit=``)
``GET  /webhooks/deliveries``            deliveries with attempts (``?state=&event_id=``)
``GET  /webhooks/deliveries/{id}``       one delivery, with its event
``POST /webhooks/run-due``               make the attempts due now, wait for them
``GET  /clock``, ``POST /clock/advance``   virtual time; ``{"seconds": 300}``
``GET  /catalogue``                      products, stores, countries, rates
``POST /population``                     generate and play ``{"n", "seed", "days"}``
``GET  /exports/transactions``           the history as a Scheduled Data Export file
                                         (``?version=&format=&since_ms=&as_of_ms=&columns=``)
=======================================  ====================================================

Operations: :data:`~.store.STORE_OPERATIONS` (each ``{"app_user_id", "product_id"?, ...}``,
transfer ``{"from_app_user_id", "to_app_user_id"}``); a missing required parameter is a 400
naming it.  Errors are
``{"error": <type>, "message": <text>}`` with 400, 404 or 409.  Each endpoint parses the
request, makes one backend call and renders the answer.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mockserver._http import bound_routes, read_json
from mockserver.revenuecat.backend import RevenueCatBackend
from mockserver.revenuecat.errors import RevenueCatMockError, SimulationError, UnknownEntity
from mockserver.revenuecat.exports import LATEST_VERSION
from mockserver.revenuecat.population import generate_population
from mockserver.revenuecat.store import STORE_OPERATIONS, StoreOperations
from mockserver.revenuecat.views import catalogue_json, customer_summary_json

__all__ = ["control_routes"]

logger = logging.getLogger("mockserver.revenuecat")

Control = Callable[[RevenueCatBackend, Request], Awaitable[Any]]


class BadControlRequest(SimulationError):
    status = 400


class _Crashed(RevenueCatMockError):
    """The answer when the mock itself failed (the traceback goes to its log)."""

    status = 500

    def body(self) -> dict[str, Any]:
        return {"error": "InternalError", "message": self.message}


CRASH = _Crashed("the mock failed; see its log")

# Parameters each simulator operation accepts over HTTP, with their JSON types.
_PARAM_TYPES: dict[str, type | tuple[type, ...]] = {
    "product_id": str, "new_product_id": str, "store": str, "environment": str, "country": str,
    "reason": str, "offer_code": str, "presented_offering_id": str, "intro": bool,
    "immediate": bool, "at_ms": int, "grace_period_days": int, "resume_after_days": int,
    "days": int, "amount": int, "currency": str, "experiment_id": str, "variant": str,
    "offering_id": str,
}  # fmt: skip


def _signature(operation: str) -> dict[str, inspect.Parameter]:
    method = getattr(StoreOperations, operation)
    parameters = dict(inspect.signature(method).parameters)
    parameters.pop("self")
    return parameters


def _check_params(operation: str, params: dict[str, Any]) -> None:
    signature = _signature(operation)
    unknown = sorted(set(params) - set(signature))
    if unknown:
        raise BadControlRequest(f"{operation} does not take {', '.join(unknown)}")
    # A missing required parameter is the caller's mistake (400), not a TypeError (500).
    missing = [name for name, p in signature.items() if p.default is p.empty and name not in params]
    if missing:
        raise BadControlRequest(f"{operation} requires {', '.join(missing)}")
    for name, value in params.items():
        expected = _PARAM_TYPES.get(name, str)
        if value is None and signature[name].default is not None:
            raise BadControlRequest(f"{name} must not be null")
        if value is not None and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            raise BadControlRequest(f"{name} has the wrong type")


def _limit(request: Request, default: int = 1000) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise BadControlRequest("limit must be a positive integer")
    return int(raw)


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request, BadControlRequest, empty={})
    if not isinstance(body, dict):
        raise BadControlRequest("the body must be a JSON object")
    return body


async def summary(backend: RevenueCatBackend, request: Request) -> Any:
    return backend.stats()


async def reset(backend: RevenueCatBackend, request: Request) -> Any:
    backend.reset()
    return {"reset": True}


async def customers(backend: RevenueCatBackend, request: Request) -> Any:
    if request.method == "POST":
        return await _create_customer(backend, request)
    return {"items": backend.customer_summaries(limit=_limit(request))}


async def _create_customer(backend: RevenueCatBackend, request: Request) -> Any:
    body = await _body(request)
    app_user_id = body.get("app_user_id")
    attributes = body.get("attributes") or {}
    if not isinstance(app_user_id, str) or not isinstance(attributes, dict):
        raise BadControlRequest("app_user_id (string) is required; attributes is an object")
    country = body.get("country")
    if country is not None and not isinstance(country, str):
        raise BadControlRequest("country must be a string")
    if country is not None:
        backend.catalogue.country(country)  # UnknownEntity for a country it does not know
    customer = backend.create_customer(app_user_id, attributes=attributes, country=country)
    return JSONResponse(customer_summary_json(customer, backend.now_ms()), status_code=201)


async def one_customer(backend: RevenueCatBackend, request: Request) -> Any:
    return backend.inspect_customer(request.path_params["app_user_id"])


async def simulate(backend: RevenueCatBackend, request: Request) -> Any:
    name = request.path_params["operation"]
    if name not in STORE_OPERATIONS:
        raise UnknownEntity(f"unknown operation {name!r}")
    params = await _body(request)
    _check_params(name, params)
    if name != "transfer":
        app_user_id = params.pop("app_user_id", None)
        if not isinstance(app_user_id, str) or not app_user_id:
            raise BadControlRequest("app_user_id is required")
        return {"events": backend.simulate(name, app_user_id, **params)}
    source, destination = params.get("from_app_user_id"), params.get("to_app_user_id")
    if not source or not destination:
        raise BadControlRequest("from_app_user_id and to_app_user_id are required")
    return {"events": backend.simulate(name, source, destination, at_ms=params.get("at_ms"))}


async def events(backend: RevenueCatBackend, request: Request) -> Any:
    found = backend.events(
        event_type=request.query_params.get("type"),
        app_user_id=request.query_params.get("app_user_id"),
    )
    return {"items": found[-_limit(request) :]}


async def deliveries(backend: RevenueCatBackend, request: Request) -> Any:
    found = backend.webhooks.deliveries(
        state=request.query_params.get("state"), event_id=request.query_params.get("event_id")
    )
    return {"items": [d.to_json() for d in found[-_limit(request) :]]}


async def one_delivery(backend: RevenueCatBackend, request: Request) -> Any:
    delivery = backend.webhooks.delivery(request.path_params["delivery_id"])
    if delivery is None:
        raise UnknownEntity("unknown delivery")
    return delivery.to_json(include_event=True)


async def run_due(backend: RevenueCatBackend, request: Request) -> Any:
    return {"attempts": await backend.webhooks.run_due()}


async def clock(backend: RevenueCatBackend, request: Request) -> Any:
    if request.method == "POST":
        seconds = (await _body(request)).get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise BadControlRequest("seconds must be a non-negative number")
        backend.advance(float(seconds))
    return {"now_ms": backend.now_ms(), "time_scale": backend.clock.time_scale}


async def catalogue(backend: RevenueCatBackend, request: Request) -> Any:
    return catalogue_json(backend.catalogue)


async def population(backend: RevenueCatBackend, request: Request) -> Any:
    body = await _body(request)
    n, seed, days = body.get("n", 10), body.get("seed", backend.seed or 0), body.get("days", 120)
    for name, value in (("n", n), ("seed", seed), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadControlRequest(f"{name} must be an integer")
    if not 0 <= n <= 100_000 or days < 1:
        raise BadControlRequest("n must be 0..100000 and days >= 1")
    plan = generate_population(n, seed=seed, days=days, end_ms=backend.now_ms())
    emitted = backend.play(plan, set_clevertap_ids=body.get("set_clevertap_ids", True) is True)
    return {
        "users": [
            {"app_user_id": u.app_user_id, "clevertap_id": u.clevertap_id} for u in plan.users
        ],
        "operations": plan.operation_counts(),
        "events": len(emitted),
    }


_EXPORT_PARAMS = frozenset({"version", "format", "since_ms", "as_of_ms", "columns"})


def _query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadControlRequest(f"{name} must be a non-negative integer")
    return int(raw)


async def export_transactions(backend: RevenueCatBackend, request: Request) -> Any:
    """The file itself (exports.py), named as RevenueCat names it, with its row count."""
    query = request.query_params
    unknown = sorted(set(query) - _EXPORT_PARAMS)
    if unknown:
        raise BadControlRequest(f"exports do not take {', '.join(unknown)}")
    columns = query.get("columns")
    version = _query_int(request, "version")
    export = backend.export_transactions(
        version=LATEST_VERSION if version is None else version,
        fmt=query.get("format", "csv"),
        since_ms=_query_int(request, "since_ms"),
        as_of_ms=_query_int(request, "as_of_ms"),
        columns=None if columns is None else [c for c in columns.split(",") if c],
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{export.filename}"',
        "X-Export-Rows": str(len(export.rows)),
    }
    return Response(export.to_bytes(), media_type=export.media_type, headers=headers)


_ROUTES: list[tuple[str, Control, list[str]]] = [
    ("/", summary, ["GET"]),
    ("/reset", reset, ["POST"]),
    ("/customers", customers, ["GET", "POST"]),
    ("/customers/{app_user_id:path}", one_customer, ["GET"]),
    ("/simulate/{operation}", simulate, ["POST"]),
    ("/events", events, ["GET"]),
    ("/webhooks/deliveries", deliveries, ["GET"]),
    ("/webhooks/deliveries/{delivery_id}", one_delivery, ["GET"]),
    ("/webhooks/run-due", run_due, ["POST"]),
    ("/clock", clock, ["GET"]),
    ("/clock/advance", clock, ["POST"]),
    ("/catalogue", catalogue, ["GET"]),
    ("/population", population, ["POST"]),
    ("/exports/transactions", export_transactions, ["GET"]),
]


def control_routes(backend: RevenueCatBackend) -> list[BaseRoute]:
    """The ``/_mock/revenuecat`` routes."""
    return bound_routes(backend, _ROUTES, errors=(RevenueCatMockError,), crash=CRASH, log=logger)
