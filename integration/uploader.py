"""One HTTP call to CleverTap's Upload API, read into a verdict the dispatcher can act on.

``POST <api_base_url>/1/upload`` with ``{"d": [records]}`` and the account's headers
(clevertap.md §1.2).  What comes back (clevertap.md §3)::

    transport error ---------------------------> kind "connection-error"  (retry)
    timeout ------------------------------------> kind "timeout"           (retry)
    401 / 403 ----------------------------------> kind "unauthorized"      (pause the account)
    429 ----------------------------------------> kind "rate-limited"      (retry, fewer in flight)
    5xx ----------------------------------------> kind "server-error"      (retry)
    other 4xx ----------------------------------> kind "rejected"          (retry, then dead by age)
    200 unreadable, or undecodable -------------> kind "bad-response"      (retry)
    200 {"status", "processed", "unprocessed"} -> kind "ok", with one RecordFailure per
                                                   unprocessed record (0-based index into d)

A 200 is not success: CleverTap answers 200 even when every record failed, and lists each
failed record with a code and an error ending in "Skipped record number : N" (1-based,
clevertap.md §3.1).

Nothing here logs or returns the passcode: summaries are built from the status and CleverTap's
own JSON fields, and httpx errors are reduced to their class name and message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from integration.config import CleverTapAccount

__all__ = [
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
    "rate-limited",
    "server-error",
    "rejected",
    "bad-response",
]

#: Per-record codes worth sending again: 555 "Miscellaneous server error" (clevertap.md §3.1).
#: Every other per-record code is about the record itself and will fail again.
RETRYABLE_RECORD_CODES = frozenset({555})

_RECORD_NUMBER = re.compile(r"Skipped record number\s*:\s*(\d+)")
_SUMMARY_MAX = 300


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """One record CleverTap did not process; ``index`` is 0-based into the uploaded ``d``,
    ``None`` when the answer did not say which record it was."""

    index: int | None
    code: int
    error: str

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


class Uploader:
    """Sends record batches to CleverTap's Upload API.

    Example::

        uploader = Uploader("https://eu1.api.clevertap.com", timeout_s=30)
        result = await uploader.upload(account, records)
        await uploader.aclose()

    Parameters:
        api_base_url: scheme and host, without ``/1`` (``CleverTapConfig.api_base_url()``).
        http_client: an ``httpx.AsyncClient`` to use (tests pass one with
            ``httpx.ASGITransport`` on the mock); it is then the caller's to close.
        timeout_s: the whole request's timeout when this uploader makes its own client.
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
        body = encode_batch(records)
        headers = {
            "X-CleverTap-Account-Id": account.account_id,
            "X-CleverTap-Passcode": account.passcode.reveal(),
            "Content-Type": "application/json; charset=utf-8",
        }
        started = self._clock()
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return UploadResult("timeout", None, self._clock() - started, _exc_summary(exc))
        except httpx.TransportError as exc:
            return UploadResult(
                "connection-error", None, self._clock() - started, _exc_summary(exc)
            )
        except httpx.HTTPError as exc:  # e.g. an undecodable Content-Encoding
            return UploadResult("bad-response", None, self._clock() - started, _exc_summary(exc))
        return read_response(response.status_code, response.content, self._clock() - started)


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


def read_response(status: int, content: bytes, latency_s: float) -> UploadResult:
    """Classify CleverTap's answer (pure; the module docstring has the table)."""
    document = _json(content)
    if status in (401, 403):
        return UploadResult("unauthorized", status, latency_s, _error_summary(status, document))
    if status == 429:
        return UploadResult("rate-limited", status, latency_s, _error_summary(status, document))
    if status >= 500:
        return UploadResult("server-error", status, latency_s, _error_summary(status, document))
    if status != 200:
        return UploadResult("rejected", status, latency_s, _error_summary(status, document))
    if not isinstance(document, dict) or not isinstance(document.get("unprocessed", []), list):
        return UploadResult("bad-response", status, latency_s, "200 with an unreadable body")
    failures = tuple(_failure(entry) for entry in document.get("unprocessed", []))
    processed = document.get("processed")
    processed = processed if isinstance(processed, int) else 0
    summary = f"200 {document.get('status', '?')}: processed {processed}"
    if failures:
        codes: dict[int, int] = {}
        for failure in failures:
            codes[failure.code] = codes.get(failure.code, 0) + 1
        summary += ", unprocessed " + ", ".join(f"{n}x{c}" for c, n in sorted(codes.items()))
    return UploadResult("ok", status, latency_s, summary[:_SUMMARY_MAX], processed, failures)


def _failure(entry: object) -> RecordFailure:
    if not isinstance(entry, dict):
        return RecordFailure(None, 0, "unreadable unprocessed entry")
    code = entry.get("code")
    error = entry.get("error")
    text = error if isinstance(error, str) else ""
    match = _RECORD_NUMBER.search(text)
    index = int(match.group(1)) - 1 if match else None
    return RecordFailure(
        index if index is not None and index >= 0 else None,
        code if isinstance(code, int) and not isinstance(code, bool) else 0,
        text[:_SUMMARY_MAX],
    )


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def _error_summary(status: int, document: Any) -> str:
    error = document.get("error") if isinstance(document, dict) else None
    text = f"HTTP {status}" + (f": {error}" if isinstance(error, str) and error else "")
    return text[:_SUMMARY_MAX]


def _exc_summary(exc: Exception) -> str:
    message = str(exc) or "no detail"
    return f"{type(exc).__name__}: {message}"[:_SUMMARY_MAX]
