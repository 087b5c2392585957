"""SDK-style attribute syncing: stage per user now, send in batches later.

RevenueCat's mobile SDKs do not send each attribute at once (reference §3.2): they store it
locally with the time it was set and sync on triggers.  :class:`AttributeSyncer` (blocking)
and :class:`AsyncAttributeSyncer` do the same for a backend:

* ``set_clevertap_id``/``set_email``/``set_display_name``/``set_attributes`` validate and stage
  per user; setting the value already stored is a no-op;
* ``sync()`` sends one POST per user holding all of that user's unsynced attributes, each with
  its own set time as ``updated_at_ms``, with at most ``max_concurrency`` users in flight
  (a user with more than 50 custom attributes gets one POST per 50);
* after a response, the sent attributes are marked synced unless the status was 5xx or 404 or
  no response came (the SDKs' rule), and only where the stored value still equals the sent one.
  A 400 with ``attribute_errors`` counts as delivered: it is reported, never resent.

One deviation, configurable: the SDKs also mark attributes synced after a 429.  A 429 means
RevenueCat did not process the request, so by default the syncer keeps them and resends them
on the next ``sync()``; pass ``resend_rate_limited=False`` for the SDKs' exact rule.

Synced values stay in the store: they are what makes "set the same value again" a no-op.
``prune_synced()`` forgets them when that memory is no longer wanted.

``set_clevertap_ids(pairs)`` is the bulk job (a migration of a whole user base): each pair is
staged and sent at once, resumably and within RevenueCat's rate limit (:mod:`client._bulk`);
``verify_clevertap_ids(pairs)`` reads them back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self, TypeVar

from client import _bulk
from client._base import Clock
from client._bulk import BulkProgress, BulkRefusal, BulkReport, Pairs, VerifyReport
from client._client import AsyncRevenueCat, RevenueCat
from client._exceptions import AuthenticationError, RevenueCatError
from client._keys import CLEVERTAP_ID, DISPLAY_NAME, EMAIL
from client._stores import AttributeStore
from client._stores.base import StagedAttribute
from client._sync_rules import Batch, SyncerCore, SyncReport, SyncResult, as_error

__all__ = ["AsyncAttributeSyncer", "AttributeSyncer", "SyncReport", "SyncResult"]

logger = logging.getLogger("client")

R = TypeVar("R")

DEFAULT_MAX_CONCURRENCY = 8


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

    ``close()`` (and leaving the ``with`` block) syncs once more, then closes the store;
    leaving it on an interrupt or a 401/403 does not sync (see ``_flush_on_exit``).
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
        self._core = SyncerCore(
            client,
            path=path,
            store=store,
            max_concurrency=max_concurrency,
            clock=clock,
            on_error=on_error,
            resend_rate_limited=resend_rate_limited,
        )
        self._sync_lock = threading.Lock()
        self._closed = False

    def set_attributes(self, app_user_id: str, attributes: Mapping[str, str | None]) -> list[str]:
        """Stage attributes (``None`` or ``""`` deletes); return the keys that changed."""
        self._core.ensure_open(self._closed)
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
        self._core.ensure_open(self._closed)
        with self._sync_lock:  # two threads calling sync() never send the same rows twice
            plans = self._core.plan()
            if not plans:
                return SyncReport()
            workers = min(self._core.max_concurrency, len(plans))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rc-sync") as pool:
                outcomes = list(pool.map(self._send_user, plans))
            # Marking happens on the caller's thread, after every send has finished.
            results = [
                self._core.settle(batch, error) for batches in outcomes for batch, error in batches
            ]
        for result in results:
            self._core.report(result)
        return SyncReport(tuple(results))

    def set_clevertap_ids(
        self,
        pairs: Pairs,
        *,
        project_id: str | None = None,
        dry_run: bool = False,
        on_progress: Callable[[BulkProgress], None] | None = None,
        on_refusal: Callable[[BulkRefusal], None] | None = None,
    ) -> BulkReport:
        """Set ``$clevertapId`` for many users: resumable, rate limited, each user sent once.

        ```python
        with AttributeSyncer(rc, path="set-id.sqlite3") as syncer:
            report = syncer.set_clevertap_ids([("user-1", "ct-1"), ("user-2", "ct-2")])
        ```

        ``pairs`` are ``(app_user_id, clevertap_id)`` tuples or :class:`IdentityPair` (whose
        ``line`` the refusals name); it is read once, lazily.  With ``project_id`` the values
        go through API v2 (the client needs a v2 key), else v1.  ``dry_run`` checks the
        pairs and sends nothing.  ``on_progress`` gets the counts after each settled request,
        ``on_refusal`` each refused or failed user as it happens.  A 401 or 403 raises
        :class:`AuthenticationError` at once.  The rules are in :mod:`client._bulk`.
        """
        self._core.ensure_open(self._closed)
        with self._sync_lock:
            return _bulk.set_clevertap_ids(
                self._client,
                self._core,
                pairs,
                project_id=project_id,
                dry_run=dry_run,
                on_progress=on_progress,
                on_refusal=on_refusal,
            )

    def verify_clevertap_ids(
        self,
        pairs: Pairs,
        *,
        project_id: str | None = None,
        sample: int | None = None,
        seed: int | None = None,
    ) -> VerifyReport:
        """Read users back from RevenueCat (all, or a random ``sample``) and compare."""
        return _bulk.verify_clevertap_ids(
            self._client,
            pairs,
            max_concurrency=self._core.max_concurrency,
            project_id=project_id,
            sample=sample,
            seed=seed,
        )

    def _send_user(self, batches: list[Batch]) -> list[tuple[Batch, RevenueCatError | None]]:
        outcomes: list[tuple[Batch, RevenueCatError | None]] = []
        for batch in batches:
            try:
                self._client._send(self._core.call(batch))
            except Exception as exc:
                outcomes.append((batch, as_error(exc)))
            else:
                outcomes.append((batch, None))
        return outcomes

    def close(self, *, sync: bool = True) -> None:
        """Sync once more (unless ``sync=False``), then close the store."""
        if self._closed:
            return
        try:
            if sync:
                self.sync()
        finally:
            self._closed = True
            self._core.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(sync=_flush_on_exit(exc))


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
        self._core = SyncerCore(
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
        self._closing = False
        self._closed = False

    async def _store_call(self, fn: Callable[[], R]) -> R:
        if self._core.store.blocking:
            return await asyncio.to_thread(fn)
        return fn()

    async def set_attributes(
        self, app_user_id: str, attributes: Mapping[str, str | None]
    ) -> list[str]:
        """Stage attributes (``None`` or ``""`` deletes); return the keys that changed."""
        self._core.ensure_open(self._closed)
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
        self._core.ensure_open(self._closed)
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

    async def set_clevertap_ids(
        self,
        pairs: Pairs,
        *,
        project_id: str | None = None,
        dry_run: bool = False,
        on_progress: Callable[[BulkProgress], None] | None = None,
        on_refusal: Callable[[BulkRefusal], None] | None = None,
    ) -> BulkReport:
        """The awaitable :meth:`AttributeSyncer.set_clevertap_ids`; store calls run in a thread."""
        self._core.ensure_open(self._closed)
        async with self._lock:
            return await _bulk.async_set_clevertap_ids(
                self._client,
                self._core,
                pairs,
                store_call=self._store_call,
                project_id=project_id,
                dry_run=dry_run,
                on_progress=on_progress,
                on_refusal=on_refusal,
            )

    async def verify_clevertap_ids(
        self,
        pairs: Pairs,
        *,
        project_id: str | None = None,
        sample: int | None = None,
        seed: int | None = None,
    ) -> VerifyReport:
        """The awaitable :meth:`AttributeSyncer.verify_clevertap_ids`."""
        return await _bulk.async_verify_clevertap_ids(
            self._client,
            pairs,
            max_concurrency=self._core.max_concurrency,
            project_id=project_id,
            sample=sample,
            seed=seed,
        )

    async def _send_user(
        self, gate: asyncio.Semaphore, batches: list[Batch]
    ) -> list[tuple[Batch, RevenueCatError | None]]:
        outcomes: list[tuple[Batch, RevenueCatError | None]] = []
        async with gate:
            for batch in batches:
                try:
                    await self._client._send(self._core.call(batch))
                except Exception as exc:
                    outcomes.append((batch, as_error(exc)))
                else:
                    outcomes.append((batch, None))
        return outcomes

    def start(self) -> None:
        """Start the background flush (if ``flush_interval`` was given); idempotent."""
        if self._flush_interval is not None and self._task is None and not self._closing:
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

    async def aclose(self, *, sync: bool = True) -> None:
        """Stop the background flush, sync once more (unless ``sync=False``), close the store."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            # wait() does not re-raise the task's CancelledError, so a cancellation of
            # aclose() itself still propagates.
            await asyncio.wait([self._task])
            self._task = None
        try:
            if sync:
                await self.sync()
        finally:
            self._closed = True
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
        await self.aclose(sync=_flush_on_exit(exc))


def _flush_on_exit(exc: BaseException | None) -> bool:
    """Whether leaving a syncer's block syncs once more.

    Not after an interrupt (Ctrl-C, a cancellation: the caller wants it to stop) nor a 401/403
    (the same key would be refused again, and the SDKs' rule would then drop the attributes as
    delivered): what is staged stays in the store for the next sync or bulk run.
    """
    return exc is None or (isinstance(exc, Exception) and not isinstance(exc, AuthenticationError))
