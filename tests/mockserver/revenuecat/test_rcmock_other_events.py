"""Events outside the purchase lifecycle: TEST, SUBSCRIPTION_EXTENDED, REFUND_REVERSED,
TEMPORARY_ENTITLEMENT_GRANT, INVOICE_ISSUANCE, VIRTUAL_CURRENCY_TRANSACTION,
EXPERIMENT_ENROLLMENT, and the ``experiments`` array, over the control API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from rcmock_helpers import LIFECYCLE_FIELDS, START_MS, V1_SECRET, V2_AUTH, Receiver, v2_url

from integration.config import CleverTapConfig, Config, Secret
from integration.mapping import Skipped, map_event
from integration.webhook import parse_webhook
from mockserver import create_app
from mockserver.revenuecat import RevenueCatBackend, VirtualClock, WebhookTarget

DAY_MS = 86_400_000
BASE = "/_mock/revenuecat"
LIFECYCLE = set(LIFECYCLE_FIELDS)
# Each new type's field set, as its sample in revenuecat-docs/webhook-samples/ has it, plus
# what the mock adds on purpose (commented).
FIELDS: dict[str, set[str]] = {
    # No published sample (revenuecat.md 4.4): the common fields, store and environment.
    "TEST": {
        "type", "id", "app_id", "event_timestamp_ms", "app_user_id", "original_app_user_id",
        "aliases", "subscriber_attributes", "experiments", "store", "environment",
    },
    # The sample lacks renewal_number, a documented lifecycle field every mock event carries.
    "SUBSCRIPTION_EXTENDED": LIFECYCLE,
    "REFUND_REVERSED": LIFECYCLE | {"metadata"},
    "TEMPORARY_ENTITLEMENT_GRANT": {
        "type", "id", "app_id", "event_timestamp_ms", "app_user_id", "store",
    },
    # The sample has no price (USD) and no experiments; experiments is a common field (4.3).
    "INVOICE_ISSUANCE": (LIFECYCLE - {"price"}) | {"metadata"},
    "VIRTUAL_CURRENCY_TRANSACTION": {
        "type", "id", "app_id", "event_timestamp_ms", "app_user_id", "aliases",
        "subscriber_attributes", "experiments", "adjustments", "country_code",
        "product_display_name", "product_id", "purchase_environment", "source", "store",
        "transaction_id", "virtual_currency_transaction_id",
    },
    "EXPERIMENT_ENROLLMENT": {
        "type", "id", "event_timestamp_ms", "app_user_id", "original_app_user_id", "aliases",
        "experiment_id", "experiment_variant", "offering_id", "experiment_enrolled_at_ms",
    },
}  # fmt: skip
# How the forwarder classifies each new type: none is sent to CleverTap, each skipped with
# not_forwarded (RevenueCat's CleverTap integration lists none of them, revenuecat.md 5.1).
CLASSIFICATION = {kind: "not_forwarded" for kind in FIELDS}
FORWARDER = Config(clevertap=CleverTapConfig(account_id="ACC-1", passcode=Secret("pw")))


async def simulate(http: httpx.AsyncClient, operation: str, **params: Any) -> list[dict[str, Any]]:
    response = await http.post(f"{BASE}/simulate/{operation}", json=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def refused(http: httpx.AsyncClient, operation: str, **params: Any) -> httpx.Response:
    response = await http.post(f"{BASE}/simulate/{operation}", json=params)
    assert response.status_code in (400, 404, 409), response.text
    return response


# Operations producing one event of each new type, from a customer u1 who bought pro_monthly
# on the App Store (and had it refunded, for the reversal).
OPERATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("send_test_event", {}, "TEST"),
    ("extend", {"days": 10}, "SUBSCRIPTION_EXTENDED"),
    ("reverse_refund", {}, "REFUND_REVERSED"),
    ("grant_temporary_entitlement", {}, "TEMPORARY_ENTITLEMENT_GRANT"),
    ("issue_invoice", {"product_id": "pro_annual"}, "INVOICE_ISSUANCE"),
    ("grant_virtual_currency", {"amount": 250}, "VIRTUAL_CURRENCY_TRANSACTION"),
    ("enroll_in_experiment", {"experiment_id": "prexp9", "variant": "a"}, "EXPERIMENT_ENROLLMENT"),
]


async def prepare(http: httpx.AsyncClient, operation: str) -> None:
    await simulate(http, "buy", app_user_id="u1", product_id="pro_monthly")
    if operation == "reverse_refund":
        await simulate(http, "refund", app_user_id="u1")


@pytest.mark.parametrize(("operation", "params", "kind"), OPERATIONS)
async def test_each_new_type_has_its_samples_fields(
    client: httpx.AsyncClient, operation: str, params: dict[str, Any], kind: str
) -> None:
    """Each operation emits one event of its type with exactly its sample's field set."""
    await prepare(client, operation)
    (event,) = await simulate(client, operation, app_user_id="u1", **params)
    assert event["type"] == kind
    assert set(event) == FIELDS[kind]
    assert event["event_timestamp_ms"] == START_MS
    assert event["app_user_id"] == "u1"


async def test_webhook_bodies_parse_and_the_forwarder_classifies_each_new_type(
    clock: VirtualClock,
) -> None:
    """Every new type reaches a webhook target in RevenueCat's body; parse_webhook accepts it
    and map_event skips it with the code CLASSIFICATION gives."""
    receiver = Receiver()
    backend = RevenueCatBackend(
        clock=clock, seed=1, webhooks=[WebhookTarget("http://receiver/hook")],
        http_client=receiver.client(),
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(revenuecat_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await simulate(http, "buy", app_user_id="u1", product_id="pro_monthly")
        for operation, params, _ in OPERATIONS:
            if operation == "reverse_refund":
                await simulate(http, "refund", app_user_id="u1")
            await simulate(http, operation, app_user_id="u1", **params)
        await backend.webhooks.run_until_settled()
    outcomes: dict[str, str] = {}
    for request in receiver.requests:
        body = request["body"]
        assert body["api_version"] == "1.0"
        envelope = parse_webhook(json.dumps(body).encode())
        if envelope.event_type in FIELDS:
            assert set(envelope.event) == FIELDS[envelope.event_type]
            result = map_event(envelope.event, FORWARDER)
            assert isinstance(result, Skipped), envelope.event_type
            outcomes[envelope.event_type] = result.code
    assert outcomes == CLASSIFICATION


async def test_test_event_changes_nothing(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A TEST event names the customer, store and environment asked for, and buys nothing."""
    (event,) = await simulate(
        client, "send_test_event", app_user_id="u1", store="PLAY_STORE", environment="SANDBOX"
    )
    assert (event["store"], event["environment"]) == ("PLAY_STORE", "SANDBOX")
    assert backend.customer("u1").purchases == []


async def test_extension_moves_the_expiry_in_customer_info(client: httpx.AsyncClient) -> None:
    """SUBSCRIPTION_EXTENDED carries the new expiry at price 0, and Customer Info shows it."""
    (bought,) = await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    (event,) = await simulate(client, "extend", app_user_id="u1", days=10)
    assert event["expiration_at_ms"] == bought["expiration_at_ms"] + 10 * DAY_MS
    assert (event["price"], event["transaction_id"]) == (0.0, bought["transaction_id"])
    info = (await client.get("/v1/subscribers/u1", headers=V1_SECRET)).json()
    assert info["subscriber"]["subscriptions"]["pro_monthly"]["expires_date"] == (
        "2023-12-24T22:13:20Z"  # 30 + 10 days after 2023-11-14 22:13:20
    )


@pytest.mark.parametrize("days", [0, 91])
async def test_extension_is_1_to_90_days(client: httpx.AsyncClient, days: int) -> None:
    """An extension outside Apple's 1-90 days is refused and emits nothing."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    response = await refused(client, "extend", app_user_id="u1", days=days)
    assert response.status_code == 409


async def test_reversing_a_refund_restores_access_and_the_price(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """REFUND_REVERSED carries the transaction's positive price and gives access back."""
    (bought,) = await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    await simulate(client, "refund", app_user_id="u1")
    assert backend.customer("u1").purchases[0].is_active(START_MS) is False
    (event,) = await simulate(client, "reverse_refund", app_user_id="u1")
    assert (event["price"], event["metadata"]) == (9.99, None)
    assert event["expiration_at_ms"] == bought["expiration_at_ms"]
    assert backend.customer("u1").purchases[0].is_active(START_MS) is True


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([("buy", {"product_id": "pro_monthly"})], "not refunded"),
        ([("buy", {"product_id": "pro_monthly", "store": "PLAY_STORE"}), ("refund", {})],
         "App Store"),
    ],
)  # fmt: skip
async def test_only_app_store_refunds_are_reversed(
    client: httpx.AsyncClient, steps: list[tuple[str, dict[str, Any]]], message: str
) -> None:
    """A purchase that is not refunded, or a Play refund, cannot be reversed (409)."""
    for name, params in steps:
        await simulate(client, name, app_user_id="u1", **params)
    response = await refused(client, "reverse_refund", app_user_id="u1")
    assert response.status_code == 409 and message in response.json()["message"]


async def test_invoice_is_web_billing_in_the_buyers_currency(client: httpx.AsyncClient) -> None:
    """INVOICE_ISSUANCE is RC_BILLING, priced in the country's currency, with null ids."""
    (event,) = await simulate(
        client, "issue_invoice", app_user_id="u1", product_id="pro_monthly", country="DE"
    )
    assert (event["store"], event["currency"], event["price_in_purchased_currency"]) == (
        "RC_BILLING", "EUR", 9.99
    )  # fmt: skip
    assert event["transaction_id"] is event["period_type"] is event["renewal_number"] is None


async def test_virtual_currency_comes_from_a_purchase(client: httpx.AsyncClient) -> None:
    """VIRTUAL_CURRENCY_TRANSACTION names the purchase's transaction and its adjustment."""
    (bought,) = await simulate(client, "buy_non_renewing", app_user_id="u1", product_id="coins_100")
    (event,) = await simulate(
        client, "grant_virtual_currency", app_user_id="u1", product_id="coins_100", amount=100,
        currency="GEM",
    )  # fmt: skip
    assert event["transaction_id"] == bought["transaction_id"]
    assert event["adjustments"] == [
        {"amount": 100, "currency": {"code": "GEM", "description": "A premium currency",
                                     "name": "Gems"}}
    ]  # fmt: skip
    assert (event["source"], event["purchase_environment"]) == ("in_app_purchase", "PRODUCTION")
    assert event["virtual_currency_transaction_id"].startswith("vatx")


@pytest.mark.parametrize(
    "params", [{"amount": 0}, {"currency": "XYZ"}, {"product_id": "pro_annual"}]
)
async def test_virtual_currency_needs_a_purchase_a_currency_and_an_amount(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    """No amount, an unknown currency or no such purchase is refused."""
    await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    await refused(client, "grant_virtual_currency", app_user_id="u1", **params)


async def test_enrollment_appears_in_later_events_and_the_v2_customer(
    client: httpx.AsyncClient, clock: VirtualClock
) -> None:
    """After EXPERIMENT_ENROLLMENT, the customer's events carry it in ``experiments`` and
    the v2 customer shows it as its experiment."""
    (enrolled,) = await simulate(client, "enroll_in_experiment", app_user_id="u1")
    assert (enrolled["experiment_id"], enrolled["experiment_variant"]) == ("prexp1a2b3c4", "b")
    assert enrolled["offering_id"] == "experiment_offering_b"
    assert enrolled["experiment_enrolled_at_ms"] == START_MS
    clock.advance(60)
    (bought,) = await simulate(client, "buy", app_user_id="u1", product_id="pro_monthly")
    assert bought["experiments"] == [
        {"experiment_id": "prexp1a2b3c4", "experiment_variant": "b", "enrolled_at_ms": START_MS}
    ]
    customer = (await client.get(v2_url("u1"), headers=V2_AUTH)).json()
    assert customer["experiment"] == {
        "object": "experiment_enrollment", "id": "prexp1a2b3c4", "name": "prexp1a2b3c4",
        "variant": "b",
    }  # fmt: skip


@pytest.mark.parametrize("params", [{"variant": "z"}, {"experiment_id": ""}, {}])
async def test_enrollment_is_once_per_experiment_with_a_known_variant(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    """A second enrollment in the same experiment, a variant outside a-d or an empty id is
    refused."""
    await simulate(client, "enroll_in_experiment", app_user_id="u1")
    response = await refused(client, "enroll_in_experiment", app_user_id="u1", **params)
    assert response.status_code == 409


def test_the_python_api_emits_the_same_events(backend: RevenueCatBackend) -> None:
    """The backend's methods run the operations the control API runs."""
    backend.buy("u1", "pro_monthly")
    (event,) = backend.extend("u1", days=3, at_ms=START_MS + DAY_MS)
    assert (event["type"], event["event_timestamp_ms"]) == (
        "SUBSCRIPTION_EXTENDED",
        START_MS + DAY_MS,
    )
    assert backend.events(event_type="SUBSCRIPTION_EXTENDED") == [event]
