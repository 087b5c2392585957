"""HTTP helpers both mocks share: one endpoint wrapper, one JSON body reader, one error renderer.

What stays with each mock is its wire format: the error classes (``body()``, ``status``,
``headers()``), the answer to a crash, and how its JSON is written.  Two JSON styles exist:

- Starlette's :class:`~starlette.responses.JSONResponse` (compact), for RevenueCat and every
  ``/_mock`` control route;
- :class:`DumpsJSON`, ``json.dumps`` as is (``", "``, ASCII), for CleverTap's answers and the
  fault injector's error bodies, as those were always written.

Example (a control route)::

    async def seed(injector: FaultInjector, request: Request) -> Any:
        body = await read_json(request, ControlError, empty=None)
        ...
        return {"seed": injector.seed}

    bound_routes(injector, [("/seed", seed, ["POST"])], errors=(ControlError, ValueError))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Final, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = [
    "ControlError",
    "DumpsJSON",
    "Endpoint",
    "Handler",
    "WireError",
    "bound_routes",
    "endpoint",
    "parse_json",
    "read_json",
    "render",
    "render_error",
]

logger = logging.getLogger("mockserver")

#: What a handler returns: a ready :class:`Response`, or a JSON-ready value answered with 200.
Handler = Callable[[Request], Awaitable[Any]]
Endpoint = Callable[[Request], Awaitable[Response]]

T = TypeVar("T")

_REQUIRED: Final = object()


class WireError(Exception):
    """An error that is an HTTP answer: its ``status``, a JSON ``body()`` and extra ``headers()``.

    Each mock's error root subclasses it with its own body; as is, the body is the control
    routes' ``{"error": <message>}``.
    """

    status: int = 400

    def body(self) -> Any:
        return {"error": str(self)}

    def headers(self) -> dict[str, str]:
        return {}


class ControlError(WireError):
    """A refused control request (``/_mock/...``): ``{"error": <message>}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class DumpsJSON(JSONResponse):
    """JSON written by ``json.dumps`` with its defaults (CleverTap's answers, fault bodies)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content).encode()


def parse_json(raw: str | bytes, error: Callable[[], Exception]) -> Any:
    """``raw`` parsed as JSON, or ``error()`` raised."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise error() from None


async def read_json(
    request: Request,
    error: Callable[[str], Exception],
    *,
    invalid: str = "the body is not valid JSON",
    empty: Any = _REQUIRED,
    max_bytes: int | None = None,
) -> Any:
    """The request's body parsed as JSON; ``error(message)`` raised when it is not JSON.

    Parameters:
        error: builds the mock's error from a message (``invalid``, or the size message).
        invalid: the message for a body that is not JSON.
        empty: returned for an empty body; without it an empty body is not JSON.
        max_bytes: a larger body is refused before it is parsed.
    """
    raw = await request.body()
    if not raw and empty is not _REQUIRED:
        return empty
    if max_bytes is not None and len(raw) > max_bytes:
        raise error(f"The body is larger than {max_bytes} bytes.")
    return parse_json(raw, lambda: error(invalid))


def render(
    result: Any,
    *,
    headers: Mapping[str, str] | None = None,
    response_class: type[JSONResponse] = JSONResponse,
) -> Response:
    """A handler's result as a response (a :class:`Response` is kept, ``headers`` added)."""
    if isinstance(result, Response):
        result.headers.update(headers or {})
        return result
    return response_class(result, headers=headers)


def render_error(
    exc: WireError,
    *,
    headers: Mapping[str, str] | None = None,
    response_class: type[JSONResponse] = JSONResponse,
) -> Response:
    """An error as its mock answers it: its status, its body, ``headers`` and its own."""
    return response_class(
        exc.body(), status_code=exc.status, headers={**(headers or {}), **exc.headers()}
    )


def endpoint(
    handler: Handler,
    *,
    errors: tuple[type[Exception], ...] = (WireError,),
    crash: WireError | None = None,
    headers: Callable[[Request], Mapping[str, str]] | None = None,
    response_class: type[JSONResponse] = JSONResponse,
    log: logging.Logger = logger,
) -> Endpoint:
    """A Starlette endpoint running ``handler`` and rendering what it returns or raises.

    Parameters:
        errors: exceptions answered as errors.  A :class:`WireError` answers its own status and
            body; another one (a ``ValueError`` from a rule parser, say) answers 400
            ``{"error": <message>}``, the control routes' shape.
        crash: the answer to any other exception, which is logged; ``None`` lets it reach
            Starlette (a bare 500).
        headers: run first, for every request (it may raise: authentication, rate limits);
            what it returns goes on every answer, errors included.
        response_class: how the mock writes JSON.
    """

    async def wrapped(request: Request) -> Response:
        extra: Mapping[str, str] = {}
        try:
            if headers is not None:
                extra = headers(request)
            return render(await handler(request), headers=extra, response_class=response_class)
        except errors as exc:
            wire = exc if isinstance(exc, WireError) else ControlError(str(exc))
            return render_error(wire, headers=extra, response_class=response_class)
        except Exception:
            if crash is None:
                raise
            log.exception("mock endpoint %s %s failed", request.method, request.url.path)
            return render_error(crash, headers=extra, response_class=response_class)

    return wrapped


def bound_routes(
    state: T,
    table: Iterable[tuple[str, Callable[[T, Request], Awaitable[Any]], Sequence[str]]],
    **options: Any,
) -> list[BaseRoute]:
    """Routes from ``(path, handler, methods)`` rows; each handler gets ``state`` first.

    ``options`` go to :func:`endpoint` (``errors``, ``crash``, ``headers``, ...).
    """
    return [
        Route(path, endpoint(partial(handler, state), **options), methods=list(methods))
        for path, handler, methods in table
    ]
