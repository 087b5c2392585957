"""Whatever arrives, the mock answers as CleverTap does: never a crash, never a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver.clevertap import Account, CleverTapBackend, CleverTapError
from tests.mockserver.clevertap.conftest import ACCOUNT_ID, HEADERS, PASSCODE

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
KEYS = [
    "type",
    "identity",
    "objectId",
    "FBID",
    "GPID",
    "ts",
    "evtName",
    "evtData",
    "profileData",
    "tokenData",
]
TYPES = st.sampled_from(["event", "profile", "token", "other"])
records = (
    st.fixed_dictionaries(
        {"type": TYPES},
        optional={key: json_values for key in KEYS[1:]}
        | {
            "profileData": st.dictionaries(
                st.sampled_from(["Email", "Phone", "Age", "Tags", "Gender", "x"]), json_values
            )
        },
    )
    | json_values
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, max_size=5))
def test_any_records_get_a_clevertap_answer(batch: list[Any]) -> None:
    """Arbitrary records give a success/partial/fail answer, each refusal with a known code."""
    backend = CleverTapBackend(accounts=[Account(ACCOUNT_ID, (PASSCODE,))])
    answer = backend.upload(ACCOUNT_ID, batch)
    assert answer["status"] in ("success", "partial", "fail")
    assert answer["processed"] + len(answer["unprocessed"]) == len(batch)
    assert all(509 <= u["code"] <= 535 for u in answer["unprocessed"])
    json.dumps(answer)
    backend.profiles(ACCOUNT_ID)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_body_parses_or_is_a_400(body: bytes) -> None:
    """Any body either parses to a list of records or is a 400 CleverTapError."""
    backend = CleverTapBackend()
    try:
        assert isinstance(backend.parse_upload(body), list)
    except CleverTapError as exc:
        assert exc.status == 400


def test_deeply_nested_body_is_malformed() -> None:
    """A body nested beyond the parser's depth is Malformed request, not a crash."""
    backend = CleverTapBackend()
    body = b'{"d": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    try:
        backend.parse_upload(body)
    except CleverTapError as exc:
        assert (exc.status, exc.message) == (400, "Malformed request")
    else:
        raise AssertionError("a 100,000-deep body was accepted")


async def test_hostile_bodies_over_http_never_500(client: httpx.AsyncClient) -> None:
    """Truncated, wrongly typed and odd bodies get 4xx or 200 answers, never 5xx."""
    bodies = [
        b"",
        b"null",
        b'{"d": null}',
        b'{"d": [null, 1, "x", [], {}]}',
        b'{"d": [{"type": "event", "identity": "u", "evtName": "E", "evtData": {"a": NaN}}]}',
        b"\xff\xfe",
        json.dumps(
            {"d": [{"type": "profile", "identity": "ü", "profileData": {"Email": "é@x.io"}}]}
        ).encode(),
        b'{"d": [{"type": "event", "identity": "u", "ts": 1e400, "evtName": "E", "evtData": {}}]}',
    ]
    for body in bodies:
        response = await client.post("/1/upload", headers=HEADERS, content=body)
        assert response.status_code < 500, body
        assert response.json()["status"] in ("success", "partial", "fail")


async def test_hostile_read_queries_never_500(client: httpx.AsyncClient) -> None:
    """Odd read parameters get 4xx answers, never 5xx."""
    requests = [
        ("GET", "/1/events.json", {"query": "{"}),
        ("GET", "/1/events.json", {"query": '{"event_name": 1}', "batch_size": "-1"}),
        ("GET", "/1/events.json", {"batch_size": "10"}),
        ("GET", "/1/counts/events.json", {"req_id": "99999999999999999999"}),
        ("GET", "/1/counts/events.json", {"req_id": "abc"}),
        ("GET", "/1/profile.json", {"identity": "a", "email": "b"}),
        ("POST", "/1/delete/profiles.json", {}),
    ]
    for method, path, params in requests:
        response = await client.request(method, path, params=params, headers=HEADERS)
        assert 400 <= response.status_code < 500, (path, params)
