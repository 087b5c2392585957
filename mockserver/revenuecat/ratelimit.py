"""API v2 rate limiting: a fixed one-minute window per key, on the virtual clock.

RevenueCat limits the Customer Information domain (which holds the attribute endpoints) to 480
requests per minute per key, reports ``RevenueCat-Rate-Limit-Current-Usage`` and
``-Current-Limit`` on every answer, and answers 429 ``rate_limit_error`` with ``Retry-After``
(seconds) and ``backoff_ms`` when the limit is reached (revenuecat.md section 2.4).
"""

from __future__ import annotations

import hashlib
import math
import threading

from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.errors import RateLimitError

__all__ = ["DEFAULT_V2_RATE_LIMIT", "RateLimiter"]

DEFAULT_V2_RATE_LIMIT = 480
_WINDOW_MS = 60_000


class RateLimiter:
    """Counts requests per key per minute.

    ``limit=None`` turns limiting off (headers still report usage).  Keys are stored as hashes
    so that the limiter's state never holds a secret.
    """

    def __init__(self, *, clock: VirtualClock, limit: int | None = DEFAULT_V2_RATE_LIMIT) -> None:
        if limit is not None and limit < 1:
            raise ValueError("the rate limit must be >= 1 request per minute, or None")
        self.clock = clock
        self.limit = limit
        self._windows: dict[str, tuple[int, int]] = {}  # key hash -> (window start, count)
        self._lock = threading.Lock()

    def hit(self, key: str) -> dict[str, str]:
        """Count one request; return the headers for the answer or raise RateLimitError."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = self.clock.now_ms()
        window = now - now % _WINDOW_MS
        with self._lock:
            start, count = self._windows.get(digest, (window, 0))
            if start != window:
                start, count = window, 0
            if self.limit is not None and count >= self.limit:
                retry_after = max(1, math.ceil((start + _WINDOW_MS - now) / 1000))
                raise RateLimitError(retry_after_s=retry_after, usage=count, limit=self.limit)
            count += 1
            self._windows[digest] = (start, count)
            if len(self._windows) > 10_000:  # bounded: drop windows of keys gone quiet
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        headers = {"RevenueCat-Rate-Limit-Current-Usage": str(count)}
        if self.limit is not None:
            headers["RevenueCat-Rate-Limit-Current-Limit"] = str(self.limit)
        return headers

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
