"""Control and inspection under /_mock/revenuecat: reset, customers, events, clock, catalogue."""

from __future__ import annotations

import httpx
import pytest
from rcmock_helpers import SECRET, START_MS, V2

from mockserver.revenuecat import RevenueCatBackend

BASE = "/_mock/revenuecat"


async def test_summary_reports_config_without_keys(client: httpx.AsyncClient) -> None:
    """GET / shows project, counts and time, and no key."""
    response = await client.get(f"{BASE}/")
    body = response.json()
    assert body["project_id"] == "proj1ab2c3d4" and body["now_ms"] == START_MS
    assert body["keys"] == {"public": 1, "secret": 1, "v2": 1}
    assert SECRET not in response.text and V2 not in response.text


async def test_create_and_list_customers(client: httpx.AsyncClient) -> None:
    """POST /customers creates one with attributes; GET lists it; GET one shows Customer Info."""
    created = await client.post(
        f"{BASE}/customers", json={"app_user_id": "u1", "attributes": {"$email": "a@b.co"}}
    )
    assert created.status_code == 201
    listed = (await client.get(f"{BASE}/customers")).json()["items"]
    assert [c["app_user_id"] for c in listed] == ["u1"]
    one = (await client.get(f"{BASE}/customers/u1")).json()
    assert (
        one["customer_info"]["subscriber"]["subscriber_attributes"]["$email"]["value"] == "a@b.co"
    )


async def test_unknown_customer_is_a_404(client: httpx.AsyncClient) -> None:
    """GET /customers/{id} for an unknown id answers 404 with a message."""
    response = await client.get(f"{BASE}/customers/ghost")
    assert response.status_code == 404 and "ghost" in response.json()["message"]


async def test_bad_customer_bodies_are_400(client: httpx.AsyncClient) -> None:
    """A customer body without an app user id, or with a bad attribute, is refused."""
    missing = await client.post(f"{BASE}/customers", json={"attributes": {}})
    bad = await client.post(
        f"{BASE}/customers", json={"app_user_id": "u1", "attributes": {"a b": "x"}}
    )
    assert (missing.status_code, bad.status_code) == (400, 400)


async def test_events_filter_by_type_and_user(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """GET /events filters on type and app user id."""
    backend.buy("u1", "pro_monthly")
    backend.buy("u2", "pro_monthly")
    backend.cancel("u2")
    cancels = (await client.get(f"{BASE}/events", params={"type": "CANCELLATION"})).json()
    mine = (await client.get(f"{BASE}/events", params={"app_user_id": "u1"})).json()
    assert [e["app_user_id"] for e in cancels["items"]] == ["u2"]
    assert [e["type"] for e in mine["items"]] == ["INITIAL_PURCHASE"]


async def test_reset_forgets_everything(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """POST /reset empties customers and events."""
    backend.buy("u1", "pro_monthly")
    assert (await client.post(f"{BASE}/reset")).json() == {"reset": True}
    assert backend.customers() == [] and backend.events() == []


async def test_clock_advance_validates_its_input(client: httpx.AsyncClient) -> None:
    """Advancing by a negative or non-numeric amount is a 400; GET /clock reports the time."""
    assert (await client.post(f"{BASE}/clock/advance", json={"seconds": -1})).status_code == 400
    assert (await client.post(f"{BASE}/clock/advance", json={"seconds": "x"})).status_code == 400
    assert (await client.get(f"{BASE}/clock")).json() == {"now_ms": START_MS, "time_scale": 0.0}


async def test_catalogue_lists_products_stores_and_rates(client: httpx.AsyncClient) -> None:
    """GET /catalogue shows products with prices, stores with commissions and USD rates."""
    body = (await client.get(f"{BASE}/catalogue")).json()
    assert {p["id"] for p in body["products"]} >= {"pro_monthly", "lifetime"}
    assert {s["store"]: s["commission_percentage"] for s in body["stores"]}["PLAY_STORE"] == 0.15
    assert body["usd_rates"]["USD"] == 1.0


def test_customers_are_bounded(backend: RevenueCatBackend) -> None:
    """Beyond ``max_customers`` the least recently used customer is forgotten."""
    small = RevenueCatBackend(max_customers=2, clock=backend.clock)
    small.create_customer("a")
    small.create_customer("b")
    small.customer("a")  # a is now more recent than b
    small.create_customer("c")
    assert [c.app_user_id for c in small.customers()] == ["a", "c"]


def test_describe_redacts_keys_unless_asked(backend: RevenueCatBackend) -> None:
    """describe() is what the CLI prints: keys redacted by default, never the webhook auth."""
    from mockserver.revenuecat import WebhookTarget

    configured = RevenueCatBackend(
        secret_keys=["sk_live_looking_secret"],
        webhooks=[WebhookTarget("http://h/x", authorization="Bearer hook-auth-value")],
    )
    shown = repr(configured.describe())
    assert "sk_live_looking_secret" not in shown and "hook-auth-value" not in shown
    assert configured.describe()["webhooks"][0]["authorization"] == "set"
    defaults = RevenueCatBackend().describe(reveal_keys=True)
    assert defaults["secret_keys"] == ["sk_mock_secret_key"]
    assert defaults["v2_rate_limit_per_minute"] == 480 and defaults["time_scale"] == 1.0


def test_the_event_log_is_bounded(backend: RevenueCatBackend) -> None:
    """Beyond ``max_events`` the oldest recorded events are dropped."""
    small = RevenueCatBackend(max_events=2, clock=backend.clock)
    for user in ("a", "b", "c"):
        small.buy(user, "pro_monthly")
    assert [e["app_user_id"] for e in small.events()] == ["b", "c"]


@pytest.mark.parametrize(
    ("operation", "body", "missing"),
    [
        ("buy", {"app_user_id": "u1"}, "product_id"),
        ("start_trial", {"app_user_id": "u1"}, "product_id"),
        ("buy_non_renewing", {"app_user_id": "u1"}, "product_id"),
        ("change_product", {"app_user_id": "u1"}, "new_product_id"),
        ("buy", {"app_user_id": "u1", "product_id": None}, "product_id"),
        ("transfer", {"from_app_user_id": "u1"}, "to_app_user_id"),
    ],
)
async def test_a_missing_required_parameter_is_a_400_naming_it(
    client: httpx.AsyncClient, backend: RevenueCatBackend, operation: str,
    body: dict[str, object], missing: str,
) -> None:  # fmt: skip
    """A simulate request without a required parameter answers 400 naming it (it was a 500)."""
    response = await client.post(f"/_mock/revenuecat/simulate/{operation}", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "BadControlRequest"
    assert missing in response.json()["message"]
    assert backend.events() == []
