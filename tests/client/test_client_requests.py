"""What the client puts on the wire: paths, headers and bodies for v1 and v2."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from rc_helpers import API_KEY, NOW_MS, Script

import client
from client import CLEVERTAP_ID, RevenueCat


def test_set_clevertap_id_posts_the_sdk_wire_format(
    make_client: Callable[..., RevenueCat],
) -> None:
    """set_clevertap_id posts {"attributes": {"$clevertapId": {value, updated_at_ms}}}."""
    script = Script(httpx.Response(200, json={}))
    make_client(script).set_clevertap_id("user-1", "ct-42")
    (request,) = script.requests
    assert request.method == "POST"
    assert request.url == "https://api.revenuecat.com/v1/subscribers/user-1/attributes"
    assert request.headers["content-type"] == "application/json"
    assert script.bodies() == [
        {"attributes": {"$clevertapId": {"value": "ct-42", "updated_at_ms": NOW_MS}}}
    ]


def test_requests_carry_a_bearer_key(make_client: Callable[..., RevenueCat]) -> None:
    """Every request authenticates with "Authorization: Bearer <key>"."""
    script = Script()
    make_client(script).set_clevertap_id("user-1", "ct-42")
    assert script.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("deleted", [None, ""])
def test_set_clevertap_id_with_none_or_empty_deletes(
    make_client: Callable[..., RevenueCat], deleted: str | None
) -> None:
    """None or "" sends a null value, which RevenueCat treats as a deletion."""
    script = Script()
    make_client(script).set_clevertap_id("user-1", deleted)
    assert script.bodies()[0]["attributes"][CLEVERTAP_ID]["value"] is None


@pytest.mark.parametrize(
    ("app_user_id", "encoded"),
    [
        ("a/b", "a%2Fb"),
        ("with space", "with%20space"),
        ("$RCAnonymousID:abc123", "%24RCAnonymousID%3Aabc123"),
        ("ü?#&", "%C3%BC%3F%23%26"),
    ],
)
def test_app_user_id_is_url_encoded(
    make_client: Callable[..., RevenueCat], app_user_id: str, encoded: str
) -> None:
    """The app user id is percent-encoded into one path segment, '/' included."""
    script = Script()
    make_client(script).set_clevertap_id(app_user_id, "x")
    assert script.requests[0].url.raw_path == f"/v1/subscribers/{encoded}/attributes".encode()


def test_set_attributes_stamps_every_key_with_one_time(
    make_client: Callable[..., RevenueCat],
) -> None:
    """All keys of one set_attributes call share the same updated_at_ms."""
    script = Script()
    make_client(script).set_attributes("u", {"$email": "a@b.co", "plan": "pro", "old": None})
    sent = script.bodies()[0]["attributes"]
    assert sent == {
        "$email": {"value": "a@b.co", "updated_at_ms": NOW_MS},
        "plan": {"value": "pro", "updated_at_ms": NOW_MS},
        "old": {"value": None, "updated_at_ms": NOW_MS},
    }


def test_set_attributes_accepts_an_explicit_time(make_client: Callable[..., RevenueCat]) -> None:
    """An explicit updated_at_ms is sent instead of the clock's time."""
    script = Script()
    make_client(script).set_attributes("u", {"plan": "pro"}, updated_at_ms=123)
    assert script.bodies()[0]["attributes"]["plan"]["updated_at_ms"] == 123


def test_set_attributes_ignores_an_empty_success_body(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A 200 with no body is a success: the client does not depend on the Customer Info."""
    make_client(Script(httpx.Response(200))).set_attributes("u", {"plan": "pro"})


SUBSCRIBER = {
    "request_date": "2019-07-26T17:40:10Z",
    "request_date_ms": 1564162810884,
    "subscriber": {
        "entitlements": {
            "pro": {
                "expires_date": "2030-01-01T00:00:00Z",
                "grace_period_expires_date": None,
                "product_identifier": "annual",
                "purchase_date": "2024-01-01T00:00:00Z",
            }
        },
        "first_seen": "2019-02-21T00:08:41Z",
        "last_seen": "2019-02-22T00:08:41Z",
        "management_url": None,
        "non_subscriptions": {
            "coins": [
                {
                    "id": "n1",
                    "is_sandbox": True,
                    "purchase_date": "2024-02-01T00:00:00Z",
                    "store": "play_store",
                }
            ]
        },
        "original_app_user_id": "user-1",
        "other_purchases": {},
        "subscriptions": {
            "annual": {
                "expires_date": "2030-01-01T00:00:00Z",
                "is_sandbox": False,
                "original_purchase_date": "2024-01-01T00:00:00Z",
                "ownership_type": "PURCHASED",
                "period_type": "normal",
                "purchase_date": "2024-01-01T00:00:00Z",
                "store": "app_store",
                "unsubscribe_detected_at": None,
                "some_future_field": 1,
            }
        },
        "subscriber_attributes": {"$clevertapId": {"value": "ct-42", "updated_at_ms": 17}},
    },
}


def test_get_subscriber_returns_typed_models(make_client: Callable[..., RevenueCat]) -> None:
    """get_subscriber parses entitlements, subscriptions, purchases and attributes."""
    script = Script(httpx.Response(200, json=SUBSCRIBER))
    subscriber = make_client(script).get_subscriber("user-1")
    assert script.requests[0].method == "GET"
    assert subscriber.original_app_user_id == "user-1"
    assert subscriber.entitlements["pro"].product_identifier == "annual"
    assert subscriber.subscriptions["annual"].store == "app_store"
    assert subscriber.subscriptions["annual"].period_type == "normal"
    assert subscriber.non_subscriptions["coins"][0].id == "n1"
    assert subscriber.attributes[CLEVERTAP_ID].value == "ct-42"
    assert subscriber.attributes[CLEVERTAP_ID].updated_at_ms == 17
    assert subscriber.created is False


def test_get_subscriber_reports_creation(make_client: Callable[..., RevenueCat]) -> None:
    """A 201 (RevenueCat created the customer on read) sets Subscriber.created."""
    subscriber = make_client(Script(httpx.Response(201, json=SUBSCRIBER))).get_subscriber("u")
    assert subscriber.created is True


def test_get_subscriber_with_a_malformed_body_raises_invalid_response(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A 200 whose body is not Customer Info raises InvalidResponseError, not a KeyError."""
    rc = make_client(Script(httpx.Response(200, json={"subscriber": {"entitlements": []}})))
    with pytest.raises(client.InvalidResponseError):
        rc.get_subscriber("u")


def test_get_subscriber_with_a_non_json_body_raises_invalid_response(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A 200 whose body is not JSON raises InvalidResponseError."""
    rc = make_client(Script(httpx.Response(200, text="<html>")))
    with pytest.raises(client.InvalidResponseError):
        rc.get_subscriber("u")


def test_delete_subscriber_sends_delete(make_client: Callable[..., RevenueCat]) -> None:
    """delete_subscriber sends DELETE /v1/subscribers/{id}."""
    script = Script(httpx.Response(200, json={"app_user_id": "a b", "deleted": True}))
    make_client(script).delete_subscriber("a b")
    assert script.requests[0].method == "DELETE"
    assert script.requests[0].url.raw_path == b"/v1/subscribers/a%20b"


def _attribute_list(names: list[str], next_page: str | None = None) -> dict[str, object]:
    return {
        "object": "list",
        "items": [
            {"object": "customer.attribute", "name": n, "value": "v", "updated_at": 5}
            for n in names
        ],
        "next_page": next_page,
        "url": "/v2/projects/p/customers/c/attributes",
    }


def test_set_customer_attributes_posts_the_v2_list(
    make_client: Callable[..., RevenueCat],
) -> None:
    """v2 set sends a list of {name, value} and returns the stored attributes."""
    script = Script(httpx.Response(200, json=_attribute_list(["$email"])))
    stored = make_client(script).set_customer_attributes(
        "proj1", "cust/1", {"$email": "a@b.co", "gone": None}
    )
    request = script.requests[0]
    assert request.url.raw_path == b"/v2/projects/proj1/customers/cust%2F1/attributes"
    assert script.bodies() == [
        {"attributes": [{"name": "$email", "value": "a@b.co"}, {"name": "gone", "value": None}]}
    ]
    assert stored == [client.CustomerAttribute(name="$email", value="v", updated_at_ms=5)]


def test_list_customer_attributes_follows_next_page(
    make_client: Callable[..., RevenueCat],
) -> None:
    """list_customer_attributes reads every page."""
    next_page = "/v2/projects/p/customers/c/attributes?starting_after=b"
    script = Script(
        httpx.Response(200, json=_attribute_list(["a", "b"], next_page)),
        httpx.Response(200, json=_attribute_list(["c"])),
    )
    items = make_client(script).list_customer_attributes("p", "c")
    assert [item.name for item in items] == ["a", "b", "c"]
    assert script.requests[1].url.raw_path == next_page.encode()


def test_list_customer_attributes_refuses_a_foreign_next_page(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A next_page pointing elsewhere is refused, so the key never leaves the API."""
    script = Script(httpx.Response(200, json=_attribute_list(["a"], "https://evil.example/x")))
    with pytest.raises(client.InvalidResponseError):
        make_client(script).list_customer_attributes("p", "c")
    assert len(script.requests) == 1


def test_list_customer_attributes_stops_a_looping_server(
    make_client: Callable[..., RevenueCat],
) -> None:
    """A server that returns the same next_page forever gets an InvalidResponseError."""
    page = "/v2/projects/p/customers/c/attributes?starting_after=a"
    script = Script(httpx.Response(200, json=_attribute_list(["a"], page)))
    with pytest.raises(client.InvalidResponseError):
        make_client(script).list_customer_attributes("p", "c")
    assert len(script.requests) == 2


def test_module_level_set_clevertap_id_uses_the_given_http_client() -> None:
    """client.set_clevertap_id sends one POST through the injected http client."""
    script = Script()
    with httpx.Client(transport=httpx.MockTransport(script)) as http:
        client.set_clevertap_id(
            "user-1", "ct-9", api_key=API_KEY, base_url="http://rc.test", http_client=http
        )
        assert not http.is_closed
    assert script.requests[0].url == "http://rc.test/v1/subscribers/user-1/attributes"
    assert script.bodies()[0]["attributes"][CLEVERTAP_ID]["value"] == "ct-9"


def test_client_closes_only_the_pool_it_created() -> None:
    """close() leaves an injected http client open: the caller owns it."""
    with httpx.Client(transport=httpx.MockTransport(Script())) as http:
        with RevenueCat(api_key=API_KEY, http_client=http):
            pass
        assert not http.is_closed
    rc = RevenueCat(api_key=API_KEY)
    rc.close()
    assert rc._http.is_closed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": ""},
        {"api_key": "sk with space"},
        {"api_key": API_KEY, "base_url": "ftp://x"},
        {"api_key": API_KEY, "max_retries": -1},
    ],
)
def test_bad_constructor_arguments_raise_value_error(kwargs: dict[str, object]) -> None:
    """A bad api_key, base_url or max_retries is a ValueError at construction."""
    with pytest.raises(ValueError):
        RevenueCat(**kwargs)  # type: ignore[arg-type]


def test_a_sync_client_refuses_an_async_http_client() -> None:
    """Passing an httpx.AsyncClient to RevenueCat is a TypeError, not a later crash."""
    with pytest.raises(TypeError):
        RevenueCat(api_key=API_KEY, http_client=httpx.AsyncClient())  # type: ignore[arg-type]
