"""PostgreSQL connection strings: the password never shows, bad settings fail clearly.

These tests need no database and always run.
"""

from __future__ import annotations

import pytest

from integration.outbox._pg_conninfo import password_of, pop_schema, redact, scrub
from integration.outbox.postgres import PostgresOutbox, PostgresOutboxError

SECRET = "s3cr3t-Pw"
URL = f"postgresql://forwarder:{SECRET}@db.internal:5432/rc"


def test_redact_masks_the_password_in_a_url() -> None:
    """The user-info password of a URL is replaced by ***, the rest kept."""
    assert redact(URL) == "postgresql://forwarder:***@db.internal:5432/rc"


def test_redact_masks_a_password_query_parameter() -> None:
    """A ``password`` query parameter is masked and other parameters are kept."""
    redacted = redact(f"postgresql://db/rc?sslmode=require&password={SECRET}")
    assert SECRET not in redacted
    assert "sslmode=require" in redacted
    assert "password=***" in redacted


def test_redact_masks_a_key_value_password() -> None:
    """A libpq key/value string has its password masked, quoted or not."""
    assert redact(f"host=db password={SECRET} dbname=rc") == "host=db password=*** dbname=rc"
    assert SECRET not in redact(f"host=db password = '{SECRET} x' dbname=rc")


def test_redact_leaves_a_url_without_password_alone() -> None:
    """A URL without a password comes back unchanged."""
    url = "postgresql://postgres@127.0.0.1:5432/test"
    assert redact(url) == url


def test_password_of_reads_url_and_query_passwords() -> None:
    """The password is found in the user-info part or in a query parameter."""
    assert password_of(URL) == SECRET
    assert password_of(f"postgresql://db/rc?password={SECRET}") == SECRET
    assert password_of("postgresql://db/rc") is None


def test_scrub_masks_raw_and_quoted_forms() -> None:
    """Both the raw and the percent-encoded form of a password are scrubbed from text."""
    password = "p@ss word"
    text = "failed for p@ss word and p%40ss%20word"
    assert scrub(text, password) == "failed for *** and ***"


def test_pop_schema_takes_only_the_schema_parameter() -> None:
    """The ``schema`` parameter is taken off a URL and the other parameters are kept."""
    url, schema = pop_schema("postgresql://db/rc?sslmode=require&schema=fwd")
    assert (url, schema) == ("postgresql://db/rc?sslmode=require", "fwd")
    assert pop_schema("postgresql://db/rc") == ("postgresql://db/rc", None)


def test_schema_comes_from_the_url_unless_given() -> None:
    """The URL's schema parameter is used by default and an explicit schema wins over it."""
    assert PostgresOutbox(URL).schema == "rc_clevertap"
    assert PostgresOutbox(URL + "?schema=fwd").schema == "fwd"
    assert PostgresOutbox(URL + "?schema=fwd", schema="other").schema == "other"


def test_repr_hides_the_password() -> None:
    """The outbox's repr names the database without its password."""
    outbox = PostgresOutbox(URL)
    assert SECRET not in repr(outbox)
    assert "forwarder:***@db.internal" in repr(outbox)


def test_invalid_url_error_hides_the_password() -> None:
    """A URL libpq cannot parse is refused with a message that does not repeat the password."""
    with pytest.raises(PostgresOutboxError) as info:
        PostgresOutbox(f"postgresql://forwarder:{SECRET}@db/rc?no_such_option=1")
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("schema", ["", "Upper", "1st", "a-b", "x" * 64, 'q"uote'])
def test_bad_schema_names_are_refused(schema: str) -> None:
    """A schema name that is not a plain lower-case identifier is refused up front."""
    with pytest.raises(PostgresOutboxError, match="schema"):
        PostgresOutbox(URL, schema=schema)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("min_size", 0),
        ("max_size", 0),
        ("quarantine_cap", 0),
        ("group_commit_max", 0),
        ("connect_timeout", 0.0),
    ],
)
def test_bad_sizes_are_refused(option: str, value: int) -> None:
    """Pool sizes, the quarantine cap, the group size and the time-out must be positive."""
    with pytest.raises(PostgresOutboxError):
        PostgresOutbox(URL, **{option: value})  # type: ignore[arg-type]


async def test_connection_failure_hides_the_password() -> None:
    """A database that cannot be reached gives a clear error without the password."""
    outbox = PostgresOutbox(f"postgresql://forwarder:{SECRET}@127.0.0.1:1/rc", connect_timeout=2.0)
    with pytest.raises(PostgresOutboxError) as info:
        await outbox.open()
    message = str(info.value)
    assert SECRET not in message
    assert "forwarder:***@127.0.0.1:1/rc" in message
    await outbox.close()


async def test_calls_before_open_are_refused() -> None:
    """Using the outbox before open() is a clear error, not a driver crash."""
    outbox = PostgresOutbox(URL)
    with pytest.raises(PostgresOutboxError, match="not open"):
        await outbox.enqueue("e1", "PRODUCTION", b"{}", now=0.0)
