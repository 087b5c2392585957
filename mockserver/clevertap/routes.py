"""Thin Starlette endpoints of the CleverTap mock, mounted at the app's root under ``/1``.

Each endpoint authenticates (401), takes a concurrency slot (429), hands the parsed request to
the backend or :mod:`.reads`, writes one journal entry and answers JSON with the content type
CleverTap's recorded answers carry, ``application/json;charset=utf-8`` (reference §3.1).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mockserver.clevertap import reads
from mockserver.clevertap.accounts import Account
from mockserver.clevertap.backend import Api, CleverTapBackend
from mockserver.clevertap.errors import MALFORMED_REQUEST, CleverTapError
from mockserver.faults import forced_rejections

JSON_TYPE = "application/json;charset=utf-8"

Work = Callable[[Request, Account, int], Awaitable[tuple[int, dict[str, Any], dict[str, Any]]]]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=JSON_TYPE)


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise CleverTapError(400, MALFORMED_REQUEST) from None


def _endpoint(
    backend: CleverTapBackend, api: Api, work: Work
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        entry: dict[str, Any] = {
            "id": backend.next_request_id(),
            "method": request.method,
            "path": request.url.path,
            "query": str(request.url.query),
            "account_id": None,
        }
        try:
            account = backend.authenticate(request.headers, request.headers.get("host", ""))
            entry["account_id"] = account.account_id
            with backend.slot(account.account_id, api):
                status, body, summary = await work(request, account, entry["id"])
            entry.update(summary)
        except CleverTapError as exc:
            status, body = exc.status, exc.body()
            entry["error"] = exc.message
        entry["status"] = status
        backend.journal_append(entry)
        return json_response(body, status)

    return endpoint


def api_routes(backend: CleverTapBackend) -> list[BaseRoute]:
    """The CleverTap REST routes, to mount at the root (paths start with ``/1``)."""

    async def upload(
        request: Request, account: Account, request_id: int
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        if backend.on_upload is not None:
            await backend.on_upload(account.account_id)
        records = backend.parse_upload(await request.body())
        dry_run = _flag(request.query_params.get("dryRun"))
        answer = backend.upload(
            account.account_id,
            records,
            dry_run=dry_run,
            forced=forced_rejections(request.scope, len(records)),
            request_id=request_id,
        )
        summary = {
            "dry_run": dry_run,
            "records": len(records),
            "processed": answer["processed"],
            "unprocessed": [u["code"] for u in answer["unprocessed"]],
        }
        return 200, answer, summary

    async def query_of(request: Request) -> tuple[reads.Query, int]:
        batch_size = reads.parse_batch_size(request.query_params.get("batch_size"))
        if request.method == "POST":
            raw = await _json_body(request)
        else:
            text = request.query_params.get("query")
            if text is None:
                raise CleverTapError(400, "Give a cursor, or a query with a batch_size")
            try:
                raw = json.loads(text)
            except (ValueError, RecursionError):
                raise CleverTapError(400, MALFORMED_REQUEST) from None
        return reads.Query.parse(raw), batch_size

    def cursor_endpoint(kind: str) -> Work:
        async def work(
            request: Request, account: Account, request_id: int
        ) -> tuple[int, dict[str, Any], dict[str, Any]]:
            backend.count_read(account.account_id)
            cursor = request.query_params.get("cursor")
            if request.method == "GET" and cursor is not None:
                with backend.lock:
                    answer = backend.cursors.step(account.account_id, cursor)
                return 200, answer, {"records": len(answer["records"])}
            query, batch_size = await query_of(request)
            store = backend.store(account.account_id)
            found: list[Any]
            with backend.lock:
                if kind == "events":
                    found, render = reads.matching_events(store, query), reads.event_renderer(store)
                else:
                    found, render = reads.profiles_with(store, query), reads.profile_record
                cursor = backend.cursors.open(account.account_id, found, batch_size, render)
            return 200, {"status": "success", "cursor": cursor}, {"records": len(found)}

        return work

    def count_endpoint(kind: str) -> Work:
        async def work(
            request: Request, account: Account, request_id: int
        ) -> tuple[int, dict[str, Any], dict[str, Any]]:
            backend.count_read(account.account_id)
            req_id = request.query_params.get("req_id")
            if req_id is not None:
                count = backend.cursors.collect_count(account.account_id, req_id)
                return 200, {"status": "success", "count": count}, {"count": count}
            query = reads.Query.parse(await _json_body(request))
            store = backend.store(account.account_id)
            with backend.lock:
                if kind == "events":
                    count = len(reads.matching_events(store, query))
                else:
                    count = len(reads.profiles_with(store, query))
            if backend.counts_deferred:
                ticket = backend.cursors.defer_count(account.account_id, count)
                return 200, {"status": "partial", "req_id": ticket}, {"count": count}
            return 200, {"status": "success", "count": count}, {"count": count}

        return work

    async def profile(
        request: Request, account: Account, request_id: int
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        backend.count_read(account.account_id)
        params = request.query_params
        given = [(k, params[k]) for k in ("identity", "objectId", "email") if k in params]
        if len(given) != 1:
            raise CleverTapError(400, "Give exactly one of identity, objectId, email")
        ((key, value),) = given
        with backend.lock:
            found = backend.store(account.account_id).find(key, value)
            record = None if found is None else reads.profile_record(found)
        if record is None:
            # The not-found answer is UNCONFIRMED (reference §4); the mock says it plainly.
            raise CleverTapError(404, "Profile not found")
        return 200, {"status": "success", "record": record}, {}

    async def delete(
        request: Request, account: Account, request_id: int
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        backend.count_read(account.account_id)
        body = await _json_body(request)
        with backend.lock:
            deleted = reads.delete_profiles(backend.store(account.account_id), body)
        return 200, {"status": "success"}, {"deleted": deleted}

    return [
        Route("/1/upload", _endpoint(backend, "upload", upload), methods=["POST"]),
        Route("/1/profile.json", _endpoint(backend, "read", profile), methods=["GET"]),
        Route(
            "/1/events.json",
            _endpoint(backend, "read", cursor_endpoint("events")),
            methods=["GET", "POST"],
        ),
        Route(
            "/1/profiles.json",
            _endpoint(backend, "read", cursor_endpoint("profiles")),
            methods=["GET", "POST"],
        ),
        Route(
            "/1/counts/events.json",
            _endpoint(backend, "read", count_endpoint("events")),
            methods=["GET", "POST"],
        ),
        Route(
            "/1/counts/profiles.json",
            _endpoint(backend, "read", count_endpoint("profiles")),
            methods=["GET", "POST"],
        ),
        Route("/1/delete/profiles.json", _endpoint(backend, "read", delete), methods=["POST"]),
    ]
