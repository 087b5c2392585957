"""Accounts: validation, redaction of passcodes, regions from the Host header."""

from __future__ import annotations

import pytest

from mockserver.clevertap import DEFAULT_ACCOUNT, Account, CleverTapBackend
from mockserver.clevertap.accounts import region_of_host


def test_repr_hides_passcodes() -> None:
    """An account's repr shows its id and region, never a passcode."""
    account = Account("W9R-486-4W5Z", ("s3cret-passcode",), region="us1")
    assert "s3cret" not in repr(account)
    assert "W9R-486-4W5Z" in repr(account)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"account_id": "", "passcodes": ("p",)}, "account_id"),
        ({"account_id": "A", "passcodes": ()}, "passcodes"),
        ({"account_id": "A", "passcodes": ("",)}, "passcodes"),
        ({"account_id": "A", "passcodes": "one-string"}, "not one string"),
        ({"account_id": "A", "passcodes": ("p",), "region": "mars1"}, "region"),
    ],
)
def test_bad_account_is_a_value_error(kwargs: dict[str, object], message: str) -> None:
    """Each bad account field is a ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        Account(**kwargs)  # type: ignore[arg-type]


def test_passcodes_given_as_list_become_a_tuple() -> None:
    """Passcodes given as a list are kept as a tuple (the account stays hashable)."""
    account = Account("A", ["p1", "p2"])  # type: ignore[arg-type]
    assert account.passcodes == ("p1", "p2")
    assert account.accepts("p2") and not account.accepts("p3")


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("api.clevertap.com", "eu1"),
        ("in1.api.clevertap.com", "in1"),
        ("US1.api.clevertap.com:443", "us1"),
        ("127.0.0.1:8080", None),
        ("localhost", None),
        ("testserver", None),
    ],
)
def test_region_of_host(host: str, region: str | None) -> None:
    """A Host names a region only in CleverTap's <region>.api.clevertap.com form."""
    assert region_of_host(host) == region


def test_default_backend_serves_the_documented_default_account() -> None:
    """Without accounts the backend serves DEFAULT_ACCOUNT (TEST-RCC-MOCK, eu1)."""
    backend = CleverTapBackend()
    assert [a.account_id for a in backend.accounts] == [DEFAULT_ACCOUNT.account_id]
    assert DEFAULT_ACCOUNT.account_id == "TEST-RCC-MOCK"
    assert DEFAULT_ACCOUNT.region == "eu1"


def test_duplicate_account_ids_are_refused() -> None:
    """Two accounts with one id is a configuration error."""
    with pytest.raises(ValueError, match="twice"):
        CleverTapBackend(accounts=[Account("A", ("p",)), Account("A", ("q",))])


def test_non_positive_caps_are_refused() -> None:
    """A cap of zero is a ValueError naming the cap."""
    with pytest.raises(ValueError, match="journal_size"):
        CleverTapBackend(journal_size=0)


def test_describe_redacts_passcodes_unless_asked() -> None:
    """describe() shows accounts and limits with passcodes redacted, or revealed on request."""
    backend = CleverTapBackend(accounts=[Account("W9R-486-4W5Z", ("s3cret-passcode",), "in1")])
    shown = backend.describe()
    assert "s3cret-passcode" not in repr(shown)
    assert shown["accounts"][0]["region"] == "in1"
    assert shown["max_concurrent_uploads"] == 15 and shown["max_records_per_upload"] == 1000
    revealed = backend.describe(reveal_passcodes=True)
    assert revealed["accounts"][0]["passcodes"] == ["s3cret-passcode"]
