"""The store simulator: each operation emits exactly RevenueCat's events, with every field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from rcmock_helpers import LIFECYCLE_FIELDS, START_MS

from mockserver.revenuecat import RevenueCatBackend, VirtualClock

DAY_MS = 86_400_000
TYPE_FIELDS = {
    "RENEWAL": {"is_trial_conversion"},
    "CANCELLATION": {"cancel_reason"},
    "EXPIRATION": {"expiration_reason"},
    "PRODUCT_CHANGE": {"new_product_id"},
    "BILLING_ISSUE": {"grace_period_expiration_at_ms"},
    "SUBSCRIPTION_PAUSED": {"auto_resume_at_ms"},
}
TRANSFER_FIELDS = {
    "type", "id", "app_id", "event_timestamp_ms", "store", "environment", "transferred_from",
    "transferred_to",
}  # fmt: skip


async def simulate(http: httpx.AsyncClient, operation: str, **params: Any) -> list[dict[str, Any]]:
    response = await http.post(f"/_mock/revenuecat/simulate/{operation}", json=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def assert_complete(event: dict[str, Any]) -> None:
    if event["type"] == "TRANSFER":
        assert set(event) == TRANSFER_FIELDS
        return
    assert set(event) == LIFECYCLE_FIELDS | TYPE_FIELDS.get(event["type"], set())


async def test_trial_start_is_initial_purchase_with_period_trial(client: httpx.AsyncClient) -> None:
    """start_trial emits one INITIAL_PURCHASE, period TRIAL, price 0, expiring at trial end."""
    (event,) = await simulate(client, "start_trial", app_user_id="u1", product_id="pro_monthly")
    assert_complete(event)
    assert (event["type"], event["period_type"], event["price"]) == ("INITIAL_PURCHASE", "TRIAL", 0)
    assert event["expiration_at_ms"] == START_MS + 7 * DAY_MS
    assert event["renewal_number"] == 1


async def test_trial_conversion_is_a_renewal(client: httpx.AsyncClient) -> None:
    """convert_trial emits RENEWAL with is_trial_conversion, period NORMAL and the full price."""
    await simulate(client, "start_trial", app_user_id="u1", product_id="pro_monthly")
    (event,) = await simulate(client, "convert_trial", app_user_id="u1")
    assert_complete(event)
    assert (event["type"], event["is_trial_conversion"], event["period_type"]) == (
        "RENEWAL", True, "NORMAL"
    )  # fmt: skip
    assert event["price"] == 9.99 and event["renewal_number"] == 2


async def test_a_conversion_before_the_trial_ends_starts_the_paid_period_at_the_event(
    client: httpx.AsyncClient,
) -> None:
    """Converting without a clock advance ends the trial early: the paid period starts at the
    RENEWAL's event_timestamp_ms, never days after it."""
    await simulate(client, "start_trial", app_user_id="u1", product_id="pro_monthly")
    (event,) = await simulate(client, "convert_trial", app_user_id="u1")
    assert event["purchased_at_ms"] == event["event_timestamp_ms"] == START_MS
    assert event["expiration_at_ms"] == START_MS + 30 * DAY_MS


async def test_a_conversion_at_the_exact_end_of_the_trial_is_still_a_conversion(
    backend: RevenueCatBackend,
) -> None:
    """convert_trial at the trial's expiration time (where populations convert) is a RENEWAL
    with is_trial_conversion true, not a resubscription."""
    (trial,) = backend.start_trial("u1", "pro_monthly")
    (event,) = backend.convert_trial("u1", at_ms=trial["expiration_at_ms"])
    assert event["is_trial_conversion"] is True
    assert event["purchased_at_ms"] == trial["expiration_at_ms"]


async def test_a_billing_recovery_in_grace_starts_where_the_unpaid_period_began(
    backend: RevenueCatBackend,
) -> None:
    """A renewal during the grace period starts the new period at the old expiry, before the
    event: the only renewal whose purchased_at_ms precedes its event."""
    (bought,) = backend.buy("u1", "pro_monthly")
    expiry = bought["expiration_at_ms"]
    backend.billing_issue("u1", at_ms=expiry)
    (renewal,) = backend.renew("u1", at_ms=expiry + 2 * DAY_MS)
    assert renewal["purchased_at_ms"] == expiry
    assert renewal["expiration_at_ms"] == expiry + 30 * DAY_MS


async def test_renewal_number_counts_up(client: httpx.AsyncClient) -> None:
    """buy then two renewals give renewal_number 1, 2, 3, with new transaction ids."""
    first = await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    second = await simulate(client, "renew", app_user_id="u1", at_ms=START_MS + 30 * DAY_MS)
    third = await simulate(
        client, "renew", app_user_id="u1", product_id="pro_monthly", at_ms=START_MS + 60 * DAY_MS
    )
    events = first + second + third
    assert [e["renewal_number"] for e in events] == [1, 2, 3]
    assert [e["is_trial_conversion"] for e in events[1:]] == [False, False]
    assert len({e["transaction_id"] for e in events}) == 3
    assert {e["original_transaction_id"] for e in events} == {events[0]["transaction_id"]}
    assert events[2]["purchased_at_ms"] == START_MS + 60 * DAY_MS


async def test_a_renewal_never_starts_after_its_event(client: httpx.AsyncClient) -> None:
    """Renewing without a clock advance starts the new period at the event, ending the
    current one early, so purchased_at_ms never lies in the event's future."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    (renewal,) = await simulate(client, "renew", app_user_id="u1")
    assert renewal["purchased_at_ms"] == renewal["event_timestamp_ms"] == START_MS


@pytest.mark.parametrize(
    "reason", ["UNSUBSCRIBE", "BILLING_ERROR", "DEVELOPER_INITIATED", "PRICE_INCREASE", "UNKNOWN"]
)
async def test_cancel_carries_its_reason(client: httpx.AsyncClient, reason: str) -> None:
    """cancel emits one CANCELLATION with the given cancel_reason and price 0."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    (event,) = await simulate(client, "cancel", app_user_id="u1", reason=reason)
    assert_complete(event)
    assert (event["type"], event["cancel_reason"], event["price"]) == ("CANCELLATION", reason, 0)


async def test_trial_cancel_then_expiry(client: httpx.AsyncClient) -> None:
    """A cancelled trial gives CANCELLATION (TRIAL) then EXPIRATION (UNSUBSCRIBE)."""
    await simulate(client, "start_trial", app_user_id="u1", product_id="pro_monthly")
    cancel = await simulate(client, "cancel", app_user_id="u1")
    expire = await simulate(client, "expire", app_user_id="u1")
    assert cancel[0]["period_type"] == "TRIAL"
    assert (expire[0]["type"], expire[0]["expiration_reason"]) == ("EXPIRATION", "UNSUBSCRIBE")


async def test_uncancel(client: httpx.AsyncClient, backend: RevenueCatBackend) -> None:
    """uncancel after cancel emits UNCANCELLATION and renewals resume."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    await simulate(client, "cancel", app_user_id="u1")
    (event,) = await simulate(client, "uncancel", app_user_id="u1")
    assert_complete(event)
    assert event["type"] == "UNCANCELLATION"
    assert types(await simulate(client, "renew", app_user_id="u1")) == ["RENEWAL"]


async def test_refund_is_a_customer_support_cancellation_with_negative_prices(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """refund emits CANCELLATION, CUSTOMER_SUPPORT, with the period's prices negated."""
    backend.create_customer("u1", country="DE")
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    (event,) = await simulate(client, "refund", app_user_id="u1")
    assert_complete(event)
    assert (event["cancel_reason"], event["currency"]) == ("CUSTOMER_SUPPORT", "EUR")
    assert (event["price"], event["price_in_purchased_currency"]) == (-10.789, -9.99)


async def test_refund_of_a_one_off_purchase(client: httpx.AsyncClient) -> None:
    """A non-renewing purchase can be refunded too, with a null expiration."""
    await simulate(client, "buy_non_renewing", app_user_id="u1", product_id="lifetime")
    (event,) = await simulate(client, "refund", app_user_id="u1", product_id="lifetime")
    assert (event["type"], event["price"], event["expiration_at_ms"]) == (
        "CANCELLATION", -149.99, None
    )  # fmt: skip


async def test_billing_issue_with_grace_period(client: httpx.AsyncClient) -> None:
    """billing_issue emits BILLING_ISSUE and CANCELLATION(BILLING_ERROR); grace on the first."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly", store="PLAY_STORE")
    events = await simulate(client, "billing_issue", app_user_id="u1")
    assert types(events) == ["BILLING_ISSUE", "CANCELLATION"]
    for event in events:
        assert_complete(event)
    assert events[0]["grace_period_expiration_at_ms"] == START_MS + 37 * DAY_MS
    assert events[1]["cancel_reason"] == "BILLING_ERROR"
    expired = await simulate(client, "expire", app_user_id="u1")
    assert expired[0]["expiration_reason"] == "BILLING_ERROR"


async def test_billing_issue_without_grace_expires_at_once(client: httpx.AsyncClient) -> None:
    """Without a grace period an EXPIRATION(BILLING_ERROR) comes with the issue."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    events = await simulate(client, "billing_issue", app_user_id="u1", grace_period_days=0)
    assert types(events) == ["BILLING_ISSUE", "CANCELLATION", "EXPIRATION"]
    assert events[0]["grace_period_expiration_at_ms"] is None
    assert events[2]["expiration_reason"] == "BILLING_ERROR"


async def test_billing_recovery_is_a_renewal(client: httpx.AsyncClient) -> None:
    """A renewal during the grace period recovers the subscription."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    await simulate(client, "billing_issue", app_user_id="u1")
    (event,) = await simulate(client, "renew", app_user_id="u1")
    assert (event["type"], event["renewal_number"]) == ("RENEWAL", 2)


@pytest.mark.parametrize(
    "reason", ["UNSUBSCRIBE", "BILLING_ERROR", "DEVELOPER_INITIATED", "SUBSCRIPTION_PAUSED"]
)
async def test_expire_with_a_reason(client: httpx.AsyncClient, reason: str) -> None:
    """expire emits one EXPIRATION with the given expiration_reason."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    (event,) = await simulate(client, "expire", app_user_id="u1", reason=reason)
    assert_complete(event)
    assert event["expiration_reason"] == reason


async def test_app_store_product_change_adds_a_renewal(client: httpx.AsyncClient) -> None:
    """On the App Store an immediate change gives PRODUCT_CHANGE + RENEWAL on the new product."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    events = await simulate(
        client, "change_product", app_user_id="u1", new_product_id="premium_monthly"
    )
    assert types(events) == ["PRODUCT_CHANGE", "RENEWAL"]
    assert (events[0]["product_id"], events[0]["new_product_id"]) == (
        "pro_monthly",
        "premium_monthly",
    )
    assert (events[1]["product_id"], events[1]["price"]) == ("premium_monthly", 14.99)
    for event in events:
        assert_complete(event)


async def test_play_product_change_adds_an_initial_purchase(client: httpx.AsyncClient) -> None:
    """On Google Play an immediate change gives PRODUCT_CHANGE + INITIAL_PURCHASE."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly", store="PLAY_STORE")
    events = await simulate(client, "change_product", app_user_id="u1", new_product_id="pro_annual")
    assert types(events) == ["PRODUCT_CHANGE", "INITIAL_PURCHASE"]
    assert events[1]["transaction_id"] != events[0]["transaction_id"]


async def test_deferred_product_change_applies_at_renewal(client: httpx.AsyncClient) -> None:
    """A deferred change emits PRODUCT_CHANGE now; the next RENEWAL is on the new product."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    events = await simulate(
        client, "change_product", app_user_id="u1", new_product_id="pro_annual", immediate=False
    )
    assert types(events) == ["PRODUCT_CHANGE"]
    (renewal,) = await simulate(client, "renew", app_user_id="u1")
    assert (renewal["product_id"], renewal["price"]) == ("pro_annual", 59.99)


async def test_non_renewing_purchase(client: httpx.AsyncClient) -> None:
    """buy_non_renewing emits NON_RENEWING_PURCHASE without an expiration or renewal number."""
    (event,) = await simulate(client, "buy_non_renewing", app_user_id="u1", product_id="coins_100")
    assert_complete(event)
    assert (event["expiration_at_ms"], event["renewal_number"]) == (None, None)
    assert event["entitlement_ids"] is None and event["price"] == 0.99


async def test_transfer_goes_to_the_destination_without_app_user_id(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """transfer emits TRANSFER naming both users and moves the purchases."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    (event,) = await simulate(client, "transfer", from_app_user_id="u1", to_app_user_id="u2")
    assert_complete(event)
    assert (event["transferred_from"], event["transferred_to"]) == (["u1"], ["u2"])
    assert backend.customer("u1").purchases == []
    assert backend.customer("u2").purchases[0].product_id == "pro_monthly"


async def test_pause_on_google_play(client: httpx.AsyncClient) -> None:
    """pause emits SUBSCRIPTION_PAUSED with auto_resume_at_ms; expiry then says why."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly", store="PLAY_STORE")
    (event,) = await simulate(client, "pause", app_user_id="u1", resume_after_days=10)
    assert_complete(event)
    assert event["auto_resume_at_ms"] == START_MS + 40 * DAY_MS
    (expired,) = await simulate(client, "expire", app_user_id="u1")
    assert expired["expiration_reason"] == "SUBSCRIPTION_PAUSED"


async def test_events_carry_current_attributes_aliases_and_experiments(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """Each event has the customer's attributes at that moment, its aliases and experiments."""
    backend.create_customer(
        "u1", original_app_user_id="$RCAnonymousID:abc", aliases=["$RCAnonymousID:abc"],
        experiments=[{"experiment_id": "prexp1", "experiment_variant": "b", "enrolled_at_ms": 1}],
    )  # fmt: skip
    (before,) = await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    backend.set_attributes("u1", {"$clevertapId": "ct-42"})
    (after,) = await simulate(client, "cancel", app_user_id="u1")
    assert before["subscriber_attributes"] == {}
    assert after["subscriber_attributes"]["$clevertapId"]["value"] == "ct-42"
    assert after["aliases"] == ["$RCAnonymousID:abc", "u1"]
    assert after["original_app_user_id"] == "$RCAnonymousID:abc"
    assert after["experiments"][0]["experiment_id"] == "prexp1"


async def test_ids_are_fresh_and_timestamps_follow_the_clock(
    client: httpx.AsyncClient, clock: VirtualClock
) -> None:
    """Every event gets a new id and the virtual time it happened at."""
    first = await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    clock.advance(90)
    second = await simulate(client, "cancel", app_user_id="u1")
    assert first[0]["id"] != second[0]["id"]
    assert [first[0]["event_timestamp_ms"], second[0]["event_timestamp_ms"]] == [
        START_MS, START_MS + 90_000
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("country", "store", "usd", "local", "currency", "tax", "commission"),
    [
        ("US", "APP_STORE", 9.99, 9.99, "USD", 0.0, 0.3),
        ("DE", "APP_STORE", 10.789, 9.99, "EUR", 0.1597, 0.3),
        ("IN", "PLAY_STORE", 9.588, 799.0, "INR", 0.1525, 0.15),
        ("CA", "STRIPE", 10.036, 12.99, "CAD", 0.0, 0.029),
    ],
)
async def test_prices_in_usd_and_purchase_currency(
    client: httpx.AsyncClient, country: str, store: str, usd: float, local: float,
    currency: str, tax: float, commission: float,
) -> None:  # fmt: skip
    """The price is in USD, the local price in the buyer's currency, with store and tax shares."""
    (event,) = await simulate(
        client, "buy", app_user_id="u1", product_id="pro_monthly", store=store, country=country
    )
    assert (event["price"], event["price_in_purchased_currency"], event["currency"]) == (
        usd, local, currency
    )  # fmt: skip
    assert (event["tax_percentage"], event["commission_percentage"]) == (tax, commission)
    assert event["takehome_percentage"] == round(1 - commission, 4)


async def test_intro_price_period(client: httpx.AsyncClient) -> None:
    """A purchase at the intro price is period INTRO at the intro amount."""
    (event,) = await simulate(client, "buy", app_user_id="u1", product_id="pro_weekly", intro=True)
    assert (event["period_type"], event["price"]) == ("INTRO", 0.99)


async def test_sandbox_purchases_say_so(client: httpx.AsyncClient) -> None:
    """A sandbox purchase's events carry environment SANDBOX."""
    (event,) = await simulate(
        client, "buy", app_user_id="u1", product_id="pro_monthly", environment="SANDBOX"
    )
    assert event["environment"] == "SANDBOX"


@pytest.mark.parametrize(
    ("steps", "operation", "params"),
    [
        ([], "renew", {}),
        ([("buy", {"product_id": "pro_monthly"})], "uncancel", {}),
        ([("buy", {"product_id": "pro_monthly"})], "convert_trial", {}),
        ([("buy", {"product_id": "pro_monthly"}), ("cancel", {})], "renew", {}),
        ([("buy", {"product_id": "pro_monthly"}), ("cancel", {})], "cancel", {}),
        ([("buy", {"product_id": "pro_monthly"})], "pause", {}),
        ([("buy", {"product_id": "pro_monthly"})], "buy", {"product_id": "pro_monthly"}),
        ([], "buy", {"product_id": "lifetime"}),
        ([], "start_trial", {"product_id": "premium_monthly"}),
        ([("buy", {"product_id": "pro_monthly"}), ("expire", {"reason": "UNKNOWN"})], "expire", {}),
        ([("buy", {"product_id": "pro_monthly"})], "expire", {}),
        ([("buy", {"product_id": "pro_monthly"})], "cancel", {"reason": "BORED"}),
        ([], "buy", {"product_id": "pro_monthly", "environment": "STAGING"}),
    ],
)
async def test_operations_the_state_does_not_allow_are_refused(
    client: httpx.AsyncClient, steps: list[tuple[str, dict[str, Any]]], operation: str,
    params: dict[str, Any],
) -> None:  # fmt: skip
    """An operation the subscription's state does not allow answers 404/409, emitting nothing."""
    for name, step_params in steps:
        await simulate(client, name, app_user_id="u1", **step_params)
    before = (await client.get("/_mock/revenuecat/events")).json()["items"]
    response = await client.post(
        f"/_mock/revenuecat/simulate/{operation}", json={"app_user_id": "u1", **params}
    )
    assert response.status_code in (404, 409)
    assert set(response.json()) == {"error", "message"}
    assert (await client.get("/_mock/revenuecat/events")).json()["items"] == before


@pytest.mark.parametrize(
    ("operation", "body", "status"),
    [
        ("teleport", {"app_user_id": "u1"}, 404),
        ("buy", {"app_user_id": "u1", "product_id": "nope"}, 404),
        ("buy", {"app_user_id": "u1", "product_id": "pro_monthly", "store": "ROKU_X"}, 404),
        ("buy", {"app_user_id": "u1", "product_id": "pro_monthly", "country": "XX"}, 404),
        ("buy", {"app_user_id": "u1", "product_id": "pro_monthly", "colour": "red"}, 400),
        ("buy", {"app_user_id": "u1", "product_id": 7}, 400),
        ("buy", {"product_id": "pro_monthly"}, 400),
        ("renew", {"app_user_id": "u1", "at_ms": True}, 400),
        ("transfer", {"from_app_user_id": "u1"}, 400),
    ],
)
async def test_bad_control_requests_get_clear_errors(
    client: httpx.AsyncClient, operation: str, body: dict[str, Any], status: int
) -> None:
    """Unknown operations, products, stores or parameters get 400/404 with a message."""
    response = await client.post(f"/_mock/revenuecat/simulate/{operation}", json=body)
    assert response.status_code == status
    assert response.json()["message"]


async def test_a_control_body_that_is_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    """A body that is not a JSON object gets 400."""
    response = await client.post("/_mock/revenuecat/simulate/buy", content=b"[1, 2")
    assert response.status_code == 400


def test_the_python_api_takes_explicit_times(backend: RevenueCatBackend) -> None:
    """Operations take ``at_ms`` so a lifecycle can be laid out in the past."""
    (event,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 40 * DAY_MS)
    assert event["event_timestamp_ms"] == START_MS - 40 * DAY_MS
    (renewal,) = backend.renew("u1", at_ms=START_MS - 10 * DAY_MS)
    assert renewal["purchased_at_ms"] == START_MS - 10 * DAY_MS


async def test_refunding_a_free_trial_reports_zero_not_minus_zero(
    client: httpx.AsyncClient,
) -> None:
    """A refund of a free period carries price 0.0, never -0.0."""
    await simulate(client, "start_trial", app_user_id="u1", product_id="pro_monthly")
    response = await client.post("/_mock/revenuecat/simulate/refund", json={"app_user_id": "u1"})
    assert '"price":-0.0' not in response.text.replace(" ", "")
    assert response.json()["events"][0]["price"] == 0.0
