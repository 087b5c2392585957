"""The uploader: the request CleverTap gets, and how each kind of answer is read."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from integration.config import CleverTapAccount, Secret
from integration.uploader import RecordFailure, Uploader, encode_batch, read_response

ACCOUNT = CleverTapAccount("W9R-486-4W5Z", Secret("pass-s3cr3t"))
RECORDS: list[dict[str, Any]] = [
    {"type": "event", "identity": "u1", "evtName": "rc_renewal_event", "evtData": {"é": 1}},
    {"type": "event", "identity": "u2", "evtName": "rc_renewal_event", "evtData": {}},
]


def uploader_for(handler: Any) -> Uploader:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Uploader("https://eu1.api.clevertap.com/", http_client=http)


async def test_request_carries_the_account_headers_and_records() -> None:
    """The upload POSTs {"d": records} as UTF-8 JSON to /1/upload with both account headers."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success", "processed": 2, "unprocessed": []})

    result = await uploader_for(handler).upload(ACCOUNT, RECORDS)
    [request] = seen
    assert str(request.url) == "https://eu1.api.clevertap.com/1/upload"
    assert request.headers["X-CleverTap-Account-Id"] == "W9R-486-4W5Z"
    assert request.headers["X-CleverTap-Passcode"] == "pass-s3cr3t"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(request.content.decode("utf-8")) == {"d": RECORDS}
    assert (result.kind, result.processed, result.failures) == ("ok", 2, ())


def test_partial_answer_lists_failed_records_by_position() -> None:
    """Each unprocessed entry becomes a failure at its 0-based position with its code."""
    body = {
        "status": "partial",
        "processed": 1,
        "unprocessed": [
            {"status": "fail", "code": 555, "error": "Misc. Skipped record number : 2"},
        ],
    }
    result = read_response(200, json.dumps(body).encode(), 0.1)
    assert result.kind == "ok"
    assert result.failures == (RecordFailure(1, 555, "Misc. Skipped record number : 2"),)
    assert result.failures[0].retryable
    assert result.summary == "200 partial: processed 1, unprocessed 1x555"


def test_permanent_codes_are_not_retryable() -> None:
    """A 513 failure is permanent."""
    assert not RecordFailure(0, 513, "restricted").retryable


def test_failure_without_a_record_number_has_no_index() -> None:
    """An unprocessed entry whose error names no record has index None."""
    body = {"status": "fail", "processed": 0, "unprocessed": [{"code": 523, "error": "x"}]}
    [failure] = read_response(200, json.dumps(body).encode(), 0.1).failures
    assert failure.index is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, "unauthorized"),
        (403, "unauthorized"),
        (429, "rate-limited"),
        (500, "server-error"),
        (503, "server-error"),
        (400, "rejected"),
        (413, "rejected"),
    ],
)
def test_statuses_map_to_kinds(status: int, kind: str) -> None:
    """Each HTTP status is read as the kind the dispatcher acts on."""
    body = json.dumps({"status": "fail", "error": "Account ID is not valid", "code": status})
    result = read_response(status, body.encode(), 0.2)
    assert (result.kind, result.status, result.status_text) == (kind, status, str(status))
    assert result.summary == f"HTTP {status}: Account ID is not valid"


@pytest.mark.parametrize("content", [b"<html>oops</html>", b'["a"]', b'{"unprocessed": 3}'])
def test_unreadable_200_is_a_bad_response(content: bytes) -> None:
    """A 200 whose body is not CleverTap's shape is retried, not trusted."""
    assert read_response(200, content, 0.1).kind == "bad-response"


async def test_connection_errors_and_timeouts_are_results_not_exceptions() -> None:
    """Transport failures come back as results with no status."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    refused = await uploader_for(refuse).upload(ACCOUNT, RECORDS)
    assert (refused.kind, refused.status, refused.status_text) == (
        "connection-error",
        None,
        "connection-error",
    )
    timed_out = await uploader_for(slow).upload(ACCOUNT, RECORDS)
    assert timed_out.kind == "timeout"


async def test_passcode_never_in_results_or_repr() -> None:
    """Neither results nor the uploader's repr show the passcode."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"status": "fail", "error": "Passcode Invalid"})

    uploader = uploader_for(handler)
    result = await uploader.upload(ACCOUNT, RECORDS)
    assert "pass-s3cr3t" not in repr(result)
    assert "pass-s3cr3t" not in repr(uploader)


async def test_an_own_client_is_closed_by_aclose() -> None:
    """An uploader without an injected client makes one and closes it."""
    uploader = Uploader("https://eu1.api.clevertap.com")
    await uploader.aclose()
    assert uploader._client.is_closed


async def test_an_undecodable_answer_is_a_bad_response() -> None:
    """A body httpx cannot decode is read as a bad response, to be retried."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")

    result = await uploader_for(handler).upload(ACCOUNT, RECORDS)
    assert (result.kind, result.status) == ("bad-response", None)


async def test_a_lone_surrogate_in_a_record_is_uploaded_not_raised() -> None:
    """A record holding an unpaired surrogate (valid JSON) is sent escaped instead of failing."""
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"status": "success", "processed": 1, "unprocessed": []})

    record = {"type": "event", "identity": "u1", "evtName": "e", "evtData": {"p": "\ud800"}}
    result = await uploader_for(handler).upload(ACCOUNT, [record])
    assert result.kind == "ok"
    assert json.loads(seen[0]) == {"d": [record]}


def test_a_batch_is_encoded_as_compact_utf8_json() -> None:
    """Upload bodies are compact JSON with non-ASCII text as UTF-8, not escapes."""
    record = {"type": "event", "identity": "u1", "evtName": "e", "evtData": {"city": "Zürich"}}
    body = encode_batch([record])
    expected = '{"d":[{"type":"event","identity":"u1","evtName":"e","evtData":{"city":"Zürich"}}]}'
    assert body == expected.encode()


def test_an_integer_beyond_64_bits_is_encoded_by_the_fallback() -> None:
    """A value orjson refuses (an int past 64 bits) still yields a body, not an exception."""
    record = {"type": "event", "identity": "u1", "evtName": "e", "evtData": {"n": 2**70}}
    assert json.loads(encode_batch([record])) == {"d": [record]}
