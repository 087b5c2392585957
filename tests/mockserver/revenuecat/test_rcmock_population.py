"""The seeded population generator and playing it on the backend."""

from __future__ import annotations

from collections import Counter

import httpx
from rcmock_helpers import START_MS, V1_PUBLIC

from mockserver.revenuecat import RevenueCatBackend, generate_population

DAY_MS = 86_400_000


def test_the_same_seed_gives_the_same_plan() -> None:
    """Generation is deterministic for a seed and differs between seeds."""
    first = generate_population(50, seed=4, end_ms=START_MS)
    again = generate_population(50, seed=4, end_ms=START_MS)
    other = generate_population(50, seed=5, end_ms=START_MS)
    assert first == again
    assert first.steps != other.steps


def test_steps_are_time_ordered_and_within_the_window() -> None:
    """Steps are sorted by time and lie in the ``days`` before ``end_ms``."""
    plan = generate_population(100, seed=1, end_ms=START_MS, days=90)
    times = [s.at_ms for s in plan.steps]
    assert times == sorted(times)
    assert times[0] >= START_MS - 90 * DAY_MS and times[-1] <= START_MS


def test_a_played_population_has_realistic_lifecycles(backend: RevenueCatBackend) -> None:
    """300 users produce every lifecycle event type, both environments and several currencies."""
    plan = generate_population(300, seed=11, end_ms=backend.now_ms())
    events = backend.play(plan)
    kinds = Counter(e["type"] for e in events)
    for kind in ("INITIAL_PURCHASE", "RENEWAL", "CANCELLATION", "UNCANCELLATION", "EXPIRATION",
                 "BILLING_ISSUE", "PRODUCT_CHANGE", "NON_RENEWING_PURCHASE"):  # fmt: skip
        assert kinds[kind] > 0, kind
    assert any(e["type"] == "INITIAL_PURCHASE" and e["period_type"] == "TRIAL" for e in events)
    assert any(e.get("is_trial_conversion") for e in events)
    assert any(e.get("cancel_reason") == "CUSTOMER_SUPPORT" for e in events)
    assert {e["environment"] for e in events} == {"PRODUCTION", "SANDBOX"}
    assert len({e["currency"] for e in events}) >= 5
    assert len(backend.customers()) == 300


def test_most_users_get_a_clevertap_id() -> None:
    """About 85% of users have a CleverTap ID to set; the rest fall back to their app user id."""
    plan = generate_population(400, seed=2, end_ms=START_MS)
    share = sum(1 for u in plan.users if u.clevertap_id) / len(plan.users)
    assert 0.78 < share < 0.92


async def test_demo_flow_ids_set_through_the_api_reach_the_events(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """Create users, set $clevertapId over the v1 API, play: events carry the ID."""
    plan = generate_population(20, seed=3, end_ms=backend.now_ms())
    for user in plan.users:
        backend.create_customer(**user.customer_kwargs())
    for user in plan.users:
        if user.clevertap_id:
            attribute = {"value": user.clevertap_id, "updated_at_ms": backend.now_ms()}
            payload = {"attributes": {"$clevertapId": attribute}}
            url = f"/v1/subscribers/{user.app_user_id}/attributes"
            assert (await client.post(url, json=payload, headers=V1_PUBLIC)).status_code == 200
    for step in plan.steps:
        backend.apply(step)
    by_user = {u.app_user_id: u.clevertap_id for u in plan.users}
    for event in backend.events():
        expected = by_user[event["app_user_id"]]
        got = event["subscriber_attributes"].get("$clevertapId", {}).get("value")
        assert got == expected
        assert event["subscriber_attributes"]["$email"]["value"].endswith("@example.com")


async def test_population_over_http(client: httpx.AsyncClient, backend: RevenueCatBackend) -> None:
    """POST /population generates and plays a plan and reports users and operations."""
    response = await client.post("/_mock/revenuecat/population", json={"n": 30, "seed": 9})
    body = response.json()
    assert response.status_code == 200 and len(body["users"]) == 30
    assert body["events"] == len(backend.events()) > 0
    assert sum(body["operations"].values()) > 0


def test_plan_population_ends_at_the_backends_now(backend: RevenueCatBackend) -> None:
    """backend.plan_population uses the backend's clock and seed; no step is in its future."""
    plan = backend.plan_population(40, days=30)
    assert plan.end_ms == backend.now_ms() and plan.seed == 1
    assert all(step.at_ms <= backend.now_ms() for step in plan.steps)
    assert plan == generate_population(40, seed=1, end_ms=backend.now_ms(), days=30)
