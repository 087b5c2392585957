"""Reaching the mocks from code you cannot hand a transport: host routing and live servers.

- :class:`MockRoutes` (``route_to_mocks``): httpx requests to ``api.revenuecat.com``,
  ``api.clevertap.com`` and ``<region>.api.clevertap.com`` are answered by the mocks in
  process, whoever made the client; other hosts go out as usual.  As httpx ``mounts`` for
  clients you build, as a patch of httpx's default transports for clients you do not, and as
  respx routes when the test also uses ``respx_mock``.
- :class:`LiveMocks` (``live_mocks``): both mocks on a loopback port, for code that is not
  httpx (another HTTP library, a subprocess).  Sockets only when a test asks for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.app.pytest_plugin.clevertap import CleverTapMock
from integration.app.pytest_plugin.revenuecat import REVENUECAT_HOST, RevenueCatMock
from mockserver.app import create_app
from mockserver.serving import BackgroundServer, LoopThread

__all__ = ["LiveMocks", "MockRoutes"]

#: CleverTap's API hosts: ``api.clevertap.com`` (Europe) and ``<region>.api.clevertap.com``.
CLEVERTAP_HOSTS = re.compile(r"^([a-z0-9]+\.)?api\.clevertap\.com$")

#: Names of the routes added to a respx router (removed at teardown unless called, so that
#: respx's ``assert_all_called`` only counts the test's own routes).
RESPX_ROUTES = ("rc-clevertap:revenuecat", "rc-clevertap:clevertap")


class MockRoutes:
    """Which mock answers a host, as transports, mounts and a patch of httpx.

    Example::

        def test_my_code(route_to_mocks, clevertap_mock):
            httpx.post("https://eu1.api.clevertap.com/1/upload", json=...,
                       headers=clevertap_mock.headers)   # answered by the mock
            clevertap_mock.assert_event("user-1", "Signed Up")
    """

    def __init__(self, revenuecat: RevenueCatMock, clevertap: CleverTapMock) -> None:
        self.revenuecat = revenuecat
        self.clevertap = clevertap
        self._sync = {"revenuecat": revenuecat.transport(), "clevertap": clevertap.transport()}
        self._respx: list[Any] = []

    def mock_for(self, host: str) -> str | None:
        """``"revenuecat"``, ``"clevertap"`` or None: which mock answers ``host``."""
        host = host.lower()
        if host == REVENUECAT_HOST:
            return "revenuecat"
        if CLEVERTAP_HOSTS.match(host):
            return "clevertap"
        return None

    @property
    def mounts(self) -> dict[str, httpx.BaseTransport]:
        """``httpx.Client(mounts=...)`` routes for both services' hosts."""
        return {
            f"all://{REVENUECAT_HOST}": self._sync["revenuecat"],
            "all://api.clevertap.com": self._sync["clevertap"],
            "all://*.api.clevertap.com": self._sync["clevertap"],
        }

    @property
    def async_mounts(self) -> dict[str, httpx.AsyncBaseTransport]:
        """``httpx.AsyncClient(mounts=...)`` routes for both services' hosts."""
        revenuecat, clevertap = self.revenuecat.router, self.clevertap.router
        return {
            f"all://{REVENUECAT_HOST}": revenuecat,
            "all://api.clevertap.com": clevertap,
            "all://*.api.clevertap.com": clevertap,
        }

    def handle(self, request: httpx.Request) -> httpx.Response | None:
        """The mock's answer to ``request`` (sync), or None when no mock serves its host."""
        mock = self.mock_for(request.url.host)
        return None if mock is None else self._sync[mock].handle_request(request)

    async def ahandle(self, request: httpx.Request) -> httpx.Response | None:
        """The mock's answer to ``request`` (async), or None when no mock serves its host."""
        mock = self.mock_for(request.url.host)
        if mock is None:
            return None
        router = self.revenuecat.router if mock == "revenuecat" else self.clevertap.router
        return await router.handle_async_request(request)

    def patch_httpx(self, setattr: Callable[[object, str, object], None]) -> None:
        """Route every httpx client's default transport (``pytest.MonkeyPatch.setattr``)."""
        original_sync = httpx.HTTPTransport.handle_request
        original_async = httpx.AsyncHTTPTransport.handle_async_request
        routes = self

        def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> Any:
            answer = routes.handle(request)
            return original_sync(transport, request) if answer is None else answer

        async def handle_async_request(
            transport: httpx.AsyncHTTPTransport, request: httpx.Request
        ) -> Any:
            answer = await routes.ahandle(request)
            return await original_async(transport, request) if answer is None else answer

        setattr(httpx.HTTPTransport, "handle_request", handle_request)
        setattr(httpx.AsyncHTTPTransport, "handle_async_request", handle_async_request)

    def add_to_respx(self, router: Any) -> None:
        """Answer both services' hosts from the mocks on a respx router (``respx_mock``).

        respx then sees (and records) those requests; its other routes are untouched.  Each
        answer is computed on the plugin's loop, so one side effect serves sync and async
        clients alike.
        """
        revenuecat_name, clevertap_name = RESPX_ROUTES
        router.route(host=REVENUECAT_HOST, name=revenuecat_name).mock(
            side_effect=self._sync["revenuecat"].handle_request
        )
        router.route(host__regex=CLEVERTAP_HOSTS.pattern, name=clevertap_name).mock(
            side_effect=self._sync["clevertap"].handle_request
        )
        self._respx.append(router)

    def close(self) -> None:
        """Take this fixture's uncalled routes off respx routers, before respx checks them."""
        for router in self._respx:
            for name in RESPX_ROUTES:
                route = router.pop(name, None)
                if route is not None and route.called:
                    router.add(route, name=name)
        self._respx.clear()


class LiveMocks:
    """Both mocks served over loopback HTTP on a free port, for code that is not httpx.

    The same backends as ``revenuecat_mock`` and ``clevertap_mock``: assertions on those
    fixtures see what arrived over the socket.  The server runs on a thread of its own,
    stopped and joined at teardown; webhooks still go out only when a test flushes them.

    Attributes:
        url: the base URL (``http://127.0.0.1:<port>``): RevenueCat under ``/v1`` and ``/v2``,
            CleverTap under ``/1``, inspection under ``/_mock``.
        revenuecat_url, clevertap_url: the same URL, named for the service.
    """

    def __init__(self, revenuecat: RevenueCatMock, clevertap: CleverTapMock) -> None:
        self._loop = LoopThread(name="rc-clevertap-live-mocks")
        app = create_app(
            revenuecat_backend=revenuecat.backend,
            clevertap_backend=clevertap.backend,
            faults=clevertap.faults,
        )
        # Not the app's own lifespan: it would start the webhook emitter's background task,
        # and webhooks are flushed by the tests, on virtual time.
        self._server = BackgroundServer(_without_lifespan(app), timeout_graceful_shutdown=1)
        try:
            self.url = self._loop.run(self._server.start(), timeout=30)
        except BaseException:
            self._loop.close()
            raise
        self.revenuecat_url = self.clevertap_url = self.url

    def __repr__(self) -> str:
        return f"LiveMocks(url={self.url!r})"

    def close(self) -> None:
        """Stop the server, then its loop and thread (run at teardown)."""
        try:
            self._loop.run(self._server.stop(), timeout=30)
        finally:
            self._loop.close()


def _without_lifespan(app: ASGIApp) -> ASGIApp:
    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message: Message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]  # startup | shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return

    return serve
