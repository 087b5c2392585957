"""SDK-style attribute syncing: stage per user now, send in batches later.

RevenueCat's mobile SDKs do not send each attribute at once (reference §3.2): they store it
locally with the time it was set and sync on triggers.  :class:`AttributeSyncer` (blocking)
and :class:`AsyncAttributeSyncer` do the same for a backend:

* ``set_clevertap_id``/``set_email``/``set_display_name``/``set_attributes`` validate and stage
  per user; setting the value already stored is a no-op;
* ``sync()`` sends one POST per user holding all of that user's unsynced attributes, each with
  its own set time as ``updated_at_ms``, with at most ``max_concurrency`` users in flight;
* after a response, the sent attributes are marked synced unless the status was 5xx or 404 or
  no response came (the SDKs' rule), and only where the stored value still equals the sent one.
  A 400 with ``attribute_errors`` counts as delivered: it is reported, never resent.

One deviation, configurable: the SDKs also mark attributes synced after a 429.  A 429 means
RevenueCat did not process the request, so by default the syncer keeps them and resends them
on the next ``sync()``; pass ``resend_rate_limited=False`` for the SDKs' exact rule.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

from client._base import BaseRevenueCat, Call, Clock, TimedValue
from client._client import AsyncRevenueCat, RevenueCat
from client._exceptions import (
    APIConnectionError,
    APIStatusError,
    AttributeErrorDetail,
    AttributeValidationError,
    RevenueCatError,
)
from client._keys import CLEVERTAP_ID, DISPLAY_NAME, EMAIL
from client._stores import AttributeStore, MemoryAttributeStore, SQLiteAttributeStore
from client._stores.base import StagedAttribute
from client._validation import MAX_ATTRIBUTES_PER_CALL, check_attribute, check_id, is_custom

__all__ = ["AsyncAttributeSyncer", "AttributeSyncer", "SyncReport", "SyncResult"]

logger = logging.getLogger("client")

R = TypeVar("R")

DEFAULT_MAX_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What happened to one POST of one user's attributes.

    ``resend`` is true when the attributes stay unsynced and go out again on the next sync.
    """

    app_user_id: str
    keys: tuple[str, ...]
    error: RevenueCatError | None = None
    resend: bool = False

    @property
    def attribute_errors(self) -> list[AttributeErrorDetail]:
        """The keys RevenueCat refused (code 7263), empty otherwise."""
        if isinstance(self.error, AttributeValidationError):
            return list(self.error.attribute_errors)
        return []


@dataclass(frozen=True, slots=True)
class SyncReport:
    """The results of one ``sync()``, one per POST."""

    results: tuple[SyncResult, ...] = ()

    @property
    def synced(self) -> list[SyncResult]:
        """POSTs that succeeded."""
        return [r for r in self.results if r.error is None]

    @property
    def rejected(self) -> list[SyncResult]:
        """POSTs answered with per-key attribute errors: reported, marked synced, not resent."""
        return [r for r in self.results if isinstance(r.error, AttributeValidationError)]

    @property
    def failed(self) -> list[SyncResult]:
        """POSTs that failed and will be resent by the next ``sync()``."""
        return [r for r in self.results if r.resend]

    @property
    def dropped(self) -> list[SyncResult]:
        """POSTs that failed for good (any other 4xx): marked synced, as the SDKs do."""
        return [r for r in self.results if r.error is not None and not r.resend]


@dataclass(frozen=True, slots=True)
class _Batch:
    app_user_id: str
    attributes: Mapping[str, StagedAttribute] = field(default_factory=dict)


class _SyncerCore:
    """Staging, planning and outcome rules; no I/O besides the store."""

    def __init__(
        self,
        client: BaseRevenueCat,
        *,
        path: str | os.PathLike[str] | None,
        store: AttributeStore | None,
        max_concurrency: int,
        clock: Clock | None,
        on_error: Callable[[SyncResult], None] | None,
        resend_rate_limited: bool,
    ) -> None:
        if path is not None and store is not None:
            raise ValueError("pass either path or store, not both")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError("max_concurrency must be an int")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.client = client
        if store is None:
            store = SQLiteAttributeStore(path) if path is not None else MemoryAttributeStore()
        self.store: AttributeStore = store
        self.max_concurrency = max_concurrency
        self.clock: Clock = clock or time.time
        self.on_error = on_error
        self.resend_rate_limited = resend_rate_limited

    def checked(
        self, app_user_id: str, attributes: Mapping[str, str | None]
    ) -> tuple[str, dict[str, str | None], int]:
        """Validate before staging: a bad key or value stages nothing."""
        user = check_id("app_user_id", app_user_id)
        if not isinstance(attributes, Mapping):
            raise TypeError("attributes must be a mapping of key to value")
        values = {key: check_attribute(key, value) for key, value in attributes.items()}
        return user, values, int(self.clock() * 1000)

    def plan(self) -> list[list[_Batch]]:
        """Per user, the POSTs to send: one, or more if over 50 custom attributes."""
        plans: list[list[_Batch]] = []
        for user, pending in self.store.unsynced().items():
            batches: list[_Batch] = []
            current: dict[str, StagedAttribute] = {}
            custom = 0
            for key, staged in pending.items():
                if is_custom(key):
                    if custom == MAX_ATTRIBUTES_PER_CALL:
                        batches.append(_Batch(user, current))
                        current, custom = {}, 0
                    custom += 1
                current[key] = staged
            batches.append(_Batch(user, current))
            plans.append(batches)
        return plans

    def call(self, batch: _Batch) -> Call[None]:
        timed = {k: TimedValue(s.value, s.set_time_ms) for k, s in batch.attributes.items()}
        return self.client.timed_attributes_call(batch.app_user_id, timed)

    def settle(self, batch: _Batch, error: RevenueCatError | None) -> SyncResult:
        """Apply the marking rule to one POST's outcome and report it."""
        resend = self._resend(error)
        if not resend:
            self.store.mark_synced(batch.app_user_id, batch.attributes)
        return SyncResult(batch.app_user_id, tuple(batch.attributes), error, resend)

    def report(self, result: SyncResult) -> None:
        """Log a failed POST and hand it to ``on_error``."""
        if result.error is None:
            return
        logger.warning(
            "Attribute sync for %r %s: %s",
            result.app_user_id,
            "will be retried" if result.resend else "was not applied",
            result.error,
        )
        if self.on_error is not None:
            try:
                self.on_error(result)
            except Exception:
                logger.exception("on_error callback failed")

    def _resend(self, error: RevenueCatError | None) -> bool:
        if error is None:
            return False
        if isinstance(error, APIStatusError):
            # HTTPStatusCode.isSuccessfullySynced = !(isServerError || == 404) (reference §3.2)
            if error.status_code >= 500 or error.status_code == 404:
                return True
            return error.status_code == 429 and self.resend_rate_limited
        # No response at all (APIConnectionError), or anything unexpected: keep and retry.
        return True


def _as_error(exc: Exception) -> RevenueCatError:
    if isinstance(exc, RevenueCatError):
        return exc
    return APIConnectionError(f"Attribute sync failed unexpectedly: {type(exc).__name__}")


class AttributeSyncer:
    """Stages attributes per user and sends them in batches, like RevenueCat's SDKs.

    ```python
    with RevenueCat(api_key="sk_...") as rc, AttributeSyncer(rc, path="attrs.sqlite3") as s:
        s.set_clevertap_id("user-1", "ct-42")
        s.set_email("user-1", "ada@example.com")
        report = s.sync()          # one POST for user-1 with both attributes
    ```

    Parameters:
        client: the :class:`RevenueCat` to send with (the caller closes it).
        path: a SQLite file that keeps unsynced attributes across restarts; default in memory.
        store: an :class:`AttributeStore` instead of ``path``.
        max_concurrency: users whose POSTs are in flight at once.
        clock: seconds since the epoch; stamps each staged value.
        on_error: called with each :class:`SyncResult` that carries an error.
        resend_rate_limited: keep attributes unsynced after a 429 (see the module docstring).

    ``close()`` (and leaving the ``with`` block) syncs once more, then closes the store.
    """

    def __init__(
        self,
        client: RevenueCat,
        *,
        path: str | os.PathLike[str] | None = None,
        store: AttributeStore | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        clock: Clock | None = None,
        on_error: Callable[[SyncResult], None] | None = None,
        resend_rate_limited: bool = True,
    ) -> None:
        if not isinstance(client, RevenueCat):
            raise TypeError("client must be a RevenueCat (use AsyncAttributeSyncer for async)")
        self._client = client
        self._core = _SyncerCore(
            client,
            path=path,
            store=store,
            max_concurrency=max_concurrency,
            clock=clock,
            on_error=on_error,
            resend_rate_limited=resend_rate_limited,
        )
        self._closed = False

    def set_attributes(self, app_user_id: str, attributes: Mapping[str, str | None]) -> list[str]:
        """Stage attributes (``None`` or ``""`` deletes); return the keys that changed."""
        user, values, now_ms = self._core.checked(app_user_id, attributes)
        return self._core.store.stage(user, values, now_ms)

    def set_clevertap_id(self, app_user_id: str, clevertap_id: str | None) -> list[str]:
        """Stage ``$clevertapId``; ``None`` or ``""`` deletes it."""
        return self.set_attributes(app_user_id, {CLEVERTAP_ID: clevertap_id})

    def set_email(self, app_user_id: str, email: str | None) -> list[str]:
        """Stage ``$email``; ``None`` or ``""`` deletes it."""
        return self.set_attributes(app_user_id, {EMAIL: email})

    def set_display_name(self, app_user_id: str, display_name: str | None) -> list[str]:
        """Stage ``$displayName``; ``None`` or ``""`` deletes it."""
        return self.set_attributes(app_user_id, {DISPLAY_NAME: display_name})

    def pending(self) -> dict[str, dict[str, StagedAttribute]]:
        """Every user's unsynced attributes."""
        return self._core.store.unsynced()

    def prune_synced(self, app_user_id: str | None = None) -> int:
        """Forget synced values (they only serve the no-op check); return how many."""
        return self._core.store.prune_synced(app_user_id)

    def sync(self) -> SyncReport:
        """Send every user's unsynced attributes; per-user errors are reported, not raised."""
        plans = self._core.plan()
        if not plans:
            return SyncReport()
        workers = min(self._core.max_concurrency, len(plans))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rc-sync") as pool:
            outcomes = list(pool.map(self._send_user, plans))
        # Marking happens here, on the caller's thread, after every send has finished.
        results = [
            self._core.settle(batch, error) for batches in outcomes for batch, error in batches
        ]
        for result in results:
            self._core.report(result)
        return SyncReport(tuple(results))

    def _send_user(self, batches: list[_Batch]) -> list[tuple[_Batch, RevenueCatError | None]]:
        outcomes: list[tuple[_Batch, RevenueCatError | None]] = []
        for batch in batches:
            try:
                self._client._send(self._core.call(batch))
            except Exception as exc:
                outcomes.append((batch, _as_error(exc)))
            else:
                outcomes.append((batch, None))
        return outcomes

    def close(self) -> None:
        """Sync once more, then close the store."""
        if self._closed:
            return
        self._closed = True
        try:
            self.sync()
        finally:
            self._core.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncAttributeSyncer:
    """The asyncio twin of :class:`AttributeSyncer`, with an optional background flush.

    ```python
    async with AsyncRevenueCat(api_key="sk_...") as rc:
        async with AsyncAttributeSyncer(rc, path="attrs.sqlite3", flush_interval=30) as s:
            await s.set_clevertap_id("user-1", "ct-42")
        # leaving the block flushed what was staged
    ```

    Parameters are those of :class:`AttributeSyncer`, plus ``flush_interval`` (seconds
    between background syncs, started by :meth:`start` or ``async with``; ``None``: none)
    and ``sleep`` (the awaitable sleep of that loop).  Store calls that touch disk run in a
    worker thread so the event loop never waits on an fsync.
    """

    def __init__(
        self,
        client: AsyncRevenueCat,
        *,
        path: str | os.PathLike[str] | None = None,
        store: AttributeStore | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        clock: Clock | None = None,
        on_error: Callable[[SyncResult], None] | None = None,
        resend_rate_limited: bool = True,
        flush_interval: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if not isinstance(client, AsyncRevenueCat):
            raise TypeError("client must be an AsyncRevenueCat (use AttributeSyncer for sync)")
        if flush_interval is not None and not flush_interval > 0:
            raise ValueError("flush_interval must be a positive number of seconds, or None")
        self._client = client
        self._core = _SyncerCore(
            client,
            path=path,
            store=store,
            max_concurrency=max_concurrency,
            clock=clock,
            on_error=on_error,
            resend_rate_limited=resend_rate_limited,
        )
        self._flush_interval = flush_interval
        self._sleep = sleep or asyncio.sleep
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def _store_call(self, fn: Callable[[], R]) -> R:
        if self._core.store.blocking:
            return await asyncio.to_thread(fn)
        return fn()

    async def set_attributes(
        self, app_user_id: str, attributes: Mapping[str, str | None]
    ) -> list[str]:
        """Stage attributes (``None`` or ``""`` deletes); return the keys that changed."""
        user, values, now_ms = self._core.checked(app_user_id, attributes)
        return await self._store_call(lambda: self._core.store.stage(user, values, now_ms))

    async def set_clevertap_id(self, app_user_id: str, clevertap_id: str | None) -> list[str]:
        """Stage ``$clevertapId``; ``None`` or ``""`` deletes it."""
        return await self.set_attributes(app_user_id, {CLEVERTAP_ID: clevertap_id})

    async def set_email(self, app_user_id: str, email: str | None) -> list[str]:
        """Stage ``$email``; ``None`` or ``""`` deletes it."""
        return await self.set_attributes(app_user_id, {EMAIL: email})

    async def set_display_name(self, app_user_id: str, display_name: str | None) -> list[str]:
        """Stage ``$displayName``; ``None`` or ``""`` deletes it."""
        return await self.set_attributes(app_user_id, {DISPLAY_NAME: display_name})

    async def pending(self) -> dict[str, dict[str, StagedAttribute]]:
        """Every user's unsynced attributes."""
        return await self._store_call(self._core.store.unsynced)

    async def prune_synced(self, app_user_id: str | None = None) -> int:
        """Forget synced values (they only serve the no-op check); return how many."""
        return await self._store_call(lambda: self._core.store.prune_synced(app_user_id))

    async def sync(self) -> SyncReport:
        """Send every user's unsynced attributes; per-user errors are reported, not raised."""
        async with self._lock:  # a background flush and a manual sync never overlap
            plans = await self._store_call(self._core.plan)
            gate = asyncio.Semaphore(self._core.max_concurrency)
            outcomes = await asyncio.gather(*(self._send_user(gate, p) for p in plans))
            settled = [pair for batches in outcomes for pair in batches]
            results = await self._store_call(
                lambda: [self._core.settle(batch, error) for batch, error in settled]
            )
        for result in results:
            self._core.report(result)
        return SyncReport(tuple(results))

    async def _send_user(
        self, gate: asyncio.Semaphore, batches: list[_Batch]
    ) -> list[tuple[_Batch, RevenueCatError | None]]:
        outcomes: list[tuple[_Batch, RevenueCatError | None]] = []
        async with gate:
            for batch in batches:
                try:
                    await self._client._send(self._core.call(batch))
                except Exception as exc:
                    outcomes.append((batch, _as_error(exc)))
                else:
                    outcomes.append((batch, None))
        return outcomes

    def start(self) -> None:
        """Start the background flush (if ``flush_interval`` was given); idempotent."""
        if self._flush_interval is not None and self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        assert self._flush_interval is not None
        while True:
            await self._sleep(self._flush_interval)
            try:
                await self.sync()
            except Exception:
                # A store or programming error must not kill the loop silently; log, go on.
                logger.exception("Background attribute sync failed")

    async def aclose(self) -> None:
        """Stop the background flush, sync once more, then close the store."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            # wait() does not re-raise the task's CancelledError, so a cancellation of
            # aclose() itself still propagates.
            await asyncio.wait([self._task])
            self._task = None
        try:
            await self.sync()
        finally:
            await self._store_call(self._core.store.close)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
