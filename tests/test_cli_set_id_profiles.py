"""The --from-clevertap reader: CleverTap's Get User Profiles cursor flow, record by record."""

from __future__ import annotations

import json

import httpx
import pytest

from client import IdentityPair
from integration.app.profiles import CleverTapReadError, clevertap_identities

QUERY = {"event_name": "Signed In", "from": 20260101, "to": 20261231}


def _record(identity: str, object_id: str | None) -> dict[str, object]:
    platforms = [] if object_id is None else [{"objectId": object_id, "platform": "iOS"}]
    return {"identity": identity, "platformInfo": platforms, "profileData": {}}


def _client(pages: list[dict[str, object]], seen: list[httpx.Request]) -> httpx.Client:
    """A CleverTap that opens a cursor, then serves ``pages`` one cursor after another."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200, json={"status": "success", "cursor": "c0"})
        index = int(request.url.params["cursor"][1:])
        page = {"status": "success", **pages[index]}
        if index + 1 < len(pages):
            page["next_cursor"] = f"c{index + 1}"
        return httpx.Response(200, json=page)

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://ct")


def test_every_page_is_read_and_each_identity_maps_to_its_object_id() -> None:
    """Two pages: the query opens the cursor, next_cursor is followed until it is absent."""
    seen: list[httpx.Request] = []
    pages = [{"records": [_record("u1", "ct-1")]}, {"records": [_record("u2", "ct-2")]}]
    with _client(pages, seen) as http:
        pairs = list(clevertap_identities(http, account_id="A", passcode="p", query=QUERY))
    assert pairs == [IdentityPair("u1", "ct-1", 1), IdentityPair("u2", "ct-2", 2)]
    assert json.loads(seen[0].content) == QUERY
    assert seen[0].headers["X-CleverTap-Account-Id"] == "A"
    assert [r.method for r in seen] == ["POST", "GET", "GET"]


def test_a_profile_without_identity_or_clevertap_id_is_reported_and_skipped() -> None:
    """Records that cannot be mapped go to on_problem with their place in the results."""
    problems: list[tuple[int, str]] = []
    pages = [{"records": [_record("", "ct-0"), _record("u1", None), _record("u2", "ct-2")]}]
    with _client(pages, []) as http:
        pairs = list(
            clevertap_identities(
                http,
                account_id="A",
                passcode="p",
                query=QUERY,
                on_problem=lambda n, r: problems.append((n, r)),
            )
        )
    assert pairs == [IdentityPair("u2", "ct-2", 3)]
    assert [n for n, _ in problems] == [1, 2]
    assert "no identity" in problems[0][1] and "objectId" in problems[1][1]


def test_a_refused_read_is_one_error_naming_the_reason_not_the_passcode() -> None:
    """A fail body (say, a wrong passcode) raises CleverTapReadError with CleverTap's reason."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"status": "fail", "error": "Invalid Credentials"})

    with (
        httpx.Client(transport=httpx.MockTransport(handle), base_url="http://ct") as http,
        pytest.raises(CleverTapReadError) as info,
    ):
        list(clevertap_identities(http, account_id="A", passcode="secret-pc", query=QUERY))
    assert "Invalid Credentials" in str(info.value) and "secret-pc" not in str(info.value)
