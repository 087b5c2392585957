"""Routing: ids are one percent-decoded segment, offerings, unmodelled paths, any method."""

from __future__ import annotations

import httpx
import pytest
from rcmock_helpers import V1_PUBLIC, V1_SECRET, V2_AUTH, v2_url
from rcmock_schemas import V1_ERROR, V1_OFFERINGS, problems, v2_error

from mockserver.revenuecat import RevenueCatBackend


async def test_an_encoded_slash_is_part_of_the_app_user_id(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``GET /v1/subscribers/team%2Fattributes`` reads the customer ``team/attributes``."""
    response = await client.get("/v1/subscribers/team%2Fattributes", headers=V1_SECRET)
    assert response.status_code == 201
    assert response.json()["subscriber"]["original_app_user_id"] == "team/attributes"
    assert backend.customer("team/attributes").app_user_id == "team/attributes"


async def test_an_encoded_slash_before_attributes_still_posts_attributes(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``POST /v1/subscribers/a%2Fb/attributes`` writes the attributes of the customer ``a/b``."""
    body = {"attributes": {"plan": {"value": "gold", "updated_at_ms": 1}}}
    response = await client.post("/v1/subscribers/a%2Fb/attributes", json=body, headers=V1_SECRET)
    assert response.status_code == 200
    attribute = backend.customer("a/b").attributes.get("plan")
    assert attribute is not None and attribute.value == "gold"


async def test_offerings_answer_the_documented_body_and_create_no_customer(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``GET .../u9/offerings`` answers 200 Offerings (public key) and creates neither u9 nor
    a customer named ``u9/offerings``."""
    response = await client.get("/v1/subscribers/u9/offerings", headers=V1_PUBLIC)
    assert response.status_code == 200
    body = response.json()
    assert problems(body, V1_OFFERINGS) == []
    assert body["current_offering_id"] == "default"
    packages = {p["identifier"]: p["platform_product_identifier"]
                for p in body["offerings"][0]["packages"]}  # fmt: skip
    assert packages["$rc_monthly"] == "pro_monthly"
    assert packages["$rc_lifetime"] == "lifetime"
    assert packages["premium_monthly"] == "premium_monthly"  # $rc_monthly is taken
    assert backend.stats()["customers"] == 0


async def test_offerings_refuse_an_unknown_platform(client: httpx.AsyncClient) -> None:
    """An X-Platform outside the documented list is the spec's 400 "Invalid Platform" (7000)."""
    response = await client.get(
        "/v1/subscribers/u9/offerings", headers={**V1_PUBLIC, "X-Platform": "symbian"}
    )
    assert response.status_code == 400
    assert response.json() == {"code": 7000, "message": "Invalid Platform"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/subscribers/u9/subscriptions/pro_monthly/extend",
        "/v1/subscribers/u9/entitlements/pro/promotional",
        "/v1/subscribers/u9/attributes/extra",
        "/v1/subscribers/u9/",
    ],
)
async def test_unmodelled_subscriber_paths_are_v1_404s_creating_nothing(
    client: httpx.AsyncClient, backend: RevenueCatBackend, path: str
) -> None:
    """A sub-resource the mock does not model is a v1 404, never a customer named after it."""
    response = await client.post(path, headers=V1_SECRET)
    assert response.status_code == 404
    assert problems(response.json(), V1_ERROR) == []
    assert backend.stats()["customers"] == 0


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "CONNECT"])
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/subscribers/u1", 405),
        ("/v1/subscribers/u1/attributes", 405),
        ("/v1/subscribers/u1/offerings", 405),
        ("/v1/nothing", 404),
    ],
)
async def test_unknown_methods_get_v1_json_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    """TRACE and other unknown methods get RevenueCat's v1 JSON error, not a plain-text 405."""
    response = await client.request(method, path, headers=V1_SECRET)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert problems(response.json(), V1_ERROR) == []


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND"])
@pytest.mark.parametrize(
    ("suffix", "status"), [("", 405), ("/attributes", 405), ("/subscriptions", 404)]
)
async def test_unknown_methods_get_v2_json_errors(
    client: httpx.AsyncClient, backend: RevenueCatBackend, method: str, suffix: str, status: int
) -> None:
    """On API v2 an unknown method gets the v2 error object with its status."""
    backend.create_customer("u1")
    response = await client.request(method, v2_url("u1", suffix), headers=V2_AUTH)
    assert response.status_code == status
    assert problems(response.json(), v2_error()) == []


async def test_v2_encoded_slash_is_part_of_the_customer_id(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``GET /v2/.../customers/team%2Fattributes`` reads the customer ``team/attributes``."""
    backend.create_customer("team/attributes")
    response = await client.get(v2_url("team%2Fattributes"), headers=V2_AUTH)
    assert response.status_code == 200
    assert response.json()["id"] == "team/attributes"
