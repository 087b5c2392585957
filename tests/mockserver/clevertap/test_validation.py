"""Per-record rejections through HTTP: each with CleverTap's code and message (reference §3.1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mockserver.app import create_app
from mockserver.clevertap import Account, CleverTapBackend, Limits
from mockserver.clevertap.validation import MESSAGES
from tests.mockserver.clevertap.conftest import ACCOUNT_ID, HEADERS, PASSCODE, event, profile

TOKEN = {"type": "token", "objectId": "abc123", "tokenData": {"id": "tok-1", "type": "fcm"}}

CASES: list[tuple[str, Any, int]] = [
    ("not an object", "just a string", 524),
    ("unknown type", {**event(), "type": "purchase"}, 524),
    ("no type", {k: v for k, v in event().items() if k != "type"}, 524),
    ("no identifier", {"type": "event", "evtName": "X", "evtData": {}}, 523),
    ("empty identity", event(""), 523),
    ("float identity", {**event(), "identity": 1.5}, 523),
    (
        "malformed objectId",
        {"type": "event", "objectId": "has space", "evtName": "X", "evtData": {}},
        526,
    ),
    (
        "objectId too long",
        {"type": "event", "objectId": "a" * 65, "evtName": "X", "evtData": {}},
        526,
    ),
    ("ts zero", event(ts=0), 525),
    ("ts negative", event(ts=-5), 525),
    ("ts string", event(ts="1700000000"), 525),
    ("ts ISO string", event(ts="2023-11-14T22:13:20Z"), 525),
    ("ts float", event(ts=1700000000.5), 525),
    ("ts milliseconds", event(ts=1_700_000_000_000), 525),
    ("ts null", event(ts=None), 525),
    ("no evtName", {"type": "event", "identity": "u1", "evtData": {}}, 509),
    ("blank evtName", event(name="  "), 509),
    ("restricted App Launched", event(name="App Launched"), 513),
    ("restricted Web Page Viewed", event(name="Web Page Viewed"), 513),
    ("no evtData", {"type": "event", "identity": "u1", "evtName": "X"}, 512),
    ("evtData a list", event(evtData=[1]), 512),
    ("nested property", event(evtData={"a": {"b": 1}}), 512),
    ("property key of 121", event(evtData={"k" * 121: 1}), 512),
    ("value over 512 bytes", event(evtData={"k": "é" * 257}), 512),
    ("Items outside Charged", event(evtData={"Items": [{"a": 1}]}), 512),
    ("Charged Items nested", event(name="Charged", evtData={"Items": [{"a": {"b": 1}}]}), 512),
    ("101 properties", event(evtData={f"p{i}": i for i in range(101)}), 522),
    ("no profileData", {"type": "profile", "identity": "u1"}, 512),
    ("Gender", profile(Gender="Male"), 514),
    ("Email", profile(Email="not-an-email"), 515),
    ("Phone without +", profile(Phone="223"), 516),
    ("Phone with two +", profile(Phone="+44+441234"), 516),
    ("Employed", profile(Employed="yes"), 517),
    ("Education", profile(Education="PhD"), 518),
    ("Married", profile(Married="maybe"), 519),
    ("Age", profile(Age="aa"), 520),
    ("profile operator unknown", profile(Plan={"$push": ["a"]}), 512),
    ("$incr of a string", profile(Count={"$incr": "1"}), 512),
    ("multi-value of numbers", profile(Tags=[1, 2]), 512),
    ("257 profile keys", profile(**{f"k{i}": i for i in range(257)}), 522),
    # Profile keys are limited to 120 UTF-8 bytes (DOC-UP): 41 three-byte characters are 123.
    ("profile key of 123 bytes", profile(**{"€" * 41: "x"}), 512),
    ("token without objectId", {**TOKEN, "objectId": None}, 530),
    ("token data missing", {k: v for k, v in TOKEN.items() if k != "tokenData"}, 531),
    ("token id missing", {**TOKEN, "tokenData": {"type": "fcm"}}, 532),
    ("token type missing", {**TOKEN, "tokenData": {"id": "t"}}, 533),
    ("token type unknown", {**TOKEN, "tokenData": {"id": "t", "type": "pigeon"}}, 534),
    (
        "token keys not an object",
        {**TOKEN, "tokenData": {"id": "t", "type": "chrome", "keys": 1}},
        535,
    ),
]


@pytest.mark.parametrize(("record", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_invalid_record_is_refused_with_its_code(
    client: httpx.AsyncClient, backend: CleverTapBackend, record: Any, code: int
) -> None:
    """An invalid record comes back in unprocessed with CleverTap's code, message and echo."""
    response = await client.post("/1/upload", headers=HEADERS, json={"d": [event("ok"), record]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "partial"
    assert body["processed"] == 1
    assert body["unprocessed"] == [
        {
            "status": "fail",
            "code": code,
            "error": f"{MESSAGES[code]}Skipped record number : 2",
            "record": record,
        }
    ]
    assert len(backend.events(ACCOUNT_ID)) == 1


async def test_recorded_messages_are_reproduced_verbatim(client: httpx.AsyncClient) -> None:
    """509, 513, 515 and 525 read exactly as CleverTap's recorded answers (reference §3.1)."""
    records = [
        {"type": "event", "identity": "u", "evtData": {}},
        event(name="Web Page Viewed"),
        profile(Email="bad"),
        event(ts=0),
    ]
    response = await client.post("/1/upload", headers=HEADERS, json={"d": records})
    errors = [u["error"] for u in response.json()["unprocessed"]]
    assert errors == [
        "Event Name is incorrect. ErrorCode: 509 - Event name is mandatory. "
        "Skipped record number : 1",
        "Event Name is incorrect. ErrorCode: 513 - Trying to raise a restricted system event. "
        "Skipped record number : 2",
        "Profile data is incorrect. Email is not valid.Skipped record number : 3",
        "Timestamp should be present in the Unix Epoch format. Skipped record number : 4",
    ]


async def test_all_records_failing_is_http_200_status_fail(client: httpx.AsyncClient) -> None:
    """A batch where every record fails still answers HTTP 200, status fail (RUBY cassettes)."""
    response = await client.post("/1/upload", headers=HEADERS, json={"d": [event(ts=0)] * 2})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["processed"], len(body["unprocessed"])) == ("fail", 0, 2)


async def test_valid_shapes_are_accepted(client: httpx.AsyncClient) -> None:
    """Standard fields, Charged Items, dates, operators and tokens in their valid forms pass."""
    records = [
        profile(
            Email="ann@example.com",
            Phone="+14155551234",
            Gender="F",
            Employed="Y",
            Education="Graduate",
            Married="N",
            Age="18",
            DOB="$D_1487576752",
            Tags=["a", "b"],
            Visits={"$incr": 1},
        ),
        event(name="Charged", evtData={"Amount": 300, "Items": [{"Category": "books"}]}),
        event(evtData={"k" * 120: "x" * 512}),
        # Event keys count characters (DOC-UE), profile keys bytes (DOC-UP): both fit here.
        event(evtData={"€" * 120: 1}),
        profile(**{"€" * 40: "x"}),
        {
            "type": "event",
            "objectId": "-2ce3cca260664f70b82b1c6bb505f462",
            "evtName": "X",
            "evtData": {},
        },
        {"type": "event", "FBID": "34322423", "evtName": "X", "evtData": {}},
        {"type": "event", "GPID": 1234, "evtName": "X", "evtData": {}},
        {"type": "event", "identity": 13, "evtName": "X", "evtData": {}},
        {**TOKEN, "tokenData": {"id": "t", "type": "chrome", "keys": {"p256dh": "x", "auth": "y"}}},
    ]
    response = await client.post("/1/upload", headers=HEADERS, json={"d": records})
    assert response.json() == {"status": "success", "processed": len(records), "unprocessed": []}


async def upload_with(limits: Limits, *batches: list[Any]) -> list[dict[str, Any]]:
    """Send each batch over HTTP to a fresh mock with ``limits``; the answers."""
    backend = CleverTapBackend(accounts=[Account(ACCOUNT_ID, (PASSCODE,))], limits=limits)
    transport = httpx.ASGITransport(app=create_app(clevertap_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return [
            (await http.post("/1/upload", headers=HEADERS, json={"d": b})).json() for b in batches
        ]


async def test_properties_per_event_type_accumulate_to_522() -> None:
    """The property limit counts distinct properties across all events of one type (DOC-UE)."""
    first, second, third = await upload_with(
        Limits(max_event_properties=3),
        [event(evtData={"a": 1, "b": 2})],
        [event(evtData={"c": 1, "d": 2})],
        [event(evtData={"a": 1, "c": 3})],
    )
    assert first["status"] == "success"
    assert second["unprocessed"][0]["code"] == 522
    assert second["unprocessed"][0]["error"] == (
        "Event properties limit exceeded. Skipped record number : 1"
    )
    assert third["status"] == "success"


async def test_distinct_event_names_beyond_the_limit_are_refused() -> None:
    """Past max_event_names distinct names per account a new name is refused (code 512)."""
    first, second = await upload_with(
        Limits(max_event_names=2),
        [event(name="A"), event(name="B"), event(name="C")],
        [event(name="A")],
    )
    assert [u["code"] for u in first["unprocessed"]] == [512]
    assert first["unprocessed"][0]["error"] == "Invalid event structure. Skipped record number : 3"
    assert second["status"] == "success"


async def test_discarded_event_gets_528() -> None:
    """An event name discarded in the dashboard is refused with 528."""
    (answer,) = await upload_with(
        Limits(discarded_event_names=frozenset({"Old Event"})), [event(name="Old Event")]
    )
    assert answer["unprocessed"][0]["code"] == 528
    assert answer["unprocessed"][0]["error"] == (
        "Discarded event is raised. Skipped record number : 1"
    )


async def test_milliseconds_ts_can_be_converted() -> None:
    """With milliseconds_ts="convert", a millisecond ts is stored in seconds."""
    backend = CleverTapBackend(
        accounts=[Account(ACCOUNT_ID, (PASSCODE,))], limits=Limits(milliseconds_ts="convert")
    )
    backend.upload(ACCOUNT_ID, [event(ts=1_700_000_000_123)])
    assert backend.events(ACCOUNT_ID)[0]["ts"] == 1_700_000_000
