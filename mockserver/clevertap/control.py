"""Inspection and reset of the CleverTap mock over HTTP, mounted under ``/_mock/clevertap``.

::

    GET  /accounts                      the configured accounts (ids and regions, no passcodes)
    GET  /journal?limit=N               the newest requests, oldest first (bounded journal)
    GET  /events?account_id=&identity=&object_id=
                                        stored events, all or one user's, in arrival order
    GET  /profiles?account_id=          every profile of the account
    GET  /profile?account_id=&identity=|object_id=|email=
    GET  /counters?account_id=          counters of one account, or of all
    POST /reset                         forget every profile, event, journal entry and counter

``account_id`` may be left out when a single account is configured.  Answers are JSON; a bad
parameter is a 400 ``{"error": ...}``.  Each endpoint makes one backend call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute

from mockserver._http import ControlError, bound_routes
from mockserver.clevertap.backend import CleverTapBackend

Control = Callable[[CleverTapBackend, Request], Awaitable[Any]]


def _account(backend: CleverTapBackend, request: Request) -> str:
    account_id = request.query_params.get("account_id")
    if account_id is None:
        ids = [a.account_id for a in backend.accounts]
        if len(ids) != 1:
            raise ControlError("account_id is required when several accounts are configured")
        return ids[0]
    if account_id not in backend.accounts:
        raise ControlError(f"unknown account_id {account_id!r}")
    return account_id


async def accounts(backend: CleverTapBackend, request: Request) -> Any:
    return {
        "accounts": [
            {"account_id": a.account_id, "region": a.region, "passcodes": len(a.passcodes)}
            for a in backend.accounts
        ]
    }


async def journal(backend: CleverTapBackend, request: Request) -> Any:
    entries = backend.journal()
    raw = request.query_params.get("limit")
    if raw is not None:
        if not raw.isdigit():
            raise ControlError("limit must be a non-negative integer")
        entries = entries[len(entries) - int(raw) :] if int(raw) else []
    return {"entries": entries, "cap": backend.journal_size}


async def events(backend: CleverTapBackend, request: Request) -> Any:
    account_id = _account(backend, request)
    identity = request.query_params.get("identity")
    object_id = request.query_params.get("object_id")
    if identity is None and object_id is None:
        return {"events": backend.events(account_id)}
    return {"events": backend.events_for(account_id, identity=identity, object_id=object_id)}


async def profiles(backend: CleverTapBackend, request: Request) -> Any:
    return {"profiles": backend.profiles(_account(backend, request))}


async def profile(backend: CleverTapBackend, request: Request) -> Any:
    params = request.query_params
    found = backend.profile(
        _account(backend, request),
        identity=params.get("identity"),
        object_id=params.get("object_id"),
        email=params.get("email"),
    )
    return {"profile": found}


async def counters(backend: CleverTapBackend, request: Request) -> Any:
    if "account_id" in request.query_params:
        return backend.counters(_account(backend, request))
    return backend.counters()


async def reset(backend: CleverTapBackend, request: Request) -> Any:
    backend.reset()
    return {"status": "reset"}


_ROUTES: list[tuple[str, Control, list[str]]] = [
    ("/accounts", accounts, ["GET"]),
    ("/journal", journal, ["GET"]),
    ("/events", events, ["GET"]),
    ("/profiles", profiles, ["GET"]),
    ("/profile", profile, ["GET"]),
    ("/counters", counters, ["GET"]),
    ("/reset", reset, ["POST"]),
]


def control_routes(backend: CleverTapBackend) -> list[BaseRoute]:
    """The control routes, to mount under ``/_mock/clevertap``."""
    # ValueError: the backend refusing a lookup ("give exactly one of ...").
    return bound_routes(backend, _ROUTES, errors=(ControlError, ValueError))
