"""One HTTP call to CleverTap's Upload API, read into a verdict the dispatcher can act on.

``POST <api_base_url>/1/upload`` with ``{"d": [records]}`` and the account's headers
(clevertap.md §1.2), within one deadline for the whole request (connect, send, wait and read
together: ``clevertap.timeout_s``), redirects never followed, the answer read up to a size cap.
What comes back (clevertap.md §3)::

    transport error ---------------------------> kind "connection-error"  (retry)
    no whole answer by the deadline ------------> kind "timeout"           (retry)
    401 / 403 ----------------------------------> kind "unauthorized"      (pause the account)
    3xx, 404, 405, 407, 410, 421, 426 ----------> kind "misdirected"       (pause the account)
    429 ----------------------------------------> kind "rate-limited"      (retry, fewer in flight)
    5xx ----------------------------------------> kind "server-error"      (retry)
    other 4xx ----------------------------------> kind "rejected"          (split, then retry)
    2xx {"status": "fail", "error", "code"} ----> the kind of ``code`` as an HTTP status, e.g.
                                                   "unauthorized" for code 401 (§3.3's shape)
    2xx that does not account for every record,
    unreadable, undecodable or over the cap ----> kind "bad-response"      (retry)
    2xx {"status", "processed", "unprocessed"}
    accounting for every record sent -----------> kind "ok", with one RecordFailure per
                                                   unprocessed record (0-based index into d)

A 2xx is not success: CleverTap answers 200 even when every record failed, and lists each
failed record with a code and an error ending in "Skipped record number : N" (1-based, §3.1).
It is "ok" only when it vouches for every record sent: ``processed`` plus the ``unprocessed``
entries make the number of records sent, and ``status`` says what those counts say (§3.1:
``success`` with none unprocessed, ``fail`` with none processed, ``partial`` otherwise).
Anything else (``{}``, ``processed: 45`` for 50 records, a status outside the three) is a
"bad-response": every record of the upload is retried, none counted as delivered.  An "ok"
entry whose record number is missing, outside the upload, or named twice has ``index`` None
and says why in ``ambiguity``; the policy finds its record by sending the batch in halves.

A whole-request redirect, 404 and the like mean a wrong ``clevertap.region`` or ``base_url``,
not a bad record: they pause the account as refused credentials do, and their summary names
the ``Location``.  A 200 carrying CleverTap's request-level fail body with code 401 (an account
suspended) is read as the 401 it reports: the account pauses rather than burning attempts.

Nothing here logs or returns the passcode: summaries are built from the status, the
``Location`` header and CleverTap's own JSON fields, httpx errors are reduced to their class
name and message, and the passcode is masked should an answer echo it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeGuard

import httpx
import orjson

from integration.config import CleverTapAccount

__all__ = [
    "MAX_ANSWER_BYTES",
    "MISDIRECTED_STATUSES",
    "RETRYABLE_RECORD_CODES",
    "RecordFailure",
    "UploadResult",
    "Uploader",
    "encode_batch",
]

UploadKind = Literal[
    "ok",
    "connection-error",
    "timeout",
    "unauthorized",
    "misdirected",
    "rate-limited",
    "server-error",
    "rejected",
    "bad-response",
]

#: Per-record codes worth sending again: 555 "Miscellaneous server error" (clevertap.md §3.1),
#: and 0, an entry that gives no code, which says nothing against the record itself.  Every
#: other per-record code is about the record and will fail again.
RETRYABLE_RECORD_CODES = frozenset({555, 0})

#: The most of an answer read, unless the request body was larger (then twice the body: a
#: "fail" answer echoes every record, §3.1, with CleverTap's spacing).  CleverTap's answers
#: are small; a larger one is a "bad-response" and is not read further.
MAX_ANSWER_BYTES = 4 * 1024 * 1024

#: Whole-request statuses, besides every 3xx, that say the request went to the wrong place
#: (a wrong region or base URL, a proxy in between), not that a record is bad: not found,
#: method not allowed, proxy authentication required, gone, misdirected, upgrade required.
MISDIRECTED_STATUSES = frozenset({404, 405, 407, 410, 421, 426})

_RECORD_NUMBER = re.compile(r"Skipped record number\s*:\s*(\d+)")
_SUMMARY_MAX = 300
_STATUSES = ("success", "partial", "fail")  # clevertap.md §3.1


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """One record CleverTap did not process; ``index`` is 0-based into the uploaded ``d``,
    ``None`` when the answer did not tie it to one record sent, and ``ambiguity`` then says
    why (no record number, a number outside the upload, a number named twice)."""

    index: int | None
    code: int
    error: str
    ambiguity: str = ""

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_RECORD_CODES


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What one upload came to.  ``status`` is the HTTP status, ``None`` without a response."""

    kind: UploadKind
    status: int | None
    latency_s: float
    summary: str  # short and secret-free, for the ledger and logs
    processed: int = 0
    failures: tuple[RecordFailure, ...] = field(default=())

    @property
    def status_text(self) -> str:
        """The ledger's ``status``: the HTTP status, or the kind when there was no answer."""
        return str(self.status) if self.status is not None else self.kind


class _TooLarge(Exception):
    """The answer passed the size cap; nothing more of it is read."""


class Uploader:
    """Sends record batches to CleverTap's Upload API.

    Example::

        uploader = Uploader("https://eu1.api.clevertap.com", timeout_s=30)
        result = await uploader.upload(account, records)
        await uploader.aclose()

    Parameters:
        api_base_url: scheme and host, without ``/1`` (``CleverTapConfig.api_base_url()``).
        http_client: an ``httpx.AsyncClient`` to use (tests pass one with
            ``httpx.ASGITransport`` on the mock); it is then the caller's to close.  Its
            redirect setting is overridden: uploads never follow one.
        timeout_s: the deadline of each whole request, connection to last byte, whichever
            client sends it.
        clock: monotonic seconds, for latency.
    """

    def __init__(
        self,
        api_base_url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.url = api_base_url.rstrip("/") + "/1/upload"
        self.timeout_s = timeout_s
        self._owns_client = http_client is None
        self._client = (
            http_client
            if http_client is not None
            else httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s),
                # CleverTap allows 15 uploads in flight per account (clevertap.md §3.4).
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            )
        )
        self._clock = clock

    def __repr__(self) -> str:
        return f"Uploader(url={self.url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this uploader made it."""
        if self._owns_client:
            await self._client.aclose()

    async def upload(
        self, account: CleverTapAccount, records: Sequence[dict[str, Any]]
    ) -> UploadResult:
        """POST one batch; never raises for what CleverTap or the network does."""
        passcode = account.passcode.reveal()
        result = await self._send(account.account_id, passcode, records)
        return _masked(result, passcode)

    async def _send(
        self, account_id: str, passcode: str, records: Sequence[dict[str, Any]]
    ) -> UploadResult:
        body = encode_batch(records)
        limit = max(MAX_ANSWER_BYTES, 2 * len(body))
        headers = {
            "X-CleverTap-Account-Id": account_id,
            "X-CleverTap-Passcode": passcode,
            "Content-Type": "application/json; charset=utf-8",
        }
        started = self._clock()
        try:
            # httpx's timeouts bound each read; a drip of one byte a second never trips them.
            # The deadline bounds the request as a whole, so its slot is free when it passes.
            async with asyncio.timeout(self.timeout_s):
                async with self._client.stream(
                    "POST", self.url, content=body, headers=headers, follow_redirects=False
                ) as response:
                    status = response.status_code
                    location = response.headers.get("location")
                    try:
                        content = await _read_capped(response, limit)
                    except _TooLarge:
                        if 200 <= status < 300:
                            summary = f"{status} with an answer over {limit} bytes"
                            return UploadResult(
                                "bad-response", status, self._clock() - started, summary
                            )
                        content = b""  # an error status says enough without its body
        except TimeoutError:
            summary = f"no whole answer within the {self.timeout_s:g} s deadline"
            return UploadResult("timeout", None, self._clock() - started, summary)
        except httpx.TimeoutException as exc:
            return UploadResult("timeout", None, self._clock() - started, _exc_summary(exc))
        except httpx.TransportError as exc:
            return UploadResult(
                "connection-error", None, self._clock() - started, _exc_summary(exc)
            )
        except httpx.HTTPError as exc:  # e.g. an undecodable Content-Encoding
            return UploadResult("bad-response", None, self._clock() - started, _exc_summary(exc))
        latency = self._clock() - started
        return read_response(status, content, latency, sent=len(records), location=location)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """The (decoded) body, or :class:`_TooLarge` as soon as it passes ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _masked(result: UploadResult, passcode: str) -> UploadResult:
    """``result`` with the passcode masked wherever an answer echoed it back."""
    if not passcode or (
        passcode not in result.summary and not any(passcode in f.error for f in result.failures)
    ):
        return result
    return replace(
        result,
        summary=result.summary.replace(passcode, "***"),
        failures=tuple(replace(f, error=f.error.replace(passcode, "***")) for f in result.failures),
    )


def encode_batch(records: Sequence[dict[str, Any]]) -> bytes:
    """The upload body ``{"d": [...]}`` as UTF-8 JSON.

    orjson writes it about ten times faster than the standard library, but refuses what UTF-8
    cannot hold (an unpaired surrogate, which ``json.loads`` accepts from ``"\\ud800"``) and
    integers beyond 64 bits.  Such a batch, from a row stored before the receiver refused
    those, is written by the standard library with non-ASCII escaped instead, so that one odd
    value can never stop its batch from being sent.
    """
    document = {"d": list(records)}
    try:
        return orjson.dumps(document)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()


def read_response(
    status: int, content: bytes, latency_s: float, *, sent: int, location: str | None = None
) -> UploadResult:
    """Classify CleverTap's answer to an upload of ``sent`` records (pure; the module
    docstring has the table).  ``location`` is the answer's ``Location`` header."""
    if 300 <= status < 400 or status in MISDIRECTED_STATUSES:
        summary = f"HTTP {status}" + (f" to {location}" if location else "")
        return UploadResult("misdirected", status, latency_s, summary[:_SUMMARY_MAX])
    document = _json(content)
    if not 200 <= status < 300:
        return UploadResult(_kind(status), status, latency_s, _error_summary(status, document))
    return _read_accepted(status, document, latency_s, sent)


def _kind(status: int) -> UploadKind:
    """The kind of a status that is neither 2xx nor misdirected."""
    if status in (401, 403):
        return "unauthorized"
    if status == 429:
        return "rate-limited"
    if status >= 500:
        return "server-error"
    return "rejected"


def _read_accepted(status: int, document: Any, latency_s: float, sent: int) -> UploadResult:
    """A 2xx answer: "ok" only when it accounts for each of the ``sent`` records (§3.1)."""

    def bad(summary: str) -> UploadResult:
        return UploadResult("bad-response", status, latency_s, summary[:_SUMMARY_MAX])

    if not isinstance(document, dict):
        return bad(f"{status} with an unreadable body")
    verdict = document.get("status")
    processed = document.get("processed")
    unprocessed = document.get("unprocessed", [])
    if verdict == "fail" and "processed" not in document and "unprocessed" not in document:
        return _request_failure(status, document, latency_s)
    if verdict not in _STATUSES:
        return bad(f"{status} with status {_short(verdict)}, not success, partial or fail")
    if not _is_count(processed) or not isinstance(unprocessed, list):
        return bad(f"{status} {verdict} without a processed count and an unprocessed list")
    if processed + len(unprocessed) != sent:
        return bad(
            f"{status} {verdict}: processed {processed} and unprocessed {len(unprocessed)} "
            f"do not account for the {sent} records sent"
        )
    expected = "success" if not unprocessed else "fail" if processed == 0 else "partial"
    if verdict != expected:
        return bad(
            f"{status} {verdict} contradicts processed {processed}, unprocessed {len(unprocessed)}"
        )
    failures = _failures(unprocessed, sent)
    summary = f"{status} {verdict}: processed {processed}"
    if failures:
        codes: dict[int, int] = {}
        for failure in failures:
            codes[failure.code] = codes.get(failure.code, 0) + 1
        summary += ", unprocessed " + ", ".join(f"{n}x{c}" for c, n in sorted(codes.items()))
        unlocated = sum(1 for failure in failures if failure.index is None)
        if unlocated:
            summary += f", {unlocated} not tied to a record"
    return UploadResult("ok", status, latency_s, summary[:_SUMMARY_MAX], processed, failures)


def _request_failure(status: int, document: dict[str, Any], latency_s: float) -> UploadResult:
    """A 2xx carrying a request-level fail body, ``{"status": "fail", "error", "code"}``
    (§3.3's shape): read as the HTTP status its code names, a bad response without one."""
    code = document.get("code")
    error = document.get("error")
    summary = f"{status} fail" + (f": {error}" if isinstance(error, str) and error else "")
    if _is_count(code) and 400 <= code <= 599:
        summary += f" (code {code})"
        kind = "misdirected" if code in MISDIRECTED_STATUSES else _kind(code)
        return UploadResult(kind, status, latency_s, summary[:_SUMMARY_MAX])
    return UploadResult("bad-response", status, latency_s, summary[:_SUMMARY_MAX])


def _failures(entries: list[Any], sent: int) -> tuple[RecordFailure, ...]:
    failures: list[RecordFailure] = []
    named: set[int] = set()
    for entry in entries:
        failure = _failure(entry, sent)
        index = failure.index
        if index is not None and index in named:
            failure = replace(failure, index=None, ambiguity=f"record {index + 1} named twice")
        elif index is not None:
            named.add(index)
        failures.append(failure)
    return tuple(failures)


def _failure(entry: object, sent: int) -> RecordFailure:
    if not isinstance(entry, dict):
        return RecordFailure(None, 0, "unreadable unprocessed entry", "no record number")
    code = entry.get("code")
    error = entry.get("error")
    text = error if isinstance(error, str) else ""
    match = _RECORD_NUMBER.search(text)
    index: int | None = None
    ambiguity = ""
    if match is None:
        ambiguity = "no record number"
    elif 1 <= int(match.group(1)) <= sent:
        index = int(match.group(1)) - 1
    else:
        ambiguity = f"record number {match.group(1)[:20]}, but {sent} records were sent"
    return RecordFailure(index, code if _is_count(code) else 0, text[:_SUMMARY_MAX], ambiguity)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(value: object) -> str:
    return json.dumps(value)[:40] if value is not None else "missing"


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        return None


def _error_summary(status: int, document: Any) -> str:
    error = document.get("error") if isinstance(document, dict) else None
    text = f"HTTP {status}" + (f": {error}" if isinstance(error, str) and error else "")
    return text[:_SUMMARY_MAX]


def _exc_summary(exc: Exception) -> str:
    message = str(exc) or "no detail"
    return f"{type(exc).__name__}: {message}"[:_SUMMARY_MAX]
