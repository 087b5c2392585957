"""One Starlette app serving both mocks, their control routes and fault injection.

Layout of the app::

    /v1/...                    RevenueCat API v1          (mockserver.revenuecat)
    /v2/...                    RevenueCat API v2          (mockserver.revenuecat)
    /1/...                     CleverTap REST API         (mockserver.clevertap)
    /_mock/revenuecat/...      RevenueCat control and inspection
    /_mock/clevertap/...       CleverTap control and inspection
    /_mock/faults              fault rules shared by both mocks

Each mocked API is a package with ``backend.py`` (state and rules, plain Python) and
``routes.py`` (thin endpoints).  The app only composes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from mockserver import clevertap, revenuecat
from mockserver.faults import FaultInjector, FaultMiddleware, fault_routes


def create_app(
    *,
    revenuecat_backend: revenuecat.RevenueCatBackend | None = None,
    clevertap_backend: clevertap.CleverTapBackend | None = None,
    faults: FaultInjector | None = None,
) -> Starlette:
    """Build the mock app.

    A mock left as ``None`` is not served.  Backends are created by the caller so that a test
    or a notebook keeps a handle on their state.  The app's lifespan starts and stops the
    RevenueCat backend's background work (the webhook emitter).
    """
    routes: list[BaseRoute] = []
    control: list[BaseRoute] = []
    if revenuecat_backend is not None:
        routes += revenuecat.api_routes(revenuecat_backend)
        control.append(Mount("/revenuecat", routes=revenuecat.control_routes(revenuecat_backend)))
    if clevertap_backend is not None:
        routes += clevertap.api_routes(clevertap_backend)
        control.append(Mount("/clevertap", routes=clevertap.control_routes(clevertap_backend)))
    injector = faults if faults is not None else FaultInjector()
    control.append(Mount("/faults", routes=fault_routes(injector)))
    routes.insert(0, Mount("/_mock", routes=control))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if revenuecat_backend is not None:
            await revenuecat_backend.start()
        try:
            yield
        finally:
            if revenuecat_backend is not None:
                await revenuecat_backend.stop()

    middleware: Sequence[Middleware] = [Middleware(FaultMiddleware, injector=injector)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.revenuecat = revenuecat_backend
    app.state.clevertap = clevertap_backend
    app.state.faults = injector
    return app
