"""Request-level errors of the CleverTap mock.

Request-level failures answer with CleverTap's body ``{"status": "fail", "error": <message>,
"code": <http status>}`` (reference §3.3).  Per-record failures are not errors: they are
entries of ``unprocessed`` in an HTTP 200 answer (see :mod:`mockserver.clevertap.validation`).

Exception tree::

    WireError (mockserver._http)   .status, .body(), .headers(): how an answer is rendered
     └── CleverTapError            status + message; rendered as CleverTap's fail body
"""

from __future__ import annotations

from typing import Any

from mockserver._http import WireError


class CleverTapError(WireError):
    """A request the mock refuses as a whole, with CleverTap's HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        """CleverTap's request-level failure body (reference §3.3)."""
        return {"status": "fail", "error": self.message, "code": self.status}


MALFORMED_REQUEST = "Malformed request"
TOO_MANY_CONCURRENT = "Too many concurrent requests"
