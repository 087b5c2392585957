"""API v1 customers: get-or-create, the Customer Info body, delete, routing errors."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from rcmock_helpers import START_MS, V1_PUBLIC, V1_SECRET
from rcmock_schemas import V1_DELETED, V1_ERROR, problems, v1_subscriber

from mockserver.revenuecat import RevenueCatBackend


async def test_get_creates_with_201_then_finds_with_200(client: httpx.AsyncClient) -> None:
    """The first GET creates the customer (201); the next one finds it (200)."""
    first = await client.get("/v1/subscribers/u1", headers=V1_SECRET)
    second = await client.get("/v1/subscribers/u1", headers=V1_SECRET)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["subscriber"]["original_app_user_id"] == "u1"


async def test_new_customer_body_matches_the_spec(client: httpx.AsyncClient) -> None:
    """A fresh customer's body has every Customer Info field, top-level request dates included."""
    body = (await client.get("/v1/subscribers/u1", headers=V1_SECRET)).json()
    assert problems(body, v1_subscriber(with_attributes=True)) == []
    assert body["request_date_ms"] == START_MS
    assert body["request_date"] == "2023-11-14T22:13:20Z"


async def test_attributes_only_for_secret_keys(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``subscriber_attributes`` appears for a secret key and not for a public one."""
    backend.create_customer("u1", attributes={"$email": "a@example.com"})
    public = (await client.get("/v1/subscribers/u1", headers=V1_PUBLIC)).json()
    secret = (await client.get("/v1/subscribers/u1", headers=V1_SECRET)).json()
    assert "subscriber_attributes" not in public["subscriber"]
    assert problems(public, v1_subscriber(with_attributes=False)) == []
    attrs = secret["subscriber"]["subscriber_attributes"]
    assert attrs == {"$email": {"value": "a@example.com", "updated_at_ms": START_MS}}


async def test_body_is_derived_from_the_simulated_purchases(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """Subscriptions, entitlements, one-off purchases and the management URL follow the store."""
    backend.start_trial("u1", "pro_monthly")
    backend.convert_trial("u1")
    backend.buy_non_renewing("u1", "coins_100", environment="SANDBOX")
    body = (await client.get("/v1/subscribers/u1", headers=V1_SECRET)).json()
    assert problems(body, v1_subscriber(with_attributes=True)) == []
    sub = body["subscriber"]
    monthly = sub["subscriptions"]["pro_monthly"]
    assert monthly["period_type"] == "normal" and monthly["store"] == "app_store"
    assert monthly["price"] == {"amount": 9.99, "currency": "USD"}
    assert monthly["purchase_date"] == "2023-11-14T22:13:20Z"  # converted early, at once
    assert sub["entitlements"]["pro"]["expires_date"] == monthly["expires_date"]
    assert sub["non_subscriptions"]["coins_100"][0]["is_sandbox"] is True
    assert sub["management_url"] == "https://apps.apple.com/account/subscriptions"
    assert sub["original_application_version"] == "1.0"


async def test_billing_issue_and_cancel_dates_show_in_the_subscription(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A billing issue fills billing_issues_detected_at and grace_period_expires_date."""
    backend.buy("u1", "pro_monthly", store="PLAY_STORE")
    backend.billing_issue("u1")
    sub = (await client.get("/v1/subscribers/u1", headers=V1_SECRET)).json()["subscriber"]
    monthly = sub["subscriptions"]["pro_monthly"]
    assert monthly["billing_issues_detected_at"] == "2023-11-14T22:13:20Z"
    assert monthly["grace_period_expires_date"] == "2023-12-21T22:13:20Z"  # 30 + 7 days
    assert sub["entitlements"]["pro"]["grace_period_expires_date"] is not None


async def test_refund_revokes_the_entitlement(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """After a refund the entitlement expires at the refund and refunded_at is set."""
    backend.buy("u1", "pro_monthly")
    backend.advance(3600)
    backend.refund("u1")
    sub = (await client.get("/v1/subscribers/u1", headers=V1_SECRET)).json()["subscriber"]
    assert sub["subscriptions"]["pro_monthly"]["refunded_at"] == "2023-11-14T23:13:20Z"
    assert sub["entitlements"]["pro"]["expires_date"] == "2023-11-14T23:13:20Z"
    assert sub["management_url"] is None


async def test_x_platform_updates_last_seen(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A GET with X-Platform moves last_seen; one without leaves it."""
    backend.create_customer("u1")
    backend.advance(60)
    quiet = (await client.get("/v1/subscribers/u1", headers=V1_SECRET)).json()
    seen = await client.get("/v1/subscribers/u1", headers={**V1_SECRET, "X-Platform": "ios"})
    assert quiet["subscriber"]["last_seen"] == "2023-11-14T22:13:20Z"
    assert seen.json()["subscriber"]["last_seen"] == "2023-11-14T22:14:20Z"


async def test_url_encoded_app_user_ids_round_trip(client: httpx.AsyncClient) -> None:
    """An app user id with a slash, spaces and a dollar sign is decoded from the path."""
    user = "$RCAnonymousID:a/b c"
    response = await client.get(f"/v1/subscribers/{quote(user, safe='')}", headers=V1_SECRET)
    assert response.status_code == 201
    assert response.json()["subscriber"]["original_app_user_id"] == user


async def test_empty_app_user_id_is_a_400(client: httpx.AsyncClient) -> None:
    """An empty app user id gets 400 with code 7220."""
    response = await client.get("/v1/subscribers/", headers=V1_SECRET)
    assert response.status_code == 400
    assert response.json()["code"] == 7220


async def test_delete_needs_a_secret_key(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """DELETE with a public key is refused (403) and deletes nothing."""
    backend.create_customer("u1")
    response = await client.delete("/v1/subscribers/u1", headers=V1_PUBLIC)
    assert response.status_code == 403
    assert problems(response.json(), V1_ERROR) == []
    assert backend.customer("u1").app_user_id == "u1"


async def test_delete_removes_the_customer_and_aliases(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """DELETE by an alias answers the spec's body; the next GET creates a fresh customer."""
    backend.create_customer("u1", original_app_user_id="$RCAnonymousID:x", aliases=["old"])
    response = await client.delete("/v1/subscribers/old", headers=V1_SECRET)
    assert response.json() == {"app_user_id": "old", "deleted": True}
    assert problems(response.json(), V1_DELETED) == []
    again = await client.get("/v1/subscribers/u1", headers=V1_SECRET)
    assert again.status_code == 201


async def test_delete_of_an_unknown_customer_is_a_404(client: httpx.AsyncClient) -> None:
    """Deleting a customer that does not exist gets 404 in the v1 shape."""
    response = await client.delete("/v1/subscribers/ghost", headers=V1_SECRET)
    assert response.status_code == 404
    assert problems(response.json(), V1_ERROR) == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/offerings/nothing", 404),
        ("GET", "/v1", 404),
        ("POST", "/v1/subscribers/u1", 405),
        ("GET", "/v1/subscribers/u1/attributes", 405),
    ],
)
async def test_unknown_routes_and_methods_get_v1_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    """Unknown paths and wrong methods answer in RevenueCat's v1 error shape, never a 500."""
    response = await client.request(method, path, headers=V1_SECRET)
    assert response.status_code == status
    assert problems(response.json(), V1_ERROR) == []
