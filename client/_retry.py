"""When to retry and how long to wait: a value object, driven by tenacity.

The decision is data (:class:`RetryPolicy`), so the sync and async clients share it and tests
can read it without sending anything.  Only tenacity's driver differs: ``Retrying`` with a
blocking ``sleep`` or ``AsyncRetrying`` with an awaitable one, both injected.

Retried: connection errors, timeouts, 429 and 5xx, unless the server said the error is not
retryable (v2 ``retryable: false``, or the ``Is-Retryable: false`` header the iOS SDK honours,
reference §1.6).  Never retried: every other 4xx.  Retrying a write is safe because the
client stamps ``updated_at_ms`` once per logical write, and RevenueCat keeps the newest value
(reference §1.2), so a late duplicate cannot overwrite a newer write.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import tenacity
from tenacity import RetryCallState

from client._exceptions import (
    APIConnectionError,
    APIStatusError,
    InternalServerError,
    RateLimitError,
)

__all__ = ["DEFAULT_MAX_RETRIES", "RetryPolicy", "async_retrying", "sync_retrying"]

logger = logging.getLogger("client")

DEFAULT_MAX_RETRIES = 3


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures to retry and the wait before each retry.

    Parameters:
        max_retries: retries after the first attempt (so ``max_retries + 1`` attempts in all).
        initial_backoff: the first exponential wait, in seconds.
        max_backoff: the cap on an exponential wait.
        max_retry_after: the cap on a server-requested wait (``Retry-After``/``backoff_ms``).
            The iOS SDK caps ``Retry-After`` at 3600 s; a backend job should not stall that
            long on one request, so we cap at 60 s and let the caller or the syncer retry later.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise TypeError("max_retries must be an int")
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried (attempts permitting)."""
        if isinstance(exc, APIConnectionError):
            return True
        if isinstance(exc, RateLimitError | InternalServerError):
            return exc.retryable is not False
        return False

    def delay(self, retry_number: int, exc: BaseException | None, jitter: float) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based).

        A server-requested wait wins, capped at ``max_retry_after``.  Otherwise the wait grows
        exponentially, with "equal jitter": a random point in the upper half of the step,
        ``jitter`` being a number in ``[0, 1)``.
        """
        if isinstance(exc, APIStatusError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_retry_after)
        step = min(self.max_backoff, self.initial_backoff * 2.0 ** (retry_number - 1))
        return step * (0.5 + jitter / 2)


def _wait(policy: RetryPolicy, jitter: Callable[[], float]) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return policy.delay(state.attempt_number, exc, jitter())

    return wait


def _before_sleep(policy: RetryPolicy, what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        pause: float = state.next_action.sleep if state.next_action is not None else 0.0
        # ``exc`` renders as status/code/message; the key is scrubbed before errors are built.
        logger.warning(
            "%s failed (%s); retry %d of %d in %.2fs",
            what,
            exc,
            state.attempt_number,
            policy.max_retries,
            pause,
        )

    return before_sleep


def sync_retrying(
    policy: RetryPolicy, *, sleep: Callable[[float], None], jitter: Callable[[], float], what: str
) -> tenacity.Retrying:
    """A tenacity driver for one logical request of the sync client."""
    return tenacity.Retrying(
        sleep=sleep,
        stop=tenacity.stop_after_attempt(policy.max_retries + 1),
        retry=tenacity.retry_if_exception(policy.should_retry),
        wait=_wait(policy, jitter),
        before_sleep=_before_sleep(policy, what),
        reraise=True,
    )


def async_retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]],
    jitter: Callable[[], float],
    what: str,
) -> tenacity.AsyncRetrying:
    """A tenacity driver for one logical request of the async client."""
    return tenacity.AsyncRetrying(
        sleep=sleep,
        stop=tenacity.stop_after_attempt(policy.max_retries + 1),
        retry=tenacity.retry_if_exception(policy.should_retry),
        wait=_wait(policy, jitter),
        before_sleep=_before_sleep(policy, what),
        reraise=True,
    )
