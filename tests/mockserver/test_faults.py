"""Fault injection: rules, determinism, expiry, each kind through HTTP, presets and control."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mockserver.app import create_app
from mockserver.clevertap import Account, CleverTapBackend
from mockserver.faults import (
    LIES,
    PRESETS,
    ConnectionDropped,
    FaultInjector,
    FaultMiddleware,
    FaultRule,
    error_body,
)
from mockserver.serving import BackgroundServer

ACCOUNT_ID = "W9R-486-4W5Z"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT_ID, "X-CleverTap-Passcode": "pass"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def batch(count: int = 1) -> dict[str, Any]:
    return {
        "d": [
            {"type": "event", "identity": f"u{i}", "evtName": "E", "evtData": {}}
            for i in range(count)
        ]
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def injector(clock: FakeClock, sleep: FakeSleep) -> FaultInjector:
    return FaultInjector(seed=42, clock=clock, sleep=sleep)


@pytest.fixture
def backend() -> CleverTapBackend:
    return CleverTapBackend(accounts=[Account(ACCOUNT_ID, ("pass",))])


@pytest.fixture
async def client(
    backend: CleverTapBackend, injector: FaultInjector
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(clevertap_backend=backend, faults=injector)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def upload(client: httpx.AsyncClient, count: int = 1) -> httpx.Response:
    return await client.post("/1/upload", headers=HEADERS, json=batch(count))


def fired_pattern(seed: int, rule: FaultRule, requests: int = 200) -> list[bool]:
    injector = FaultInjector(seed=seed, rules=[rule])
    return [injector.decide("POST", "/1/upload").rule is not None for _ in range(requests)]


def test_same_seed_same_faults() -> None:
    """Two injectors with one seed fire on exactly the same requests."""
    rule = FaultRule("error", route="/1/upload", probability=0.3)
    assert fired_pattern(7, rule) == fired_pattern(7, rule)


def test_other_seed_other_faults() -> None:
    """Another seed fires on other requests, at about the rule's probability."""
    rule = FaultRule("error", route="/1/upload", probability=0.3)
    first, second = fired_pattern(7, rule), fired_pattern(8, rule)
    assert first != second
    assert 30 < sum(first) < 90


def test_reseed_replays_the_sequence() -> None:
    """reseed(seed) restarts the draws, so the same requests fault again."""
    injector = FaultInjector(seed=3, rules=[FaultRule("drop", probability=0.5)])
    before = [injector.decide("GET", "/1/x").rule is not None for _ in range(50)]
    injector.reseed(3)
    after = [injector.decide("GET", "/1/x").rule is not None for _ in range(50)]
    assert before == after


def test_bursts_fire_in_runs() -> None:
    """A rate_limit rule with burst=4 fires on at least 4 matching requests in a row."""
    rule = FaultRule("rate_limit", probability=0.1, burst=4)
    pattern = fired_pattern(11, rule, requests=400)
    runs = "".join("x" if hit else "." for hit in pattern).split(".")
    lengths = [len(r) for r in runs if r]
    assert lengths and all(length >= 4 for length in lengths[:-1])


async def test_rule_expires_after_count(client: httpx.AsyncClient, injector: FaultInjector) -> None:
    """A rule with count=2 answers 503 twice, then requests pass."""
    injector.add(FaultRule("error", route="/1/upload", status=503, count=2))
    statuses = [(await upload(client)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert injector.rules() == []


async def test_rule_expires_after_ttl(
    client: httpx.AsyncClient, injector: FaultInjector, clock: FakeClock
) -> None:
    """A rule with ttl=10 faults until 10 s of the injector's clock have passed."""
    injector.add(FaultRule("error", route="/1/*", ttl=10.0))
    clock.now += 9.9
    assert (await upload(client)).status_code == 503
    clock.now += 0.1
    assert (await upload(client)).status_code == 200


async def test_error_answers_clevertaps_body(
    client: httpx.AsyncClient, injector: FaultInjector
) -> None:
    """An error rule on CleverTap's routes answers CleverTap's fail body with its status."""
    injector.add(FaultRule("error", status=503))
    response = await upload(client)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json;charset=utf-8"
    assert response.json() == {
        "status": "fail",
        "error": "Service Unavailable. Please retry later.",
        "code": 503,
    }


async def test_rate_limit_answers_429_too_many_concurrent(
    client: httpx.AsyncClient, injector: FaultInjector, backend: CleverTapBackend
) -> None:
    """A rate_limit rule answers CleverTap's 429 and nothing is stored."""
    injector.add(FaultRule("rate_limit", count=1))
    response = await upload(client)
    assert (response.status_code, response.json()["error"]) == (429, "Too many concurrent requests")
    assert backend.events(ACCOUNT_ID) == []


async def test_latency_rules_stack_and_request_is_served(
    client: httpx.AsyncClient, injector: FaultInjector, sleep: FakeSleep
) -> None:
    """Matching latency rules all sleep (injected), then the request is served."""
    injector.add(FaultRule("latency", latency=0.2))
    injector.add(FaultRule("latency", latency=0.3))
    response = await upload(client)
    assert response.status_code == 200
    assert sleep.slept == [0.5]


async def test_timeout_sleeps_past_the_client_then_processes(
    client: httpx.AsyncClient, injector: FaultInjector, sleep: FakeSleep, backend: CleverTapBackend
) -> None:
    """A timeout rule sleeps 120 s by default and the request is still processed."""
    injector.add(FaultRule("timeout", count=1))
    response = await upload(client)
    assert sleep.slept == [120.0]
    assert response.status_code == 200
    assert len(backend.events(ACCOUNT_ID)) == 1


async def test_client_timeout_fires_on_a_slow_response(backend: CleverTapBackend) -> None:
    """Over a socket, a client whose timeout is shorter than the fault's delay times out."""
    release = asyncio.Event()

    async def held(seconds: float) -> None:
        await release.wait()  # stands for the 120 s; released once the client gave up

    injector = FaultInjector(sleep=held, rules=[FaultRule("timeout")])
    server = BackgroundServer(create_app(clevertap_backend=backend, faults=injector))
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=0.05) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/1/upload", headers=HEADERS, json=batch())
    finally:
        release.set()
        await server.stop()


async def test_timeout_reads_the_request_before_stalling(backend: CleverTapBackend) -> None:
    """A client leaving during the stall does not stop the server processing the batch."""
    client_left = False

    async def stall(seconds: float) -> None:
        nonlocal client_left
        client_left = True

    body = json.dumps(batch()).encode()

    async def receive() -> dict[str, Any]:
        if client_left:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    injector = FaultInjector(sleep=stall, rules=[FaultRule("timeout")])
    app = create_app(clevertap_backend=backend, faults=injector)
    headers = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/1/upload",
        "raw_path": b"/1/upload",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert client_left
    assert len(backend.events(ACCOUNT_ID)) == 1


async def test_drop_is_a_transport_error_in_process(
    client: httpx.AsyncClient, injector: FaultInjector, backend: CleverTapBackend
) -> None:
    """In process a dropped connection raises httpx.TransportError and nothing is stored."""
    injector.add(FaultRule("drop", count=1))
    with pytest.raises(httpx.TransportError) as raised:
        await upload(client)
    assert isinstance(raised.value, ConnectionDropped)
    assert backend.events(ACCOUNT_ID) == []


async def test_drop_after_processing_stores_but_loses_the_answer(
    client: httpx.AsyncClient, injector: FaultInjector, backend: CleverTapBackend
) -> None:
    """drop with after=True processes the batch, then drops: the sender cannot know."""
    injector.add(FaultRule("drop", after=True, count=1))
    with pytest.raises(httpx.RemoteProtocolError):
        await upload(client)
    assert len(backend.events(ACCOUNT_ID)) == 1


async def test_drop_under_uvicorn_is_a_remote_protocol_error(backend: CleverTapBackend) -> None:
    """Over a real socket a dropped connection reaches httpx as RemoteProtocolError."""
    injector = FaultInjector(rules=[FaultRule("drop", count=1)])
    server = BackgroundServer(create_app(clevertap_backend=backend, faults=injector))
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/1/upload", headers=HEADERS, json=batch())
            after = await client.post("/1/upload", headers=HEADERS, json=batch())
    finally:
        await server.stop()
    assert after.status_code == 200


async def test_drops_under_uvicorn_log_no_traceback(backend: CleverTapBackend) -> None:
    """uvicorn logs no error record for a connection a fault rule dropped."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    injector = FaultInjector(rules=[FaultRule("drop", count=1)])
    server = BackgroundServer(create_app(clevertap_backend=backend, faults=injector))
    uvicorn_errors = logging.getLogger("uvicorn.error")  # after uvicorn configured logging
    uvicorn_errors.addHandler(handler)
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/1/upload", headers=HEADERS, json=batch())
    finally:
        await server.stop()
        uvicorn_errors.removeHandler(handler)
    assert [r for r in records if r.levelno >= logging.ERROR] == []


async def test_reject_records_refuses_a_share_with_555(
    client: httpx.AsyncClient, injector: FaultInjector, backend: CleverTapBackend
) -> None:
    """reject_records with share 0.3 refuses 3 of 10 valid records with 555, stores the rest."""
    injector.add(FaultRule("reject_records", code=555, share=0.3, count=1))
    body = (await upload(client, 10)).json()
    assert body["status"] == "partial" and body["processed"] == 7
    for entry in body["unprocessed"]:
        assert entry["code"] == 555
        assert entry["error"].startswith("Miscellaneous server error. Skipped record number : ")
    assert len(backend.events(ACCOUNT_ID)) == 7


async def test_reject_records_picks_the_same_records_under_a_seed(
    backend: CleverTapBackend,
) -> None:
    """The same seed refuses the same record positions."""

    async def refused(seed: int) -> list[str]:
        backend.reset()
        injector = FaultInjector(
            seed=seed, rules=[FaultRule("reject_records", code=513, share=0.2)]
        )
        transport = httpx.ASGITransport(app=create_app(clevertap_backend=backend, faults=injector))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = (await upload(client, 20)).json()
        return [u["error"] for u in body["unprocessed"]]

    first = await refused(5)
    assert first == await refused(5)
    assert len(first) == 4 and all("ErrorCode: 513" in e for e in first)


async def test_slow_drip_sends_the_body_one_byte_at_a_time(
    client: httpx.AsyncClient, injector: FaultInjector, sleep: FakeSleep, backend: CleverTapBackend
) -> None:
    """slow_drip serves the upload, then waits ``latency`` seconds before each byte."""
    injector.add(FaultRule("slow_drip", latency=0.5, count=1))
    response = await upload(client, 2)
    assert response.json() == {"status": "success", "processed": 2, "unprocessed": []}
    assert sleep.slept == [0.5] * len(response.content)
    assert len(backend.events(ACCOUNT_ID)) == 2


async def test_slow_drip_sends_the_headers_before_the_body(backend: CleverTapBackend) -> None:
    """Over a socket the status arrives at once while the body is still dripping."""
    release = asyncio.Event()

    async def held(seconds: float) -> None:
        await release.wait()  # stands for the gap before the next byte

    injector = FaultInjector(sleep=held, rules=[FaultRule("slow_drip", count=1)])
    server = BackgroundServer(create_app(clevertap_backend=backend, faults=injector))
    url = await server.start()
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=5.0) as client,
            client.stream("POST", "/1/upload", headers=HEADERS, json=batch()) as response,
        ):
            assert response.status_code == 200
            release.set()
            assert json.loads(await response.aread())["status"] == "success"
    finally:
        release.set()
        await server.stop()


@pytest.mark.parametrize(
    ("lie", "answer"),
    [
        ("empty", {}),
        ("suspended", {"status": "fail", "error": "Account suspended", "code": 401}),
        ("short", {"status": "success", "processed": 45, "unprocessed": []}),
    ],
)
async def test_lying_200_answers_its_lie_and_stores_nothing(
    client: httpx.AsyncClient,
    injector: FaultInjector,
    backend: CleverTapBackend,
    lie: str,
    answer: dict[str, Any],
) -> None:
    """lying_200 answers 200 with a body contradicting success; no record is stored."""
    injector.add(FaultRule("lying_200", lie=lie, count=1))
    response = await upload(client, 50)
    assert (response.status_code, response.json()) == (200, answer)
    assert response.headers["content-type"] == "application/json;charset=utf-8"
    assert backend.events(ACCOUNT_ID) == []


def test_lying_200_draws_its_lie_from_the_seed() -> None:
    """Without a lie given, each firing draws one, the same under the same seed."""

    def lies(seed: int) -> list[str | None]:
        injector = FaultInjector(seed=seed, rules=[FaultRule("lying_200")])
        return [injector.decide("POST", "/1/upload").lie for _ in range(30)]

    assert lies(4) == lies(4)
    assert set(lies(4)) == set(LIES)


async def test_unlocatable_partial_ties_no_failure_to_a_record_sent(
    client: httpx.AsyncClient, injector: FaultInjector, backend: CleverTapBackend
) -> None:
    """unlocatable_partial refuses a share of records like reject_records, but no entry's
    error names a record number within the upload."""
    injector.add(FaultRule("unlocatable_partial", code=555, share=0.3, count=1))
    response = await upload(client, 10)
    body = response.json()
    assert (body["status"], body["processed"], len(body["unprocessed"])) == ("partial", 7, 3)
    for entry in body["unprocessed"]:
        assert entry["code"] == 555
        assert entry["error"].startswith("Miscellaneous server error")
        number = re.search(r"Skipped record number\s*:\s*(\d+)", entry["error"])
        assert number is None or int(number.group(1)) > 10
    assert int(response.headers["content-length"]) == len(response.content)
    assert len(backend.events(ACCOUNT_ID)) == 7


@pytest.mark.parametrize("status", [None, 301, 308])
async def test_redirect_points_to_https_and_processes_nothing(
    client: httpx.AsyncClient,
    injector: FaultInjector,
    backend: CleverTapBackend,
    status: int | None,
) -> None:
    """redirect answers its 3xx (302 by default) with a Location over https; nothing stored."""
    injector.add(FaultRule("redirect", status=status, count=1))
    response = await upload(client)
    assert response.status_code == (status or 302)
    assert response.headers["location"] == "https://testserver/1/upload"
    assert backend.events(ACCOUNT_ID) == []


async def test_filters_by_route_method_and_account(
    client: httpx.AsyncClient, injector: FaultInjector
) -> None:
    """Rules for another route, method or account leave the request alone."""
    injector.add(FaultRule("error", route="/v1/*"))
    injector.add(FaultRule("error", method="GET"))
    injector.add(FaultRule("error", account_id="SOMEONE-ELSE"))
    assert (await upload(client)).status_code == 200
    injector.add(FaultRule("error", account_id=ACCOUNT_ID, status=500))
    assert (await upload(client)).status_code == 500


async def test_control_routes_are_never_faulted(
    client: httpx.AsyncClient, injector: FaultInjector
) -> None:
    """A catch-all rule does not touch /_mock, so faults can always be turned off."""
    injector.add(FaultRule("error", route="*"))
    response = await client.delete("/_mock/faults/rules")
    assert response.status_code == 200
    assert (await upload(client)).status_code == 200


async def test_middleware_serves_other_apps_routes() -> None:
    """FaultMiddleware works on any Starlette app, e.g. RevenueCat's routes, with its bodies."""

    async def subscriber(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    injector = FaultInjector(rules=[FaultRule("rate_limit", route="/v2/*", count=1)])
    app = Starlette(
        routes=[Route("/v2/projects/p/customers/c", subscriber)],
        middleware=[Middleware(FaultMiddleware, injector=injector)],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        limited = await client.get("/v2/projects/p/customers/c")
        served = await client.get("/v2/projects/p/customers/c")
    assert limited.status_code == 429
    assert limited.json()["type"] == "rate_limit_error"
    assert limited.json()["retryable"] is True
    assert limited.headers["retry-after"] == "1"
    assert served.text == "ok"


def test_revenuecat_v1_error_bodies() -> None:
    """RevenueCat v1 paths get RevenueCat's {code, message} error shape."""
    assert error_body("/v1/subscribers/x", 500)["code"] == 7110
    assert set(error_body("/v1/subscribers/x", 429)) == {"code", "message"}


def test_presets_include_the_documented_names() -> None:
    """flaky, overloaded, outage, partial-rejects and hostile exist and each has rules."""
    for name in ("flaky", "overloaded", "outage", "partial-rejects", "hostile"):
        assert PRESETS[name].rules


def test_the_hostile_preset_has_each_new_kind_and_retryable_codes_only() -> None:
    """hostile drips, lies, hides record numbers and redirects, and refuses records with 555
    only, so an engine run under it must lose nothing."""
    rules = PRESETS["hostile"].rules
    kinds = {rule.kind for rule in rules}
    assert {"slow_drip", "lying_200", "unlocatable_partial", "redirect"} <= kinds
    assert all(rule.code == 555 for rule in rules if rule.kind == "unlocatable_partial")


def test_apply_preset_and_retarget() -> None:
    """apply_preset adds the preset's rules, optionally on another route."""
    injector = FaultInjector()
    ids = injector.apply_preset("outage", route="/v1/*")
    assert [r["route"] for r in injector.rules()] == ["/v1/*"] * len(ids)


def test_unknown_preset_is_a_value_error() -> None:
    """An unknown preset name is a ValueError listing the known ones."""
    with pytest.raises(ValueError, match="flaky"):
        FaultInjector().apply_preset("meltdown")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "explode"},
        {"kind": "error", "probability": 1.5},
        {"kind": "error", "count": 0},
        {"kind": "error", "ttl": 0},
        {"kind": "error", "status": 200},
        {"kind": "reject_records", "share": 0},
        {"kind": "reject_records", "code": 42},
        {"kind": "rate_limit", "burst": 0},
        {"kind": "latency", "latency": -1},
        {"kind": "error", "status": 302},
        {"kind": "redirect", "status": 503},
        {"kind": "lying_200", "lie": "maybe"},
    ],
)
def test_bad_rule_is_a_value_error(kwargs: dict[str, Any]) -> None:
    """Each out-of-range rule field is a ValueError."""
    with pytest.raises(ValueError):
        FaultRule(**kwargs)


async def test_rules_over_http(client: httpx.AsyncClient, injector: FaultInjector) -> None:
    """POST /rules adds, GET /rules lists, DELETE /rules/{id} removes."""
    added = await client.post(
        "/_mock/faults/rules", json={"kind": "error", "status": 502, "count": 5}
    )
    assert added.status_code == 201
    (rule_id,) = added.json()["ids"]
    listed = (await client.get("/_mock/faults/rules")).json()["rules"]
    assert listed[0]["status"] == 502 and listed[0]["remaining"] == 5
    assert (await upload(client)).status_code == 502
    removed = await client.delete(f"/_mock/faults/rules/{rule_id}")
    assert removed.json() == {"removed": rule_id}
    assert (await upload(client)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"kind": "error", "colour": "red"}, {"status": 503}, {"kind": "error", "count": "x"}, "x"],
)
async def test_bad_rule_over_http_is_400(client: httpx.AsyncClient, body: Any) -> None:
    """A malformed rule over HTTP is a 400 with a message, and nothing is added."""
    response = await client.post("/_mock/faults/rules", json=body)
    assert response.status_code == 400
    assert response.json()["error"]


async def test_presets_and_seed_over_http(
    client: httpx.AsyncClient, injector: FaultInjector
) -> None:
    """GET /presets lists presets, POST /presets/{name} applies one, POST /seed reseeds."""
    listed = (await client.get("/_mock/faults/presets")).json()
    assert "partial-rejects" in listed
    applied = await client.post("/_mock/faults/presets/partial-rejects")
    assert len(applied.json()["ids"]) == len(PRESETS["partial-rejects"].rules)
    seeded = await client.post("/_mock/faults/seed", json={"seed": 9})
    assert seeded.json() == {"seed": 9} and injector.seed == 9
    unknown = await client.post("/_mock/faults/presets/nope")
    assert unknown.status_code == 400


async def test_overview_counts_firings(client: httpx.AsyncClient, injector: FaultInjector) -> None:
    """GET /_mock/faults/ reports the seed and how often each kind fired."""
    injector.add(FaultRule("error", count=2))
    await upload(client)
    await upload(client)
    overview = (await client.get("/_mock/faults/")).json()
    assert overview["seed"] == 42 and overview["fired"] == {"error": 2}
