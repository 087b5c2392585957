"""Logging for the applications: one line per record, with its time, level and logger.

The engine's modules only call ``logging.getLogger(__name__)``; the applications decide where
the lines go and how they look, once, with :func:`setup_logging`::

    setup_logging(level="info", fmt="json")      # rc-clevertap serve --log-format json

``text``::

    2026-12-01T21:40:00.123Z WARNING integration.receiver: webhook refused (unauthorized) ...

``json``, one object per line (https://jsonlines.org/), with the fields a log pipeline filters
on when the record carries them (``extra={"event_id": ...}``)::

    {"time": "2026-12-01T21:40:00.123Z", "level": "WARNING", "logger": "integration.receiver",
     "message": "...", "reason": "unauthorized", "status": 401}

Only the fields in :data:`FIELDS` are copied from a record, so a careless ``extra`` cannot put
an event body or a secret into the log; messages themselves never hold either (the engine logs
event ids, account ids and reason codes, never bodies, passcodes or authorization values).
uvicorn's loggers (``uvicorn``, ``uvicorn.error``, ``uvicorn.access``) propagate to the root
logger configured here when uvicorn is given ``log_config=None``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

__all__ = ["FIELDS", "FORMATS", "LEVELS", "JsonFormatter", "TextFormatter", "setup_logging"]

#: ``--log-level`` choices, as uvicorn names them.
LEVELS = ("critical", "error", "warning", "info", "debug")
#: ``--log-format`` choices.
FORMATS = ("text", "json")
#: Record attributes (set with ``extra=``) a JSON line carries besides time, level, logger, message.
FIELDS = ("event_id", "account", "environment", "outcome", "reason", "status", "count", "port")

_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>``, with a traceback below when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; a traceback goes in ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


def setup_logging(*, level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every record at ``level`` or above to ``stream`` (stderr) in ``fmt``.

    Replaces the root logger's handlers (a second call reconfigures rather than doubling every
    line) and hands uvicorn's loggers to the root.  Raises ``ValueError`` for an unknown level
    or format (the CLI's argparse choices keep users from seeing it).
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _UVICORN:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
