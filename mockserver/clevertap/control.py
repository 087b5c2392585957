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
parameter is a 400 ``{"error": ...}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mockserver.clevertap.backend import CleverTapBackend


class _BadParameter(Exception):
    pass


def control_routes(backend: CleverTapBackend) -> list[BaseRoute]:
    """The control routes, to mount under ``/_mock/clevertap``."""

    def account_of(request: Request) -> str:
        account_id = request.query_params.get("account_id")
        if account_id is None:
            ids = [a.account_id for a in backend.accounts]
            if len(ids) != 1:
                raise _BadParameter("account_id is required when several accounts are configured")
            return ids[0]
        if account_id not in backend.accounts:
            raise _BadParameter(f"unknown account_id {account_id!r}")
        return account_id

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(handler(request))
            except (_BadParameter, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return endpoint

    def accounts(request: Request) -> Any:
        return {
            "accounts": [
                {"account_id": a.account_id, "region": a.region, "passcodes": len(a.passcodes)}
                for a in backend.accounts
            ]
        }

    def journal(request: Request) -> Any:
        entries = backend.journal()
        raw = request.query_params.get("limit")
        if raw is not None:
            if not raw.isdigit():
                raise _BadParameter("limit must be a non-negative integer")
            entries = entries[len(entries) - int(raw) :] if int(raw) else []
        return {"entries": entries, "cap": backend.journal_size}

    def events(request: Request) -> Any:
        account_id = account_of(request)
        identity = request.query_params.get("identity")
        object_id = request.query_params.get("object_id")
        if identity is None and object_id is None:
            return {"events": backend.events(account_id)}
        found = backend.events_for(account_id, identity=identity, object_id=object_id)
        return {"events": found}

    def profiles(request: Request) -> Any:
        return {"profiles": backend.profiles(account_of(request))}

    def profile(request: Request) -> Any:
        params = request.query_params
        found = backend.profile(
            account_of(request),
            identity=params.get("identity"),
            object_id=params.get("object_id"),
            email=params.get("email"),
        )
        return {"profile": found}

    def counters(request: Request) -> Any:
        if "account_id" in request.query_params:
            return backend.counters(account_of(request))
        return backend.counters()

    def reset(request: Request) -> Any:
        backend.reset()
        return {"status": "reset"}

    return [
        Route("/accounts", guarded(accounts), methods=["GET"]),
        Route("/journal", guarded(journal), methods=["GET"]),
        Route("/events", guarded(events), methods=["GET"]),
        Route("/profiles", guarded(profiles), methods=["GET"]),
        Route("/profile", guarded(profile), methods=["GET"]),
        Route("/counters", guarded(counters), methods=["GET"]),
        Route("/reset", guarded(reset), methods=["POST"]),
    ]
