"""The sync and async RevenueCat clients: the core's calls, sent with retries.

Everything but sending lives in :class:`client._base.BaseRevenueCat`; the two classes below
differ only in ``_attempt``/``_send`` and in how they close their connection pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self, TypeVar

import httpx

from client._base import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    BaseRevenueCat,
    Call,
    Clock,
    PageGuard,
)
from client._models import CustomerAttribute, Subscriber
from client._retry import DEFAULT_MAX_RETRIES, async_retrying, sync_retrying

__all__ = ["AsyncRevenueCat", "RevenueCat"]

T = TypeVar("T")

# One pool per client; RevenueCat's v2 limit is 480 requests/min per domain (reference §2.4),
# so a few dozen connections are plenty.
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10)


class RevenueCat(BaseRevenueCat):
    """A blocking RevenueCat REST client (API v1 and v2).

    ```python
    with RevenueCat(api_key="sk_...") as rc:
        rc.set_clevertap_id("user-1", "ct-42")
        subscriber = rc.get_subscriber("user-1")
    ```

    Parameters (keyword-only):
        api_key: a RevenueCat secret (``sk_...``) or public key; v2 calls need a v2 key.
        base_url: the API root, without ``/v1`` (e.g. ``http://testserver`` for a mock).
        timeout: seconds, or an ``httpx.Timeout``, for each attempt.
        max_retries: retries after the first attempt, for connection errors, timeouts, 429
            and 5xx.
        http_client: an ``httpx.Client`` to send with (a Starlette ``TestClient``, one with a
            ``MockTransport``...).  The caller owns it: :meth:`close` leaves it open.
        sleep: the blocking sleep used between retries (tests pass a recorder).
        clock: seconds since the epoch, used to stamp ``updated_at_ms``.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
        )
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise TypeError("http_client must be an httpx.Client (use AsyncRevenueCat for async)")
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(limits=DEFAULT_LIMITS)
        self._sleep = sleep or time.sleep

    # -- sending ----------------------------------------------------------------------------

    def _attempt(self, call: Call[T]) -> httpx.Response:
        request = self.build_request(call)
        try:
            response = self._http.send(request)
        except httpx.RequestError as exc:
            raise self.transport_error(call, exc) from exc
        return self.check(call, response)

    def _send(self, call: Call[T]) -> T:
        retrying = sync_retrying(
            self._retry, sleep=self._sleep, jitter=self._jitter, what=call.what
        )
        return call.parse(retrying(self._attempt, call))

    # -- API v1 -----------------------------------------------------------------------------

    def set_clevertap_id(self, app_user_id: str, clevertap_id: str | None) -> None:
        """Set ``$clevertapId`` for a customer; ``None`` or ``""`` deletes it."""
        self._send(self.set_clevertap_id_call(app_user_id, clevertap_id))

    def set_attributes(
        self,
        app_user_id: str,
        attributes: Mapping[str, str | None],
        *,
        updated_at_ms: int | None = None,
    ) -> None:
        """Set customer attributes (``None`` or ``""`` deletes), all stamped with one time."""
        self._send(self.set_attributes_call(app_user_id, attributes, updated_at_ms=updated_at_ms))

    def get_subscriber(self, app_user_id: str) -> Subscriber:
        """Get (or, as RevenueCat does, create) a customer's info."""
        return self._send(self.get_subscriber_call(app_user_id))

    def delete_subscriber(self, app_user_id: str) -> None:
        """Permanently delete a customer (needs a secret key)."""
        self._send(self.delete_subscriber_call(app_user_id))

    # -- API v2 -----------------------------------------------------------------------------

    def set_customer_attributes(
        self, project_id: str, customer_id: str, attributes: Mapping[str, str | None]
    ) -> list[CustomerAttribute]:
        """Set up to 50 attributes with API v2 (``None`` deletes); returns the stored list."""
        return self._send(self.set_customer_attributes_call(project_id, customer_id, attributes))

    def list_customer_attributes(
        self, project_id: str, customer_id: str
    ) -> list[CustomerAttribute]:
        """All of a customer's attributes, following ``next_page`` to the end."""
        items: list[CustomerAttribute] = []
        pages = PageGuard()
        page: str | None = None
        while True:
            found, page = self._send(
                self.list_customer_attributes_call(project_id, customer_id, page=page)
            )
            items += found
            if page is None:
                return items
            pages.visit(page)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRevenueCat(BaseRevenueCat):
    """The asyncio twin of :class:`RevenueCat`; same parameters, awaitable methods.

    ```python
    async with AsyncRevenueCat(api_key="sk_...") as rc:
        await rc.set_clevertap_id("user-1", "ct-42")
    ```

    ``http_client`` is an ``httpx.AsyncClient`` (e.g. one with ``httpx.ASGITransport``);
    ``sleep`` is awaitable (default :func:`asyncio.sleep`).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
        )
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise TypeError("http_client must be an httpx.AsyncClient (use RevenueCat for sync)")
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(limits=DEFAULT_LIMITS)
        self._sleep = sleep or asyncio.sleep

    # -- sending ----------------------------------------------------------------------------

    async def _attempt(self, call: Call[T]) -> httpx.Response:
        request = self.build_request(call)
        try:
            response = await self._http.send(request)
        except httpx.RequestError as exc:
            raise self.transport_error(call, exc) from exc
        return self.check(call, response)

    async def _send(self, call: Call[T]) -> T:
        retrying = async_retrying(
            self._retry, sleep=self._sleep, jitter=self._jitter, what=call.what
        )
        return call.parse(await retrying(self._attempt, call))

    # -- API v1 -----------------------------------------------------------------------------

    async def set_clevertap_id(self, app_user_id: str, clevertap_id: str | None) -> None:
        """Set ``$clevertapId`` for a customer; ``None`` or ``""`` deletes it."""
        await self._send(self.set_clevertap_id_call(app_user_id, clevertap_id))

    async def set_attributes(
        self,
        app_user_id: str,
        attributes: Mapping[str, str | None],
        *,
        updated_at_ms: int | None = None,
    ) -> None:
        """Set customer attributes (``None`` or ``""`` deletes), all stamped with one time."""
        await self._send(
            self.set_attributes_call(app_user_id, attributes, updated_at_ms=updated_at_ms)
        )

    async def get_subscriber(self, app_user_id: str) -> Subscriber:
        """Get (or, as RevenueCat does, create) a customer's info."""
        return await self._send(self.get_subscriber_call(app_user_id))

    async def delete_subscriber(self, app_user_id: str) -> None:
        """Permanently delete a customer (needs a secret key)."""
        await self._send(self.delete_subscriber_call(app_user_id))

    # -- API v2 -----------------------------------------------------------------------------

    async def set_customer_attributes(
        self, project_id: str, customer_id: str, attributes: Mapping[str, str | None]
    ) -> list[CustomerAttribute]:
        """Set up to 50 attributes with API v2 (``None`` deletes); returns the stored list."""
        return await self._send(
            self.set_customer_attributes_call(project_id, customer_id, attributes)
        )

    async def list_customer_attributes(
        self, project_id: str, customer_id: str
    ) -> list[CustomerAttribute]:
        """All of a customer's attributes, following ``next_page`` to the end."""
        items: list[CustomerAttribute] = []
        pages = PageGuard()
        page: str | None = None
        while True:
            found, page = await self._send(
                self.list_customer_attributes_call(project_id, customer_id, page=page)
            )
            items += found
            if page is None:
                return items
            pages.visit(page)

    # -- lifetime ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
