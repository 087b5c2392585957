"""Reading the app-user-id to CleverTap-ID mapping from CSV and JSON lines."""

from __future__ import annotations

import io

import pytest

from client import IdentityFileError, IdentityPair, read_identities


def test_csv_columns_are_found_by_name_and_rows_keep_their_line() -> None:
    """Columns may come in any order among others; each pair carries its file line."""
    text = "email,clevertap_id,app_user_id\na@x,ct-1,u1\n\nb@x, ct-2 ,u2\n"
    assert list(read_identities(io.StringIO(text))) == [
        IdentityPair("u1", "ct-1", 2),
        IdentityPair("u2", "ct-2", 4),
    ]


def test_missing_columns_are_refused_before_any_row_naming_them() -> None:
    """A header without the id columns raises at once, naming both."""
    with pytest.raises(IdentityFileError, match="'app_user_id', 'clevertap_id' columns"):
        read_identities(io.StringIO("user,ct\nu1,ct-1\n"))


def test_column_names_are_configurable() -> None:
    """--user-column/--id-column: other names for the two columns."""
    rows = read_identities(io.StringIO("uid,ctid\nu1,ct-1\n"), user_column="uid", id_column="ctid")
    assert list(rows) == [IdentityPair("u1", "ct-1", 2)]


def test_a_short_csv_row_is_reported_by_line_and_skipped() -> None:
    """A row with too few fields goes to on_problem with its line; the next one is read."""
    problems: list[tuple[int, str]] = []
    text = "app_user_id,clevertap_id\nu1\nu2,ct-2\n"
    rows = list(read_identities(io.StringIO(text), on_problem=lambda n, r: problems.append((n, r))))
    assert rows == [IdentityPair("u2", "ct-2", 3)]
    assert [n for n, _ in problems] == [2]


def test_json_lines_report_unreadable_lines_by_number() -> None:
    """Bad JSON, a non-object and a number for an id are reported; good lines are kept."""
    text = (
        '{"app_user_id": "u1", "clevertap_id": "ct-1"}\n'
        "not json\n"
        "[1, 2]\n"
        '{"app_user_id": "u4", "clevertap_id": 4}\n'
        "\n"
        '{"app_user_id": "u6", "clevertap_id": "ct-6", "extra": true}\n'
    )
    problems: list[tuple[int, str]] = []
    rows = list(read_identities(io.StringIO(text), on_problem=lambda n, r: problems.append((n, r))))
    assert rows == [IdentityPair("u1", "ct-1", 1), IdentityPair("u6", "ct-6", 6)]
    assert [n for n, _ in problems] == [2, 3, 4]
    assert "'clevertap_id' is not a string (int)" in problems[2][1]


def test_json_lines_without_the_columns_are_refused() -> None:
    """The first object decides: without the id fields the file is refused, naming them."""
    with pytest.raises(IdentityFileError, match="'clevertap_id' column"):
        read_identities(io.StringIO('{"app_user_id": "u1", "ct": "x"}\n'))


def test_an_empty_file_is_refused() -> None:
    """A mapping with no lines at all is an error, not a run that sets nobody."""
    with pytest.raises(IdentityFileError, match="empty"):
        read_identities(io.StringIO("\n\n"))
