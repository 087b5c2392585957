"""End to end, in process: the client and the syncer against the RevenueCat mock."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import httpx
import pytest
from rc_helpers import Sleeps
from starlette.exceptions import StarletteDeprecationWarning

import client
import mockserver
from client import CLEVERTAP_ID, AsyncRevenueCat, AttributeSyncer, RevenueCat
from mockserver import FaultInjector, FaultRule, RevenueCatBackend

SECRET = "sk_mock_secret_key"
V2_KEY = "sk_mock_v2_key"
PROJECT = "proj1ab2c3d4"
BASE = "http://testserver"

# Starlette 1.x prefers the httpx2 package for its TestClient and warns when it falls back to
# httpx; the fallback is what we want (TestClient is then an httpx.Client), so silence it here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@pytest.fixture
def backend() -> RevenueCatBackend:
    return RevenueCatBackend(seed=1)


@pytest.fixture
def faults() -> FaultInjector:
    return FaultInjector(seed=1)


@pytest.fixture
def rc(backend: RevenueCatBackend, faults: FaultInjector) -> Iterator[RevenueCat]:
    app = mockserver.create_app(revenuecat_backend=backend, faults=faults)
    with TestClient(app, base_url=BASE) as http:
        yield RevenueCat(api_key=SECRET, base_url=BASE, http_client=http, sleep=Sleeps())


def test_set_clevertap_id_lands_in_the_mock(rc: RevenueCat, backend: RevenueCatBackend) -> None:
    """A CleverTap id set through the client is stored under the SDKs' key."""
    rc.set_clevertap_id("user/1 $x", "ct-42")
    stored = backend.customer("user/1 $x").attributes.get(CLEVERTAP_ID)
    assert stored is not None
    assert stored.value == "ct-42"


def test_get_subscriber_reads_back_attributes(rc: RevenueCat) -> None:
    """get_subscriber with a secret key returns the attribute with its updated_at_ms."""
    rc.set_attributes("user-2", {"plan": "pro"}, updated_at_ms=1_234)
    subscriber = rc.get_subscriber("user-2")
    assert subscriber.original_app_user_id == "user-2"
    assert subscriber.attributes["plan"].value == "pro"
    assert subscriber.attributes["plan"].updated_at_ms == 1_234


def test_an_older_write_does_not_overwrite_a_newer_one(rc: RevenueCat) -> None:
    """Newer wins: a write stamped earlier than the stored value is ignored."""
    rc.set_attributes("user-3", {"plan": "new"}, updated_at_ms=2_000)
    rc.set_attributes("user-3", {"plan": "old"}, updated_at_ms=1_000)
    assert rc.get_subscriber("user-3").attributes["plan"].value == "new"


def test_the_mock_7263_becomes_per_key_errors(rc: RevenueCat) -> None:
    """An email the server refuses surfaces as AttributeValidationError naming $email."""
    with pytest.raises(client.AttributeValidationError) as info:
        rc.set_attributes("user-4", {"$email": "not-an-email", "plan": "pro"})
    assert [e.key_name for e in info.value.attribute_errors] == ["$email"]


def test_a_wrong_key_is_an_authentication_error(
    backend: RevenueCatBackend, faults: FaultInjector
) -> None:
    """The mock's 401 for an unknown key is an AuthenticationError without the key in it."""
    app = mockserver.create_app(revenuecat_backend=backend, faults=faults)
    with TestClient(app, base_url=BASE) as http:
        rc = RevenueCat(api_key="sk_wrong_key_123", base_url=BASE, http_client=http)
        with pytest.raises(client.AuthenticationError) as info:
            rc.get_subscriber("u")
    assert "sk_wrong_key_123" not in str(info.value)


def test_a_503_is_retried_with_the_same_stamp(
    rc: RevenueCat, backend: RevenueCatBackend, faults: FaultInjector
) -> None:
    """After an injected 503 the retry stores the value with the original updated_at_ms."""
    faults.add(FaultRule("error", route="/v1/*", status=503, count=1))
    rc.set_attributes("user-5", {"plan": "pro"}, updated_at_ms=5_000)
    stored = backend.customer("user-5").attributes.get("plan")
    assert stored is not None
    assert (stored.value, stored.updated_at_ms) == ("pro", 5_000)
    assert faults.fired


def test_a_dropped_connection_is_retried(
    rc: RevenueCat, backend: RevenueCatBackend, faults: FaultInjector
) -> None:
    """A dropped connection (a transport error) is retried and the write lands once."""
    faults.add(FaultRule("drop", route="/v1/*", count=1))
    rc.set_clevertap_id("user-6", "ct-6")
    stored = backend.customer("user-6").attributes.get(CLEVERTAP_ID)
    assert stored is not None
    assert stored.value == "ct-6"


def test_delete_subscriber_removes_the_customer(rc: RevenueCat, backend: RevenueCatBackend) -> None:
    """delete_subscriber deletes; deleting again is a NotFoundError."""
    rc.set_clevertap_id("user-7", "ct-7")
    rc.delete_subscriber("user-7")
    assert backend.customers() == []
    with pytest.raises(client.NotFoundError):
        rc.delete_subscriber("user-7")


def test_the_syncer_against_the_mock(rc: RevenueCat, backend: RevenueCatBackend) -> None:
    """Staged attributes for several users reach the mock with their set times."""
    ticks = iter([100.0, 200.0, 300.0])
    with AttributeSyncer(rc, clock=lambda: next(ticks)) as syncer:
        syncer.set_clevertap_id("a", "ct-a")
        syncer.set_email("a", "a@example.com")
        syncer.set_clevertap_id("b", "ct-b")
        report = syncer.sync()
    assert len(report.synced) == 2
    email = backend.customer("a").attributes.get("$email")
    assert email is not None
    assert email.updated_at_ms == 200_000


async def test_v2_attributes_through_asgi(backend: RevenueCatBackend) -> None:
    """The async client sets and lists v2 attributes through httpx.ASGITransport."""
    backend.create_customer("cust-1")
    app = mockserver.create_app(revenuecat_backend=backend)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport) as http,
        AsyncRevenueCat(api_key=V2_KEY, base_url=BASE, http_client=http) as rc,
    ):
        stored = await rc.set_customer_attributes(
            PROJECT, "cust-1", {f"k{i}": str(i) for i in range(25)} | {CLEVERTAP_ID: "ct"}
        )
        listed = await rc.list_customer_attributes(PROJECT, "cust-1")
        assert {a.name for a in listed} == {a.name for a in stored}
        assert len(listed) == 26
        with pytest.raises(client.NotFoundError):
            await rc.list_customer_attributes(PROJECT, "nobody")
