"""Reading RevenueCat transaction exports: every version's quirks, Parquet, and bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa  # the exports extra, installed with .[dev]
import pyarrow.parquet as pq
import pytest
from exportfiles import COLUMNS, DAY, T0, csv_text, row, write_export
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from integration.backfill import (
    ExportRow,
    NotAnExport,
    RowProblem,
    TruncatedExport,
    check_export,
    read_export,
)


def rows_of(path: Path) -> list[ExportRow]:
    items = list(read_export(path))
    assert all(isinstance(item, ExportRow) for item in items), items
    return [item for item in items if isinstance(item, ExportRow)]


@pytest.mark.parametrize("version", [3, 4, 5, 6, 7])
def test_each_version_reads_to_the_same_values(tmp_path: Path, version: int) -> None:
    """t/f and true/false, {a,b} and ["a","b"], escaped and standard-quoted JSON all parse."""
    path = write_export(tmp_path / f"v{version}.csv.gz", [row("t1", is_trial_period=True)],
                        version=version)  # fmt: skip
    (parsed,) = rows_of(path)
    values = parsed.values
    assert values["is_trial_period"] is True and values["is_sandbox"] is False
    assert values["entitlement_identifiers"] == ["pro", "plus one"]
    assert values["reserved_subscriber_attributes"]["$clevertapId"]["value"] == "ct-u1"
    assert values["custom_subscriber_attributes"] == {
        "plan; tier": {"value": 'gold "A"', "updated_at_ms": T0}
    }
    assert values["start_time"] == T0 and values["end_time"] == T0 + 30 * DAY
    assert values["price_in_purchased_currency"] == 9.99 and values["renewal_number"] == 1
    assert parsed.line == 2


def test_a_json_column_wrapped_in_doubled_quotes_is_read(tmp_path: Path) -> None:
    """JSON enclosed once more in quotes, inner quotes doubled, is read as the JSON inside."""
    wrapped = '"{""$clevertapId"": {""value"": ""ct-9""}}"'  # the cell after CSV unquoting
    values = row("t1", reserved_subscriber_attributes=None)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(COLUMNS)
    cells = csv_text([values]).splitlines()[1]
    parsed = next(csv.reader([cells], delimiter=";"))
    parsed[COLUMNS.index("reserved_subscriber_attributes")] = wrapped
    writer.writerow(parsed)
    path = tmp_path / "wrapped.csv"
    path.write_text(out.getvalue())
    attributes = rows_of(path)[0].values["reserved_subscriber_attributes"]
    assert attributes == {"$clevertapId": {"value": "ct-9"}}


def test_a_plain_csv_without_gzip_is_read(tmp_path: Path) -> None:
    """The compression is read from the file's magic bytes, not its name."""
    path = write_export(tmp_path / "plain.csv.gz", [row("t1")], compress=False)
    assert [r.values["store_transaction_id"] for r in rows_of(path)] == ["t1"]


def test_a_subset_of_columns_and_unknown_columns_are_accepted(tmp_path: Path) -> None:
    """Only the required columns plus a column this release does not know: read, ignored."""
    columns = [
        "rc_original_app_user_id", "product_identifier", "start_time", "store",
        "store_transaction_id", "original_store_transaction_id", "is_auto_renewable",
        "is_trial_period", "is_sandbox", "renewal_number", "experiment_enrollments_by_layer",
    ]  # fmt: skip
    path = write_export(tmp_path / "few.csv.gz", [row("t1")], columns=columns)
    (parsed,) = rows_of(path)
    assert "experiment_enrollments_by_layer" not in parsed.values
    assert "price_in_usd" not in parsed.values and parsed.values["renewal_number"] == 1


def test_a_comma_separated_file_is_refused_naming_the_delimiter(tmp_path: Path) -> None:
    """A CSV with the wrong delimiter is not an export: the message says what is wrong."""
    path = tmp_path / "comma.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(NotAnExport, match=r"missing columns rc_original_app_user_id.*';'"):
        check_export(path)


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    """The refusal lists each required column the header lacks."""
    columns = [c for c in COLUMNS if c not in ("store_transaction_id", "is_sandbox")]
    path = write_export(tmp_path / "short.csv.gz", [row("t1")], columns=columns)
    with pytest.raises(NotAnExport, match=r"missing columns store_transaction_id, is_sandbox$"):
        list(read_export(path))


def test_malformed_rows_are_reported_with_line_and_skipped(tmp_path: Path) -> None:
    """A bad date, a bad number and broken JSON are each a problem at their line; others read."""
    lines = csv_text([row(f"t{i}") for i in range(5)]).splitlines()
    header = lines[0].split(";")
    start, price = header.index("start_time"), header.index("price_in_usd")

    def spoil(line: str, index: int, value: str) -> str:
        cells = line.split(";")
        cells[index] = value
        return ";".join(cells)

    lines[1] = spoil(lines[1], start, "yesterday")
    lines[3] = spoil(lines[3], price, "ten")
    lines[4] = lines[4].replace('{""plan; tier""', '{""plan; tier""::')
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    items = list(read_export(path))
    problems = [(i.line, i.reason) for i in items if isinstance(i, RowProblem)]
    assert problems == [
        (2, "column start_time: not a date and time"),
        (4, "column price_in_usd: not a number"),
        (5, "column custom_subscriber_attributes: not a JSON object"),
    ]
    assert [i.values["store_transaction_id"] for i in items if isinstance(i, ExportRow)] == [
        "t1", "t4",
    ]  # fmt: skip
    assert str(items[0]) == f"{path}, line 2: column start_time: not a date and time"


def test_a_row_with_too_few_fields_is_a_problem(tmp_path: Path) -> None:
    """A short row names how many fields it has against the header's."""
    text = csv_text([row("t1")])
    path = tmp_path / "short-row.csv"
    path.write_text(text + "a;b;c\n")
    problem = list(read_export(path))[-1]
    assert problem == RowProblem(str(path), 3, f"3 fields where the header has {len(COLUMNS)}")


def test_a_truncated_gzip_stream_raises_after_the_rows_before_it(tmp_path: Path) -> None:
    """The rows before the damage are yielded; then TruncatedExport names the file."""
    whole = gzip.compress(csv_text([row(f"t{i}") for i in range(3000)]).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    seen: list[ExportRow | RowProblem] = []
    with pytest.raises(TruncatedExport, match=r"cut\.csv\.gz ends early"):
        seen.extend(read_export(path))
    assert len(seen) > 100


def test_parquet_exports_are_read_with_native_types(tmp_path: Path) -> None:
    """A Parquet export (native booleans, timestamps, lists; JSON as text) reads the same."""
    values = row("t1")
    table = pa.table(
        {
            name: [
                datetime.fromtimestamp(values[name] / 1000, UTC)
                if name in ("start_time", "end_time", "effective_end_time", "updated_at")
                else json.dumps(values[name])
                if name.endswith("subscriber_attributes")
                else values.get(name)
            ]
            for name in COLUMNS
            if values.get(name) is not None
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    (parsed,) = rows_of(path)
    assert parsed.values["start_time"] == T0 and parsed.values["is_auto_renewable"] is True
    assert parsed.values["entitlement_identifiers"] == ["pro", "plus one"]
    assert parsed.values["reserved_subscriber_attributes"]["$clevertapId"]["value"] == "ct-u1"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    version=st.sampled_from([3, 4, 5, 6, 7]),
)
@example(value='{"a": [1]}; "x"', version=6)
@example(value='{"a": [1]}; "x"', version=4)
@example(value='back\\slash "quoted"\nnext line', version=5)
def test_any_attribute_text_round_trips_in_every_version(
    tmp_path: Path, value: str, version: int
) -> None:
    """Quotes, semicolons, backslashes, newlines and JSON-looking text in an attribute value
    come back exactly, whatever the version's quoting."""
    attributes = {"note": {"value": value, "updated_at_ms": T0}}
    rows = [row("t1", custom_subscriber_attributes=attributes)]
    path = write_export(tmp_path / f"h{version}.csv.gz", rows, version=version)
    (parsed,) = rows_of(path)
    assert parsed.values["custom_subscriber_attributes"] == attributes
