"""Upload slots of one CleverTap account: an AIMD limit on uploads in flight, and a pause.

The limit starts at the ceiling (``dispatcher.concurrency``), grows by about one slot per
``limit`` successful uploads and halves on a 429, never below 1.  The pause is the account's
:class:`~integration.policy.Pause`, set by the policy when CleverTap refuses its credentials;
a success ends its doubling.

Example::

    slots = Slots("W9R-486-4W5Z", ceiling=4, pause_s=60.0)
    if await slots.acquire(stop):   # False once ``stop`` is set
        try:
            ...                     # one upload
        finally:
            slots.release()
"""

from __future__ import annotations

import asyncio
from collections import deque

from integration.policy import Pause

__all__ = ["Slots"]


class Slots:
    """Upload slots of one account: an AIMD limit between 1 and ``ceiling``, and a pause.

    Parameters:
        account_id: the CleverTap account (for ``status``).
        ceiling: the most uploads in flight at once.
        pause_s: how long the first pause after refused credentials lasts.
    """

    def __init__(self, account_id: str, ceiling: int, pause_s: float) -> None:
        self.account_id = account_id
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self.pause = Pause(until=0.0, next_s=pause_s)
        self.base_pause_s = pause_s
        self.environments: list[str] = []
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    @property
    def paused_until(self) -> float:
        return self.pause.until

    async def acquire(self, stop: asyncio.Event) -> bool:
        while self.in_flight >= self.allowed and not stop.is_set():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        if stop.is_set():
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
        self.wake()

    def wake(self, everyone: bool = False) -> None:
        free = self.allowed - self.in_flight
        for waiter in list(self._waiters):
            if not everyone and free <= 0:
                break
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def succeeded(self) -> None:
        # Additive increase: about one more slot per `limit` successful uploads.
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        if self.pause.next_s != self.base_pause_s:
            self.pause = Pause(self.pause.until, self.base_pause_s)
        self.wake()

    def rate_limited(self) -> None:
        self.limit = max(1.0, self.limit / 2)
