"""Scheduled Data Exports: the store simulator's history as RevenueCat's transactions file.

RevenueCat hands every customer its complete transaction history as a Scheduled Data Export
(revenuecat-exports.md): one row per store transaction, gzip-compressed CSV with a ``;``
delimiter (or Parquet), the full history or only the rows that changed since the last delivery,
laid out as ``<base>/<date>/transactions_<timestamp>.<ext>``.  The mock builds those rows from
the events its simulator emitted, so a row agrees with the webhooks about the same purchase
(ids, prices, currencies, tax and commission, refunds, expirations, trials)::

    export = backend.export_transactions(version=5)             # full, as of the clock's now
    path = export.write("bucket")       # bucket/2023-11-14/transactions_20231114T221320Z.csv.gz
    later = backend.export_transactions(since_ms=t)             # new and updated rows only
    table = backend.export_transactions(fmt="parquet").to_bytes()   # needs pyarrow (.[exports])

Over HTTP: ``GET /_mock/revenuecat/exports/transactions?version=5&format=csv&since_ms=...``
answers the file itself (control.py).

How each event changes a row: ``transactions.py``.  Attributes, platform, experiments and
``first_seen_time`` are the customer's at export time, as in RevenueCat's files.  Times are
UTC, to the second (``2023-01-01 08:27:06``).

Format versions (the per-version pages; the header row tells a reader which columns exist):

=======  ======================================================================================
v3       booleans ``t``/``f``; ``entitlement_identifiers`` as ``{a,b}``; ``price_in_*`` stay the
         gross price after a refund; no ``purchase_price_*``, ``country_source``, product
         dimensions, experiments or ``updated_at``
v4, v5   booleans ``true``/``false``; arrays ``["a", "b"]``; JSON columns manually quoted: the
         value enclosed in ``"`` with inner quotes escaped as ``\\"`` (read with
         ``escapechar="\\\\"``, ``doublequote=False``; a plain reader garbles them).  v5 adds
         ``offer``, ``offer_type``, ``first_seen_time``, ``auto_resume_time``
v6       as v5, with standard CSV quoting (inner quotes doubled)
v7       as v6, ``experiment_id``/``experiment_variant`` replaced by one JSON column of
         enrollments by layer (:data:`V7_EXPERIMENTS_COLUMN`)
=======  ======================================================================================

What the version pages leave open, and the mock's choice (UNCONFIRMED each): v3's quoting of
JSON columns (standard CSV quoting, as its Postgres-style ``t``/``f`` suggest); the exact
escaping behind v4/v5's "manual quote enclosure" (backslash escapes, as the docs' sample shows);
v7's column name and shape; ``renewal_number`` 1 for a non-renewing purchase (the column is not
nullable); Parquet's column types (native booleans, floats, integers, UTC timestamps in
milliseconds; arrays as lists of strings; JSON columns as strings); the ``<timestamp>`` in the
file name (``YYYYMMDDTHHMMSSZ``).

Errors (each an HTTP answer too, via :class:`~.errors.SimulationError`)::

    SimulationError
     └── ExportError             409: the event log is full, so the history may be incomplete
          ├── ExportOptionError  400: an unknown version, format or column; since after as of
          └── ParquetUnavailable 501: Parquet asked for, pyarrow not installed
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from mockserver.revenuecat.catalogue import Catalogue
from mockserver.revenuecat.errors import SimulationError
from mockserver.revenuecat.models import Customer
from mockserver.revenuecat.transactions import Transaction, transactions_from_events

__all__ = [
    "FORMATS",
    "LATEST_VERSION",
    "V7_EXPERIMENTS_COLUMN",
    "VERSIONS",
    "ExportError",
    "ExportOptionError",
    "ParquetUnavailable",
    "TransactionExport",
    "columns_for",
    "export_history",
]

Event = Mapping[str, Any]
Format = Literal["csv", "parquet"]

VERSIONS: Final = (3, 4, 5, 6, 7)
LATEST_VERSION: Final = 7
FORMATS: Final[tuple[Format, ...]] = ("csv", "parquet")
#: v7's experiments column ("Enrolled Experiments by Layer"); its exact name is UNCONFIRMED.
V7_EXPERIMENTS_COLUMN: Final = "experiment_enrollments"
#: The one layer RevenueCat uses as of March 2026 (v7 page).
DEFAULT_LAYER: Final = "default"

_BOOL, _TIME, _FLOAT, _INT, _STR, _ARRAY, _JSON = (
    "bool", "time", "float", "int", "str", "array", "json"
)  # fmt: skip

# (column, kind, first version, last version): the v5 page's order, v7's column at the end.
_COLUMNS: Final[tuple[tuple[str, str, int, int], ...]] = (
    ("rc_original_app_user_id", _STR, 3, 7),
    ("rc_last_seen_app_user_id_alias", _STR, 3, 7),
    ("country", _STR, 3, 7),
    ("country_source", _STR, 4, 7),
    ("product_identifier", _STR, 3, 7),
    ("product_display_name", _STR, 4, 7),
    ("product_duration", _STR, 4, 7),
    ("start_time", _TIME, 3, 7),
    ("end_time", _TIME, 3, 7),
    ("grace_period_end_time", _TIME, 3, 7),
    ("effective_end_time", _TIME, 3, 7),
    ("store", _STR, 3, 7),
    ("is_auto_renewable", _BOOL, 3, 7),
    ("is_trial_period", _BOOL, 3, 7),
    ("is_in_intro_offer_period", _BOOL, 3, 7),
    ("is_sandbox", _BOOL, 3, 7),
    ("price_in_usd", _FLOAT, 3, 7),
    ("purchase_price_in_usd", _FLOAT, 4, 7),
    ("takehome_percentage", _FLOAT, 3, 7),
    ("tax_percentage", _FLOAT, 3, 7),
    ("commission_percentage", _FLOAT, 3, 7),
    ("store_transaction_id", _STR, 3, 7),
    ("original_store_transaction_id", _STR, 3, 7),
    ("refunded_at", _TIME, 3, 7),
    ("unsubscribe_detected_at", _TIME, 3, 7),
    ("billing_issues_detected_at", _TIME, 3, 7),
    ("purchased_currency", _STR, 3, 7),
    ("price_in_purchased_currency", _FLOAT, 3, 7),
    ("purchase_price_in_purchased_currency", _FLOAT, 4, 7),
    ("entitlement_identifiers", _ARRAY, 3, 7),
    ("renewal_number", _INT, 3, 7),
    ("is_trial_conversion", _BOOL, 3, 7),
    ("presented_offering", _STR, 3, 7),
    ("ownership_type", _STR, 3, 7),
    ("reserved_subscriber_attributes", _JSON, 3, 7),
    ("custom_subscriber_attributes", _JSON, 3, 7),
    ("platform", _STR, 3, 7),
    ("experiment_id", _STR, 4, 6),
    ("experiment_variant", _STR, 4, 6),
    ("updated_at", _TIME, 4, 7),
    ("offer", _STR, 5, 7),
    ("offer_type", _STR, 5, 7),
    ("first_seen_time", _TIME, 5, 7),
    ("auto_resume_time", _TIME, 5, 7),
    (V7_EXPERIMENTS_COLUMN, _JSON, 7, 7),
)
_KINDS: Final = {name: kind for name, kind, _, _ in _COLUMNS}


class ExportError(SimulationError):
    """The mock cannot write a faithful export (its event log dropped part of the history)."""

    status = 409


class ExportOptionError(ExportError):
    """An export option the mock does not know: version, format, column, or a time range."""

    status = 400


class ParquetUnavailable(ExportError):
    """Parquet was asked for and pyarrow is not installed (the ``exports`` extra)."""

    status = 501


def columns_for(version: int) -> tuple[str, ...]:
    """The columns of a full export of format ``version``, in file order."""
    if version not in VERSIONS:
        known = ", ".join(str(v) for v in VERSIONS)
        raise ExportOptionError(f"unknown export version {version!r}; known: {known}")
    return tuple(name for name, _, first, last in _COLUMNS if first <= version <= last)


# ----------------------------------------------------------------------------- rows


def _duration(days: int | None) -> str | None:
    """ISO 8601 duration of a product's standard period, as ``product_duration``."""
    if days is None:
        return None
    named = {7: "P1W", 14: "P2W", 30: "P1M", 31: "P1M", 60: "P2M", 90: "P3M", 180: "P6M"}
    if days in named:
        return named[days]
    if days in (365, 366):
        return "P1Y"
    return f"P{days}D"


def _split_attributes(attributes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    reserved = {k: v for k, v in attributes.items() if k.startswith("$")}
    custom = {k: v for k, v in attributes.items() if not k.startswith("$")}
    return reserved, custom


def _values(
    row: Transaction, customer: Customer | None, catalogue: Catalogue, version: int
) -> dict[str, Any]:
    """Every column's value for ``row``, typed (times in ms), before a version's encoding."""
    product = catalogue.products.get(row.product_id)
    try:
        store = catalogue.store(row.store).v1_name
    except SimulationError:
        store = row.store.lower()
    if customer is not None:
        attributes: Mapping[str, Any] = customer.attributes.to_json()
        experiments: Sequence[Mapping[str, Any]] = customer.experiments
        original, last_seen = customer.original_app_user_id, customer.app_user_id
        platform, first_seen = customer.last_seen_platform, customer.first_seen_ms
    else:
        attributes, experiments = row.attributes, row.experiments
        original, last_seen = row.original_app_user_id, row.app_user_id
        platform, first_seen = None, None
    reserved, custom = _split_attributes(attributes)
    refunded = row.refunded_at_ms is not None
    # From v4 on the price columns are net of refunds and purchase_price_* keep the gross.
    net = version >= 4 and refunded
    latest = experiments[-1] if experiments else None
    return {
        "rc_original_app_user_id": original,
        "rc_last_seen_app_user_id_alias": last_seen,
        "country": row.country,
        "country_source": "from_sdk" if row.country else None,
        "product_identifier": row.product_id,
        "product_display_name": product.display_name if product else None,
        "product_duration": _duration(product.duration_days) if product else None,
        "start_time": row.start_ms,
        "end_time": row.end_ms,
        "grace_period_end_time": row.grace_period_end_ms,
        "effective_end_time": row.effective_end_ms,
        "store": store,
        "is_auto_renewable": row.is_auto_renewable,
        "is_trial_period": row.is_trial_period,
        "is_in_intro_offer_period": row.is_in_intro_offer_period,
        "is_sandbox": row.is_sandbox,
        "price_in_usd": 0.0 if net else row.price_usd,
        "purchase_price_in_usd": row.price_usd,
        "takehome_percentage": row.takehome_percentage,
        "tax_percentage": row.tax_percentage,
        "commission_percentage": row.commission_percentage,
        "store_transaction_id": row.store_transaction_id,
        "original_store_transaction_id": row.original_store_transaction_id,
        "refunded_at": row.refunded_at_ms,
        "unsubscribe_detected_at": row.unsubscribe_detected_at_ms,
        "billing_issues_detected_at": row.billing_issues_detected_at_ms,
        "purchased_currency": row.currency,
        "price_in_purchased_currency": 0.0 if net else row.price_local,
        "purchase_price_in_purchased_currency": row.price_local,
        "entitlement_identifiers": list(row.entitlement_ids) or None,
        "renewal_number": row.renewal_number,
        "is_trial_conversion": row.is_trial_conversion,
        "presented_offering": row.presented_offering,
        "ownership_type": "PURCHASED",
        "reserved_subscriber_attributes": reserved or None,
        "custom_subscriber_attributes": custom or None,
        "platform": platform,
        "experiment_id": latest.get("experiment_id") if latest else None,
        "experiment_variant": latest.get("experiment_variant") if latest else None,
        "updated_at": row.updated_ms,
        "offer": row.offer_code,
        "offer_type": "offer_code" if row.offer_code else None,
        "first_seen_time": first_seen,
        "auto_resume_time": row.auto_resume_ms,
        V7_EXPERIMENTS_COLUMN: {
            DEFAULT_LAYER: {
                "experiment_id": latest.get("experiment_id"),
                "experiment_variant": latest.get("experiment_variant"),
            }
        }
        if latest
        else None,
    }


def _time_text(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any, kind: str, version: int) -> str:
    """One CSV cell in ``version``'s encoding; the csv writer adds the quoting."""
    if value is None:
        return ""
    if kind == _BOOL:
        if version <= 3:
            return "t" if value else "f"
        return "true" if value else "false"
    if kind == _TIME:
        return _time_text(int(value))
    if kind == _ARRAY:
        if version <= 3:  # a Postgres array literal
            return "{" + ",".join(value) + "}"
        return json.dumps(value, ensure_ascii=False)
    if kind == _JSON:
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _escaped(value: str, *, enclose: bool) -> str:
    """One cell in v4/v5's escaped dialect (``\\"`` inside quotes), encoded by the csv module."""
    if not value:
        return ""
    cell = io.StringIO()
    csv.writer(
        cell, delimiter=";", lineterminator="", doublequote=False, escapechar="\\",
        quoting=csv.QUOTE_ALL if enclose else csv.QUOTE_MINIMAL,
    ).writerow([value])  # fmt: skip
    return cell.getvalue()


def _write_csv(stream: io.StringIO, header: Sequence[str], lines: Iterable[list[str]], *,
               version: int, enclosed: Sequence[bool]) -> None:  # fmt: skip
    """Write a header and lines as ``version`` does.

    v4 and v5 enclose the JSON and array columns in quotes "manually" (v4 page; removed in v6)
    and escape the quotes inside them with a backslash, as the docs' sample shows; other cells
    are escaped only where they must be.  The other versions quote the standard way.
    """
    if version not in (4, 5):
        writer = csv.writer(stream, delimiter=";", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(lines)
        return
    stream.write(";".join(_escaped(name, enclose=False) for name in header) + "\n")
    for cells in lines:
        encoded = (_escaped(c, enclose=q) for c, q in zip(cells, enclosed, strict=True))
        stream.write(";".join(encoded) + "\n")


# ----------------------------------------------------------------------------- the export


@dataclass(frozen=True)
class TransactionExport:
    """One Scheduled Data Export: its rows (typed values) and how to write them.

    Build it with :meth:`RevenueCatBackend.export_transactions`; ``rows`` maps each column to a
    typed value (times in epoch ms, booleans, floats, lists and dicts), ``to_bytes`` encodes them
    in ``version``'s format, ``write`` lays the file out as RevenueCat does in a bucket.

    Parameters:
        version: the format version (3 to 7).
        fmt: ``"csv"`` (gzip-compressed, ``;``) or ``"parquet"``.
        columns: the exported columns, in file order.
        rows: one mapping per transaction, ordered by ``start_time``.
        as_of_ms: the export's time: what had happened by then.
        since_ms: for an incremental export, the rows updated after this time; ``None`` = full.
    """

    version: int
    fmt: Format
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    as_of_ms: int
    since_ms: int | None = None

    @classmethod
    def build(
        cls,
        transactions: Iterable[Transaction],
        *,
        customer: Callable[[str], Customer | None],
        catalogue: Catalogue,
        as_of_ms: int,
        version: int = LATEST_VERSION,
        fmt: str = "csv",
        since_ms: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> TransactionExport:
        """The export of ``transactions``; ``customer`` finds a customer by app user id."""
        every = columns_for(version)
        if fmt not in FORMATS:
            raise ExportOptionError(f"unknown export format {fmt!r}; known: csv, parquet")
        if since_ms is not None and since_ms > as_of_ms:
            raise ExportOptionError("since_ms is after the export's time (as_of_ms)")
        chosen = every
        if columns is not None:
            unknown = [c for c in columns if c not in every]
            if unknown:
                raise ExportOptionError(
                    f"version {version} has no column {', '.join(map(repr, unknown))}"
                )
            if not columns:
                raise ExportOptionError("choose at least one column")
            chosen = tuple(c for c in every if c in set(columns))
        rows = []
        for row in transactions:
            if since_ms is not None and row.updated_ms <= since_ms:
                continue
            values = _values(row, customer(row.app_user_id), catalogue, version)
            rows.append({c: values[c] for c in chosen})
        return cls(
            version=version,
            fmt=fmt,  # checked against FORMATS above
            columns=chosen,
            rows=tuple(rows),
            as_of_ms=as_of_ms,
            since_ms=since_ms,
        )

    @property
    def incremental(self) -> bool:
        return self.since_ms is not None

    @property
    def filename(self) -> str:
        stamp = datetime.fromtimestamp(self.as_of_ms // 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"transactions_{stamp}.{'csv.gz' if self.fmt == 'csv' else 'parquet'}"

    @property
    def media_type(self) -> str:
        return "application/gzip" if self.fmt == "csv" else "application/vnd.apache.parquet"

    def with_format(self, fmt: str) -> TransactionExport:
        """The same rows in another file format."""
        if fmt not in FORMATS:
            raise ExportOptionError(f"unknown export format {fmt!r}; known: csv, parquet")
        return replace(self, fmt=fmt)

    def csv_text(self) -> str:
        """The uncompressed CSV: a header row, then one line per transaction."""
        stream = io.StringIO()
        kinds = [_KINDS[c] for c in self.columns]
        lines = (
            [_cell(row[c], kind, self.version) for c, kind in zip(self.columns, kinds, strict=True)]
            for row in self.rows
        )
        enclosed = [kind in (_JSON, _ARRAY) for kind in kinds]
        _write_csv(stream, self.columns, lines, version=self.version, enclosed=enclosed)
        return stream.getvalue()

    def to_bytes(self) -> bytes:
        """The file's bytes: gzip-compressed CSV (reproducible: no mtime) or Parquet."""
        if self.fmt == "parquet":
            return self._parquet()
        return gzip.compress(self.csv_text().encode("utf-8"), mtime=0)

    def write(self, base: str | Path) -> Path:
        """Write the file to ``<base>/<date>/transactions_<timestamp>.<ext>``; its path."""
        day = datetime.fromtimestamp(self.as_of_ms // 1000, UTC).strftime("%Y-%m-%d")
        path = Path(base) / day / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    def _parquet(self) -> bytes:
        try:  # optional (the exports extra), imported only when asked for
            pa = importlib.import_module("pyarrow")
            pq = importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise ParquetUnavailable(
                "Parquet exports need pyarrow: pip install 'rc-clevertap[exports]'"
            ) from None
        types = {
            _BOOL: pa.bool_(), _TIME: pa.timestamp("ms", tz="UTC"), _FLOAT: pa.float64(),
            _INT: pa.int64(), _STR: pa.string(), _ARRAY: pa.list_(pa.string()),
            _JSON: pa.string(),
        }  # fmt: skip
        arrays = []
        for column in self.columns:
            kind = _KINDS[column]
            values = [row[column] for row in self.rows]
            if kind == _JSON:
                values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
            elif kind == _TIME:
                values = [None if v is None else datetime.fromtimestamp(v // 1000, UTC)
                          for v in values]  # fmt: skip
            arrays.append(pa.array(values, type=types[kind]))
        table = pa.Table.from_arrays(arrays, names=list(self.columns))
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()


def export_history(
    events: Sequence[Event],
    *,
    log_capacity: int | None,
    customer: Callable[[str], Customer | None],
    catalogue: Catalogue,
    now_ms: int,
    version: int = LATEST_VERSION,
    fmt: str = "csv",
    since_ms: int | None = None,
    as_of_ms: int | None = None,
    columns: Sequence[str] | None = None,
) -> TransactionExport:
    """The export of a simulator's emitted ``events`` (what the backend method calls).

    ``log_capacity`` is the event log's bound: a log that holds that many events may have
    dropped the oldest, and an export missing their transactions would contradict the webhooks,
    so it is refused (:class:`ExportError`) rather than written incomplete.
    """
    if log_capacity is not None and len(events) >= log_capacity:
        raise ExportError(
            f"the event log is full ({log_capacity} events): the oldest transactions may be "
            "missing; start the mock with a larger max_events to export its whole history"
        )
    as_of = now_ms if as_of_ms is None else as_of_ms
    return TransactionExport.build(
        transactions_from_events(events, as_of_ms=as_of),
        customer=customer,
        catalogue=catalogue,
        as_of_ms=as_of,
        version=version,
        fmt=fmt,
        since_ms=since_ms,
        columns=columns,
    )
