"""Reading a mapping of app user ids to CleverTap IDs from CSV or JSON lines.

```python
from client import read_identities

with open("users.csv", newline="") as f:
    for pair in read_identities(f, on_problem=print):
        ...                      # IdentityPair(app_user_id, clevertap_id, line)
```

* CSV: a header row naming the columns (any order, others ignored), then one user a row.
* JSON lines: one object a line, e.g. ``{"app_user_id": "u1", "clevertap_id": "ct-1"}``;
  blank lines are skipped.
* Missing columns are refused before any row is read: :class:`IdentityFileError` names them
  (for JSON lines, the first object decides).  A row that cannot be read (not JSON, not an
  object, a missing or non-string field) goes to ``on_problem(line, reason)`` and is
  skipped; empty ids are left to the bulk job, which refuses them by line.
* Surrounding whitespace is removed from both ids (``u1, ct-1`` is common in CSV).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from typing import Literal, TextIO

from client._bulk import IdentityPair
from client._exceptions import RevenueCatError

__all__ = ["DEFAULT_ID_COLUMN", "DEFAULT_USER_COLUMN", "IdentityFileError", "read_identities"]

DEFAULT_USER_COLUMN = "app_user_id"
DEFAULT_ID_COLUMN = "clevertap_id"

Format = Literal["csv", "jsonl"]
Problem = Callable[[int, str], None]


class IdentityFileError(RevenueCatError, ValueError):
    """The mapping cannot be read at all (missing columns, no header); nothing was sent."""


def read_identities(
    source: TextIO,
    *,
    format: Format | None = None,
    user_column: str = DEFAULT_USER_COLUMN,
    id_column: str = DEFAULT_ID_COLUMN,
    on_problem: Problem | None = None,
) -> Iterator[IdentityPair]:
    """The pairs of ``source``, each with its line number; ``format`` is guessed if None.

    The columns are checked when the iterator is created, so a bad file fails before the
    first pair is used.
    """
    report: Problem = on_problem or (lambda line, reason: None)
    first = _first_line(source)
    kind = format or ("jsonl" if first[1].lstrip().startswith("{") else "csv")
    if kind == "jsonl":
        return _jsonl(source, first, user_column, id_column, report)
    if kind == "csv":
        return _csv(source, first, user_column, id_column, report)
    raise ValueError(f"format must be 'csv' or 'jsonl', not {format!r}")


def _first_line(source: TextIO) -> tuple[int, str]:
    """The first non-blank line and its number; the file must have one."""
    for number, line in enumerate(source, 1):
        if line.strip():
            return number, line
    raise IdentityFileError("the mapping is empty: expected a CSV header or JSON lines")


def _missing(found: object, wanted: tuple[str, str]) -> None:
    names = [name for name in wanted if not (isinstance(found, dict | list) and name in found)]
    if names:
        listed = ", ".join(repr(name) for name in names)
        raise IdentityFileError(
            f"the mapping has no {listed} column{'s' if len(names) > 1 else ''} "
            "(name them with --user-column/--id-column)"
        )


def _csv(
    source: TextIO, first: tuple[int, str], user: str, ct: str, report: Problem
) -> Iterator[IdentityPair]:
    header_line, header = first
    columns = next(csv.reader([header]))
    columns = [c.strip() for c in columns]
    _missing(columns, (user, ct))
    ui, ci = columns.index(user), columns.index(ct)
    reader = csv.reader(source)

    def rows() -> Iterator[IdentityPair]:
        for row in reader:
            # reader.line_num counts the physical lines this reader consumed; the header
            # and any blank lines before it were read before it.
            line = header_line + reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(ui, ci):
                report(line, f"{len(row)} fields, expected at least {max(ui, ci) + 1}")
                continue
            yield IdentityPair(row[ui].strip(), row[ci].strip(), line)

    return rows()


def _jsonl(
    source: TextIO, first: tuple[int, str], user: str, ct: str, report: Problem
) -> Iterator[IdentityPair]:
    first_line, text = first
    try:
        head = json.loads(text)
    except ValueError:
        raise IdentityFileError(f"line {first_line}: not a JSON object") from None
    _missing(head, (user, ct))

    def parse(line: int, text: str) -> IdentityPair | None:
        try:
            row = json.loads(text)
        except ValueError:
            report(line, "not valid JSON")
            return None
        if not isinstance(row, dict):
            report(line, "not a JSON object")
            return None
        values = [row.get(user), row.get(ct)]
        for name, value in zip((user, ct), values, strict=True):
            if not isinstance(value, str):
                shown = "missing" if value is None else f"not a string ({type(value).__name__})"
                report(line, f"{name!r} is {shown}")
                return None
        return IdentityPair(values[0].strip(), values[1].strip(), line)  # type: ignore[union-attr]

    def rows() -> Iterator[IdentityPair]:
        pair = parse(first_line, text)
        if pair is not None:
            yield pair
        for line, raw in enumerate(source, first_line + 1):
            if raw.strip() and (pair := parse(line, raw)) is not None:
                yield pair

    return rows()
