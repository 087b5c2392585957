"""The syncer's rules, shared by the sync and async drivers: staging, planning, marking.

Marking rule (reference §3.2): after a response, the sent attributes are marked synced unless
the status was 5xx or 404 or no response came, and only where the stored value still equals
the sent one.  See :mod:`client._syncer` for the one configurable deviation (429).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from client._base import BaseRevenueCat, Call, Clock, TimedValue
from client._exceptions import (
    APIConnectionError,
    APIStatusError,
    AttributeErrorDetail,
    AttributeValidationError,
    InvalidAttributeError,
    RevenueCatError,
)
from client._stores import AttributeStore, MemoryAttributeStore, SQLiteAttributeStore
from client._stores.base import StagedAttribute
from client._validation import MAX_ATTRIBUTES_PER_CALL, check_attribute, check_id, is_custom

__all__ = ["Batch", "SyncReport", "SyncResult", "SyncerCore", "as_error"]

logger = logging.getLogger("client")


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
class Batch:
    app_user_id: str
    attributes: Mapping[str, StagedAttribute] = field(default_factory=dict)


class SyncerCore:
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

    @staticmethod
    def ensure_open(closed: bool) -> None:
        if closed:
            raise RuntimeError("The attribute syncer is closed; create a new one to stage more")

    def checked(
        self, app_user_id: str, attributes: Mapping[str, str | None]
    ) -> tuple[str, dict[str, str | None], int]:
        """Validate before staging: a bad key or value stages nothing."""
        user = check_id("app_user_id", app_user_id)
        if not isinstance(attributes, Mapping):
            raise InvalidAttributeError("attributes must be a mapping of key to value")
        values = {key: check_attribute(key, value) for key, value in attributes.items()}
        return user, values, int(self.clock() * 1000)

    def plan(self) -> list[list[Batch]]:
        """Per user, the POSTs to send: one, or more if over 50 custom attributes."""
        plans: list[list[Batch]] = []
        for user, pending in self.store.unsynced().items():
            batches: list[Batch] = []
            current: dict[str, StagedAttribute] = {}
            custom = 0
            for key, staged in pending.items():
                if is_custom(key):
                    if custom == MAX_ATTRIBUTES_PER_CALL:
                        batches.append(Batch(user, current))
                        current, custom = {}, 0
                    custom += 1
                current[key] = staged
            batches.append(Batch(user, current))
            plans.append(batches)
        return plans

    def call(self, batch: Batch) -> Call[None]:
        timed = {k: TimedValue(s.value, s.set_time_ms) for k, s in batch.attributes.items()}
        return self.client.timed_attributes_call(batch.app_user_id, timed)

    def settle(self, batch: Batch, error: RevenueCatError | None) -> SyncResult:
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
        # But a row the rules refuse (say, from a file written by another version) would fail
        # on every sync: drop it and report it rather than resend it forever.
        return not isinstance(error, InvalidAttributeError)


def as_error(exc: Exception) -> RevenueCatError:
    if isinstance(exc, RevenueCatError):
        return exc
    logger.error("Unexpected error while syncing attributes", exc_info=exc)
    return APIConnectionError(f"Attribute sync failed unexpectedly: {type(exc).__name__}")
