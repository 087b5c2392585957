"""The uploader: the request CleverTap gets, its deadline and size cap, and how each kind of
answer is read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from integration.config import CleverTapAccount, Secret
from integration.uploader import (
    MAX_ANSWER_BYTES,
    RecordFailure,
    Uploader,
    encode_batch,
    read_response,
)
from mockserver import create_app
from mockserver.clevertap import Account, CleverTapBackend
from mockserver.faults import FaultInjector, FaultRule
from mockserver.serving import BackgroundServer

ACCOUNT = CleverTapAccount("W9R-486-4W5Z", Secret("pass-s3cr3t"))
RECORDS: list[dict[str, Any]] = [
    {"type": "event", "identity": "u1", "evtName": "rc_renewal_event", "evtData": {"é": 1}},
    {"type": "event", "identity": "u2", "evtName": "rc_renewal_event", "evtData": {}},
]


def uploader_for(handler: Any, *, timeout_s: float = 30.0, **client: Any) -> Uploader:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), **client)
    return Uploader("https://eu1.api.clevertap.com/", http_client=http, timeout_s=timeout_s)


def answer(body: Any, *, sent: int = 50, status: int = 200) -> Any:
    """``read_response`` of ``body`` (JSON) for an upload of ``sent`` records."""
    return read_response(status, json.dumps(body).encode(), 0.1, sent=sent)


def skipped(number: int, code: int = 513) -> dict[str, Any]:
    return {"status": "fail", "code": code, "error": f"Bad. Skipped record number : {number}"}


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
    result = answer(body, sent=2)
    assert result.kind == "ok"
    assert result.failures == (RecordFailure(1, 555, "Misc. Skipped record number : 2"),)
    assert result.failures[0].retryable
    assert result.summary == "200 partial: processed 1, unprocessed 1x555"


def test_permanent_codes_are_not_retryable() -> None:
    """A 513 failure is permanent."""
    assert not RecordFailure(0, 513, "restricted").retryable


@pytest.mark.parametrize(
    ("entries", "ambiguity"),
    [
        ([{"code": 523, "error": "x"}, skipped(1)], "no record number"),
        ([skipped(3), skipped(1)], "record number 3, but 2 records were sent"),
        ([skipped(0), skipped(1)], "record number 0, but 2 records were sent"),
        ([skipped(1), skipped(1)], "record 1 named twice"),
        (["not an entry", skipped(2)], "no record number"),
    ],
)
def test_a_failure_not_tied_to_a_record_sent_has_no_index(
    entries: list[Any], ambiguity: str
) -> None:
    """An entry with no record number, one outside the upload, or one already named is not
    tied to a record: index None, and ``ambiguity`` says why."""
    result = answer({"status": "fail", "processed": 0, "unprocessed": entries}, sent=2)
    assert result.kind == "ok"
    [unlocated] = [failure for failure in result.failures if failure.index is None]
    assert unlocated.ambiguity == ambiguity
    assert result.summary.endswith(", 1 not tied to a record")


def test_an_entry_without_a_code_is_retryable() -> None:
    """An entry naming its record but no code says nothing against the record: retried."""
    result = answer(
        {"status": "fail", "processed": 0, "unprocessed": [{"error": "Skipped record number : 1"}]},
        sent=1,
    )
    [failure] = result.failures
    assert (failure.index, failure.code, failure.retryable) == (0, 0, True)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "success", "processed": 45, "unprocessed": []},
        {"status": "partial", "processed": 49, "unprocessed": []},
        {"status": "success", "processed": 49, "unprocessed": [skipped(1)]},
        {"status": "partial", "processed": 50, "unprocessed": []},
        {"status": "fail", "processed": 49, "unprocessed": [skipped(1)]},
        {"status": "partial", "processed": 0, "unprocessed": [skipped(i) for i in range(1, 51)]},
        {"status": "ok", "processed": 50, "unprocessed": []},
        {"processed": 50, "unprocessed": []},
        {"status": "success", "processed": "50", "unprocessed": []},
        {"status": "success", "processed": True, "unprocessed": []},
        {"status": "success", "unprocessed": []},
        {"status": "success", "ctProcessed": 50, "ctUnprocessed": []},
        {"status": "success", "processed": 50, "unprocessed": {}},
        {"status": "fail", "error": "Something odd"},
        {"status": "fail", "error": "Throttled", "code": 1},
    ],
)
def test_a_200_that_does_not_vouch_for_every_record_is_a_bad_response(body: Any) -> None:
    """A 200 counts as "ok" only when processed plus unprocessed make the records sent and
    its status agrees with them (clevertap.md §3.1); anything else is retried, not trusted."""
    result = answer(body, sent=50)
    assert (result.kind, result.status, result.failures) == ("bad-response", 200, ())


@pytest.mark.parametrize(
    ("code", "kind"),
    [(401, "unauthorized"), (403, "unauthorized"), (429, "rate-limited"), (503, "server-error")],
)
def test_a_200_carrying_a_request_level_fail_is_read_as_its_code(code: int, kind: str) -> None:
    """{"status": "fail", "error", "code"} in a 200 (§3.3's shape) means what the code means:
    an account suspended (401) pauses the account instead of burning attempts."""
    result = answer({"status": "fail", "error": "Account suspended", "code": code})
    assert (result.kind, result.status) == (kind, 200)
    assert result.summary == f"200 fail: Account suspended (code {code})"


def test_status_and_counts_that_agree_are_ok() -> None:
    """success with all processed (``unprocessed`` may be left out then), partial with some of
    each, fail with none processed."""
    assert answer({"status": "success", "processed": 2, "unprocessed": []}, sent=2).kind == "ok"
    assert answer({"status": "success", "processed": 2}, sent=2).kind == "ok"
    partial = {"status": "partial", "processed": 1, "unprocessed": [skipped(2)]}
    assert answer(partial, sent=2).kind == "ok"
    failed = {"status": "fail", "processed": 0, "unprocessed": [skipped(1), skipped(2)]}
    assert answer(failed, sent=2).kind == "ok"


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
    result = read_response(status, body.encode(), 0.2, sent=2)
    assert (result.kind, result.status, result.status_text) == (kind, status, str(status))
    assert result.summary == f"HTTP {status}: Account ID is not valid"


@pytest.mark.parametrize("content", [b"<html>oops</html>", b'["a"]', b'{"unprocessed": 3}'])
def test_unreadable_200_is_a_bad_response(content: bytes) -> None:
    """A 200 whose body is not CleverTap's shape is retried, not trusted."""
    assert read_response(200, content, 0.1, sent=2).kind == "bad-response"


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


@pytest.mark.parametrize("status", [301, 302, 307, 308, 404, 405, 407, 410, 421, 426])
def test_configuration_shaped_statuses_are_misdirected(status: int) -> None:
    """A whole-request 3xx, 404 and the like mean a wrong region or base URL: "misdirected",
    its summary naming the Location."""
    result = read_response(status, b"", 0.1, sent=2, location="https://eu1.api.clevertap.com/x")
    assert (result.kind, result.status) == ("misdirected", status)
    assert result.summary == f"HTTP {status} to https://eu1.api.clevertap.com/x"


async def test_a_redirect_is_never_followed_even_by_a_client_that_follows() -> None:
    """An injected client set to follow redirects sends one request and reads the 302."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.scheme == "http":
            return httpx.Response(302, headers={"Location": "https://elsewhere.test/1/upload"})
        return httpx.Response(200, json={"status": "success", "processed": 2, "unprocessed": []})

    uploader = Uploader(
        "http://eu1.api.clevertap.com",
        http_client=httpx.AsyncClient(
            transport=httpx.MockTransport(handler), follow_redirects=True
        ),
    )
    result = await uploader.upload(ACCOUNT, RECORDS)
    assert len(seen) == 1
    assert (result.kind, result.summary) == (
        "misdirected",
        "HTTP 302 to https://elsewhere.test/1/upload",
    )


async def test_an_answer_echoing_the_passcode_is_masked() -> None:
    """Should an answer (an error, a Location) quote the passcode, results show *** instead."""

    def handler(request: httpx.Request) -> httpx.Response:
        passcode = request.headers["X-CleverTap-Passcode"]
        return httpx.Response(302, headers={"Location": f"https://x.test/?p={passcode}"})

    result = await uploader_for(handler).upload(ACCOUNT, RECORDS)
    assert "pass-s3cr3t" not in result.summary
    assert result.summary == "HTTP 302 to https://x.test/?p=***"


async def test_an_answer_that_never_comes_ends_at_the_deadline() -> None:
    """A CleverTap that accepts the request and never answers is a timeout at timeout_s."""

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    result = await uploader_for(never, timeout_s=0.05).upload(ACCOUNT, RECORDS)
    assert (result.kind, result.status) == ("timeout", None)
    assert result.summary == "no whole answer within the 0.05 s deadline"


async def test_a_body_that_stops_dripping_ends_at_the_deadline() -> None:
    """Headers at once and then a body that never ends: the whole request's deadline ends
    it, however patient each read would be."""

    class Drip(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'{"status": '
            await asyncio.Event().wait()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Drip())

    result = await uploader_for(handler, timeout_s=0.05).upload(ACCOUNT, RECORDS)
    assert (result.kind, result.status) == ("timeout", None)


async def test_a_slow_drip_over_a_socket_ends_at_the_deadline() -> None:
    """Over a real socket, an answer dripped a byte every 50 ms (each read well within
    httpx's own timeout) is cut at the 0.3 s deadline, not read for its ~3 s."""
    backend = CleverTapBackend(accounts=[Account(ACCOUNT.account_id, ("pass-s3cr3t",))])
    faults = FaultInjector(rules=[FaultRule("slow_drip", latency=0.05)])
    server = BackgroundServer(create_app(clevertap_backend=backend, faults=faults))
    url = await server.start()
    uploader = Uploader(url, timeout_s=0.3)
    try:
        started = time.monotonic()
        result = await uploader.upload(ACCOUNT, RECORDS)
        elapsed = time.monotonic() - started
    finally:
        await uploader.aclose()
        faults.clear()
        await server.stop()
    assert (result.kind, result.status) == ("timeout", None)
    assert elapsed < 2.0  # a liveness bound: the drip alone takes about 3 s


class Endless(httpx.AsyncByteStream):
    """An answer body that never ends, counting the 64 KiB chunks read from it."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.pulled += 1
            yield b" " * 65536


async def test_an_answer_declared_past_the_cap_is_not_read() -> None:
    """A Content-Length over the cap is a bad response before any of its body is read."""
    endless = Endless()

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Length": str(MAX_ANSWER_BYTES + 1)}
        return httpx.Response(200, headers=headers, stream=endless)

    result = await uploader_for(handler).upload(ACCOUNT, RECORDS)
    assert (result.kind, result.status) == ("bad-response", 200)
    assert result.summary == f"200 with an answer over {MAX_ANSWER_BYTES} bytes"
    assert endless.pulled == 0


async def test_an_endless_answer_stops_being_read_past_the_cap() -> None:
    """An answer without a length is read only until it passes the cap."""
    endless = Endless()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=endless)

    result = await uploader_for(handler).upload(ACCOUNT, RECORDS)
    assert result.kind == "bad-response"
    assert endless.pulled == MAX_ANSWER_BYTES // 65536 + 1


async def test_an_oversized_error_page_keeps_its_status() -> None:
    """A 503 with a huge body is still a server error, read without its body."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, content=b"x" * (MAX_ANSWER_BYTES + 1))

    result = await uploader_for(handler).upload(ACCOUNT, RECORDS)
    assert (result.kind, result.summary) == ("server-error", "HTTP 503")


async def test_the_cap_grows_with_a_large_body() -> None:
    """An answer echoing a body larger than the cap is still read (twice the body)."""
    padding = "p" * (MAX_ANSWER_BYTES * 3 // 4)
    records = [{"type": "event", "identity": "u1", "evtName": "e", "evtData": {"p": padding}}]
    echo = {"status": "fail", "code": 513, "error": "x. Skipped record number : 1"}
    answer_body = {"status": "fail", "processed": 0, "unprocessed": [echo | {"record": records}]}
    answer_body["pad"] = "q" * (MAX_ANSWER_BYTES // 2)  # 1.25 times the cap in all

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer_body)

    result = await uploader_for(handler).upload(ACCOUNT, records)
    assert result.kind == "ok"
    assert result.failures[0].code == 513
