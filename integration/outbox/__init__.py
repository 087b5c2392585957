"""Durable outboxes: every accepted webhook, on disk, until delivered, skipped or dead.

:func:`open_outbox` picks the backend from the URL scheme::

    sqlite:///relative/path.db      SQLiteOutbox (the default; one process)
    sqlite:////absolute/path.db
    postgresql://user@host/db       PostgresOutbox (several instances; needs the
                                    ``postgres`` extra: psycopg 3 with its pool)

The contract every backend keeps, and the life of a row, are in :mod:`integration.outbox.base`.
"""

from __future__ import annotations

from typing import Any

from integration._exceptions import OutboxURLError
from integration.outbox.base import (
    DeadLetter,
    DeliveryAttempt,
    Lease,
    Outbox,
    OutboxEvent,
    OutboxStats,
    QuarantinedBody,
    Requeue,
    RowState,
)
from integration.outbox.sqlite import SQLiteOutbox, SQLiteOutboxError

__all__ = [
    "DeadLetter",
    "DeliveryAttempt",
    "Lease",
    "Outbox",
    "OutboxEvent",
    "OutboxStats",
    "OutboxURLError",
    "QuarantinedBody",
    "Requeue",
    "RowState",
    "SQLiteOutbox",
    "SQLiteOutboxError",
    "open_outbox",
    "sqlite_path",
]


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:///...`` URL names: ``sqlite:///a.db`` is ``a.db`` (relative),
    ``sqlite:////var/lib/a.db`` is ``/var/lib/a.db`` (absolute), as in SQLAlchemy."""
    if not url.startswith("sqlite:///"):
        raise OutboxURLError("a SQLite outbox URL must start with sqlite:///")
    path = url.removeprefix("sqlite:///")
    if not path or path.endswith("/") or "?" in path:
        raise OutboxURLError("a SQLite outbox URL must name a file: sqlite:///path/to/file.db")
    return path


def open_outbox(url: str, **options: Any) -> Outbox:
    """An outbox for ``url``, not yet opened (call ``await outbox.open()``).

    ``options`` go to the backend's constructor (e.g. ``quarantine_cap=``; PostgreSQL also takes
    ``schema=``, ``min_size=``, ``max_size=``).  Errors never echo the URL, which may hold a
    password.
    """
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        return SQLiteOutbox(sqlite_path(url), **options)
    if scheme in ("postgresql", "postgres"):
        try:
            from integration.outbox.postgres import PostgresOutbox
        except ImportError as exc:
            raise OutboxURLError(
                "a postgresql:// outbox needs psycopg 3: pip install 'rc-clevertap[postgres]'"
            ) from exc
        return PostgresOutbox(url, **options)
    raise OutboxURLError(
        f"unknown outbox URL scheme {scheme!r}: use sqlite:///file.db or postgresql://..."
    )
