"""Backfill: a customer's history from RevenueCat's Scheduled Data Exports, into CleverTap.

RevenueCat's integrations never send history; its Scheduled Data Export (gzip-compressed,
semicolon-separated CSV, or Parquet; one row per store transaction) is the one complete record.
This package reads those files (every format version, v3 to v7), derives the events a webhook
would have carried, and enqueues them in the forwarder's outbox with ``source="backfill"``,
where the same dispatcher maps and delivers them (marked ``rc_backfill: true`` in evtData).

The Python API (``rc-clevertap backfill`` is a thin shell around it)::

    from integration.backfill import backfill

    report = await backfill(
        outbox,                          # an opened Outbox (e.g. engine.outbox of a started Engine)
        ["exports/2026-03-01/transactions_1740787200.csv.gz"],   # files, folders or globs
        config=config,                   # the forwarder's Config (dry-run routes and revenue)
        now=time.time(),                 # expirations only before now; enqueue time
        since=None,                      # epoch seconds: only events at or after since ...
        until=None,                      # ... and before until (event time)
        dry_run=False,                   # True: derive and count, write nothing
        on_progress=None,                # Callable[[BackfillProgress], None], every few rows
    )
    report.enqueued          # new events now durable in the outbox
    report.already_stored    # events whose deterministic id the outbox already held (re-import)
    report.skipped_live      # events a live webhook already stored (same transaction and type)
    report.malformed         # rows skipped, each problem with its file and line (first 100 kept)
    report.by_type           # events per webhook type, and by_environment; a dry run
                             # also maps them: by_route, revenue_by_currency

    # Delivery: a started Engine on the same outbox delivers the rows; wait with
    await engine.wait_idle()
    # or, as ``rc-clevertap backfill --deliver`` does, in one call that starts its own engine:
    outcome = await backfill_and_deliver(config, paths, since=None, until=None)

Errors (all :class:`BackfillError`, an ``IntegrationError``): ``NotAnExport`` (a file is not a
RevenueCat transactions export: refused before anything is enqueued, naming what is missing),
``TruncatedExport`` (a gzip stream ends early: what came before is enqueued, a re-run resumes).

Lower level, for tests and the RevenueCat mock's exports: ``read_export(path)`` yields parsed
rows (:class:`ExportRow`) and problems (:class:`RowProblem`) in file order;
``derive(row.values, expired=...)`` returns the derived events of one row (``expired`` adds its
EXPIRATION; :func:`backfill` decides it from the subscription's periods of access).  What is derived
from what: :mod:`integration.backfill.derive`.
"""

from __future__ import annotations

from integration.backfill.deliver import DeliveryProgress, DeliveryReport, backfill_and_deliver
from integration.backfill.derive import KINDS, DerivedEvent, derive, event_id
from integration.backfill.reader import (
    REQUIRED_COLUMNS,
    BackfillError,
    ExportRow,
    NotAnExport,
    RowProblem,
    TruncatedExport,
    check_export,
    read_export,
)
from integration.backfill.run import BackfillProgress, BackfillReport, backfill, expand

__all__ = [
    "KINDS",
    "REQUIRED_COLUMNS",
    "BackfillError",
    "BackfillProgress",
    "BackfillReport",
    "DeliveryProgress",
    "DeliveryReport",
    "DerivedEvent",
    "ExportRow",
    "NotAnExport",
    "RowProblem",
    "TruncatedExport",
    "backfill",
    "backfill_and_deliver",
    "check_export",
    "derive",
    "event_id",
    "expand",
    "read_export",
]
