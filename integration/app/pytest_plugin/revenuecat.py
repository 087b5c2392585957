"""The ``revenuecat_mock`` fixture's object: the RevenueCat mock in process, on virtual time."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp

from client import AsyncRevenueCat, RevenueCat
from integration.app.pytest_plugin._world import ASGIRouter, SyncASGITransport, World
from mockserver.app import create_app
from mockserver.revenuecat import Delivery, RevenueCatBackend, WebhookTarget
from mockserver.revenuecat.keys import DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY, DEFAULT_V2_KEY

__all__ = ["REVENUECAT_HOST", "RevenueCatMock"]

#: The host RevenueCat's API answers on; the mock's clients use it (no request leaves).
REVENUECAT_HOST = "api.revenuecat.com"


class RevenueCatMock:
    """RevenueCat's API, store simulator and webhooks, in process on a frozen virtual clock.

    Example::

        def test_trial(revenuecat_mock):
            revenuecat_mock.client.set_clevertap_id("user-1", "ct-1")
            revenuecat_mock.simulate("start_trial", "user-1", "pro_monthly")
            revenuecat_mock.advance(3 * 86400)
            revenuecat_mock.simulate("convert_trial", "user-1")
            assert [e["type"] for e in revenuecat_mock.events("user-1")] == [
                "INITIAL_PURCHASE", "RENEWAL"]

    Time moves only when the test says so (:meth:`advance`); webhooks are sent only when the
    test flushes them (:meth:`flush_webhooks`, or the engine fixture's ``settle``).

    Attributes:
        backend: the :class:`~mockserver.revenuecat.RevenueCatBackend` (customers, events,
            deliveries, every store operation).
        app: the mock's ASGI app (``/v1``, ``/v2``, ``/_mock/revenuecat``).
        client, async_client: a ``client.RevenueCat`` / ``AsyncRevenueCat`` on the mock.
        secret_key, v2_key, public_key: the keys the mock accepts.
    """

    base_url = f"https://{REVENUECAT_HOST}"
    secret_key = DEFAULT_SECRET_KEY
    v2_key = DEFAULT_V2_KEY
    public_key = DEFAULT_PUBLIC_KEY

    def __init__(self, world: World, *, seed: int = 0) -> None:
        self._world = world
        # Webhooks go through this router: the engine fixture (or a test) adds its receiver.
        self.webhook_router = ASGIRouter()
        self._webhook_http = httpx.AsyncClient(transport=self.webhook_router)
        self.backend = RevenueCatBackend(
            clock=world.revenuecat_clock, seed=seed, http_client=self._webhook_http
        )
        self.app: ASGIApp = create_app(revenuecat_backend=self.backend)
        self.router = ASGIRouter({REVENUECAT_HOST: self.app})
        self._client: RevenueCat | None = None
        self._sync_http: httpx.Client | None = None
        self._async_client: AsyncRevenueCat | None = None
        self._async_http: list[httpx.AsyncClient] = [self._webhook_http]

    def __repr__(self) -> str:
        return f"RevenueCatMock(now_ms={self.now_ms()}, events={len(self.backend.events())})"

    # -- clients -----------------------------------------------------------------------------

    def transport(self) -> httpx.BaseTransport:
        """A sync httpx transport to the mock, for an ``httpx.Client`` of your own."""
        return SyncASGITransport(self._world, self.router)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """An async httpx transport to the mock, for an ``httpx.AsyncClient`` of your own."""
        return self.router

    @property
    def client(self) -> RevenueCat:
        """A ``client.RevenueCat`` with the mock's secret key, closed at teardown."""
        if self._client is None:
            self._sync_http = httpx.Client(transport=self.transport())
            self._client = RevenueCat(
                api_key=self.secret_key,
                base_url=self.base_url,
                max_retries=0,
                http_client=self._sync_http,
            )
        return self._client

    @property
    def async_client(self) -> AsyncRevenueCat:
        """A ``client.AsyncRevenueCat`` with the mock's secret key, closed at teardown."""
        if self._async_client is None:
            self._async_http.append(httpx.AsyncClient(transport=self.async_transport()))
            self._async_client = AsyncRevenueCat(
                api_key=self.secret_key,
                base_url=self.base_url,
                max_retries=0,
                http_client=self._async_http[-1],
            )
        return self._async_client

    # -- time and webhooks -------------------------------------------------------------------

    def now_ms(self) -> int:
        """RevenueCat's virtual time, epoch milliseconds."""
        return self.backend.now_ms()

    def advance(self, seconds: float) -> None:
        """Move RevenueCat's clock forward; webhook retries that fall due are sent on the next
        flush."""
        self._world.advance(seconds)

    def add_webhook_target(
        self,
        url: str,
        *,
        app: ASGIApp | None = None,
        authorization: str | None = None,
        event_types: frozenset[str] | None = None,
    ) -> WebhookTarget:
        """Send webhooks to ``url`` from the next event on; ``app`` serves its host in process.

        Without ``app`` the URL's host must be one the mock's webhook router serves (the engine
        fixture adds its own); any other host fails like an unreachable one, and RevenueCat's
        retry schedule applies.
        """
        target = WebhookTarget(url, authorization=authorization, event_types=event_types)
        if app is not None:
            self.webhook_router.add(httpx.URL(url).host, app)
        self.backend.add_webhook_target(target)
        return target

    def flush_webhooks(self, *, retries: bool = False) -> int:
        """Send every webhook due now and wait for the answers; how many attempts were made.

        ``retries=True`` also plays RevenueCat's retry schedule (5, 10, 20, 40, 80 minutes) on
        the virtual clock until no delivery is pending: the clock jumps to each retry.
        """
        return self._world.run(self._flush(retries))

    async def aflush_webhooks(self, *, retries: bool = False) -> int:
        """:meth:`flush_webhooks` for an async test."""
        return await self._world.arun(self._flush(retries))

    async def _flush(self, retries: bool) -> int:
        webhooks = self.backend.webhooks
        if not retries:
            return await webhooks.run_due()
        before = sum(len(d.attempts) for d in webhooks.deliveries())
        await webhooks.run_until_settled()
        return sum(len(d.attempts) for d in webhooks.deliveries()) - before

    def deliveries(self, *, state: str | None = None) -> list[Delivery]:
        """Webhook deliveries in the log, oldest first (``state``: pending, delivered, ...)."""
        return self.backend.webhooks.deliveries(state=state)

    # -- the store and its events ------------------------------------------------------------

    def simulate(self, operation: str, app_user_id: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Run a store operation (``start_trial``, ``buy``, ``renew``, ``cancel``, ...; see
        ``mockserver.revenuecat.STORE_OPERATIONS``); the events it emitted."""
        return self.backend.simulate(operation, app_user_id, *args, **kwargs)

    def events(self, app_user_id: str | None = None, *, type: str | None = None) -> list[Any]:
        """Events RevenueCat emitted, oldest first: all, one user's, or one type's."""
        return self.backend.events(event_type=type, app_user_id=app_user_id)

    def attributes(self, app_user_id: str) -> dict[str, Any]:
        """A customer's subscriber attributes as RevenueCat holds them (name -> value)."""
        customer = self.backend.customer(app_user_id)
        body = self.backend.subscriber_body(customer, include_attributes=True)
        attributes = body["subscriber"]["subscriber_attributes"]
        return {name: entry["value"] for name, entry in attributes.items()}

    # -- life cycle --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget customers, events and deliveries (webhook targets and the clock stay)."""
        self.backend.reset()

    def close(self) -> None:
        """Close the clients (run at teardown)."""
        if self._sync_http is not None:
            self._sync_http.close()
            self._sync_http = self._client = None
        clients, self._async_http, self._async_client = self._async_http, [], None
        self._world.run(_aclose_all(clients))


async def _aclose_all(clients: list[httpx.AsyncClient]) -> None:
    for client in clients:
        await client.aclose()
