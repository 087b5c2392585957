"""CleverTap accounts and request authentication.

Every request carries ``X-CleverTap-Account-Id`` and ``X-CleverTap-Passcode``
(reference §1.2, DOC-AUTH).  A failure is HTTP 401 with CleverTap's body
``{"status": "fail", "error": "...", "code": 401}`` (reference §3.3).

Which of CleverTap's 401 messages answers which failure is UNCONFIRMED (§3.3); the mock picks:

- missing or unknown account id, or an account of another region  -> ``Account ID is not valid``
  (the one message recorded against the real API, RUBY cassette ``with_invalid_credentials``);
- known account, missing or wrong passcode                          -> ``Passcode Invalid``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from mockserver.clevertap.errors import CleverTapError

#: Regions and their API host prefixes (reference §1.1).  ``sk1`` is offered by Segment and
#: CleverTap's Go uploader but not listed by DOC-REG; the mock accepts it.
REGIONS: tuple[str, ...] = ("aps3", "eu1", "in1", "mec1", "sg1", "sk1", "us1")

ACCOUNT_ID_HEADER = "x-clevertap-account-id"
PASSCODE_HEADER = "x-clevertap-passcode"

MESSAGE_BAD_ACCOUNT = "Account ID is not valid"
MESSAGE_BAD_PASSCODE = "Passcode Invalid"


@dataclass(frozen=True)
class Account:
    """One CleverTap account (project) the mock knows.

    >>> Account("W9R-486-4W5Z", ("SECRET-PASS",), region="us1")
    Account(account_id='W9R-486-4W5Z', region='us1')

    Parameters:
        account_id: the ``X-CleverTap-Account-Id`` value.
        passcodes: one or more accepted passcodes (accounts may have several, DOC-UP).
        region: one of :data:`REGIONS`; checked against the Host header when it names one.
    """

    account_id: str
    passcodes: tuple[str, ...] = field(repr=False)
    region: str = "eu1"

    def __post_init__(self) -> None:
        if not isinstance(self.account_id, str) or not self.account_id.strip():
            raise ValueError("account_id must be a non-empty string")
        given: object = self.passcodes  # typed as a tuple, but callers may pass anything
        if isinstance(given, str):
            raise ValueError("passcodes must be a tuple of strings, not one string")
        passcodes = tuple(self.passcodes)
        if not passcodes or not all(isinstance(p, str) and p for p in passcodes):
            raise ValueError("passcodes must hold at least one non-empty string")
        object.__setattr__(self, "passcodes", passcodes)
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {self.region!r}")

    def accepts(self, passcode: str) -> bool:
        """True when ``passcode`` is one of the account's passcodes (constant-time compare)."""
        given = passcode.encode()
        matched = False
        for candidate in self.passcodes:
            matched |= hmac.compare_digest(given, candidate.encode())
        return matched


#: The account a mock without configuration serves.  The id has CleverTap's 3-3-4 shape
#: (NODE tests use ``W9R-486-4W5Z``); the passcode is plainly a test value.
DEFAULT_ACCOUNT = Account(account_id="TEST-RCC-MOCK", passcodes=("mock-passcode",), region="eu1")


def redact(secret: str) -> str:
    """A passcode shown safely: its first four characters and its length."""
    return f"{secret[:4]}…({len(secret)} chars)" if len(secret) > 8 else "…"


def region_of_host(host: str) -> str | None:
    """The region a Host header names, or None when it names none (localhost, an IP, ...).

    ``<region>.api.clevertap.com`` names that region; bare ``api.clevertap.com`` is Europe, the
    default region (reference §1.1, DOC-REG).
    """
    name = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
    if name == "api.clevertap.com":
        return "eu1"
    prefix, dot, rest = name.partition(".")
    if dot and rest == "api.clevertap.com":
        return prefix
    return None


class AccountBook:
    """The configured accounts, looked up by id, and the credential check."""

    def __init__(self, accounts: Sequence[Account]) -> None:
        if not accounts:
            raise ValueError("at least one account is required")
        self._by_id: dict[str, Account] = {}
        for account in accounts:
            if account.account_id in self._by_id:
                raise ValueError(f"account {account.account_id!r} is configured twice")
            self._by_id[account.account_id] = account

    def __iter__(self) -> Iterator[Account]:
        return iter(self._by_id.values())

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._by_id

    def get(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def authenticate(self, headers: Mapping[str, str], host: str = "") -> Account:
        """The account the request's headers name, or a 401 :class:`CleverTapError`.

        A Host naming a region refuses accounts of other regions: calling the wrong regional
        host shows up as a credentials failure (reference §1.1; secondary source, the message
        chosen is the recorded one).
        """
        account = self._by_id.get(headers.get(ACCOUNT_ID_HEADER, ""))
        if account is None:
            raise CleverTapError(401, MESSAGE_BAD_ACCOUNT)
        region = region_of_host(host) if host else None
        if region is not None and region != account.region:
            raise CleverTapError(401, MESSAGE_BAD_ACCOUNT)
        if not account.accepts(headers.get(PASSCODE_HEADER, "")):
            raise CleverTapError(401, MESSAGE_BAD_PASSCODE)
        return account
