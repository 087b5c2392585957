"""Thin Starlette endpoints for RevenueCat's API v1 and v2 (mounted at the app's root).

Every answer, including unknown paths, wrong methods and bodies that are not JSON, has
RevenueCat's error shape for its API version (see ``errors.py``); nothing answers a bare 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mockserver.revenuecat.backend import RevenueCatBackend
from mockserver.revenuecat.errors import (
    InvalidAttributesBody,
    InvalidRequest,
    ParameterError,
    ResourceMissing,
    RevenueCatMockError,
    SecretKeyRequired,
    V1Error,
    V1RouteNotFound,
    V2Error,
)
from mockserver.revenuecat.keys import KeyKind

__all__ = ["api_routes"]

logger = logging.getLogger("mockserver.revenuecat")

MAX_BODY_BYTES = 1 << 20
Handler = Callable[[Request], Awaitable[Response]]


def _error_response(exc: RevenueCatMockError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        exc.body(), status_code=exc.status, headers={**(headers or {}), **exc.headers()}
    )


async def _json_body(request: Request, error: Callable[[str], RevenueCatMockError]) -> object:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise error(f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise error("The body is not valid JSON.") from None


def _v1(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except RevenueCatMockError as exc:
            return _error_response(exc)
        except Exception:
            logger.exception("RevenueCat mock v1 endpoint failed")
            return _error_response(V1Error("Internal server error.", status=500, code=7110))

    return endpoint


def _v2(backend: RevenueCatBackend, handler: Callable[[Request], Awaitable[Any]]) -> Handler:
    """Authenticate, count the request against the key's rate limit, run, render."""

    async def endpoint(request: Request) -> Response:
        headers: dict[str, str] = {}
        try:
            key = backend.keys.authenticate_v2(request.headers.get("authorization"))
            headers = backend.rate_limiter.hit(key)
            result = await handler(request)
            if isinstance(result, Response):
                result.headers.update(headers)
                return result
            return JSONResponse(result, headers=headers)
        except RevenueCatMockError as exc:
            return _error_response(exc, headers)
        except Exception:
            logger.exception("RevenueCat mock v2 endpoint failed")
            error = V2Error("There was an internal server error", status=500, backoff_ms=1000)
            return _error_response(error, headers)

    return endpoint


def api_routes(backend: RevenueCatBackend) -> list[BaseRoute]:
    """The ``/v1`` and ``/v2`` routes of the RevenueCat mock."""

    # --- v1 ---------------------------------------------------------------------------------

    @_v1
    async def subscriber(request: Request) -> Response:
        kind = backend.keys.authenticate_v1(request.headers.get("authorization"))
        app_user_id = request.path_params["app_user_id"]
        if request.method == "GET":
            customer, created = backend.get_or_create(
                app_user_id, platform=request.headers.get("x-platform")
            )
            body = backend.subscriber_body(customer, include_attributes=kind is KeyKind.SECRET)
            return JSONResponse(body, status_code=201 if created else 200)
        if request.method == "DELETE":
            if kind is not KeyKind.SECRET:
                raise SecretKeyRequired()
            customer = backend.delete_customer(app_user_id)
            return JSONResponse({"app_user_id": app_user_id, "deleted": True})
        raise V1RouteNotFound(method_not_allowed=True)

    @_v1
    async def attributes(request: Request) -> Response:
        kind = backend.keys.authenticate_v1(request.headers.get("authorization"))
        if request.method != "POST":
            raise V1RouteNotFound(method_not_allowed=True)
        body = await _json_body(request, InvalidAttributesBody)
        customer = backend.post_attributes_v1(request.path_params["app_user_id"], body)
        return JSONResponse(
            backend.subscriber_body(customer, include_attributes=kind is KeyKind.SECRET)
        )

    @_v1
    async def v1_unknown(request: Request) -> Response:
        backend.keys.authenticate_v1(request.headers.get("authorization"))
        raise V1RouteNotFound()

    # --- v2 ---------------------------------------------------------------------------------

    def method_not_allowed() -> V2Error:
        return InvalidRequest("Method not allowed", status=405)

    async def customer(request: Request) -> Any:
        project_id = request.path_params["project_id"]
        customer_id = request.path_params["customer_id"]
        if request.method == "GET":
            expand = request.query_params.getlist("expand")
            if any(value != "attributes" for value in expand):
                raise ParameterError("expand accepts only 'attributes'", param="expand")
            return backend.v2_get_customer(
                project_id, customer_id, expand_attributes="attributes" in expand
            )
        if request.method == "DELETE":
            return backend.v2_delete_customer(project_id, customer_id)
        raise method_not_allowed()

    async def customer_attributes(request: Request) -> Any:
        project_id = request.path_params["project_id"]
        customer_id = request.path_params["customer_id"]
        if request.method == "GET":
            raw_limit = request.query_params.get("limit", "20")
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
                raise ParameterError("limit must be an integer from 1 to 100", param="limit")
            return backend.v2_list_attributes(
                project_id, customer_id, limit=int(raw_limit),
                starting_after=request.query_params.get("starting_after"),
            )  # fmt: skip
        if request.method == "POST":
            content_type = request.headers.get("content-type", "application/json")
            if "json" not in content_type:
                raise InvalidRequest("Content-Type not application/json")
            body = await _json_body(request, InvalidRequest)
            return backend.v2_set_attributes(project_id, customer_id, body)
        raise method_not_allowed()

    async def v2_unknown(request: Request) -> Any:
        raise ResourceMissing()

    every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return [
        Route("/v1/subscribers/{app_user_id:path}/attributes", attributes, methods=every),
        Route("/v1/subscribers/{app_user_id:path}", subscriber, methods=every),
        Route("/v1", v1_unknown, methods=every),
        Route("/v1/{rest:path}", v1_unknown, methods=every),
        Route(
            "/v2/projects/{project_id}/customers/{customer_id:path}/attributes",
            _v2(backend, customer_attributes),
            methods=every,
        ),
        Route(
            "/v2/projects/{project_id}/customers/{customer_id:path}",
            _v2(backend, customer),
            methods=every,
        ),
        Route("/v2", _v2(backend, v2_unknown), methods=every),
        Route("/v2/{rest:path}", _v2(backend, v2_unknown), methods=every),
    ]
