"""Bulk identity sync: ``$clevertapId`` for a whole user base, resumable, within the rate limit.

:meth:`client.AttributeSyncer.set_clevertap_ids` (and its async twin) takes an iterable of
``(app_user_id, clevertap_id)`` pairs.  Each pair goes through::

    admit --> stage in the syncer's store --> send (unless already synced) --> settle
      |            (value already synced: "unchanged", nothing sent)
      +-- malformed or a duplicate user with another id: refused, reported by line, skipped

* Resuming: the store is the syncer's (a SQLite file with ``path=``).  A run first sends what
  an earlier, interrupted run staged but never settled; a value already synced is a no-op, so
  running the same input twice sends nothing the second time.  On an interrupt the sync driver
  stops starting requests, lets those in flight finish and settles them, then re-raises.
* Store I/O: pairs are staged :data:`STAGE_CHUNK` per transaction and answers settled a round
  of ``max_concurrency`` per transaction, on the caller's thread (workers only send).  So a
  crash (``kill -9``) can leave up to about ``STAGE_CHUNK + 3 * max_concurrency`` users to be
  sent again by the next run: staged, in flight, or answered but not yet settled.  They carry
  the same value and set time, so the second write changes nothing.
* Rate limit (revenuecat.md §2.4): a 429 pauses every worker until its ``Retry-After`` (or
  ``backoff_ms``) has passed, not just the one that got it; while the
  ``RevenueCat-Rate-Limit-Current-Usage`` header says the limit is reached, one request at
  a time probes instead of ``max_concurrency``.  A request still refused after
  :data:`MAX_RATE_LIMIT_WAITS` waits stays pending for the next run.  Other retryable
  failures (5xx, no response) follow the client's :class:`~client.RetryPolicy`.
* Outcomes: RevenueCat's per-key refusals (400, code 7263) and other 4xx are "refused" and
  settled as the SDKs settle them (not resent).  5xx, no response, a 404 from API v2 (it does
  not create customers) and an exhausted rate limit are "failed": they stay pending and the
  next run sends them.  A 401 or 403 stops the run at once, leaving the user pending.

Memory: one entry per distinct user of the input (to catch a user given two ids); refusals
are handed to ``on_refusal`` as they happen and at most :data:`MAX_KEPT_REFUSALS` are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import httpx

from client._base import BaseRevenueCat, Call, PageGuard
from client._client import AsyncRevenueCat, RevenueCat
from client._exceptions import (
    AttributeErrorDetail,
    AttributeValidationError,
    AuthenticationError,
    InvalidAttributeError,
    NotFoundError,
    RateLimitError,
    RevenueCatError,
)
from client._keys import CLEVERTAP_ID
from client._stores.base import AttributeStore, StagedAttribute
from client._sync_rules import Batch, SyncerCore, as_error
from client._validation import MAX_CUSTOMER_ID_LENGTH, check_attribute, check_id

__all__ = [
    "BulkProgress",
    "BulkRefusal",
    "BulkReport",
    "IdentityPair",
    "Mismatch",
    "VerifyReport",
    "async_set_clevertap_ids",
    "async_verify_clevertap_ids",
    "set_clevertap_ids",
    "verify_clevertap_ids",
]

T = TypeVar("T")

Pairs = Iterable["tuple[str, str] | IdentityPair"]
"""What the bulk methods take: ``(app_user_id, clevertap_id)`` tuples or :class:`IdentityPair`."""

#: Rate-limit waits one request may sit through before it is left for the next run.
MAX_RATE_LIMIT_WAITS = 20
#: Pairs staged in one store transaction (and so the most a crash can leave to send again).
STAGE_CHUNK = 64
#: Refusals a report keeps (all of them go to ``on_refusal``).
MAX_KEPT_REFUSALS = 1_000
USAGE_HEADER = "RevenueCat-Rate-Limit-Current-Usage"
LIMIT_HEADER = "RevenueCat-Rate-Limit-Current-Limit"


class IdentityPair(NamedTuple):
    """One user's CleverTap ID; ``line`` says where it came from (a file's line number)."""

    app_user_id: str
    clevertap_id: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class BulkRefusal:
    """A user not set: its input line, why, and RevenueCat's per-key reasons if it gave any.

    ``line`` is ``None`` for a user an earlier run staged.  ``pending`` is true when the value
    stays staged and the next run sends it again.
    """

    line: int | None
    app_user_id: str
    reason: str
    errors: tuple[AttributeErrorDetail, ...] = ()
    pending: bool = False


@dataclass(frozen=True, slots=True)
class BulkProgress:
    """Counts so far: pairs read, and what became of them."""

    read: int = 0
    sent: int = 0
    unchanged: int = 0
    refused: int = 0
    failed: int = 0
    resumed: int = 0
    rate_limit_waits: int = 0
    waited_s: float = 0.0

    @property
    def done(self) -> int:
        """Pairs (and resumed users) finished, whatever the outcome."""
        return self.sent + self.unchanged + self.refused + self.failed


@dataclass(frozen=True, slots=True)
class BulkReport:
    """What one bulk run did.

    ``sent`` counts users set on RevenueCat (``resumed`` of them left by an earlier run);
    ``unchanged`` those whose value was already synced; ``refused`` and ``failed`` keep at most
    :data:`MAX_KEPT_REFUSALS` entries each, their totals being in ``progress``.
    """

    progress: BulkProgress
    refused: tuple[BulkRefusal, ...] = ()
    failed: tuple[BulkRefusal, ...] = ()
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.progress.refused == 0 and self.progress.failed == 0


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A user whose ``$clevertapId`` on RevenueCat is not the expected one (``None``: unset)."""

    app_user_id: str
    expected: str
    found: str | None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Users read back: how many, which differ, and which could not be read (with why)."""

    checked: int
    mismatches: tuple[Mismatch, ...] = ()
    unreadable: tuple[BulkRefusal, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.unreadable


# -- the rules: admission, outcomes, counts (shared by the sync and async drivers) ---------------


class BulkJob:
    """One run's rules and counts; the drivers only send and wait."""

    def __init__(
        self,
        client: BaseRevenueCat,
        core: SyncerCore,
        *,
        project_id: str | None,
        dry_run: bool,
        on_progress: Callable[[BulkProgress], None] | None,
        on_refusal: Callable[[BulkRefusal], None] | None,
    ) -> None:
        if project_id is not None:
            project_id = check_id("project_id", project_id)
        self.client = client
        self.core = core
        self.project_id = project_id
        self.dry_run = dry_run
        self._on_progress = on_progress
        self._on_refusal = on_refusal
        self._seen: dict[str, str] = {}  # user -> the id first given, one entry per user
        self._lines: dict[str, int] = {}  # user -> input line, while its POST is in flight
        self._resumed_users: set[str] = set()
        self._refused: list[BulkRefusal] = []
        self._failed: list[BulkRefusal] = []
        self._lock = threading.Lock()  # progress is read from other threads (a bar, a test)
        self.progress = BulkProgress()
        self.gate = RateGate(client)

    # -- input ------------------------------------------------------------------------------

    def admit(self, number: int, item: object) -> IdentityPair | None:
        """Check one input item (``number`` is its 1-based position); refusals are recorded."""
        self._bump(read=1)
        line = number
        try:
            user, clevertap_id = item[0], item[1]  # type: ignore[index]
            line = getattr(item, "line", None) or number
        except (TypeError, IndexError, KeyError):
            self._refuse(line, "", "not an (app_user_id, clevertap_id) pair")
            return None
        shown = user if isinstance(user, str) else ""
        problem = _id_problem(user, clevertap_id, v2=self.project_id is not None)
        if problem is not None:
            self._refuse(line, shown, problem)
            return None
        first = self._seen.setdefault(user, clevertap_id)
        if first != clevertap_id:
            self._refuse(line, user, f"duplicate user with another CleverTap ID ({first!r} first)")
            return None
        return IdentityPair(user, clevertap_id, line)

    def staged(self, pair: IdentityPair, changed: list[str], set_time_ms: int) -> Batch | None:
        """The POST for a staged pair, or None (and counted) when there is nothing to send."""
        if changed:
            staged = StagedAttribute(pair.clevertap_id, set_time_ms)
            return Batch(pair.app_user_id, {CLEVERTAP_ID: staged})
        if pair.app_user_id not in self._resumed_users:
            self._bump(unchanged=1)
        return None

    def resume(self, pending: dict[str, dict[str, StagedAttribute]]) -> list[Batch]:
        """What an earlier run staged and never settled: sent first."""
        batches: list[Batch] = []
        for user, attributes in pending.items():
            self._resumed_users.add(user)
            batches.append(Batch(user, attributes))
        return batches

    # -- sending ----------------------------------------------------------------------------

    def call(self, batch: Batch) -> Call[Any]:
        if self.project_id is None:
            return self.core.call(batch)
        values = {key: staged.value for key, staged in batch.attributes.items()}
        return self.client.set_customer_attributes_call(self.project_id, batch.app_user_id, values)

    def settle(self, outcomes: Sequence[tuple[Batch, RevenueCatError | None]]) -> None:
        """Apply the marking rule to finished POSTs (one store transaction) and count them.

        Not for a 401/403: that user stays pending.  Called on the caller's thread.
        """
        delivered: list[tuple[str, Mapping[str, StagedAttribute]]] = []
        for batch, error in outcomes:
            resumed = batch.app_user_id in self._resumed_users
            line = self._lines.pop(batch.app_user_id, None)
            if isinstance(error, AuthenticationError):
                continue
            resend = self.core._resend(error)
            if not resend:
                delivered.append((batch.app_user_id, batch.attributes))
            if error is None:
                self._bump(sent=1, resumed=int(resumed))
                continue
            reasons: tuple[AttributeErrorDetail, ...] = ()
            if isinstance(error, AttributeValidationError):
                reasons = tuple(error.attribute_errors)
            elif isinstance(error, InvalidAttributeError):
                reasons = tuple(error.errors)
            refusal = BulkRefusal(line, batch.app_user_id, _reason(error), reasons, resend)
            kept = self._failed if resend else self._refused
            if len(kept) < MAX_KEPT_REFUSALS:
                kept.append(refusal)
            self._bump(**{"failed" if resend else "refused": 1})
            if self._on_refusal is not None:
                self._on_refusal(refusal)
        _mark_synced(self.core.store, delivered)

    def stage(self, chunk: Sequence[IdentityPair]) -> list[Batch]:
        """Stage admitted pairs in one transaction; the POSTs the changed ones need."""
        set_time_ms = int(self.core.clock() * 1000)
        rows = [(p.app_user_id, {CLEVERTAP_ID: p.clevertap_id}, set_time_ms) for p in chunk]
        batches: list[Batch] = []
        for pair, changed in zip(chunk, _stage_many(self.core.store, rows), strict=True):
            batch = self.staged(pair, changed, set_time_ms)
            if batch is not None:
                self._lines[pair.app_user_id] = pair.line or 0
                batches.append(batch)
        return batches

    def chunks(self, pairs: Pairs) -> Iterator[list[IdentityPair]]:
        """The admitted pairs, :data:`STAGE_CHUNK` at a time."""
        chunk: list[IdentityPair] = []
        for number, item in enumerate(pairs, 1):
            pair = self.admit(number, item)
            if pair is not None:
                chunk.append(pair)
            if len(chunk) >= STAGE_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    # -- counts -----------------------------------------------------------------------------

    def _refuse(self, line: int, user: str, reason: str) -> None:
        refusal = BulkRefusal(line, user, reason)
        with self._lock:
            if len(self._refused) < MAX_KEPT_REFUSALS:
                self._refused.append(refusal)
        self._bump(refused=1)
        if self._on_refusal is not None:
            self._on_refusal(refusal)

    def _bump(self, **counts: int) -> None:
        with self._lock:
            now = self.progress
            self.progress = BulkProgress(
                read=now.read + counts.get("read", 0),
                sent=now.sent + counts.get("sent", 0),
                unchanged=now.unchanged + counts.get("unchanged", 0),
                refused=now.refused + counts.get("refused", 0),
                failed=now.failed + counts.get("failed", 0),
                resumed=now.resumed + counts.get("resumed", 0),
                rate_limit_waits=self.gate.waits,
                waited_s=round(self.gate.waited_s, 3),
            )

    def tell(self) -> None:
        """Hand the counts to ``on_progress`` (from the caller's thread)."""
        self._bump()
        if self._on_progress is not None:
            self._on_progress(self.progress)

    def report(self) -> BulkReport:
        self._bump()
        return BulkReport(self.progress, tuple(self._refused), tuple(self._failed), self.dry_run)

    @property
    def users(self) -> dict[str, str]:
        """Every admitted user and its id (for verification)."""
        return self._seen


def _stage_many(
    store: AttributeStore, rows: Sequence[tuple[str, Mapping[str, str | None], int]]
) -> list[list[str]]:
    """One transaction where the store offers it (the SQLite store: one fsync, not one a user)."""
    many = getattr(store, "stage_many", None)
    if many is not None:
        return list(many(rows))
    return [store.stage(user, values, set_time_ms) for user, values, set_time_ms in rows]


def _mark_synced(
    store: AttributeStore, sent: Sequence[tuple[str, Mapping[str, StagedAttribute]]]
) -> None:
    if not sent:
        return
    many = getattr(store, "mark_synced_many", None)
    if many is not None:
        many(sent)
        return
    for user, attributes in sent:
        store.mark_synced(user, attributes)


def _id_problem(user: object, clevertap_id: object, *, v2: bool) -> str | None:
    """Why RevenueCat's rules refuse a pair (the client's own checks), or None."""
    try:
        check_id("app_user_id", user, max_length=MAX_CUSTOMER_ID_LENGTH if v2 else None)
    except InvalidAttributeError as exc:
        return exc.message
    if not isinstance(clevertap_id, str) or not clevertap_id.strip():
        # An empty id would delete the attribute; a migration file means to set one.
        return "empty clevertap_id"
    try:
        check_attribute(CLEVERTAP_ID, clevertap_id)
    except InvalidAttributeError as exc:
        return exc.message
    return None


def _reason(error: RevenueCatError) -> str:
    if isinstance(error, NotFoundError):
        return "RevenueCat has no such customer (API v2 does not create customers; v1 does)"
    if isinstance(error, RateLimitError):
        return f"still rate limited after {MAX_RATE_LIMIT_WAITS} waits: {error}"
    return str(error)


# -- the rate limit ------------------------------------------------------------------------


class RateGate:
    """When sending may resume after a 429, and whether RevenueCat says the limit is reached.

    Decisions only: the drivers sleep (with the client's injected sleep) and count.
    """

    def __init__(self, client: BaseRevenueCat) -> None:
        self._clock = client._clock
        self.policy = client._retry
        self.jitter = client._jitter
        self.resume_at = 0.0
        self.at_limit = False
        self.usage: int | None = None
        self.limit: int | None = None
        self.waits = 0
        self.waited_s = 0.0

    def remaining(self) -> float:
        return max(0.0, self.resume_at - self._clock())

    def now(self) -> float:
        return self._clock()

    def pausing(self, seconds: float) -> None:
        """A driver is about to sleep ``seconds`` out."""
        self.waits += 1
        self.waited_s += seconds

    def observe(self, response: httpx.Response) -> None:
        usage, limit = _int_header(response, USAGE_HEADER), _int_header(response, LIMIT_HEADER)
        if usage is not None and limit is not None:
            self.usage, self.limit = usage, limit
            self.at_limit = usage >= limit

    def after_failure(self, exc: RevenueCatError, attempt: Attempt) -> float | None:
        """Seconds to wait before trying again, or None to give up on this request."""
        if not self.policy.should_retry(exc):
            return None
        if isinstance(exc, RateLimitError):
            attempt.rate_limited += 1
            if attempt.rate_limited > MAX_RATE_LIMIT_WAITS:
                return None
            self.at_limit = True
            # Counted from when the request went out, not from now: a 429 read late (after
            # another worker's pause ended) describes a window already over and must not
            # start a second pause.
            delay = self.policy.delay(attempt.rate_limited, exc, self.jitter())
            self.resume_at = max(self.resume_at, attempt.sent_at + delay)
            return 0.0  # the pause is shared: every worker waits in ``remaining``
        attempt.retries += 1
        if attempt.retries > self.policy.max_retries:
            return None
        return self.policy.delay(attempt.retries, exc, self.jitter())


@dataclass(slots=True)
class Attempt:
    """One call's tries so far, and when the last one went out (the client's clock)."""

    rate_limited: int = 0
    retries: int = 0
    sent_at: float = 0.0


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "")
    return int(value) if value.isdigit() else None


# -- the sync driver -----------------------------------------------------------------------


class SyncSender:
    """Sends calls with the shared rate-limit pause and the client's retry policy."""

    def __init__(self, client: RevenueCat, gate: RateGate) -> None:
        self._client = client
        self._gate = gate
        self._pause = threading.Lock()  # one thread sleeps out a pause; the rest find it over
        self._probe = threading.Lock()  # at the limit, one request at a time

    def _wait(self) -> None:
        with self._pause:
            delay = self._gate.remaining()
            if delay > 0:
                self._gate.pausing(delay)
                self._client._sleep(delay)

    def send(self, call: Call[T]) -> T:
        attempt = Attempt()
        while True:
            self._wait()
            try:
                if self._gate.at_limit:
                    with self._probe:
                        self._wait()
                        attempt.sent_at = self._gate.now()
                        response = self._client._attempt(call)
                else:
                    attempt.sent_at = self._gate.now()
                    response = self._client._attempt(call)
            except RevenueCatError as exc:
                delay = self._gate.after_failure(exc, attempt)
                if delay is None:
                    raise
                if delay:
                    self._client._sleep(delay)
                continue
            self._gate.observe(response)
            return call.parse(response)


def set_clevertap_ids(
    client: RevenueCat,
    core: SyncerCore,
    pairs: Pairs,
    *,
    project_id: str | None = None,
    dry_run: bool = False,
    on_progress: Callable[[BulkProgress], None] | None = None,
    on_refusal: Callable[[BulkRefusal], None] | None = None,
) -> BulkReport:
    """The blocking driver behind :meth:`client.AttributeSyncer.set_clevertap_ids`.

    Worker threads only send; staging and settling happen here, a chunk per transaction.
    """
    job = _job(client, core, project_id, dry_run, on_progress, on_refusal)
    if dry_run:
        return _dry_run(job, pairs)
    sender = SyncSender(client, job.gate)
    stop = threading.Event()

    def one(batch: Batch) -> Outcome | None:
        if stop.is_set():
            return None  # never started: stays staged, the next run sends it
        try:
            sender.send(job.call(batch))
        except Exception as exc:
            return batch, as_error(exc)
        return batch, None

    workers = core.max_concurrency
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rc-bulk") as pool:
        running: set[Future[Outcome | None]] = set()
        finished: list[Outcome] = []  # settled a round of ``workers`` at a time

        def settle(done: Iterable[Future[Outcome | None]], *, at_least: int) -> None:
            finished.extend(o for future in done if (o := future.result()) is not None)
            denied = any(isinstance(error, AuthenticationError) for _, error in finished)
            if len(finished) < at_least and not denied:
                return
            outcomes = finished[:]
            finished.clear()
            job.settle(outcomes)
            job.tell()
            for _, error in outcomes:
                if isinstance(error, AuthenticationError):
                    raise error  # a 401 stops the run here

        def reap(limit: int) -> None:
            nonlocal running
            while len(running) > limit:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                settle(done, at_least=workers if limit else 1)
            settle((), at_least=1 if not limit else workers)

        try:
            for batch in job.resume(core.store.unsynced()):
                running.add(pool.submit(one, batch))
                reap(2 * workers)
            for chunk in job.chunks(pairs):
                for batch in job.stage(chunk):
                    running.add(pool.submit(one, batch))
                    reap(2 * workers)
            reap(0)
        except BaseException:
            # Start nothing new; requests in flight finish and are settled.
            stop.set()
            done, _ = wait(running)
            with contextlib.suppress(AuthenticationError):
                settle(done, at_least=1)
            raise
    job.tell()
    return job.report()


Outcome = tuple[Batch, RevenueCatError | None]


def _dry_run(job: BulkJob, pairs: Pairs) -> BulkReport:
    for number, item in enumerate(pairs, 1):
        job.admit(number, item)
        if number % STAGE_CHUNK == 0:
            job.tell()
    job.tell()
    return job.report()


def _job(
    client: BaseRevenueCat,
    core: SyncerCore,
    project_id: str | None,
    dry_run: bool,
    on_progress: Callable[[BulkProgress], None] | None,
    on_refusal: Callable[[BulkRefusal], None] | None,
) -> BulkJob:
    return BulkJob(
        client,
        core,
        project_id=project_id,
        dry_run=dry_run,
        on_progress=on_progress,
        on_refusal=on_refusal,
    )


# -- the async driver ----------------------------------------------------------------------


class AsyncSender:
    """The asyncio twin of :class:`SyncSender`."""

    def __init__(self, client: AsyncRevenueCat, gate: RateGate) -> None:
        self._client = client
        self._gate = gate
        self._pause = asyncio.Lock()
        self._probe = asyncio.Lock()

    async def _wait(self) -> None:
        async with self._pause:
            delay = self._gate.remaining()
            if delay > 0:
                self._gate.pausing(delay)
                await self._client._sleep(delay)

    async def send(self, call: Call[T]) -> T:
        attempt = Attempt()
        while True:
            await self._wait()
            try:
                if self._gate.at_limit:
                    async with self._probe:
                        await self._wait()
                        attempt.sent_at = self._gate.now()
                        response = await self._client._attempt(call)
                else:
                    attempt.sent_at = self._gate.now()
                    response = await self._client._attempt(call)
            except RevenueCatError as exc:
                delay = self._gate.after_failure(exc, attempt)
                if delay is None:
                    raise
                if delay:
                    await self._client._sleep(delay)
                continue
            self._gate.observe(response)
            return call.parse(response)


async def async_set_clevertap_ids(
    client: AsyncRevenueCat,
    core: SyncerCore,
    pairs: Pairs,
    *,
    store_call: Callable[[Callable[[], Any]], Awaitable[Any]],
    project_id: str | None = None,
    dry_run: bool = False,
    on_progress: Callable[[BulkProgress], None] | None = None,
    on_refusal: Callable[[BulkRefusal], None] | None = None,
) -> BulkReport:
    """The asyncio driver behind :meth:`client.AsyncAttributeSyncer.set_clevertap_ids`.

    Cancelled, it cancels the requests in flight: their users stay staged and the next run
    sends them again (a request cancelled after RevenueCat stored it is sent twice; the value
    and its set time are the same, so the second write changes nothing).
    """
    job = _job(client, core, project_id, dry_run, on_progress, on_refusal)
    if dry_run:
        return _dry_run(job, pairs)
    sender = AsyncSender(client, job.gate)
    gate = asyncio.Semaphore(core.max_concurrency)

    async def one(batch: Batch) -> Outcome:
        async with gate:
            try:
                await sender.send(job.call(batch))
            except Exception as exc:
                return batch, as_error(exc)
            return batch, None

    running: set[asyncio.Task[Outcome]] = set()
    finished: list[Outcome] = []  # settled a round of ``max_concurrency`` at a time

    async def reap(limit: int) -> None:
        nonlocal running
        while len(running) > limit:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            finished.extend(task.result() for task in done)
            denied = any(isinstance(error, AuthenticationError) for _, error in finished)
            if len(finished) >= core.max_concurrency or denied:
                await settle()
        if not limit:
            await settle()

    async def settle() -> None:
        outcomes = finished[:]
        finished.clear()
        if not outcomes:
            return
        await store_call(functools.partial(job.settle, outcomes))
        job.tell()
        for _, error in outcomes:
            if isinstance(error, AuthenticationError):
                raise error  # a 401 stops the run here

    def start(batch: Batch) -> None:
        running.add(asyncio.ensure_future(one(batch)))

    try:
        for batch in job.resume(await store_call(core.store.unsynced)):
            start(batch)
            await reap(2 * core.max_concurrency)
        for chunk in job.chunks(pairs):
            for batch in await store_call(functools.partial(job.stage, chunk)):
                start(batch)
                await reap(2 * core.max_concurrency)
        await reap(0)
    except BaseException:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        # Outcomes already in hand are settled, unless this is a cancellation (no awaiting).
        if finished and not isinstance(sys.exc_info()[1], asyncio.CancelledError):
            with contextlib.suppress(AuthenticationError):
                await settle()
        raise
    job.tell()
    return job.report()


# -- verification --------------------------------------------------------------------------


def sample_pairs(
    pairs: Pairs, sample: int | None, *, seed: int | None = None
) -> list[IdentityPair]:
    """Every well-formed pair (``sample=None``), or a uniform sample of ``sample`` of them.

    Reservoir sampling: memory holds the sample only.  Malformed items are skipped (the run
    that set them reported them).
    """
    rng = random.Random(seed)
    chosen: list[IdentityPair] = []
    seen: set[str] = set()
    count = 0
    for number, item in enumerate(pairs, 1):
        try:
            user, clevertap_id = item[0], item[1]
        except (TypeError, IndexError, KeyError):
            continue
        if _id_problem(user, clevertap_id, v2=False) is not None:
            continue
        pair = IdentityPair(user, clevertap_id, getattr(item, "line", None) or number)
        if sample is None:
            if user not in seen:  # "all": each user once
                seen.add(user)
                chosen.append(pair)
            continue
        count += 1
        if len(chosen) < sample:
            chosen.append(pair)
        elif (slot := rng.randrange(count)) < sample:
            chosen[slot] = pair
    return chosen


@dataclass(slots=True)
class _Verification:
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    unreadable: list[BulkRefusal] = field(default_factory=list)

    def record(self, pair: IdentityPair, found: str | None) -> None:
        self.checked += 1
        if found != pair.clevertap_id and len(self.mismatches) < MAX_KEPT_REFUSALS:
            self.mismatches.append(Mismatch(pair.app_user_id, pair.clevertap_id, found, pair.line))

    def failed(self, pair: IdentityPair, error: RevenueCatError) -> None:
        self.checked += 1
        if len(self.unreadable) < MAX_KEPT_REFUSALS:
            self.unreadable.append(BulkRefusal(pair.line, pair.app_user_id, str(error)))

    def report(self) -> VerifyReport:
        return VerifyReport(self.checked, tuple(self.mismatches), tuple(self.unreadable))


def _read_calls(
    client: BaseRevenueCat, project_id: str | None, user: str, page: str | None
) -> Call[Any]:
    if project_id is None:
        return client.get_subscriber_call(user)
    return client.list_customer_attributes_call(project_id, user, page=page)


def _found(project_id: str | None, answer: Any) -> tuple[bool, str | None, str | None]:
    """(found it, its value, the next page) from one read's answer."""
    if project_id is None:
        attribute = answer.attributes.get(CLEVERTAP_ID)
        return True, (attribute.value if attribute is not None else None), None
    items, next_page = answer
    for item in items:
        if item.name == CLEVERTAP_ID:
            return True, item.value, None
    return next_page is None, None, next_page


def verify_clevertap_ids(
    client: RevenueCat,
    pairs: Pairs,
    *,
    max_concurrency: int,
    project_id: str | None = None,
    sample: int | None = None,
    seed: int | None = None,
) -> VerifyReport:
    """Read users back (all, or a sample) and compare their ``$clevertapId``.

    API v1 reads with ``GET /v1/subscribers/{id}``, which needs a secret key to include
    attributes and creates a customer it does not know (RevenueCat's "Get or Create"); API
    v2 lists the customer's attributes and creates nothing.
    """
    chosen = sample_pairs(pairs, sample, seed=seed)
    sender = SyncSender(client, RateGate(client))
    outcome = _Verification()
    lock = threading.Lock()

    def one(pair: IdentityPair) -> None:
        page: str | None = None
        guard = PageGuard()
        try:
            while True:
                answer = sender.send(_read_calls(client, project_id, pair.app_user_id, page))
                done, value, page = _found(project_id, answer)
                if done:
                    break
                assert page is not None
                guard.visit(page)
        except RevenueCatError as exc:
            with lock:
                outcome.failed(pair, exc)
            return
        with lock:
            outcome.record(pair, value)

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="rc-verify") as pool:
        list(pool.map(one, chosen))
    return outcome.report()


async def async_verify_clevertap_ids(
    client: AsyncRevenueCat,
    pairs: Pairs,
    *,
    max_concurrency: int,
    project_id: str | None = None,
    sample: int | None = None,
    seed: int | None = None,
) -> VerifyReport:
    """The asyncio twin of :func:`verify_clevertap_ids`."""
    chosen = sample_pairs(pairs, sample, seed=seed)
    sender = AsyncSender(client, RateGate(client))
    outcome = _Verification()
    gate = asyncio.Semaphore(max_concurrency)

    async def one(pair: IdentityPair) -> None:
        page: str | None = None
        guard = PageGuard()
        async with gate:
            try:
                while True:
                    call = _read_calls(client, project_id, pair.app_user_id, page)
                    done, value, page = _found(project_id, await sender.send(call))
                    if done:
                        break
                    assert page is not None
                    guard.visit(page)
            except RevenueCatError as exc:
                outcome.failed(pair, exc)
                return
        outcome.record(pair, value)

    await asyncio.gather(*(one(pair) for pair in chosen))
    return outcome.report()
