"""The mock's clock: virtual time that runs at a configurable speed and can be advanced by hand.

Every timestamp the RevenueCat mock produces (``event_timestamp_ms``, purchase and expiry dates,
webhook attempt times, rate-limit windows) comes from one :class:`VirtualClock`.  Its speed,
``time_scale``, says how many virtual seconds pass per real second: ``1`` is real time, ``600``
turns the webhook retry schedule (5+10+20+40+80 minutes) into 15.5 real seconds, and ``0``
freezes time so that only :meth:`VirtualClock.advance` moves it (what deterministic tests use).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["VirtualClock"]


class VirtualClock:
    """Virtual epoch-millisecond time, ``time_scale`` times faster than the real clock.

    Example::

        clock = VirtualClock(time_scale=0, start_ms=1_700_000_000_000)
        clock.advance(300)            # five virtual minutes later
        assert clock.now_ms() == 1_700_000_300_000

    Parameters:
        time_scale: virtual seconds per real second; ``0`` freezes time (advance by hand).
        start_ms: the virtual time now, in epoch milliseconds (default: the real time now).
        monotonic: the real monotonic clock in seconds, injectable for tests.
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        start_ms: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale < 0 or time_scale != time_scale:  # the second test rejects NaN
            raise ValueError(f"time_scale must be >= 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self._monotonic = monotonic
        self._real_origin = monotonic()
        self._virtual_origin_ms = float(start_ms if start_ms is not None else time.time() * 1000)
        self._listeners: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"VirtualClock(time_scale={self.time_scale!r}, now_ms={self.now_ms()})"

    def now_ms(self) -> int:
        """The virtual time now, in epoch milliseconds."""
        elapsed = (self._monotonic() - self._real_origin) * 1000 * self.time_scale
        return int(self._virtual_origin_ms + elapsed)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (never backward) and wake anyone waiting."""
        if seconds < 0 or seconds != seconds:
            raise ValueError(f"cannot advance the clock by {seconds!r} seconds")
        self._virtual_origin_ms += seconds * 1000
        for listener in list(self._listeners):
            listener()

    def real_seconds(self, virtual_seconds: float) -> float | None:
        """How long ``virtual_seconds`` last in real time, or ``None`` when the clock is frozen."""
        if self.time_scale == 0:
            return None
        return max(0.0, virtual_seconds / self.time_scale)

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every :meth:`advance` (the emitter re-checks what is due)."""
        self._listeners.append(listener)
