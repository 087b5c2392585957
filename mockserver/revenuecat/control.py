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
=======================================  ====================================================

Operations: start_trial, buy, convert_trial, renew, cancel, uncancel, refund, billing_issue,
expire, change_product, buy_non_renewing, pause (each ``{"app_user_id", "product_id"?, ...}``)
and transfer (``{"from_app_user_id", "to_app_user_id"}``).  Errors are
``{"error": <type>, "message": <text>}`` with 400, 404 or 409.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mockserver.revenuecat.backend import RevenueCatBackend
from mockserver.revenuecat.errors import RevenueCatMockError, SimulationError, UnknownEntity
from mockserver.revenuecat.models import Customer
from mockserver.revenuecat.population import generate_population, play
from mockserver.revenuecat.store import StoreOperations

__all__ = ["control_routes"]

logger = logging.getLogger("mockserver.revenuecat")
Handler = Callable[[Request], Awaitable[Any]]


class BadControlRequest(SimulationError):
    status = 400


# Parameters each simulator operation accepts over HTTP, with their JSON types.
_PARAM_TYPES: dict[str, type | tuple[type, ...]] = {
    "product_id": str, "new_product_id": str, "store": str, "environment": str, "country": str,
    "reason": str, "offer_code": str, "presented_offering_id": str, "intro": bool,
    "immediate": bool, "at_ms": int, "grace_period_days": int, "resume_after_days": int,
}  # fmt: skip


def _allowed_params(operation: str) -> set[str]:
    method = getattr(StoreOperations, operation)
    return set(inspect.signature(method).parameters) - {"self"}


def _check_params(operation: str, params: dict[str, Any]) -> None:
    allowed = _allowed_params(operation)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadControlRequest(f"{operation} does not take {', '.join(unknown)}")
    for name, value in params.items():
        expected = _PARAM_TYPES.get(name, str)
        if value is None and name not in ("product_id", "reason"):
            raise BadControlRequest(f"{name} must not be null")
        if value is not None and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            raise BadControlRequest(f"{name} has the wrong type")


def _customer_summary(customer: Customer, now_ms: int) -> dict[str, Any]:
    return {
        "app_user_id": customer.app_user_id,
        "original_app_user_id": customer.original_app_user_id,
        "aliases": customer.all_ids(),
        "country_code": customer.country_code,
        "attributes": customer.attributes.to_json(),
        "active_products": sorted(
            {p.product_id for p in customer.purchases if p.is_active(now_ms)}
        ),
        "purchases": len(customer.purchases),
    }


def _limit(request: Request, default: int = 1000) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise BadControlRequest("limit must be a positive integer")
    return int(raw)


def control_routes(backend: RevenueCatBackend) -> list[BaseRoute]:
    """The ``/_mock/revenuecat`` routes."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                result = await handler(request)
            except RevenueCatMockError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            except Exception:
                logger.exception("RevenueCat mock control endpoint failed")
                return JSONResponse(
                    {"error": "InternalError", "message": "the mock failed; see its log"},
                    status_code=500,
                )
            return result if isinstance(result, Response) else JSONResponse(result)

        return wrapped

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            raise BadControlRequest("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadControlRequest("the body must be a JSON object")
        return body

    async def summary(request: Request) -> Any:
        states = Counter(str(d.state) for d in backend.webhooks.deliveries())
        return {
            "project_id": backend.project_id,
            "keys": {"public": len(backend.keys.public), "secret": len(backend.keys.secret),
                     "v2": len(backend.keys.v2)},
            "now_ms": backend.now_ms(),
            "time_scale": backend.clock.time_scale,
            "v2_rate_limit": backend.rate_limiter.limit,
            "customers": len(backend.customers()),
            "events": len(backend.events()),
            "webhook_targets": [
                {"url": t.url, "environments": sorted(str(e) for e in t.environments),
                 "authorization": t.authorization is not None}
                for t in backend.webhooks.targets
            ],
            "deliveries": dict(states),
            "dropped_deliveries": backend.webhooks.dropped,
        }  # fmt: skip

    async def reset(request: Request) -> Any:
        backend.reset()
        return {"reset": True}

    async def customers(request: Request) -> Any:
        if request.method == "POST":
            body = await body_of(request)
            app_user_id = body.get("app_user_id")
            attributes = body.get("attributes") or {}
            if not isinstance(app_user_id, str) or not isinstance(attributes, dict):
                raise BadControlRequest("app_user_id (string) is required; attributes is an object")
            country = body.get("country")
            if country is not None and not isinstance(country, str):
                raise BadControlRequest("country must be a string")
            if country is not None:
                backend.catalogue.country(country)
            customer = backend.create_customer(app_user_id, attributes=attributes, country=country)
            return JSONResponse(_customer_summary(customer, backend.now_ms()), status_code=201)
        limit = _limit(request)
        now = backend.now_ms()
        return {"items": [_customer_summary(c, now) for c in backend.customers()[:limit]]}

    async def one_customer(request: Request) -> Any:
        customer = backend.customer(request.path_params["app_user_id"])
        return {
            **_customer_summary(customer, backend.now_ms()),
            "customer_info": backend.subscriber_body(customer, include_attributes=True),
        }

    async def simulate(request: Request) -> Any:
        name = request.path_params["operation"]
        operation = backend.operation(name)
        params = await body_of(request)
        _check_params(name, params)
        if name != "transfer":
            app_user_id = params.pop("app_user_id", None)
            if not isinstance(app_user_id, str) or not app_user_id:
                raise BadControlRequest("app_user_id is required")
            return {"events": operation(app_user_id, **params)}
        source, destination = params.get("from_app_user_id"), params.get("to_app_user_id")
        if not source or not destination:
            raise BadControlRequest("from_app_user_id and to_app_user_id are required")
        return {"events": operation(source, destination, at_ms=params.get("at_ms"))}

    async def events(request: Request) -> Any:
        wanted_type = request.query_params.get("type")
        wanted_user = request.query_params.get("app_user_id")
        found = [
            e for e in backend.events()
            if (wanted_type is None or e.get("type") == wanted_type)
            and (wanted_user is None or e.get("app_user_id") == wanted_user)
        ]  # fmt: skip
        return {"items": found[-_limit(request) :]}

    async def deliveries(request: Request) -> Any:
        state = request.query_params.get("state")
        event_id = request.query_params.get("event_id")
        found = [
            d.to_json() for d in backend.webhooks.deliveries()
            if (state is None or d.state == state) and (event_id is None or d.event_id == event_id)
        ]  # fmt: skip
        return {"items": found[-_limit(request) :]}

    async def one_delivery(request: Request) -> Any:
        delivery = backend.webhooks.delivery(request.path_params["delivery_id"])
        if delivery is None:
            raise UnknownEntity("unknown delivery")
        return delivery.to_json(include_event=True)

    async def run_due(request: Request) -> Any:
        return {"attempts": await backend.webhooks.run_due()}

    async def clock(request: Request) -> Any:
        if request.method == "POST":
            seconds = (await body_of(request)).get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise BadControlRequest("seconds must be a non-negative number")
            backend.advance(float(seconds))
        return {"now_ms": backend.now_ms(), "time_scale": backend.clock.time_scale}

    async def catalogue(request: Request) -> Any:
        cat = backend.catalogue
        return {
            "products": [
                {**dataclasses.asdict(p), "prices": dict(p.prices),
                 "intro_prices": dict(p.intro_prices)}
                for p in cat.products.values()
            ],
            "stores": [
                {**dataclasses.asdict(s), "store": str(s.store)} for s in cat.stores.values()
            ],
            "countries": [dataclasses.asdict(c) for c in cat.countries.values()],
            "usd_rates": dict(cat.usd_rates),
        }  # fmt: skip

    async def population(request: Request) -> Any:
        body = await body_of(request)
        n, seed, days = (
            body.get("n", 10),
            body.get("seed", backend.seed or 0),
            body.get("days", 120),
        )
        for name, value in (("n", n), ("seed", seed), ("days", days)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadControlRequest(f"{name} must be an integer")
        if not 0 <= n <= 100_000 or days < 1:
            raise BadControlRequest("n must be 0..100000 and days >= 1")
        plan = generate_population(n, seed=seed, days=days, end_ms=backend.now_ms())
        set_ids = body.get("set_clevertap_ids", True) is True
        emitted = play(backend, plan, set_clevertap_ids=set_ids)
        return {
            "users": [
                {"app_user_id": u.app_user_id, "clevertap_id": u.clevertap_id} for u in plan.users
            ],
            "operations": plan.operation_counts(),
            "events": len(emitted),
        }

    get, post = ["GET"], ["POST"]
    return [
        Route("/", endpoint(summary), methods=get),
        Route("/reset", endpoint(reset), methods=post),
        Route("/customers", endpoint(customers), methods=["GET", "POST"]),
        Route("/customers/{app_user_id:path}", endpoint(one_customer), methods=get),
        Route("/simulate/{operation}", endpoint(simulate), methods=post),
        Route("/events", endpoint(events), methods=get),
        Route("/webhooks/deliveries", endpoint(deliveries), methods=get),
        Route("/webhooks/deliveries/{delivery_id}", endpoint(one_delivery), methods=get),
        Route("/webhooks/run-due", endpoint(run_due), methods=post),
        Route("/clock", endpoint(clock), methods=get),
        Route("/clock/advance", endpoint(clock), methods=post),
        Route("/catalogue", endpoint(catalogue), methods=get),
        Route("/population", endpoint(population), methods=post),
    ]
