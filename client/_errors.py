"""Reading RevenueCat's error responses into the exception tree.

Bodies come in several shapes: the v1 envelope ``{"code", "message"}``, the v1 attribute
error with ``attribute_errors`` (bare, or wrapped in ``attributes_error_response``), the v2
``{"object": "error", "type", "retryable", "backoff_ms"}``, and whatever a proxy sends (HTML,
nothing).  Each becomes a typed :class:`client.APIStatusError`; none crashes the parser.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import httpx

from client._exceptions import (
    APIStatusError,
    AttributeErrorDetail,
    AttributeValidationError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)

__all__ = ["ATTRIBUTE_ERROR_CODES", "error_for"]

# RevenueCat's v1 codes for refused attributes (reference §1.3): 7263 names the refused keys,
# 7264 says the attributes body itself was malformed.
ATTRIBUTE_ERROR_CODES = frozenset({7263, 7264})


def _backend_code(value: object) -> int | None:
    # The code arrives as an int or as a string ("7263") (reference §1.2; both SDKs accept both).
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def error_for(
    response: httpx.Response, *, scrub: Callable[[str], str], clock: Callable[[], float]
) -> APIStatusError:
    """Map a non-2xx response to the most specific error, whatever its body.

    ``scrub`` removes the API key from any server-provided text; ``clock`` (epoch seconds)
    turns an HTTP-date ``Retry-After`` into seconds.
    """
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    envelope: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    # Errors for attributes sent with a receipt come wrapped (reference §1.2).
    wrapped = envelope.get("attributes_error_response")
    if isinstance(wrapped, Mapping):
        envelope = wrapped
    code = _backend_code(envelope.get("code"))
    raw_message = envelope.get("message")
    if isinstance(raw_message, str) and raw_message:
        message = scrub(raw_message)
    else:
        text = scrub(response.text[:200]) if body is None else ""
        reason = response.reason_phrase or "error"
        message = f"HTTP {status} {reason}" + (f": {text!r}" if text else "")
    kind = envelope.get("type")
    kwargs: dict[str, Any] = {
        "response": response,
        "body": body,
        "code": code,
        "type": kind if isinstance(kind, str) else None,
        "retryable": _retryable(response, envelope),
        "retry_after": _retry_after(response, envelope, clock),
    }
    raw_errors = envelope.get("attribute_errors")
    if status == 400 and (code in ATTRIBUTE_ERROR_CODES or isinstance(raw_errors, list)):
        return AttributeValidationError(
            message,
            response=response,
            body=body,
            code=code,
            attribute_errors=_attribute_errors(raw_errors, scrub),
        )
    cls: type[APIStatusError] = APIStatusError
    if status == 400:
        cls = BadRequestError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500:
        cls = InternalServerError
    return cls(message, **kwargs)


def _attribute_errors(raw: object, scrub: Callable[[str], str]) -> list[AttributeErrorDetail]:
    if not isinstance(raw, list):
        return []
    return [
        AttributeErrorDetail(
            key_name=str(item.get("key_name", "")),
            message=scrub(str(item.get("message", ""))),
        )
        for item in raw
        if isinstance(item, Mapping)
    ]


def _retryable(response: httpx.Response, envelope: Mapping[str, Any]) -> bool | None:
    header: str = response.headers.get("Is-Retryable", "").strip().lower()
    if header in ("true", "false"):
        return header == "true"
    flag = envelope.get("retryable")
    return bool(flag) if isinstance(flag, bool) else None


def _retry_after(
    response: httpx.Response, envelope: Mapping[str, Any], clock: Callable[[], float]
) -> float | None:
    header = response.headers.get("Retry-After")
    if header is not None:
        header = header.strip()
        try:
            # Seconds, per the v2 spec (an older doc said ms; reference §2.4).
            seconds = float(header)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return max(seconds, 0.0)
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(when.timestamp() - clock(), 0.0)
    backoff_ms = envelope.get("backoff_ms")
    if isinstance(backoff_ms, int | float) and not isinstance(backoff_ms, bool):
        return max(backoff_ms / 1000, 0.0)
    return None
