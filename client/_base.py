"""The I/O-free core shared by :class:`client.RevenueCat` and :class:`client.AsyncRevenueCat`.

It builds every request, checks inputs, parses responses and maps errors; the two clients
only send.  A public method becomes a :class:`Call`: the method, the encoded path, the body
(encoded once, so ``updated_at_ms`` is stamped once per logical write and every retry sends
the same bytes) and the parser for a success response.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from client._errors import error_for
from client._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InvalidAttributeError,
    InvalidResponseError,
)
from client._keys import CLEVERTAP_ID
from client._models import CustomerAttribute, Subscriber, parse_attribute_page
from client._retry import RetryPolicy
from client._validation import (
    MAX_ATTRIBUTES_PER_CALL,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_PROJECT_ID_LENGTH,
    check_attribute,
    check_attributes,
    check_id,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "BaseRevenueCat",
    "Call",
    "PageGuard",
    "TimedValue",
]

T = TypeVar("T")

logger = logging.getLogger("client")

DEFAULT_BASE_URL = "https://api.revenuecat.com"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "rc-clevertap/0.1 (+python)"
REDACTED = "[REDACTED]"

# A customer has at most ~110 attributes (50 custom plus the reserved keys), 20 per page by
# default: far fewer pages than this cap, which only stops a misbehaving server.
MAX_PAGES = 100

Clock = Callable[[], float]
"""Seconds since the epoch, like :func:`time.time`."""


@dataclass(frozen=True, slots=True)
class TimedValue:
    """An attribute value with the time it was set, for writes whose times differ per key."""

    value: str | None
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One logical request: what to send and how to read a success response."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: bytes | None = None

    @property
    def what(self) -> str:
        return f"{self.method} {self.path}"


class PageGuard:
    """Stops a paginated read that loops or runs past :data:`MAX_PAGES`."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def visit(self, page: str) -> None:
        if page in self._seen:
            raise InvalidResponseError(f"The API returned next_page {page!r} twice")
        if len(self._seen) >= MAX_PAGES:
            raise InvalidResponseError(f"Gave up after {MAX_PAGES} pages")
        self._seen.add(page)


def _nothing(response: httpx.Response) -> None:
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise InvalidResponseError(
            f"Expected a JSON body from {response.request.method} {response.request.url.path}, "
            f"got {response.headers.get('content-type', 'no content type')}",
            response=response,
        ) from exc


def _parsed(response: httpx.Response, parse: Callable[[Any], T]) -> T:
    try:
        return parse(_json(response))
    except ValueError as exc:
        raise InvalidResponseError(f"Unexpected response body: {exc}", response=response) from exc


class Secret:
    """Holds the API key so that ``repr``, ``vars()`` and debuggers show no key."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def reveal(self) -> str:
        return self._value


class BaseRevenueCat:
    """Everything the clients do that is not I/O."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        clock: Clock | None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        if any(c.isspace() for c in api_key):
            raise ValueError("api_key must not contain whitespace")
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self._api_key = Secret(api_key)
        self._base_url = str(base_url).rstrip("/")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._retry = RetryPolicy(max_retries=max_retries)
        self._clock: Clock = clock or time.time
        self._jitter: Callable[[], float] = random.random

    def __repr__(self) -> str:
        # The API key is deliberately absent.
        return f"<{type(self).__name__} base_url={self._base_url!r}>"

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def max_retries(self) -> int:
        return self._retry.max_retries

    # -- requests ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def build_request(self, call: Call[Any]) -> httpx.Request:
        headers = {
            "Authorization": f"Bearer {self._api_key.reveal()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return httpx.Request(
            call.method,
            self._base_url + call.path,
            headers=headers,
            content=call.body,
            extensions={"timeout": self._timeout.as_dict()},
        )

    @staticmethod
    def _body(payload: Mapping[str, Any]) -> bytes:
        return json.dumps(payload, separators=(",", ":")).encode()

    @staticmethod
    def _subscriber_path(app_user_id: object) -> str:
        # Encode everything, "/" and "$" and ":" included ("$RCAnonymousID:..."), as the
        # Android SDK does with Uri.encode (reference §1.1).
        return "/v1/subscribers/" + quote(check_id("app_user_id", app_user_id), safe="")

    @staticmethod
    def _customer_path(project_id: object, customer_id: object) -> str:
        project = check_id("project_id", project_id, max_length=MAX_PROJECT_ID_LENGTH)
        customer = check_id("customer_id", customer_id, max_length=MAX_CUSTOMER_ID_LENGTH)
        return f"/v2/projects/{quote(project, safe='')}/customers/{quote(customer, safe='')}"

    # -- v1 ---------------------------------------------------------------------------------

    def set_attributes_call(
        self,
        app_user_id: str,
        attributes: Mapping[str, str | None],
        *,
        updated_at_ms: int | None = None,
    ) -> Call[None]:
        values = check_attributes(attributes)
        if updated_at_ms is not None and (
            isinstance(updated_at_ms, bool)
            or not isinstance(updated_at_ms, int)
            or updated_at_ms < 0
        ):
            raise InvalidAttributeError("updated_at_ms must be epoch milliseconds (an int >= 0)")
        stamp = self.now_ms() if updated_at_ms is None else updated_at_ms
        return self.timed_attributes_call(
            app_user_id, {key: TimedValue(value, stamp) for key, value in values.items()}
        )

    def set_clevertap_id_call(self, app_user_id: str, clevertap_id: str | None) -> Call[None]:
        # None or "" deletes, as the SDKs' setCleverTapID does (reference §3.1).
        value = check_attribute(CLEVERTAP_ID, clevertap_id)
        return self.set_attributes_call(app_user_id, {CLEVERTAP_ID: value})

    def timed_attributes_call(
        self, app_user_id: str, attributes: Mapping[str, TimedValue]
    ) -> Call[None]:
        """A v1 attributes POST where each key carries its own ``updated_at_ms``."""
        path = self._subscriber_path(app_user_id) + "/attributes"
        check_attributes({key: timed.value for key, timed in attributes.items()})
        body = {
            "attributes": {
                key: {"value": timed.value, "updated_at_ms": timed.updated_at_ms}
                for key, timed in attributes.items()
            }
        }
        # The 200 body is the Customer Info per the spec, but the iOS SDK reads it as empty
        # (reference §1.2), so we do not depend on it.
        return Call("POST", path, _nothing, self._body(body))

    def get_subscriber_call(self, app_user_id: str) -> Call[Subscriber]:
        def parse(response: httpx.Response) -> Subscriber:
            return _parsed(
                response,
                lambda data: Subscriber.from_json(data, created=response.status_code == 201),
            )

        return Call("GET", self._subscriber_path(app_user_id), parse)

    def delete_subscriber_call(self, app_user_id: str) -> Call[None]:
        return Call("DELETE", self._subscriber_path(app_user_id), _nothing)

    # -- v2 ---------------------------------------------------------------------------------

    def set_customer_attributes_call(
        self, project_id: str, customer_id: str, attributes: Mapping[str, str | None]
    ) -> Call[list[CustomerAttribute]]:
        path = self._customer_path(project_id, customer_id) + "/attributes"
        values = check_attributes(attributes, max_total=MAX_ATTRIBUTES_PER_CALL)
        body = {"attributes": [{"name": name, "value": value} for name, value in values.items()]}

        def parse(response: httpx.Response) -> list[CustomerAttribute]:
            return _parsed(response, lambda data: parse_attribute_page(data)[0])

        return Call("POST", path, parse, self._body(body))

    def list_customer_attributes_call(
        self, project_id: str, customer_id: str, *, page: str | None = None
    ) -> Call[tuple[list[CustomerAttribute], str | None]]:
        """One page of a customer's attributes; ``page`` is a ``next_page`` path."""
        base = self._customer_path(project_id, customer_id) + "/attributes"

        def parse(response: httpx.Response) -> tuple[list[CustomerAttribute], str | None]:
            items, next_page = _parsed(response, parse_attribute_page)
            # Follow only this list's own path: the bearer key goes wherever next_page points.
            if next_page is not None and not next_page.startswith(base + "?"):
                raise InvalidResponseError(
                    f"Refusing to follow an unexpected next_page {next_page!r}", response=response
                )
            return items, next_page

        return Call("GET", base if page is None else page, parse)

    # -- responses --------------------------------------------------------------------------

    def check(self, call: Call[Any], response: httpx.Response) -> httpx.Response:
        """Return ``response`` if it is a success, else raise the matching error."""
        logger.debug("%s -> %d", call.what, response.status_code)
        if response.is_success:
            return response
        raise self.error_for(response)

    def transport_error(self, call: Call[Any], exc: httpx.RequestError) -> APIConnectionError:
        """Translate an httpx failure once, at the boundary."""
        kind = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
        detail = self.scrub(str(exc)) or type(exc).__name__
        return kind(f"{call.what} failed: {detail}")

    def scrub(self, text: str) -> str:
        """Remove the API key from server- or library-provided text."""
        return text.replace(self._api_key.reveal(), REDACTED)

    def error_for(self, response: httpx.Response) -> APIStatusError:
        """Map a non-2xx response to the most specific error, whatever its body."""
        return error_for(response, scrub=self.scrub, clock=self._clock)
