"""Opening and closing, the same for every outbox backend.

An outbox is created unopened, opened (:meth:`Lifecycle.open`, or ``async with``), and closed
for good.  A call on an outbox that is not open fails with the backend's own error, saying
whether it was never opened or is already closed.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Self


class Lifecycle(abc.ABC):
    """The open/closed guard both backends share.

    A backend names its error class (``_error``) and writes what opening and closing do for it
    (``_open``: connect and migrate; ``_close``: finish group commits, release connections).
    """

    _error: ClassVar[type[Exception]]
    _opened = False
    _closed = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and create or migrate the schema; a second call does nothing, one after
        :meth:`close` fails."""
        if self._closed:
            raise self._error(f"{self!r} is closed")
        if not self._opened:
            await self._open()
            self._opened = True

    async def close(self) -> None:
        """Finish pending group commits and release what the outbox holds; only once."""
        if not self._closed:
            self._closed = True
            await self._close()

    def _require_open(self) -> None:
        if self._closed:
            raise self._error(f"{self!r} is closed")
        if not self._opened:
            raise self._error(f"{self!r} is not open: call open() first")

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect and create or migrate the schema; the outbox counts as open once it returns."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Finish pending group commits, then release connections and threads."""
