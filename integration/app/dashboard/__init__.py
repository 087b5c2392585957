"""The delivery dashboard at ``/ui``: what reached CleverTap, what did not, and why.

Served by the engine itself (``rc-clevertap serve``, ``LocalStack``, ``rc-clevertap demo``)
when ``[admin] token`` is set; without it every path under ``/ui`` answers 404 and nothing
else changes.  :func:`with_dashboard` puts it in front of the engine's app::

    app = with_dashboard(engine)     # engine.app itself when no admin token is configured

Pages and routes (all under ``/ui``; see :mod:`integration.app.dashboard.routes`)::

    GET  /ui                  overview: the pipeline over 15 min / 1 h / 24 h / 7 d, the queue,
                              each account; its numbers refresh every few seconds (htmx)
    GET  /ui/events           the event feed, newest first, by cursor; filters: user, type,
                              outcome, account
    GET  /ui/events/<row id>  one event: body as received, its CleverTap records, its uploads
    GET  /ui/dead             dead letters; POST /ui/dead/retry, /ui/dead/discard
    GET  /ui/quarantine       invalid bodies; POST /ui/quarantine/requeue, /discard
    GET  /ui/replay           replay delivered events since a time, with the count first
    POST /ui/login, /logout   the admin token for a session cookie (auth.py)
    GET  /ui/api/...          JSON: overview, events, events/<row id>, dead
    GET  /ui/static/...       the stylesheet and htmx (vendored, no CDN: works offline)

Templates are Jinja2 (Starlette's ``Jinja2Templates``, autoescaped); the one front-end helper
is htmx, vendored as ``static/htmx.min.js`` with its licence and version in its header.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from integration.app.dashboard.routes import Dashboard
from integration.engine import Engine

__all__ = ["PREFIX", "Dashboard", "with_dashboard"]

PREFIX = "/ui"


def with_dashboard(engine: Engine, *, clock: Callable[[], float] = time.time) -> ASGIApp:
    """``engine.app`` with the dashboard answering under ``/ui`` when an admin token is set.

    Everything else (webhooks, health, metrics, the lifespan) goes to ``engine.app`` untouched;
    without ``[admin] token`` this is ``engine.app`` itself, whose router answers ``/ui`` 404.
    """
    admin = engine.config.admin
    if admin.token is None:
        return engine.app
    dashboard = Dashboard(engine, admin.token, session_s=admin.session_s, clock=clock)
    return _Split(engine.app, dashboard.app)


class _Split:
    """Paths under :data:`PREFIX` to the dashboard, everything else to the engine."""

    __slots__ = ("_dashboard", "_engine")

    def __init__(self, engine: ASGIApp, dashboard: ASGIApp) -> None:
        self._engine = engine
        self._dashboard = dashboard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            scope["path"] == PREFIX or scope["path"].startswith(PREFIX + "/")
        ):
            await self._dashboard(scope, receive, send)
        else:
            await self._engine(scope, receive, send)
