"""Reading RevenueCat's transaction exports, streaming, whatever their format version.

A Scheduled Data Export is one row per store transaction, as gzip-compressed CSV with a
semicolon delimiter, or Parquet (revenuecat-exports.md, "Delivery and file format").  The header
row names the columns; customers choose which, so every column but :data:`REQUIRED_COLUMNS` may
be missing, and columns this release does not know (v7's experiment enrollments, anything newer)
are ignored.  The format versions differ in how values are written, and every variant is read:

- booleans: ``t`` / ``f`` (v3 and earlier) or ``true`` / ``false`` (v4 on);
- ``entitlement_identifiers``: ``{a,b}`` (v3, a PostgreSQL array literal) or ``["a","b"]`` (v4 on);
- JSON columns (``reserved_subscriber_attributes``, ``custom_subscriber_attributes``): plain JSON
  in standard CSV quoting (v6 on: inner quotes doubled), or, in v4 and v5, "manually quoted".
  What that enclosure looks like byte for byte is UNCONFIRMED (the docs describe it in words
  and one sample); a file whose first 64 kB hold a JSON object opened with a backslash-escaped
  quote (``"{\"$email\": ...}"``) is read with backslash escapes, as the RevenueCat mock
  writes v4 and v5, and any file otherwise the standard way.  After CSV unquoting, a JSON
  column is read as JSON, else as JSON wrapped once more in quotes with the inner ones doubled
  (``"{""$email"": ...}"``), else as a JSON string holding the JSON;
- times: ``2023-01-01 08:27:06`` in UTC (fractions of a second and offsets accepted);
- nulls: an empty field (``\\N``, Snowflake's default null marker, too).

Nothing is read into memory beyond one row: the standard library's :mod:`csv` over :mod:`gzip`
(chosen by the file's magic bytes, not its name), and pyarrow's batches for Parquet (the optional
``exports`` extra).  A row that cannot be read (a bad date, number or JSON) is yielded as a
:class:`RowProblem` naming its file and line, and reading goes on; a gzip stream that ends early
raises :class:`TruncatedExport` after the rows before it.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from integration._exceptions import IntegrationError

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "BackfillError",
    "ExportRow",
    "NotAnExport",
    "RowProblem",
    "TruncatedExport",
    "check_export",
    "read_export",
]


class BackfillError(IntegrationError):
    """The backfill cannot go on; the message names the file."""


class NotAnExport(BackfillError, ValueError):
    """The file is not a RevenueCat transactions export (refused before anything is enqueued)."""


class TruncatedExport(BackfillError):
    """A compressed file ends before its end: the rows before it were read."""


# What the derivation cannot do without (revenuecat-exports.md, "Columns": all are never null).
REQUIRED_COLUMNS = (
    "rc_original_app_user_id",
    "product_identifier",
    "start_time",
    "store",
    "store_transaction_id",
    "original_store_transaction_id",
    "is_auto_renewable",
    "is_trial_period",
    "is_sandbox",
    "renewal_number",
)

_TIME_COLUMNS = (
    "start_time",
    "end_time",
    "grace_period_end_time",
    "effective_end_time",
    "refunded_at",
    "unsubscribe_detected_at",
    "billing_issues_detected_at",
    "updated_at",
    "first_seen_time",
    "auto_resume_time",
)
_BOOL_COLUMNS = (
    "is_auto_renewable",
    "is_trial_period",
    "is_in_intro_offer_period",
    "is_sandbox",
    "is_trial_conversion",
)
_FLOAT_COLUMNS = (
    "price_in_usd",
    "purchase_price_in_usd",
    "takehome_percentage",
    "tax_percentage",
    "commission_percentage",
    "price_in_purchased_currency",
    "purchase_price_in_purchased_currency",
)
_JSON_COLUMNS = ("reserved_subscriber_attributes", "custom_subscriber_attributes")
_TEXT_COLUMNS = (
    "rc_original_app_user_id",
    "rc_last_seen_app_user_id_alias",
    "country",
    "country_source",
    "product_identifier",
    "product_display_name",
    "product_duration",
    "store",
    "store_transaction_id",
    "original_store_transaction_id",
    "purchased_currency",
    "presented_offering",
    "ownership_type",
    "platform",
    "offer",
    "offer_type",
)
#: Every column read besides the required ones; any other column is ignored.
OPTIONAL_COLUMNS = tuple(
    sorted(
        {*_TIME_COLUMNS, *_BOOL_COLUMNS, *_FLOAT_COLUMNS, *_JSON_COLUMNS, *_TEXT_COLUMNS}
        | {"entitlement_identifiers", "renewal_number"} - set(REQUIRED_COLUMNS)
    )
)

_NULLS = frozenset({"", "\\N"})
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One transaction, its known columns parsed (absent columns are absent from ``values``).

    ``values`` holds ``str`` for text, ``bool``, ``float``, ``int`` (``renewal_number``), epoch
    milliseconds (``int``) for times, ``list[str]`` for entitlements, ``dict`` for the JSON
    columns, or ``None`` for a null.  ``line`` is the line the record starts on (CSV) or its
    row number (Parquet), counting the header as line 1.
    """

    path: str
    line: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that could not be read, skipped; ``reason`` names the column, not its value."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}: {self.reason}"


class _BadValue(ValueError):
    pass


def _time(value: object) -> int:
    try:
        moment = _from_iso(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # the common form failed: a datetime, a suffix, spaces
        moment = _time_slowly(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - _EPOCH) // _MS


_from_iso = datetime.fromisoformat


def _time_slowly(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(" UTC"):
            text = text[:-4]
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise _BadValue("not a date and time")


_TRUE = frozenset({"t", "true", "1", "T", "TRUE", "True"})
_FALSE = frozenset({"f", "false", "0", "F", "FALSE", "False"})


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _BadValue("not a boolean (t/f or true/false)")


def _float(value: object) -> float:
    if isinstance(value, bool):
        raise _BadValue("not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise _BadValue("not a number") from None
    if not math.isfinite(number):
        raise _BadValue("not a finite number")
    return number


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise _BadValue("not a whole number")
    if isinstance(value, int):
        return value
    try:
        number = float(str(value))  # "2" and "2.0" both occur in spreadsheet round trips
    except ValueError:
        raise _BadValue("not a whole number") from None
    if not number.is_integer():
        raise _BadValue("not a whole number")
    return int(number)


def _array(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(item) for item in value if item is not None]
    text = str(value).strip()
    if text.startswith("["):  # v4 on: a JSON array
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise _BadValue("not an array") from None
        if not isinstance(items, list):
            raise _BadValue("not an array")
        return [str(item) for item in items if item is not None]
    if text.startswith("{") and text.endswith("}"):  # v3: a PostgreSQL array literal
        inner = text[1:-1]
        if not inner:
            return []
        # Elements are quoted when they hold a comma, a brace or a space; csv reads that shape.
        return [item for item in next(csv.reader([inner], skipinitialspace=True)) if item]
    raise _BadValue("not an array ({...} or [...])")


def _json_object(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    text = str(value).strip()
    for candidate in _json_candidates(text):
        try:
            document = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if isinstance(document, str):  # a JSON string holding the JSON
            try:
                document = orjson.loads(document)
            except orjson.JSONDecodeError:
                continue
        if isinstance(document, dict):
            return document
    raise _BadValue("not a JSON object")


def _json_candidates(text: str) -> Iterator[str]:
    yield text
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        yield text[1:-1].replace('""', '"')  # v4/v5's manual enclosure (see module docstring)


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


_PARSERS: dict[str, Callable[[object], Any]] = {
    **dict.fromkeys(_TIME_COLUMNS, _time),
    **dict.fromkeys(_BOOL_COLUMNS, _bool),
    **dict.fromkeys(_FLOAT_COLUMNS, _float),
    **dict.fromkeys(_JSON_COLUMNS, _json_object),
    **dict.fromkeys(_TEXT_COLUMNS, _text),
    "entitlement_identifiers": _array,
    "renewal_number": _int,
}


def _missing(header: Sequence[str]) -> list[str]:
    present = set(header)
    return [name for name in REQUIRED_COLUMNS if name not in present]


def _refusal(path: str, header: Sequence[str]) -> NotAnExport | None:
    missing = _missing(header)
    if not missing:
        return None
    hint = ""
    if len(header) == 1 and any(mark in header[0] for mark in (",", "\t", "|")):
        hint = " (the header is one column: RevenueCat exports are separated by ';')"
    return NotAnExport(
        f"{path} is not a RevenueCat transactions export: missing column"
        f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}{hint}"
    )


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"PAR1"


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(2) == b"\x1f\x8b"


class _CountingReader(io.RawIOBase):
    """The raw file under gzip and csv, counting bytes read (for progress and ETA)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)  # type: ignore[attr-defined]
        self.position += count or 0
        return int(count or 0)

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(slots=True)
class ReadPosition:
    """How far into a file reading has got, in bytes of the file as stored."""

    done: int = 0


def check_export(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The header of an export, or :class:`NotAnExport` (missing columns, not a file, empty)."""
    file_path = Path(path)
    name = str(path)
    if not file_path.is_file():
        raise NotAnExport(f"{name}: no such file")
    if _is_parquet(file_path):
        header = tuple(_parquet_file(file_path).schema_arrow.names)
    else:
        try:
            with _TextExport(file_path) as export:
                header = tuple(next(csv.reader(export.text, delimiter=";"), ()))
        except (EOFError, OSError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
            raise NotAnExport(f"{name} is not a readable CSV export: {_short(exc)}") from None
        if not header:
            raise NotAnExport(f"{name} is empty: a RevenueCat export starts with a header row")
    refusal = _refusal(name, header)
    if refusal is not None:
        raise refusal
    return header


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class _TextExport:
    """An export opened as text (through gzip when compressed), and the bytes read so far."""

    def __init__(self, path: Path) -> None:
        self.raw = _CountingReader(path.open("rb"))
        try:
            buffered = io.BufferedReader(self.raw, buffer_size=1 << 16)
            stream: IO[bytes] = (
                gzip.GzipFile(fileobj=buffered) if _is_gzip(path) else buffered  # type: ignore[assignment]
            )
            self.text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        except BaseException:
            self.raw.close()
            raise

    def __enter__(self) -> _TextExport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.text.close()  # GzipFile leaves the file it reads from open: closed next
        self.raw.close()


def read_export(
    path: str | os.PathLike[str],
    *,
    position: ReadPosition | None = None,
    only_lines: AbstractSet[int] | None = None,
) -> Iterator[ExportRow | RowProblem]:
    """The rows of one export, parsed, as they are read; problems in their place.

    Raises :class:`NotAnExport` before the first row for a file that is not an export, and
    :class:`TruncatedExport` where a compressed stream ends early.  ``position``, when given,
    follows the bytes read from the file as stored.  With ``only_lines``, the other rows are
    read past without being parsed (the backfill's second pass).
    """
    header = check_export(path)
    file_path = Path(path)
    tracker = position if position is not None else ReadPosition()
    if _is_parquet(file_path):
        yield from _read_parquet(file_path, str(path), tracker, only_lines)
    else:
        yield from _read_csv(file_path, str(path), header, tracker, only_lines)


_Columns = Sequence[tuple[int, str, Callable[[object], Any]]]


def _parse_row(
    path: str, line: int, texts: Sequence[tuple[int, str]], typed: _Columns, cells: Any
) -> ExportRow | RowProblem:
    """One row's values: ``texts`` taken as they are (empty is null), ``typed`` parsed.

    Written for speed (this runs for every row of a million-row file): text cells in one
    comprehension, one ``try`` around the typed ones, the required check in C."""
    values: dict[str, Any] = {
        name: None if (cell := cells[index]) is None or cell in _NULLS else cell
        for index, name in texts
    }
    name = ""
    try:
        for index, name, parse in typed:
            cell = cells[index]
            values[name] = None if cell is None or cell in _NULLS else parse(cell)
    except _BadValue as exc:
        return RowProblem(path, line, f"column {name}: {exc}")
    if None in map(values.get, REQUIRED_COLUMNS):
        missing = next(n for n in REQUIRED_COLUMNS if values.get(n) is None)
        return RowProblem(path, line, f"column {missing} is empty")
    return ExportRow(path, line, values)


def _split_columns(
    header: Sequence[str], *, raw_text: bool = True
) -> tuple[list[tuple[int, str]], _Columns]:
    """The known columns of ``header``: (index, name) of the text ones, taken as they are
    (CSV cells are text already), and (index, name, parser) of the others; with ``raw_text``
    false (Parquet, whose text columns may hold numbers) every column is parsed."""
    texts = [(i, name) for i, name in enumerate(header) if raw_text and _PARSERS.get(name) is _text]
    taken = {i for i, _ in texts}
    typed = [
        (i, name, _PARSERS[name])
        for i, name in enumerate(header)
        if name in _PARSERS and i not in taken
    ]
    return texts, typed


_SNIFF_CHARS = 1 << 16
# A cell that opens with a quote, then a JSON object or array whose first quote is escaped with
# a backslash: v4/v5's enclosure.  Standard quoting doubles every quote inside a cell, so only a
# cell's opening quote can follow a delimiter or a line start, and it is followed by {"" there.
_ESCAPED_CELL = re.compile(r'(?:^|[;\n])"[\[{]\\"')


def _backslash_escaped(path: Path) -> bool:
    """Whether the file quotes its JSON columns with backslash escapes (v4 and v5, see the
    module docstring), from its first 64 kB."""
    try:
        with _TextExport(path) as export:
            start = export.text.read(_SNIFF_CHARS)
    except (EOFError, OSError, zlib.error, UnicodeDecodeError):
        return False  # too short to tell: reading proper reports the damage, with its line
    return _ESCAPED_CELL.search(start) is not None


def _read_csv(
    path: Path,
    name: str,
    header: Sequence[str],
    position: ReadPosition,
    only_lines: AbstractSet[int] | None,
) -> Iterator[ExportRow | RowProblem]:
    texts, typed = _split_columns(header)
    width = len(header)
    escaped = _backslash_escaped(path)
    with _TextExport(path) as export:
        raw = export.raw
        if escaped:
            reader = csv.reader(export.text, delimiter=";", escapechar="\\", doublequote=False)
        else:
            reader = csv.reader(export.text, delimiter=";")
        next(reader)  # the header, checked above
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield RowProblem(name, line, f"not CSV: {_short(exc)}")
                line = reader.line_num + 1
                continue
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise TruncatedExport(
                    f"{name} ends early (a truncated or corrupt gzip stream after line "
                    f"{line - 1}): {_short(exc)}"
                ) from None
            except UnicodeDecodeError:
                raise TruncatedExport(f"{name}: not UTF-8 text after line {line - 1}") from None
            position.done = raw.position
            if not cells or (only_lines is not None and line not in only_lines):
                line = reader.line_num + 1
                continue
            if len(cells) != width:
                yield RowProblem(name, line, f"{len(cells)} fields where the header has {width}")
            else:
                yield _parse_row(name, line, texts, typed, cells)
            line = reader.line_num + 1


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise BackfillError(
            f"{path} is Parquet, which needs pyarrow: pip install 'rc-clevertap[exports]'"
        ) from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise NotAnExport(f"{path} is not a readable Parquet export: {_short(exc)}") from None


def _read_parquet(
    path: Path, name: str, position: ReadPosition, only_lines: AbstractSet[int] | None
) -> Iterator[ExportRow | RowProblem]:
    file = _parquet_file(path)
    header = file.schema_arrow.names
    wanted = [column for column in header if column in _PARSERS]
    texts, typed = _split_columns(wanted, raw_text=False)
    size = path.stat().st_size
    total = max(file.metadata.num_rows, 1)
    line = 1
    for batch in file.iter_batches(batch_size=4096, columns=wanted):
        data = [batch.column(i).to_pylist() for i in range(len(wanted))]
        for cells in zip(*data, strict=True):
            line += 1
            if only_lines is None or line in only_lines:
                yield _parse_row(name, line, texts, typed, _ParquetCells(cells))
        position.done = size * (line - 1) // total


class _ParquetCells:
    """A Parquet row's values as the row parser reads cells (non-strings pass through)."""

    __slots__ = ("_cells",)

    def __init__(self, cells: tuple[Any, ...]) -> None:
        self._cells = cells

    def __getitem__(self, index: int) -> Any:
        value = self._cells[index]
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, list):  # the row parser tests cells against a set: hashable
            return tuple(value)
        if isinstance(value, dict):
            return _Struct(value)
        return value


class _Struct(dict[str, Any]):
    """A Parquet struct value, hashable by identity so the row parser can test it for null."""

    __hash__ = object.__hash__  # type: ignore[assignment]


def values_of(row: ExportRow | Mapping[str, Any]) -> Mapping[str, Any]:
    """The parsed values of a row (an :class:`ExportRow` or its ``values``)."""
    return row.values if isinstance(row, ExportRow) else row
