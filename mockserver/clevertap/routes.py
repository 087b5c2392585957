"""Thin Starlette endpoints of the CleverTap mock, mounted at the app's root under ``/1``.

Each request is guarded the same way (:func:`_journaled`): authenticate (401), take a
concurrency slot (429), run the endpoint, write one journal entry, answer JSON with the content
type CleverTap's recorded answers carry, ``application/json;charset=utf-8`` (reference §3.1).
An endpoint parses the request, makes one backend call and returns the answer with a summary
for the journal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mockserver._http import DumpsJSON, Endpoint, parse_json, read_json, render_error
from mockserver.clevertap import reads
from mockserver.clevertap.accounts import Account
from mockserver.clevertap.backend import Api, CleverTapBackend, ReadKind
from mockserver.clevertap.errors import MALFORMED_REQUEST, CleverTapError
from mockserver.faults import forced_rejections

JSON_TYPE = "application/json;charset=utf-8"

#: An endpoint's answer (HTTP 200) and what the journal entry adds about it.
Outcome = tuple[dict[str, Any], dict[str, Any]]
Work = Callable[[CleverTapBackend, Request, Account, int], Awaitable[Outcome]]


class CleverTapJSON(DumpsJSON):
    """JSON as CleverTap answers it."""

    media_type = JSON_TYPE


def _malformed() -> CleverTapError:
    return CleverTapError(400, MALFORMED_REQUEST)


async def _json_body(request: Request) -> Any:
    return await read_json(request, partial(CleverTapError, 400), invalid=MALFORMED_REQUEST)


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def _journaled(backend: CleverTapBackend, api: Api, work: Work) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        entry: dict[str, Any] = {
            "id": backend.next_request_id(),
            "method": request.method,
            "path": request.url.path,
            "query": str(request.url.query),
            "account_id": None,
        }
        response: Response
        try:
            account = backend.authenticate(request.headers, request.headers.get("host", ""))
            entry["account_id"] = account.account_id
            with backend.slot(account.account_id, api):
                body, summary = await work(backend, request, account, entry["id"])
            entry.update(summary)
            response = CleverTapJSON(body)
        except CleverTapError as exc:
            entry["error"] = exc.message
            response = render_error(exc, response_class=CleverTapJSON)
        entry["status"] = response.status_code
        backend.journal_append(entry)
        return response

    return endpoint


async def upload(
    backend: CleverTapBackend, request: Request, account: Account, request_id: int
) -> Outcome:
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
    return answer, summary


async def _query(request: Request) -> reads.Query:
    """The query of a read request: the POST body, or GET's ``query=<JSON>``."""
    if request.method == "POST":
        return reads.Query.parse(await _json_body(request))
    text = request.query_params.get("query")
    if text is None:
        raise CleverTapError(400, "Give a cursor, or a query with a batch_size")
    return reads.Query.parse(parse_json(text, _malformed))


async def cursor(
    kind: ReadKind, backend: CleverTapBackend, request: Request, account: Account, request_id: int
) -> Outcome:
    name = request.query_params.get("cursor")
    if request.method == "GET" and name is not None:
        page = backend.next_page(account.account_id, name)
        return page, {"records": len(page["records"])}
    batch_size = reads.parse_batch_size(request.query_params.get("batch_size"))
    opened, found = backend.open_cursor(account.account_id, kind, await _query(request), batch_size)
    return {"status": "success", "cursor": opened}, {"records": found}


async def count(
    kind: ReadKind, backend: CleverTapBackend, request: Request, account: Account, request_id: int
) -> Outcome:
    req_id = request.query_params.get("req_id")
    if req_id is not None:
        found = backend.collect_count(account.account_id, req_id)
        return {"status": "success", "count": found}, {"count": found}
    query = reads.Query.parse(await _json_body(request))
    answer, found = backend.count(account.account_id, kind, query)
    return answer, {"count": found}


async def profile(
    backend: CleverTapBackend, request: Request, account: Account, request_id: int
) -> Outcome:
    params = request.query_params
    given = [(k, params[k]) for k in ("identity", "objectId", "email") if k in params]
    if len(given) != 1:
        raise CleverTapError(400, "Give exactly one of identity, objectId, email")
    ((key, value),) = given
    record = backend.read_profile(account.account_id, key, value)
    if record is None:
        # The not-found answer is UNCONFIRMED (reference §4); the mock says it plainly.
        raise CleverTapError(404, "Profile not found")
    return {"status": "success", "record": record}, {}


async def delete(
    backend: CleverTapBackend, request: Request, account: Account, request_id: int
) -> Outcome:
    deleted = backend.delete_profiles(account.account_id, await _json_body(request))
    return {"status": "success"}, {"deleted": deleted}


def api_routes(backend: CleverTapBackend) -> list[BaseRoute]:
    """The CleverTap REST routes, to mount at the root (paths start with ``/1``)."""

    # Each read API has its own concurrency slots (reference §3.4), named by Api.
    table: list[tuple[str, Api, Work, list[str]]] = [
        ("/1/upload", "upload", upload, ["POST"]),
        ("/1/profile.json", "profile", profile, ["GET"]),
        ("/1/events.json", "events", partial(cursor, "events"), ["GET", "POST"]),
        ("/1/profiles.json", "profiles", partial(cursor, "profiles"), ["GET", "POST"]),
        ("/1/counts/events.json", "event_counts", partial(count, "events"), ["GET", "POST"]),
        ("/1/counts/profiles.json", "profile_counts", partial(count, "profiles"), ["GET", "POST"]),
        ("/1/delete/profiles.json", "delete", delete, ["POST"]),
    ]
    return [
        Route(path, _journaled(backend, api, work), methods=methods)
        for path, api, work, methods in table
    ]
