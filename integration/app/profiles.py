"""The app-user-id to CleverTap-ID mapping, read from CleverTap's own profiles.

For ``rc-clevertap set-id --from-clevertap``: where the app sets the RevenueCat app user id
as the CleverTap ``identity`` (``onUserLogin({"Identity": app_user_id})``), CleverTap already
holds the mapping.  Get User Profiles (clevertap.md §4) finds the profiles that did an event
in a date range: ``POST /1/profiles.json?batch_size=N`` with the query opens a cursor, then
``GET /1/profiles.json?cursor=`` pages until no ``next_cursor`` comes back.

From each record: the ``identity`` is the app user id, and the CleverTap ID is the
``objectId`` of its first ``platformInfo`` entry.  The record shape is UNCONFIRMED
(clevertap.md open question 12); a record without either is reported and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from client import IdentityPair

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_PAGES", "CleverTapReadError", "clevertap_identities"]

DEFAULT_BATCH_SIZE = 4991  # CleverTap allows 5000 and asks for a multiple of 23 (DOC-GP)
#: Pages followed before giving up on a cursor that never ends (25 million profiles).
MAX_PAGES = 5000


class CleverTapReadError(Exception):
    """CleverTap refused the read or answered something unreadable (one line, no passcode)."""


def clevertap_identities(
    http: httpx.Client,
    *,
    account_id: str,
    passcode: str,
    query: Mapping[str, Any],
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_problem: Callable[[int, str], None] | None = None,
) -> Iterator[IdentityPair]:
    """Every profile the query matches, as a pair numbered by its place in the results.

    ``http`` has the API's base URL (``https://<region>.api.clevertap.com``, or the mock).
    """
    headers = {"X-CleverTap-Account-Id": account_id, "X-CleverTap-Passcode": passcode}
    report = on_problem or (lambda number, reason: None)
    opened = _answer(
        http.post(
            "/1/profiles.json", params={"batch_size": batch_size}, json=dict(query), headers=headers
        )
    )
    cursor = opened.get("cursor")
    number = 0
    for _ in range(MAX_PAGES):
        if not isinstance(cursor, str) or not cursor:
            return
        page = _answer(http.get("/1/profiles.json", params={"cursor": cursor}, headers=headers))
        records = page.get("records")
        if not isinstance(records, list):
            raise CleverTapReadError("CleverTap's profiles page has no records list")
        for record in records:
            number += 1
            pair = _pair(number, record)
            if isinstance(pair, str):
                report(number, pair)
            else:
                yield pair
        cursor = page.get("next_cursor")
    raise CleverTapReadError(f"gave up after {MAX_PAGES} pages of profiles")


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CleverTapReadError(f"CleverTap answered HTTP {response.status_code} without JSON")
    if response.status_code != 200 or body.get("status") != "success":
        error = body.get("error") or body.get("status") or "no reason given"
        raise CleverTapReadError(
            f"CleverTap refused the profiles read: HTTP {response.status_code}: {error}"
        )
    return body


def _pair(number: int, record: object) -> IdentityPair | str:
    """The pair in one profile record, or why there is none."""
    if not isinstance(record, dict):
        return "profile record is not an object"
    identity = record.get("identity")
    if not isinstance(identity, str) or not identity.strip():
        return "profile has no identity (the app did not log the user in with it)"
    platforms = record.get("platformInfo")
    first = platforms[0] if isinstance(platforms, list) and platforms else None
    object_id = first.get("objectId") if isinstance(first, dict) else None
    if not isinstance(object_id, str) or not object_id:
        return f"profile {identity!r} has no platformInfo objectId (CleverTap ID)"
    return IdentityPair(identity, object_id, number)
