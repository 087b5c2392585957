"""One backfill: export files in, derived events durable in the outbox, a report out.

The steps of :func:`backfill`::

    paths --expand--> files --check every header--> (any not an export: refused, nothing written)
      |
      v
    pass 1, file by file, row by row: derive purchase, cancellation, refund and billing events;
            note each subscription's periods of continuous access (rows whose access
            overlaps or touches merge into one period) and each period's latest row
      |
      v
    pass 2, only where needed: re-read the latest row of every period that ended before
            ``now`` and derive its EXPIRATION
      |
      v
    every BATCH events: drop those outside [since, until), those the outbox holds already
    (same id: a re-import or a resumed run), and those a live webhook already stored (same
    transaction id and type); enqueue the rest with source="backfill", concurrently, so the
    outbox's group commit writes each batch in a few transactions

Memory: one batch of events, plus one small entry per subscription and period (its bounds and
its latest row's start time and position), whatever the number of rows.

EXPIRATION is derived per period, following "the last row ... whose effective_end_time is in the
past and was not renewed" (revenuecat-exports.md, "Deriving webhook-equivalent events"): the
latest row of each period but the last was not renewed (the next row of its subscription starts
after its access ended: a resubscription after an EXPIRATION), and the last period's latest row
expired when its access ended before ``now``.  A renewal starts when the period it renews ends
(or, in a grace period, before), so only a real lapse separates two periods; a row's access
ends at ``effective_end_time``, else ``end_time``.  A full
export gets it right; an incremental file given alone may hold an old period of a subscription
(a refund detected later) whose renewals came in an earlier file, and that period would be
taken for the last: backfill incremental files together with the export they follow, or with
every incremental file since it.  (UNFINISHED: checking the outbox for a later period of the
subscription needs its original transaction id stored with each row.)

Resuming needs no checkpoint: the event ids are deterministic, so a second run skips what the
first stored, from the outbox itself.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from integration.backfill.derive import DerivedEvent, derive, ending
from integration.backfill.reader import (
    BackfillError,
    ExportRow,
    NotAnExport,
    ReadPosition,
    RowProblem,
    TruncatedExport,
    check_export,
    read_export,
)
from integration.config import DEFAULT_ROUTE, Config
from integration.mapping import Skipped, map_event
from integration.outbox.base import Outbox
from integration.premap import fingerprint, from_stored, stored_form
from integration.webhook import InvalidWebhook, parse_webhook

__all__ = ["BATCH", "MAX_PROBLEMS", "BackfillProgress", "BackfillReport", "backfill", "expand"]

BATCH = 500  # events checked and enqueued together (the SQLite group commit's batch size)
MAX_PROBLEMS = 100  # malformed rows kept in the report with their file and line; all are counted
_SUFFIXES = (".csv", ".csv.gz", ".gz", ".parquet")
_Batch = tuple[list["DerivedEvent"], int]


@dataclass(slots=True)
class BackfillReport:
    """What one backfill read, derived, skipped and enqueued (or, dry, would enqueue).

    ``by_type`` and ``by_environment`` describe the events enqueued, or in a dry run the
    events that would be.  Each of those is also mapped as delivery would map it now:
    ``by_route`` (the CleverTap account id, or ``"skipped: <code>"`` for events the mapping
    will skip) and ``revenue_by_currency`` (the ``amount`` CleverTap will receive, with the
    configured revenue mode).  In a run that writes, each event is mapped once, for the
    mapped form stored with it (as the receiver stores one, integration/premap.py), and the
    report reads that form; events already stored are not mapped.
    """

    dry_run: bool
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_malformed: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    events_derived: int = 0
    outside_window: int = 0
    already_stored: int = 0
    skipped_live: int = 0
    enqueued: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_environment: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    revenue_by_currency: dict[str, Decimal] = field(default_factory=dict)

    @property
    def malformed(self) -> list[RowProblem]:
        """The first :data:`MAX_PROBLEMS` malformed rows (``rows_malformed`` counts them all)."""
        return self.problems

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``rc-clevertap backfill --json``)."""
        return {
            "dry_run": self.dry_run,
            "files": list(self.files),
            "rows_read": self.rows_read,
            "rows_malformed": self.rows_malformed,
            "malformed": [
                {"file": p.path, "line": p.line, "reason": p.reason} for p in self.problems
            ],
            "events_derived": self.events_derived,
            "outside_window": self.outside_window,
            "already_stored": self.already_stored,
            "skipped_live": self.skipped_live,
            "enqueued": self.enqueued,
            "by_type": dict(sorted(self.by_type.items())),
            "by_environment": dict(sorted(self.by_environment.items())),
            "by_route": dict(sorted(self.by_route.items())),
            "revenue_by_currency": {
                currency: str(amount)
                for currency, amount in sorted(self.revenue_by_currency.items())
            },
        }


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """How far a backfill has got: ``bytes_done`` of ``bytes_total`` (files as stored, both
    passes counted) give a rate and an ETA."""

    rows_read: int
    events_derived: int
    enqueued: int
    bytes_done: int
    bytes_total: int


def expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named, found in folders (recursively, by suffix) or matched by globs, in order and
    each once; :class:`NotAnExport` for a path that names or matches nothing."""
    found: dict[Path, None] = {}
    for item in paths:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES))
            if not files:
                raise NotAnExport(f"{text}: no .csv, .csv.gz or .parquet file in this folder")
        elif path.exists():
            files = [path]
        elif glob.has_magic(text):
            files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not files:
                raise NotAnExport(f"{text}: matches no file")
        else:
            raise NotAnExport(f"{text}: no such file")
        found.update(dict.fromkeys(files))
    return list(found)


@dataclass(slots=True)
class _Period:
    """A run of one subscription's rows with continuous access, ``start`` to ``end`` (ms), and
    the latest of them (by start time, then ``updated_at``): its position and its own end."""

    start: int
    end: int
    last_start: int
    last_updated: int
    index: int  # the file the latest row is in
    line: int
    last_end: int | None  # ``None``: a non-renewing purchase, which never expires

    def merged(self, other: _Period) -> _Period:
        ours, theirs = (self.last_start, self.last_updated), (other.last_start, other.last_updated)
        latest = self if ours >= theirs else other
        return _Period(
            min(self.start, other.start), max(self.end, other.end), latest.last_start,
            latest.last_updated, latest.index, latest.line, latest.last_end,
        )  # fmt: skip


class _Run:
    """The state of one backfill (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox | None,
        config: Config,
        report: BackfillReport,
        *,
        route: str,
        now: float,
        since: float | None,
        until: float | None,
        clock: Callable[[], float],
        on_progress: Callable[[BackfillProgress], None] | None,
        bytes_total: int,
    ) -> None:
        self.outbox = outbox
        self.config = config  # the route's: its account and revenue rules in the report
        self.route = route
        # Stored with each event's mapped form, as the receiver does (integration/premap.py):
        # the dispatcher then delivers the form instead of mapping the body again.
        self.fingerprint = fingerprint(config)
        self.report = report
        self.now_ms = int(now * 1000)
        self.since_ms = None if since is None else int(since * 1000)
        self.until_ms = None if until is None else int(until * 1000)
        self.clock = clock
        self.on_progress = on_progress
        self.bytes_total = bytes_total
        self.batch: list[DerivedEvent] = []
        # Each subscription's periods of continuous access, by start (see the module docstring).
        self.periods: dict[tuple[str, str], list[_Period]] = {}

    # -- reading and deriving, on a worker thread ------------------------------------------

    def batches(self, files: Sequence[Path], sizes: Sequence[int]) -> Iterator[_Batch]:
        """Batches of derived events in the window, and the bytes read when each was full:
        pass 1 over every file, then pass 2 for expirations.  Runs on a worker thread, one
        batch a call, so that the event loop stays free while rows are parsed."""
        before = 0  # bytes of the files already read, this pass and the first
        for index, path in enumerate(files):
            position = ReadPosition()
            try:
                for item in read_export(path, position=position):
                    if isinstance(item, RowProblem):
                        self._problem(item)
                        continue
                    self.report.rows_read += 1
                    self._note_latest(index, item)
                    self._add(derive(item.values))
                    if len(self.batch) >= BATCH:
                        yield self._take(before + position.done)
            except TruncatedExport:
                yield self._take(before + position.done)  # what came before: made durable
                raise
            before += sizes[index]
            yield self._take(before)
        wanted = self._ended_latest()
        for index, path in enumerate(files):
            lines = wanted.get(index)
            if lines:
                position = ReadPosition()
                for item in read_export(path, position=position, only_lines=lines):
                    if isinstance(item, ExportRow):
                        events = derive(item.values, expired=True)
                        self._add([e for e in events if e.kind == "expiration"])
                        if len(self.batch) >= BATCH:
                            yield self._take(before + position.done)
            before += sizes[index]
            yield self._take(before)

    def _take(self, bytes_done: int) -> _Batch:
        batch, self.batch = self.batch, []
        return batch, bytes_done

    def _problem(self, problem: RowProblem) -> None:
        self.report.rows_malformed += 1
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(problem)

    def _note_latest(self, index: int, row: ExportRow) -> None:
        """Merge the row's access into its subscription's periods (rows come in any order)."""
        values = row.values
        key = (str(values["store"]).upper(), str(values["original_store_transaction_id"]))
        start = int(values["start_time"])
        end = ending(values)
        # Play may end an invalid transaction before it starts: its access is then empty.
        bound = start if end is None else max(start, end)
        updated = int(values.get("updated_at") or 0)
        new = _Period(start, bound, start, updated, index, row.line, end)
        periods = self.periods.setdefault(key, [])
        kept: list[_Period] = []
        for period in periods:
            if period.start <= new.end and period.end >= new.start:  # overlap or touch
                new = new.merged(period)
            else:
                kept.append(period)
        kept.append(new)
        kept.sort(key=lambda p: p.start)
        self.periods[key] = kept

    def _ended_latest(self) -> dict[int, set[int]]:
        """The lines, per file index, of the latest rows of periods that have ended: every
        period but a subscription's last (a lapse came after it), and the last when its latest
        row's access ended before ``now``."""
        wanted: dict[int, set[int]] = {}
        for periods in self.periods.values():
            for period in periods:
                if period.last_end is not None and period.last_end < self.now_ms:
                    wanted.setdefault(period.index, set()).add(period.line)
        self.periods.clear()
        return wanted

    # -- batches -----------------------------------------------------------------------------

    def _add(self, events: list[DerivedEvent]) -> None:
        report = self.report
        for event in events:
            report.events_derived += 1
            at = event.timestamp_ms
            if (self.since_ms is not None and at < self.since_ms) or (
                self.until_ms is not None and at >= self.until_ms
            ):
                report.outside_window += 1
                continue
            self.batch.append(event)

    async def flush(self, batch: list[DerivedEvent], bytes_done: int) -> None:
        if batch:
            await self._send(batch)
        if self.on_progress is not None:
            report = self.report
            self.on_progress(
                BackfillProgress(
                    report.rows_read, report.events_derived, report.enqueued, bytes_done,
                    self.bytes_total,
                )
            )  # fmt: skip

    async def _send(self, batch: list[DerivedEvent]) -> None:
        report = self.report
        outbox = self.outbox
        unique: dict[str, DerivedEvent] = {}
        for event in batch:  # an incremental file repeats rows: the first one counts
            if event.event_id in unique:
                report.already_stored += 1
            else:
                unique[event.event_id] = event
        events = list(unique.values())
        if outbox is not None:
            stored = await outbox.stored_events([e.event_id for e in events])
            report.already_stored += sum(e.event_id in stored for e in events)
            events = [e for e in events if e.event_id not in stored]
            live = await outbox.stored_transaction_events(
                [(e.transaction_id, e.event_type) for e in events], source="webhook"
            )
            report.skipped_live += sum((e.transaction_id, e.event_type) in live for e in events)
            events = [e for e in events if (e.transaction_id, e.event_type) not in live]
        forms: dict[str, bytes | None] = {}
        if not report.dry_run and outbox is not None and events:
            now = self.clock()
            prepared = [self._stored(e) for e in events]
            results = await asyncio.gather(
                *(
                    outbox.enqueue(
                        e.event_id, e.environment, body, now=now, source="backfill",
                        app_user_id=e.app_user_id, event_type=e.event_type,
                        transaction_id=e.transaction_id, route=self.route, mapped=form,
                        mapped_fp=None if form is None else self.fingerprint,
                    )
                    for e, body, form in prepared
                )
            )  # fmt: skip
            # Another run (or the same file twice in one call) may have stored some meanwhile.
            report.already_stored += results.count(False)
            kept = [item for item, new in zip(prepared, results, strict=True) if new]
            events = [e for e, _, _ in kept]
            forms = {e.event_id: form for e, _, form in kept}
            report.enqueued += len(events)
        for event in events:
            self._describe(event, forms.get(event.event_id))

    def _stored(self, event: DerivedEvent) -> tuple[DerivedEvent, bytes, bytes | None]:
        """The event, its body, and its mapped form made from that body as the receiver
        would make it (from the body as read back, so the form is the body's mapping)."""
        body = event.body()
        try:
            envelope = parse_webhook(body)
        except InvalidWebhook:  # stored all the same; delivery dead-letters it with the reason
            return event, body, None
        return event, body, stored_form(envelope.event, self.config, fast=envelope.fast)

    def _describe(self, event: DerivedEvent, form: bytes | None = None) -> None:
        """Count the event in the report, as mapped now (from its stored form, when it has
        one: the same records, mapped once)."""
        report = self.report
        report.by_type[event.event_type] += 1
        report.by_environment[event.environment] += 1
        mapped = map_event(event.event, self.config) if form is None else from_stored(form).result
        if isinstance(mapped, Skipped):
            report.by_route[f"skipped: {mapped.code}"] += 1
            return
        account = self.config.clevertap.account_for(mapped.environment)
        report.by_route[account.account_id if account is not None else "?"] += 1
        data = mapped.records[0]["evtData"]
        amount, currency = data.get("amount"), data.get("currency")
        if isinstance(amount, int | float) and amount and isinstance(currency, str):
            total = report.revenue_by_currency.get(currency, Decimal(0))
            report.revenue_by_currency[currency] = total + Decimal(str(amount))


async def backfill(
    outbox: Outbox | None,
    paths: Sequence[str | os.PathLike[str]],
    *,
    config: Config,
    now: float | None = None,
    since: float | None = None,
    until: float | None = None,
    dry_run: bool = False,
    route: str | None = None,
    clock: Callable[[], float] = time.time,
    on_progress: Callable[[BackfillProgress], None] | None = None,
) -> BackfillReport:
    """Derive the events of RevenueCat exports and enqueue the new ones; see the module
    docstring for the steps and :class:`BackfillReport` for the answer.

    Parameters:
        outbox: an opened outbox; ``None`` only for a dry run with no outbox yet (nothing is
            then known to be stored already).
        paths: files, folders or globs (``.csv``, ``.csv.gz``, ``.parquet``).
        config: the forwarder's configuration (routes and revenue in the report).
        now: epoch seconds; a subscription whose access ended before it gets its EXPIRATION
            (``clock()`` when not given).
        since, until: only events at or after ``since`` and before ``until`` (event time).
        dry_run: derive, check and count, but write nothing.
        route: the ``[[routes]]`` name the events are stored on, and delivered by (an export
            carries no ``app_id`` to choose one by); ``default`` when not given, which must
            then be configured.
        clock: epoch seconds for each batch's enqueue time.
        on_progress: called after every batch with a :class:`BackfillProgress`.

    Raises :class:`NotAnExport` before anything is enqueued when a path names no export, and
    :class:`TruncatedExport` (the batches before it enqueued) for a compressed file that ends
    early.  Interrupted (cancelled), it leaves what it enqueued durable: running it again goes
    on from there.
    """
    if outbox is None and not dry_run:
        raise BackfillError("a backfill that writes needs an outbox")
    if since is not None and until is not None and since >= until:
        raise BackfillError("--since must be before --until")
    route, route_config = _route(config, route)
    files = expand(paths)
    for path in files:
        check_export(path)  # every file refused or accepted before anything is written
    report = BackfillReport(dry_run=dry_run, files=[str(p) for p in files])
    sizes = [p.stat().st_size for p in files]
    run = _Run(
        outbox, route_config, report, route=route, now=clock() if now is None else now,
        since=since, until=until,
        clock=clock, on_progress=on_progress, bytes_total=2 * sum(sizes),
    )  # fmt: skip
    batches = run.batches(files, sizes)
    while (item := await asyncio.to_thread(next, batches, None)) is not None:
        await run.flush(*item)
    return report


def _route(config: Config, name: str | None) -> tuple[str, Config]:
    """The route a backfill stores its events on, and that route's configuration; refused
    (:class:`BackfillError`, before anything is read) when the configuration lacks it, since
    no lane would ever deliver its rows."""
    names = [DEFAULT_ROUTE] if config.default_route else []
    names += [entry.name for entry in config.routes]
    if name is None and not config.default_route:
        raise BackfillError(
            "the configuration has no default route ([clevertap] names no account): "
            f"pass --route, one of: {', '.join(names)}"
        )
    if name is None or (name == DEFAULT_ROUTE and config.default_route):
        return DEFAULT_ROUTE, config
    for entry in config.routes:
        if entry.name == name:
            return name, entry.config
    raise BackfillError(f"--route: unknown route {name!r}; known: {', '.join(names)}")
