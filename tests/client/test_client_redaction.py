"""The API key never shows in a repr, a message or a log record."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from rc_helpers import API_KEY, Script

import client
from client import RevenueCat


def test_client_repr_has_no_key(make_client: Callable[..., RevenueCat]) -> None:
    """repr(client) shows the base URL only."""
    rc = make_client(Script())
    assert API_KEY not in repr(rc)
    assert API_KEY not in str(rc)
    assert API_KEY not in repr(vars(rc))
    assert "api.revenuecat.com" in repr(rc)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(401, json={"message": f"Invalid API key {API_KEY}", "code": 7225}),
        httpx.Response(500, text=f"upstream said {API_KEY} is bad"),
        httpx.Response(
            400,
            json={
                "code": 7263,
                "message": "bad",
                "attribute_errors": [{"key_name": "k", "message": f"key {API_KEY}"}],
            },
        ),
        httpx.ConnectError(f"could not connect with {API_KEY}"),
    ],
)
def test_errors_and_logs_never_contain_the_key(
    make_client: Callable[..., RevenueCat],
    caplog: pytest.LogCaptureFixture,
    reply: httpx.Response | Exception,
) -> None:
    """Even when the server or transport echoes the key, errors and log records scrub it."""
    caplog.set_level(logging.DEBUG)
    rc = make_client(Script(reply), max_retries=1)
    with pytest.raises(client.RevenueCatError) as info:
        rc.set_attributes("u", {"plan": "pro"})
    error = info.value
    texts = [str(error), repr(error), error.message]
    if isinstance(error, client.AttributeValidationError):
        texts += [repr(e) for e in error.attribute_errors]
    if isinstance(error, client.APIStatusError):
        texts.append(repr(error.response.request.headers))
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records, "expected the retry to be logged"
    for text in texts:
        assert API_KEY not in text
