"""What one upload's verdict does to the events it carried, as data.

:func:`plan_upload` is the executable form of the table in :mod:`integration.dispatcher`'s
docstring: from the verdict (an :class:`~integration.uploader.UploadResult`), the events of the
upload and which event each record came from, the time, the settings, the account's pause and a
source of jitter, it returns a :class:`Plan` that the dispatcher carries out against the
outbox.  A 522 (the event name's property limit) for a record that has more than its core
keys is not a dead letter: the plan names the record in ``trim``, to be sent again with its
core keys only (integration/budget.py).  :func:`plan_retry` is the backoff half alone, for a
delivery that raised.  Nothing here does I/O, awaits, logs or reads a clock;
``tests/integration/test_policy.py`` checks the table row by row.

Example::

    plan = plan_upload(result, events, owner, now=now, settings=config.dispatcher,
                       pause=Pause(until=0.0, next_s=60.0), random=random.random)
    plan.delivered  # row ids to settle as delivered; plan.dead, plan.release, plan.split, ...
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from integration.config import DispatcherConfig
from integration.outbox.base import OutboxEvent
from integration.uploader import RecordFailure, UploadResult

__all__ = [
    "MIN_ATTEMPTS",
    "PROPERTIES_LIMIT_CODE",
    "LimitChange",
    "Outcome",
    "Pause",
    "Plan",
    "Release",
    "plan_retry",
    "plan_upload",
]

#: Tries an event always gets, however old it is, before the maximum age can dead-letter it.
MIN_ATTEMPTS = 3

#: CleverTap's per-record code for "Event properties limit exceeded" (clevertap.md §3.1): the
#: event name holds as many distinct properties as the account allows.
PROPERTIES_LIMIT_CODE = 522

Outcome = Literal["delivered", "partial", "retry", "dead", "paused"]
LimitChange = Literal["grow", "halve", "keep"]


@dataclass(frozen=True, slots=True)
class Pause:
    """An account's credential pause: no uploads before ``until``; the next pause lasts
    ``next_s``."""

    until: float
    next_s: float


@dataclass(frozen=True, slots=True)
class Release:
    """Rows handed back as pending: one ``Outbox.release`` per ``(retry_at, row_ids)`` of
    ``due``, in order; ``counted`` says whether each row's ``attempts`` goes up."""

    error: str
    due: tuple[tuple[float, tuple[int, ...]], ...]
    counted: bool

    @property
    def retried(self) -> int:
        """Rows retried with backoff (``events_retried_total``); a pause retries none."""
        return sum(len(row_ids) for _, row_ids in self.due) if self.counted else 0


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the events of one upload.

    ``delivered`` row ids and ``dead`` ``(event, reason)`` pairs are settled with the upload's
    ledger entry; ``release`` hands rows back; ``split`` sends the chunk again in halves (its
    rows stay leased meanwhile); ``limit`` is the account's AIMD step (``"grow"`` also ends
    the doubling of its pause); ``pause`` is the account's new pause when this verdict starts
    one; ``outcome`` labels the upload in the ledger and in ``uploads_total``.  ``trim`` are
    the indices (into the upload's records) of records refused with a 522 to send again with
    their core keys only; their events are neither delivered nor dead until that upload says.
    """

    outcome: Outcome
    delivered: tuple[int, ...] = ()
    dead: tuple[tuple[OutboxEvent, str], ...] = ()
    release: Release | None = None
    split: bool = False
    limit: LimitChange = "keep"
    pause: Pause | None = None
    trim: tuple[int, ...] = ()


def plan_upload(
    result: UploadResult,
    events: Sequence[OutboxEvent],
    owner: Sequence[int],
    *,
    now: float,
    settings: DispatcherConfig,
    pause: Pause,
    random: Callable[[], float],
    trimmable: Collection[int] = (),
) -> Plan:
    """The plan for one upload's verdict.

    ``owner[i]`` is the index in ``events`` of the event record ``i`` came from; ``pause`` is
    the account's current pause; ``random`` returns floats in [0, 1) and is called once per
    distinct attempts count among the events retried; ``trimmable`` are the indices of the
    records that have keys beyond their core keys to give up after a 522.
    """
    if result.kind == "ok":
        return _plan_ok(result, events, owner, now, settings, random, trimmable)
    if result.kind in ("unauthorized", "misdirected"):
        # Refused credentials, or a wrong region or base URL: no record is at fault, and no
        # record would get through; wait for the operator without burning attempts.
        return _plan_pause(result, events, now, settings, pause)
    if result.kind == "rejected" and len(events) > 1:
        # CleverTap refused the request as a whole (400, 413, ...): one record or the size may
        # be at fault.  Each half on its own isolates a bad event and lets the others through.
        return Plan("retry", split=True)
    plan = plan_retry(events, result.summary, now=now, settings=settings, random=random)
    return replace(plan, limit="halve") if result.kind == "rate-limited" else plan


def plan_retry(
    events: Sequence[OutboxEvent],
    error: str,
    *,
    now: float,
    settings: DispatcherConfig,
    random: Callable[[], float],
) -> Plan:
    """Count a failed try for each of ``events``: backoff, or dead past the maximum age."""
    dead, release = _backoff(events, error, now, settings, random)
    return Plan("dead" if dead and release is None else "retry", dead=dead, release=release)


def _backoff(
    events: Sequence[OutboxEvent],
    error: str,
    now: float,
    settings: DispatcherConfig,
    random: Callable[[], float],
) -> tuple[tuple[tuple[OutboxEvent, str], ...], Release | None]:
    dead: list[tuple[OutboxEvent, str]] = []
    by_due: dict[float, list[int]] = {}
    jitter: dict[int, float] = {}
    for event in events:
        attempts = event.attempts + 1
        if now - event.queued_at >= settings.max_age_s and attempts >= MIN_ATTEMPTS:
            dead.append((event, f"max age exceeded after {attempts} attempts: {error}"))
            continue
        if attempts not in jitter:
            # One draw per attempts count: rows that failed together stay due together.
            jitter[attempts] = 0.5 + random() / 2
        delay = min(settings.backoff_max_s, settings.backoff_initial_s * 2 ** (attempts - 1))
        by_due.setdefault(now + delay * jitter[attempts], []).append(event.row_id)
    if not by_due:
        return tuple(dead), None
    due = tuple((retry_at, tuple(row_ids)) for retry_at, row_ids in by_due.items())
    return tuple(dead), Release(error, due, counted=True)


def _plan_pause(
    result: UploadResult,
    events: Sequence[OutboxEvent],
    now: float,
    settings: DispatcherConfig,
    pause: Pause,
) -> Plan:
    started = None
    if pause.until <= now:  # uploads in flight together pause the account once
        started = Pause(now + pause.next_s, min(pause.next_s * 2, settings.auth_pause_max_s))
    until = started.until if started is not None else pause.until
    rows = tuple([event.row_id for event in events])
    release = Release(f"paused: {result.summary}", ((until, rows),), counted=False)
    return Plan("paused", release=release, pause=started)


def _plan_ok(
    result: UploadResult,
    events: Sequence[OutboxEvent],
    owner: Sequence[int],
    now: float,
    settings: DispatcherConfig,
    random: Callable[[], float],
    trimmable: Collection[int],
) -> Plan:
    """Split a 200 record by record: delivered, dead (permanent code), retried (555) or sent
    again with its core keys only (522, when it has more)."""
    failures = result.failures
    if not failures:
        return Plan("delivered", tuple([event.row_id for event in events]), limit="grow")
    if any(_event_of(f, owner) is None for f in failures):
        if len(failures) == len(owner) and len({f.code for f in failures}) == 1:
            # Every record failed with one code: which is which does not matter.
            failures = tuple(replace(f, index=i) for i, f in enumerate(failures))
        elif len(events) > 1:
            # Which record failed is unknown.  Each half on its own isolates it in about
            # log2(events) rounds, and accepted records are sent again only meanwhile.
            return Plan("retry", split=True, limit="grow")
        # A lone event owns every record of the upload: its failures are its own.
    permanent: dict[int, str] = {}
    retryable: dict[int, str] = {}
    trims: dict[int, list[int]] = {}  # event -> its records to send again with core keys
    for failure in failures:
        event = _event_of(failure, owner)
        index = failure.index
        if failure.code == PROPERTIES_LIMIT_CODE and event is not None and index in trimmable:
            assert index is not None  # _event_of found its event
            trims.setdefault(event, []).append(index)
            continue
        by_kind = retryable if failure.retryable else permanent
        by_kind.setdefault(0 if event is None else event, _reason(failure))
    dead = tuple((events[index], reason) for index, reason in permanent.items())
    retry = [events[i] for i in sorted(retryable) if i not in permanent]
    release = None
    if retry:
        aged, release = _backoff(retry, next(iter(retryable.values())), now, settings, random)
        dead += aged
    delivered = tuple(
        [
            e.row_id
            for i, e in enumerate(events)
            if i not in permanent and i not in retryable and i not in trims
        ]
    )
    # An event that also failed otherwise is dead or retried whole (mapped again, within the
    # budget that the 522 taught), not trimmed.
    trim = tuple(
        sorted(
            index
            for event, indices in trims.items()
            if event not in permanent and event not in retryable
            for index in indices
        )
    )
    outcome: Outcome = "partial"
    if not delivered and not retry and not trim:
        outcome = "dead"
    elif not delivered and not permanent:
        outcome = "retry"
    return Plan(outcome, delivered, dead, release, limit="grow", trim=trim)


def _event_of(failure: RecordFailure, owner: Sequence[int]) -> int | None:
    """The event the failed record came from; None when the answer did not tie it to one."""
    index = failure.index
    return owner[index] if index is not None and 0 <= index < len(owner) else None


def _reason(failure: RecordFailure) -> str:
    """The dead letter's (or the retry's) reason: CleverTap's code and message, and what was
    ambiguous when the answer did not say which record it was."""
    reason = f"clevertap {failure.code}: {failure.error}"
    if failure.ambiguity:
        reason += f" (record not identified: {failure.ambiguity})"
    return reason
