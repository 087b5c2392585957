"""The dashboard's Starlette app: pages, their live fragments, actions and the JSON API.

Every route but the login form and the static files needs a session (or, for the JSON API,
``Authorization: Bearer <admin token>``); every POST but the login needs the session's CSRF
token.  Actions take two steps: the first POST shows what would change and asks to confirm;
the confirmation does it, logs what it changed, and redirects back to the list (303).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from integration import admin
from integration._exceptions import IntegrationError
from integration.app.dashboard import queries
from integration.app.dashboard.auth import CSRF_FIELD, CSRF_HEADER, Session, Sessions, number
from integration.config import Secret
from integration.engine import Engine

__all__ = ["Dashboard"]

logger = logging.getLogger("integration.app.dashboard")

HERE = Path(__file__).parent
#: Largest form body read (a selection of a few thousand ids fits easily).
MAX_FORM_BYTES = 256 * 1024
#: Dead letters and quarantined bodies listed on one page (the oldest dead letters, the
#: newest bodies); "Retry all" acts on every dead letter.
LIST_LIMIT = 100
#: Failed logins logged per minute; the rest are counted in the next line logged.
FAILED_LOGINS_LOGGED_PER_MINUTE = 10
#: How often the overview's numbers refresh, in seconds (htmx polling).
REFRESH_S = 2

Handler = Callable[[Request, Session | None], Awaitable[Response]]


class Dashboard:
    """The dashboard of one engine, as a Starlette app answering under ``/ui``.

    Example::

        dashboard = Dashboard(engine, Secret("a-long-random-admin-token"))
        # serve dashboard.app for paths under /ui (integration.app.dashboard.with_dashboard)

    Parameters:
        engine: the running engine whose outbox, metrics and accounts are shown.
        token: the ``[admin] token``.
        session_s: how long a login lasts.
        clock: epoch seconds (the engine's, so that a fake clock moves both).
    """

    def __init__(
        self,
        engine: Engine,
        token: Secret,
        *,
        session_s: float = 8 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.sessions = Sessions(token, lifetime_s=session_s, clock=clock)
        self._clock = clock
        self._windows = queries.WindowCache(engine.outbox)
        self._failed_logins: tuple[float, int, int] = (0.0, 0, 0)  # (minute start, logged, held)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["when"] = _when
        self.templates.env.filters["age"] = _age
        self.templates.env.globals["refresh_s"] = REFRESH_S
        page, api, act = self._page, self._api, self._action
        self.app = Starlette(
            routes=[
                Route("/ui", page(self.overview_page)),
                Route("/ui/overview/live", page(self.overview_live)),
                Route("/ui/events", page(self.events_page)),
                Route("/ui/events/{row_id:int}", page(self.event_page)),
                Route("/ui/dead", page(self.dead_page)),
                Route("/ui/dead/{verb:str}", act(self.dead_action), methods=["POST"]),
                Route("/ui/quarantine", page(self.quarantine_page)),
                Route("/ui/quarantine/{verb:str}", act(self.quarantine_action), methods=["POST"]),
                Route("/ui/replay", page(self.replay_page)),
                Route("/ui/replay", act(self.replay_action), methods=["POST"]),
                Route("/ui/login", self.login, methods=["POST"]),
                Route("/ui/logout", act(self.logout), methods=["POST"]),
                Route("/ui/api/overview", api(self.overview_json)),
                Route("/ui/api/events", api(self.events_json)),
                Route("/ui/api/events/{row_id:int}", api(self.event_json)),
                Route("/ui/api/dead", api(self.dead_json)),
                Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="static"),
            ]
        )

    def __repr__(self) -> str:
        return f"Dashboard(engine={self.engine!r})"

    # -- access ------------------------------------------------------------------------------

    def _page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = self.sessions.of(request)
            if session is None:
                if request.headers.get("hx-request") == "true":
                    # A refresh after the session ended: htmx loads the login page whole
                    # instead of swapping it into the overview (https://htmx.org/reference/).
                    return Response(status_code=200, headers={"HX-Redirect": "/ui"})
                return self._login_page(request, status=200)
            return await handler(request, session)

        return endpoint

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = self.sessions.of(request)
            if session is None and not self.sessions.bearer_matches(request):
                return JSONResponse(
                    {"error": "log in at /ui, or send Authorization: Bearer <admin token>"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await handler(request, session)

        return endpoint

    def _action(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = self.sessions.of(request)
            if session is None:
                return self._login_page(request, status=401)
            form = await _form(request)
            given = request.headers.get(CSRF_HEADER) or _one(form, CSRF_FIELD)
            if not self.sessions.csrf_matches(session, given):
                return self._render(
                    request, session, "error.html", {"message": _CSRF_MESSAGE}, status=403
                )
            request.state.form = form
            return await handler(request, session)

        return endpoint

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        if not self.sessions.token_matches(_one(form, "token") or ""):
            self._log_failed_login(request)
            return self._login_page(request, status=401, error="That is not the admin token.")
        target = _one(form, "next") or "/ui"
        if not target.startswith("/ui") or target.startswith("//"):
            target = "/ui"  # never redirect off the dashboard
        response = RedirectResponse(target, status_code=303)
        self.sessions.start(response, request)
        logger.info("dashboard: logged in from %s", _client(request))
        return response

    async def logout(self, request: Request, session: Session | None) -> Response:
        response = RedirectResponse("/ui", status_code=303)
        self.sessions.end(response, request)
        logger.info("dashboard: logged out from %s", _client(request))
        return response

    def _login_page(self, request: Request, *, status: int, error: str | None = None) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        context = {"error": error, "next": target if request.method == "GET" else "/ui"}
        return self._render(request, None, "login.html", context, status=status)

    def _log_failed_login(self, request: Request) -> None:
        now = self._clock()
        start, logged, held = self._failed_logins
        if now - start >= 60.0:
            if held:
                logger.warning("dashboard: %d more failed logins in the last minute", held)
            start, logged, held = now, 0, 0
        if logged < FAILED_LOGINS_LOGGED_PER_MINUTE:
            logger.warning("dashboard: failed login from %s (wrong token)", _client(request))
            logged += 1
        else:
            held += 1
        self._failed_logins = (start, logged, held)

    def _render(
        self,
        request: Request,
        session: Session | None,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
    ) -> Response:
        context = {"csrf": None if session is None else session.csrf, **context}
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        # Pages show subscriber data: never cached, never framed.
        response.headers["cache-control"] = "no-store"
        response.headers["x-frame-options"] = "DENY"
        response.headers["content-security-policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
        )
        return response

    # -- pages -------------------------------------------------------------------------------

    def _window(self, request: Request) -> str:
        window = request.query_params.get("w", "1h")
        return window if window in queries.WINDOWS else "1h"

    async def overview_page(self, request: Request, session: Session | None) -> Response:
        view = await queries.overview(
            self.engine, self._windows, self._window(request), now=self._clock()
        )
        context = {"o": view, "windows": list(queries.WINDOWS)}
        return self._render(request, session, "overview.html", context)

    async def overview_live(self, request: Request, session: Session | None) -> Response:
        view = await queries.overview(
            self.engine, self._windows, self._window(request), now=self._clock()
        )
        return self._render(request, session, "_live.html", {"o": view})

    async def events_page(self, request: Request, session: Session | None) -> Response:
        page = await queries.feed(self.engine, request.query_params)
        filters = {k: v for k, v in request.query_params.items() if k not in ("before", "limit")}
        older = None
        if page.next_before is not None:
            older = "/ui/events?" + urlencode({**filters, "before": page.next_before})
        context = {
            "events": page.events,
            "filters": filters,
            "older": older,
            "stopped_at_scan": page.stopped_at_scan,
            "scan": queries.MAX_FEED_SCAN,
            "outcomes": queries.OUTCOMES,
            "accounts": queries.account_ids(self.engine),
        }
        return self._render(request, session, "events.html", context)

    async def event_page(self, request: Request, session: Session | None) -> Response:
        view = await queries.event_view(self.engine, int(request.path_params["row_id"]))
        if view is None:
            context = {"message": "No event with that id (it may have been pruned)."}
            return self._render(request, session, "error.html", context, status=404)
        return self._render(request, session, "event.html", {"e": view})

    async def dead_page(self, request: Request, session: Session | None) -> Response:
        dead = await self.engine.outbox.dead_letters(limit=LIST_LIMIT)
        context = {"dead": dead, "done": _done(request), "limit": LIST_LIMIT}
        return self._render(request, session, "dead.html", context)

    async def quarantine_page(self, request: Request, session: Session | None) -> Response:
        bodies = await self.engine.outbox.quarantined(limit=LIST_LIMIT)
        context = {"bodies": bodies, "done": _done(request), "limit": LIST_LIMIT}
        return self._render(request, session, "quarantine.html", context)

    async def replay_page(self, request: Request, session: Session | None) -> Response:
        raw = request.query_params.get("since", "")
        raw_until = request.query_params.get("until", "")
        since, until = _parse_since(raw), _parse_since(raw_until)
        error = None
        if (raw and since is None) or (raw_until and until is None):
            error = "Give a time as YYYY-MM-DDTHH:MM (UTC)."
        elif since is not None and until is not None and until <= since:
            error = "The end must be after the start."
        count = None
        if since is not None and error is None:
            counts = await self.engine.outbox.window_counts(since=since, until=until)
            count = counts.delivered  # the same range replay() requeues: [since, until)
        context = {
            "since": raw,
            "since_at": since,
            "until": raw_until if until is not None else "",
            "until_at": until,
            "count": count,
            "done": _done(request),
        }
        if error:
            context["error"] = error
        return self._render(request, session, "replay.html", context)

    # -- actions -----------------------------------------------------------------------------

    async def dead_action(self, request: Request, session: Session | None) -> Response:
        verb = request.path_params["verb"]
        if verb not in ("retry", "discard"):
            return self._render(
                request, session, "error.html", {"message": "No such action."}, status=404
            )
        form: dict[str, list[str]] = request.state.form
        every = _one(form, "all") == "yes"
        ids: list[int | str] = [n for i in form.get("id", []) if (n := number(i)) is not None]
        every = every and verb == "retry"  # a discard names what it deletes, one by one
        if not every and not ids:
            return self._back(request, "/ui/dead", "none")
        if _one(form, "confirm") != "yes":
            what = "every dead letter" if every else _count(len(ids), "dead letter")
            return self._confirm(request, session, f"{verb.capitalize()} {what}?", form)
        try:
            if verb == "retry":
                count = await admin.retry_dead_letters(
                    self.engine.config, None if every else ids, now=self._clock()
                )
                self._wake()
            else:
                count = await admin.discard_dead_letters(self.engine.config, ids)
        except IntegrationError as exc:
            return self._render(request, session, "error.html", {"message": str(exc)}, status=409)
        done = "requeued" if verb == "retry" else "discarded"
        logger.info(
            "dashboard: %s %s (%s) from %s",
            done,
            _count(count, "dead letter"),
            "all" if every else "row ids " + _ids(ids),
            _client(request),
        )
        return self._back(request, "/ui/dead", done, count)

    async def quarantine_action(self, request: Request, session: Session | None) -> Response:
        verb = request.path_params["verb"]
        if verb not in ("requeue", "discard"):
            return self._render(
                request, session, "error.html", {"message": "No such action."}, status=404
            )
        form: dict[str, list[str]] = request.state.form
        ids = [n for i in form.get("id", []) if (n := number(i)) is not None]
        if not ids:
            return self._back(request, "/ui/quarantine", "none")
        if _one(form, "confirm") != "yes":
            what = _count(len(ids), "quarantined body", "quarantined bodies")
            return self._confirm(request, session, f"{verb.capitalize()} {what}?", form)
        try:
            if verb == "requeue":
                count = await admin.requeue_quarantined(self.engine.config, ids, now=self._clock())
                self._wake()
            else:
                count = await admin.discard_quarantined(self.engine.config, ids)
        except IntegrationError as exc:
            return self._render(request, session, "error.html", {"message": str(exc)}, status=409)
        done = "requeued" if verb == "requeue" else "discarded"
        logger.info(
            "dashboard: %s %s (quarantine ids %s) from %s",
            done,
            _count(count, "quarantined body", "quarantined bodies"),
            _ids(ids),
            _client(request),
        )
        return self._back(request, "/ui/quarantine", done, count)

    async def replay_action(self, request: Request, session: Session | None) -> Response:
        form: dict[str, list[str]] = request.state.form
        raw = _one(form, "since") or ""
        raw_until = _one(form, "until") or ""
        since, until = _parse_since(raw), _parse_since(raw_until)
        bad_until = until is None if raw_until else False
        if since is None or bad_until or (until is not None and until <= since):
            back = {"since": raw} | ({"until": raw_until} if raw_until else {})
            return RedirectResponse("/ui/replay?" + urlencode(back), status_code=303)
        span = _span(since, until)
        if _one(form, "confirm") != "yes":
            count = (await self.engine.outbox.window_counts(since=since, until=until)).delivered
            question = (
                f"Send {_count(count, 'event')} delivered {span} to CleverTap "
                "again? CleverTap will receive them a second time."
            )
            return self._confirm(request, session, question, form)
        count = await admin.replay_delivered(
            self.engine.config, since=since, until=until, now=self._clock()
        )
        self._wake()
        logger.info(
            "dashboard: replayed %s delivered %s from %s",
            _count(count, "event"),
            span,
            _client(request),
        )
        return self._back(request, "/ui/replay", "replayed", count)

    def _confirm(
        self, request: Request, session: Session | None, question: str, form: dict[str, list[str]]
    ) -> Response:
        fields = [(k, v) for k, values in form.items() if k != CSRF_FIELD for v in values]
        path = request.url.path
        back = path if path == "/ui/replay" else path.rsplit("/", 1)[0]
        context = {"question": question, "action": path, "fields": fields, "back": back}
        return self._render(request, session, "confirm.html", context)

    def _back(self, request: Request, path: str, done: str, count: int = 0) -> Response:
        return RedirectResponse(f"{path}?{urlencode({'done': done, 'n': count})}", 303)

    def _wake(self) -> None:
        """Requeued rows are due now: every lane looks at once instead of at its next poll."""
        self.engine.dispatcher.wake_all()

    # -- JSON API ----------------------------------------------------------------------------

    async def overview_json(self, request: Request, session: Session | None) -> Response:
        view = await queries.overview(
            self.engine, self._windows, self._window(request), now=self._clock()
        )
        return JSONResponse(view.as_json())

    async def events_json(self, request: Request, session: Session | None) -> Response:
        page = await queries.feed(self.engine, request.query_params)
        rows = [_asdict(e) for e in page.events]
        return JSONResponse({"events": rows, "before": page.next_before})

    async def event_json(self, request: Request, session: Session | None) -> Response:
        view = await queries.event_view(self.engine, int(request.path_params["row_id"]))
        if view is None:
            return JSONResponse({"error": "no event with that id"}, status_code=404)
        return JSONResponse(view.as_json())

    async def dead_json(self, request: Request, session: Session | None) -> Response:
        dead = await self.engine.outbox.dead_letters(limit=LIST_LIMIT)
        return JSONResponse({"dead_letters": [_asdict(d) for d in dead]})


_CSRF_MESSAGE = "This action needs the page's CSRF token: reload the page and try again."


async def _form(request: Request) -> dict[str, list[str]]:
    """A urlencoded form body, at most :data:`MAX_FORM_BYTES` (the rest is not read)."""
    if request.method != "POST":
        return {}
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return {}
        chunks.append(chunk)
    return parse_qs(b"".join(chunks).decode("utf-8", errors="replace"), max_num_fields=20_000)


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _done(request: Request) -> dict[str, object] | None:
    done = request.query_params.get("done")
    count = request.query_params.get("n", "0")
    if done not in ("requeued", "discarded", "replayed", "none"):
        return None
    return {"what": done, "n": number(count) or 0}


def _parse_since(raw: str) -> float | None:
    """``YYYY-MM-DDTHH:MM[:SS]`` in UTC (a datetime-local input) as epoch seconds."""
    try:
        moment = _dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.timestamp()


def _span(since: float, until: float | None) -> str:
    """A replay's range in words; ``until`` itself is excluded, as in ``Outbox.replay``."""
    return f"since {_when(since)}" if until is None else f"from {_when(since)} to {_when(until)}"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    moment = _dt.datetime.fromtimestamp(epoch, _dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _ids(ids: Sequence[int | str]) -> str:
    """At most 20 ids for a log line, then how many more."""
    shown = ", ".join(str(i) for i in ids[:20])
    return shown + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")


def _client(request: Request) -> str:
    return "an unknown address" if request.client is None else request.client.host


def _asdict(row: Any) -> dict[str, Any]:
    return dataclasses.asdict(row)
