"""How responses that say no become typed errors, whatever their body."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from rc_helpers import Reply, Script

import client
from client import AttributeErrorDetail, RevenueCat

ERRORS = [
    {"key_name": "$email", "message": "Value is not a valid email address."},
    {"key_name": "too_much_data", "message": "Value is too long."},
]


def _fail(make_client: Callable[..., RevenueCat], reply: Reply) -> Exception:
    rc = make_client(Script(reply), max_retries=0)
    with pytest.raises(client.RevenueCatError) as info:
        rc.set_attributes("u", {"plan": "pro"})
    return info.value


@pytest.mark.parametrize("code", [7263, "7263"])
def test_7263_becomes_attribute_validation_error(
    make_client: Callable[..., RevenueCat], code: object
) -> None:
    """A 400 with code 7263, as an int or a string, exposes the per-key errors."""
    body = {
        "code": code,
        "message": "Some keys were unable to be saved.",
        "attribute_errors": ERRORS,
    }
    error = _fail(make_client, httpx.Response(400, json=body))
    assert isinstance(error, client.AttributeValidationError)
    assert isinstance(error, client.BadRequestError)
    assert error.code == 7263
    assert error.attribute_errors == [
        AttributeErrorDetail("$email", "Value is not a valid email address."),
        AttributeErrorDetail("too_much_data", "Value is too long."),
    ]


def test_wrapped_attribute_errors_are_unwrapped(make_client: Callable[..., RevenueCat]) -> None:
    """The attributes_error_response wrapper (receipts) is read like the bare shape."""
    inner = {
        "code": "7263",
        "message": "Some keys were unable to be saved.",
        "attribute_errors": ERRORS,
    }
    error = _fail(make_client, httpx.Response(400, json={"attributes_error_response": inner}))
    assert isinstance(error, client.AttributeValidationError)
    assert [e.key_name for e in error.attribute_errors] == ["$email", "too_much_data"]


def test_7264_without_a_list_is_an_attribute_error_with_no_keys(
    make_client: Callable[..., RevenueCat],
) -> None:
    """Code 7264 (malformed attributes body) is an AttributeValidationError with no keys."""
    error = _fail(make_client, httpx.Response(400, json={"code": 7264, "message": "bad body"}))
    assert isinstance(error, client.AttributeValidationError)
    assert error.attribute_errors == []


def test_malformed_attribute_error_items_are_skipped(
    make_client: Callable[..., RevenueCat],
) -> None:
    """Junk inside attribute_errors does not crash the parser."""
    body = {"code": 7263, "attribute_errors": ["junk", {"key_name": "k", "message": 5}]}
    error = _fail(make_client, httpx.Response(400, json=body))
    assert isinstance(error, client.AttributeValidationError)
    assert error.attribute_errors == [AttributeErrorDetail("k", "5")]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, client.BadRequestError),
        (401, client.AuthenticationError),
        (403, client.AuthenticationError),
        (404, client.NotFoundError),
        (409, client.APIStatusError),
        (423, client.APIStatusError),
        (429, client.RateLimitError),
        (500, client.InternalServerError),
        (503, client.InternalServerError),
    ],
)
def test_status_maps_to_its_error_class(
    make_client: Callable[..., RevenueCat], status: int, kind: type[Exception]
) -> None:
    """Each documented status raises its own APIStatusError subclass."""
    error = _fail(make_client, httpx.Response(status, json={"message": "no", "code": 7225}))
    assert type(error) is kind
    assert isinstance(error, client.APIStatusError)
    assert error.status_code == status
    assert error.message == "no"


@pytest.mark.parametrize("body", ["<html>Bad gateway</html>", "", "{not json"])
def test_non_json_error_bodies_still_become_typed_errors(
    make_client: Callable[..., RevenueCat], body: str
) -> None:
    """A 502 with an HTML, empty or broken body is an InternalServerError with a message."""
    error = _fail(make_client, httpx.Response(502, text=body))
    assert isinstance(error, client.InternalServerError)
    assert error.body is None
    assert "502" in str(error)


def test_a_json_error_that_is_not_an_object_is_typed(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A 400 whose JSON body is a list still maps to BadRequestError."""
    error = _fail(make_client, httpx.Response(400, json=["odd"]))
    assert isinstance(error, client.BadRequestError)


def test_v2_error_fields_are_exposed(make_client: Callable[..., RevenueCat]) -> None:
    """The v2 error's type and retryable flag are on the exception."""
    body = {
        "object": "error",
        "type": "resource_missing",
        "message": "Resource not found",
        "retryable": False,
        "doc_url": "https://errors.rev.cat/resource-missing",
    }
    error = _fail(make_client, httpx.Response(404, json=body))
    assert isinstance(error, client.NotFoundError)
    assert error.type == "resource_missing"
    assert error.retryable is False


def test_retry_after_seconds_is_read(make_client: Callable[..., RevenueCat]) -> None:
    """A 429's Retry-After header (seconds) becomes retry_after."""
    error = _fail(make_client, httpx.Response(429, headers={"Retry-After": "7"}))
    assert isinstance(error, client.RateLimitError)
    assert error.retry_after == 7.0


def test_retry_after_http_date_is_read(make_client: Callable[..., RevenueCat]) -> None:
    """A Retry-After given as an HTTP date is turned into seconds from the clock."""
    # The fixed clock is 2023-11-14T22:13:20Z.
    headers = {"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"}
    error = _fail(make_client, httpx.Response(429, headers=headers))
    assert isinstance(error, client.RateLimitError)
    assert error.retry_after == 30.0


def test_backoff_ms_is_read_when_there_is_no_header(
    make_client: Callable[..., RevenueCat],
) -> None:
    """Without Retry-After, the v2 body's backoff_ms becomes retry_after in seconds."""
    body = {"object": "error", "type": "rate_limit_error", "retryable": True, "backoff_ms": 1500}
    error = _fail(make_client, httpx.Response(429, json=body))
    assert isinstance(error, client.RateLimitError)
    assert error.retry_after == 1.5


@pytest.mark.parametrize("value", ["soon", "nan", "inf", ""])
def test_garbage_retry_after_is_ignored(make_client: Callable[..., RevenueCat], value: str) -> None:
    """An unparsable or non-finite Retry-After leaves retry_after None."""
    error = _fail(make_client, httpx.Response(429, headers={"Retry-After": value}))
    assert isinstance(error, client.RateLimitError)
    assert error.retry_after is None


def test_connection_failure_is_api_connection_error(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A refused connection raises APIConnectionError chained to the httpx error."""
    error = _fail(make_client, httpx.ConnectError("refused"))
    assert type(error) is client.APIConnectionError
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_timeout_is_api_timeout_error(make_client: Callable[..., RevenueCat]) -> None:
    """A read timeout raises APITimeoutError, a kind of APIConnectionError."""
    error = _fail(make_client, httpx.ReadTimeout("slow"))
    assert isinstance(error, client.APITimeoutError)
    assert isinstance(error, client.APIConnectionError)
