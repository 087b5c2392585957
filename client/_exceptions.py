"""Every error the client raises, in one tree.

Our exception hierarchy::

    RevenueCatError
    ├── InvalidAttributeError        bad input, raised before anything is sent (also a ValueError)
    ├── APIConnectionError           could not talk: the request never got an HTTP response
    │   └── APITimeoutError
    ├── InvalidResponseError         a 2xx response whose body is not what the API documents
    └── APIStatusError               the server said no (any non-2xx status)
        ├── BadRequestError          400
        │   └── AttributeValidationError    400 with code 7263/7264: per-key ``attribute_errors``
        ├── AuthenticationError      401, 403
        ├── NotFoundError            404
        ├── RateLimitError           429, with ``retry_after`` in seconds
        └── InternalServerError      5xx

Other statuses (409, 422, 423, ...) raise ``APIStatusError`` itself.  No message, ``str()`` or
``repr()`` here ever contains the API key: the client scrubs it from server-provided text before
an error is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AttributeErrorDetail",
    "AttributeValidationError",
    "AuthenticationError",
    "BadRequestError",
    "InternalServerError",
    "InvalidAttributeError",
    "InvalidResponseError",
    "NotFoundError",
    "RateLimitError",
    "RevenueCatError",
]


@dataclass(frozen=True, slots=True)
class AttributeErrorDetail:
    """One rejected attribute: its key and why, as RevenueCat's ``attribute_errors[]`` item."""

    key_name: str
    message: str


class RevenueCatError(Exception):
    """Root of every error raised by :mod:`client`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidAttributeError(RevenueCatError, ValueError):
    """An argument breaks RevenueCat's rules; nothing was sent.

    ``errors`` lists every offending key with the reason, in the same shape as the server's
    ``attribute_errors``, so callers handle client- and server-side rejections alike.
    """

    def __init__(self, message: str, errors: list[AttributeErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.errors: list[AttributeErrorDetail] = list(errors or [])


class APIConnectionError(RevenueCatError):
    """The request did not get an HTTP response (DNS, refused connection, reset, ...)."""


class APITimeoutError(APIConnectionError):
    """The request timed out before a full response arrived."""


class InvalidResponseError(RevenueCatError):
    """A success response whose body could not be read as the documented shape."""

    def __init__(self, message: str, *, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


class APIStatusError(RevenueCatError):
    """The server answered with a non-2xx status.

    Attributes:
        status_code: the HTTP status.
        code: RevenueCat's v1 backend error code (``7263``, ``7225``, ...) when the body has one.
        type: the v2 error ``type`` (``rate_limit_error``, ``resource_missing``, ...) if any.
        retryable: ``False`` when the server said not to retry (v2 ``retryable`` or the
            ``Is-Retryable`` header), ``True`` when it said to, else ``None``.
        retry_after: seconds the server asked us to wait (``Retry-After`` or ``backoff_ms``).
        body: the decoded JSON body, or ``None`` when it was not JSON.
        response: the ``httpx.Response`` (its request's headers are redacted by httpx's repr).
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: Any = None,
        code: int | None = None,
        type: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.code = code
        self.type = type
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f", code {self.code}" if self.code is not None else ""
        return f"{self.status_code}{code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r}, "
            f"message={self.message!r})"
        )


class BadRequestError(APIStatusError):
    """400: the request was malformed or its parameters were refused."""


class AttributeValidationError(BadRequestError):
    """400 with code 7263 (or 7264): RevenueCat refused some attributes.

    ``attribute_errors`` holds one entry per refused key.  RevenueCat's wording ("Some ...
    keys were unable to be saved") suggests the other keys were stored (reference §1.2,
    INFERRED), so do not blindly resend the whole batch.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        attribute_errors: list[AttributeErrorDetail],
        body: Any = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message, response=response, body=body, code=code)
        self.attribute_errors = attribute_errors


class AuthenticationError(APIStatusError):
    """401 or 403: the API key is missing, wrong, or lacks the permission."""


class NotFoundError(APIStatusError):
    """404: the customer (or project) does not exist."""


class RateLimitError(APIStatusError):
    """429: too many requests.

    ``retry_after`` is the wait in seconds the server asked for (``Retry-After`` header, or
    the v2 body's ``backoff_ms``), or ``None`` if it gave none.
    """


class InternalServerError(APIStatusError):
    """5xx: RevenueCat failed; the request may be retried."""
