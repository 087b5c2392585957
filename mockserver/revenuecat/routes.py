"""Thin Starlette endpoints for RevenueCat's API v1 and v2 (mounted at the app's root).

Each endpoint parses the request, makes one backend call and renders the answer.  Every
answer, including unknown paths, wrong or unknown methods (TRACE, PROPFIND...) and bodies that
are not JSON, has RevenueCat's error shape for its API version (see ``errors.py``); nothing
answers a bare 500 or Starlette's plain-text 405.

A customer's id is one path segment, percent-decoded on its own (:func:`_tail`):
``/v1/subscribers/team%2Fattributes`` is the customer ``team/attributes``, while
``/v1/subscribers/team/attributes`` is the attributes endpoint of ``team``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mockserver._http import bound_routes, read_json
from mockserver.revenuecat.backend import RevenueCatBackend
from mockserver.revenuecat.errors import (
    EmptyAppUserId,
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
from mockserver.revenuecat.views import offerings_json

__all__ = ["api_routes"]

logger = logging.getLogger("mockserver.revenuecat")

MAX_BODY_BYTES = 1 << 20
# An empty method list makes a Starlette route match every method (``Route.matches`` only
# checks ``if self.methods``), so TRACE and unknown methods reach our handlers, which answer
# RevenueCat's JSON 404/405 instead of Starlette's plain-text 405.
EVERY_METHOD: list[str] = []
# X-Platform values api-v1.yaml ``get-offerings`` lists; another one is its 400 example.
OFFERINGS_PLATFORMS = frozenset({"ios", "android", "amazon", "stripe", "roku", "paddle"})
V1_CRASH = V1Error("Internal server error.", status=500, code=7110)
V2_CRASH = V2Error("There was an internal server error", status=500, backoff_ms=1000)

Api = Callable[[RevenueCatBackend, Request], Awaitable[Any]]


async def _json_body(request: Request, error: Callable[[str], RevenueCatMockError]) -> object:
    return await read_json(
        request, error, invalid="The body is not valid JSON.", max_bytes=MAX_BODY_BYTES
    )


def _secret(backend: RevenueCatBackend, request: Request) -> bool:
    """Authenticate a v1 request; whether its key is a secret one."""
    return backend.keys.authenticate_v1(request.headers.get("authorization")) is KeyKind.SECRET


def _tail(request: Request, skip: int) -> list[str]:
    """The path's segments after its first ``skip``, each percent-decoded on its own.

    Starlette routes on the decoded path, where ``team%2Fattributes`` (the id
    ``team/attributes``, as the SDKs and ``client`` encode it) and ``team/attributes`` look
    alike; the raw path (ASGI ``raw_path``, which uvicorn prefixes with ``root_path``) does not.
    """
    scope = request.scope
    # Without raw_path (an ASGI server may omit it) the decoded path is all there is.
    raw: bytes = scope.get("raw_path") or quote(scope["path"], safe="/").encode()
    root = scope.get("root_path", "").encode()
    if root and raw.startswith(root):
        raw = raw[len(root) :]
    segments = raw.split(b"/")[skip + 1 :]
    return [unquote_to_bytes(segment).decode("utf-8", "replace") for segment in segments]


# --- v1 -------------------------------------------------------------------------------------


async def subscribers(backend: RevenueCatBackend, request: Request) -> Any:
    """``/v1/subscribers/{id}`` and its sub-resources; an unmodelled one is a JSON 404."""
    app_user_id, *rest = _tail(request, 2)
    resource = _V1_SUBSCRIBER_RESOURCES.get(tuple(rest))
    if resource is None:
        # The other documented sub-resources (promotional, revoke, defer, refund, extend...)
        # are not modelled: a v1 404 says so, and no customer named "u9/extend" is created.
        _secret(backend, request)
        raise V1RouteNotFound()
    return await resource(backend, request, app_user_id)


async def subscriber(backend: RevenueCatBackend, request: Request, app_user_id: str) -> Response:
    secret = _secret(backend, request)
    if request.method == "GET":
        body, created = backend.v1_get_subscriber(
            app_user_id, platform=request.headers.get("x-platform"), include_attributes=secret
        )
        return JSONResponse(body, status_code=201 if created else 200)
    if request.method == "DELETE":
        if not secret:
            raise SecretKeyRequired()
        backend.delete_customer(app_user_id)
        return JSONResponse({"app_user_id": app_user_id, "deleted": True})
    raise V1RouteNotFound(method_not_allowed=True)


async def attributes(backend: RevenueCatBackend, request: Request, app_user_id: str) -> Any:
    secret = _secret(backend, request)
    if request.method != "POST":
        raise V1RouteNotFound(method_not_allowed=True)
    body = await _json_body(request, InvalidAttributesBody)
    return backend.v1_post_attributes(app_user_id, body, include_attributes=secret)


async def offerings(backend: RevenueCatBackend, request: Request, app_user_id: str) -> Any:
    """``GET .../offerings`` (api-v1.yaml ``get-offerings``): the catalogue's offering.

    "The App User ID doesn't have to exist for the endpoint to work": it creates no customer.
    Any valid key may call it (the SDKs call it with their public key).
    """
    _secret(backend, request)
    if request.method != "GET":
        raise V1RouteNotFound(method_not_allowed=True)
    if not app_user_id:
        raise EmptyAppUserId()
    platform = request.headers.get("x-platform")
    if platform is not None and platform not in OFFERINGS_PLATFORMS:
        raise V1Error("Invalid Platform", status=400, code=7000)
    return offerings_json(backend.catalogue)


V1Resource = Callable[[RevenueCatBackend, Request, str], Awaitable[Any]]
_V1_SUBSCRIBER_RESOURCES: dict[tuple[str, ...], V1Resource] = {
    (): subscriber,
    ("attributes",): attributes,
    ("offerings",): offerings,
}


async def v1_unknown(backend: RevenueCatBackend, request: Request) -> Any:
    _secret(backend, request)
    raise V1RouteNotFound()


# --- v2 -------------------------------------------------------------------------------------


def _v2_headers(backend: RevenueCatBackend, request: Request) -> Mapping[str, str]:
    """Authenticate, count the request against the key's rate limit; the limit's headers."""
    key = backend.keys.authenticate_v2(request.headers.get("authorization"))
    return backend.rate_limiter.hit(key)


def _method_not_allowed() -> V2Error:
    return InvalidRequest("Method not allowed", status=405)


async def customers(backend: RevenueCatBackend, request: Request) -> Any:
    """``/v2/projects/{p}/customers/{id}`` and its attributes; other sub-resources are 404."""
    customer_id, *rest = _tail(request, 4)
    project_id = request.path_params["project_id"]
    if not rest:
        return await customer(backend, request, project_id, customer_id)
    if rest == ["attributes"]:
        return await customer_attributes(backend, request, project_id, customer_id)
    raise ResourceMissing()


async def customer(
    backend: RevenueCatBackend, request: Request, project_id: str, customer_id: str
) -> Any:
    if request.method == "GET":
        expand = request.query_params.getlist("expand")
        if any(value != "attributes" for value in expand):
            raise ParameterError("expand accepts only 'attributes'", param="expand")
        return backend.v2_get_customer(
            project_id, customer_id, expand_attributes="attributes" in expand
        )
    if request.method == "DELETE":
        return backend.v2_delete_customer(project_id, customer_id)
    raise _method_not_allowed()


async def customer_attributes(
    backend: RevenueCatBackend, request: Request, project_id: str, customer_id: str
) -> Any:
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
    raise _method_not_allowed()


async def v2_unknown(backend: RevenueCatBackend, request: Request) -> Any:
    raise ResourceMissing()


_V1_ROUTES: list[tuple[str, Api, list[str]]] = [
    ("/v1/subscribers/{rest:path}", subscribers, EVERY_METHOD),
    ("/v1", v1_unknown, EVERY_METHOD),
    ("/v1/{rest:path}", v1_unknown, EVERY_METHOD),
]
_V2_ROUTES: list[tuple[str, Api, list[str]]] = [
    ("/v2/projects/{project_id}/customers/{rest:path}", customers, EVERY_METHOD),
    ("/v2", v2_unknown, EVERY_METHOD),
    ("/v2/{rest:path}", v2_unknown, EVERY_METHOD),
]


def api_routes(backend: RevenueCatBackend) -> list[BaseRoute]:
    """The ``/v1`` and ``/v2`` routes of the RevenueCat mock."""
    errors = (RevenueCatMockError,)
    v1 = bound_routes(backend, _V1_ROUTES, errors=errors, crash=V1_CRASH, log=logger)
    v2 = bound_routes(
        backend,
        _V2_ROUTES,
        errors=errors,
        crash=V2_CRASH,
        headers=partial(_v2_headers, backend),
        log=logger,
    )
    return v1 + v2
