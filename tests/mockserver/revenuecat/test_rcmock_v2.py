"""API v2: customer attributes (list objects, 1-50 items, null deletes), customers, 404s."""

from __future__ import annotations

import httpx
import pytest
from rcmock_helpers import PROJECT, START_MS, V2_AUTH, v2_url
from rcmock_schemas import (
    V2_ATTRIBUTE_LIST,
    V2_DELETED,
    problems,
    v2_customer,
    v2_error,
)

from mockserver.revenuecat import RevenueCatBackend


def items(*pairs: tuple[str, str | None]) -> dict[str, object]:
    return {"attributes": [{"name": n, "value": v} for n, v in pairs]}


async def test_set_returns_the_list_object(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """POST answers ListCustomerAttributes with every attribute of the customer."""
    backend.create_customer("u1", attributes={"$email": "a@example.com"})
    response = await client.post(
        v2_url("u1", "/attributes"), json=items(("$clevertapId", "ct-9"), ("plan", "gold")),
        headers=V2_AUTH,
    )  # fmt: skip
    assert response.status_code == 200
    listed = response.json()
    assert problems(listed, V2_ATTRIBUTE_LIST) == []
    assert [(i["name"], i["value"]) for i in listed["items"]] == [
        ("$clevertapId", "ct-9"), ("$email", "a@example.com"), ("plan", "gold")
    ]  # fmt: skip
    assert listed["url"] == f"/v2/projects/{PROJECT}/customers/u1/attributes"
    assert listed["items"][0]["updated_at"] == START_MS


async def test_get_lists_attributes(client: httpx.AsyncClient, backend: RevenueCatBackend) -> None:
    """GET answers the same list object."""
    backend.create_customer("u1", attributes={"plan": "gold"})
    response = await client.get(v2_url("u1", "/attributes"), headers=V2_AUTH)
    assert problems(response.json(), V2_ATTRIBUTE_LIST) == []
    assert response.json()["items"][0]["name"] == "plan"


async def test_null_deletes(client: httpx.AsyncClient, backend: RevenueCatBackend) -> None:
    """A ``null`` value deletes the attribute."""
    backend.create_customer("u1", attributes={"plan": "gold", "keep": "me"})
    response = await client.post(
        v2_url("u1", "/attributes"), json=items(("plan", None)), headers=V2_AUTH
    )
    assert [i["name"] for i in response.json()["items"]] == ["keep"]


async def test_a_v2_write_wins_over_a_future_stamped_v1_write(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A server-side v2 write applies even when a device stamped a later ``updated_at_ms``."""
    backend.set_attributes("u1", {"plan": "old"}, at_ms=START_MS + 10_000_000)
    await client.post(v2_url("u1", "/attributes"), json=items(("plan", "new")), headers=V2_AUTH)
    attribute = backend.customer("u1").attributes.get("plan")
    assert attribute is not None and attribute.value == "new"


async def test_pagination_with_limit_and_starting_after(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``limit`` cuts the page and ``next_page`` continues after the last name."""
    backend.create_customer("u1", attributes={f"k{i}": "v" for i in range(5)})
    first = (await client.get(v2_url("u1", "/attributes?limit=2"), headers=V2_AUTH)).json()
    assert [i["name"] for i in first["items"]] == ["k0", "k1"]
    second = (await client.get(first["next_page"], headers=V2_AUTH)).json()
    assert [i["name"] for i in second["items"]] == ["k2", "k3"]
    last = (await client.get(second["next_page"], headers=V2_AUTH)).json()
    assert [i["name"] for i in last["items"]] == ["k4"] and last["next_page"] is None


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"attributes": []}, "attributes"),
        ({"attributes": [{"name": f"k{i}", "value": "v"} for i in range(51)]}, "attributes"),
        ({"attributes": "nope"}, "attributes"),
        ({"attributes": [{"name": "a", "value": "b"}], "extra": 1}, "attributes"),
        ({"attributes": [{"name": "bad name", "value": "x"}]}, "attributes[0].name"),
        ({"attributes": [{"name": "$notReserved", "value": "x"}]}, "attributes[0].name"),
        ({"attributes": [{"name": "ok", "value": "x" * 501}]}, "attributes[0].value"),
        ({"attributes": [{"name": "ok", "value": 3}]}, "attributes[0].value"),
        ({"attributes": [{"name": "ok"}]}, "attributes[0]"),
        # Non-string names once crashed the parser (500); each is a parameter_error.
        ({"attributes": [{"name": 0, "value": "x"}]}, "attributes[0].name"),
        ({"attributes": [{"name": None, "value": "x"}]}, "attributes[0].name"),
        ({"attributes": [{"name": {}, "value": "x"}]}, "attributes[0].name"),
        ({"attributes": [{"name": False, "value": "x"}]}, "attributes[0].name"),
        ({"attributes": [{"name": ["a"], "value": "x"}]}, "attributes[0].name"),
        ({"attributes": [{"name": "ok", "value": "x"}, {"name": "k" * 41, "value": "x"}]},
         "attributes[1].name"),
    ],
)  # fmt: skip
async def test_invalid_bodies_get_parameter_error_and_save_nothing(
    client: httpx.AsyncClient, backend: RevenueCatBackend, payload: object, param: str
) -> None:
    """Schema violations answer 400 parameter_error naming the parameter; nothing is saved."""
    backend.create_customer("u1")
    response = await client.post(v2_url("u1", "/attributes"), json=payload, headers=V2_AUTH)
    assert response.status_code == 400
    error = response.json()
    assert problems(error, v2_error(param=True)) == []
    assert (error["type"], error["param"]) == ("parameter_error", param)
    assert len(backend.customer("u1").attributes) == 0


async def test_more_than_fifty_custom_attributes_is_refused(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A write that would leave 51 custom attributes is refused as a whole."""
    backend.create_customer("u1", attributes={f"k{i}": "v" for i in range(50)})
    response = await client.post(
        v2_url("u1", "/attributes"), json=items(("k50", "x")), headers=V2_AUTH
    )
    assert response.status_code == 400
    assert backend.customer("u1").attributes.get("k50") is None


async def test_a_body_that_is_not_json_is_an_invalid_request(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """Bytes that are not JSON, or another content type, get 400 invalid_request."""
    backend.create_customer("u1")
    url = v2_url("u1", "/attributes")
    broken = await client.post(
        url, content=b"{", headers={**V2_AUTH, "Content-Type": "application/json"}
    )
    text = await client.post(url, content=b"a=b", headers={**V2_AUTH, "Content-Type": "text/plain"})
    assert (broken.status_code, text.status_code) == (400, 400)
    assert broken.json()["type"] == text.json()["type"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("GET", "/attributes"), ("POST", "/attributes")],
)
async def test_unknown_customer_is_resource_missing(
    client: httpx.AsyncClient, method: str, suffix: str
) -> None:
    """Every v2 customer endpoint answers 404 resource_missing for an unknown customer."""
    response = await client.request(
        method, v2_url("ghost", suffix), json=items(("a", "b")), headers=V2_AUTH
    )
    assert response.status_code == 404
    assert response.json()["type"] == "resource_missing"
    assert problems(response.json(), v2_error(param=True)) == []


async def test_get_customer_matches_the_spec(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """GET customer answers the Customer object with active entitlements, expandable attributes."""
    backend.create_customer("u1", attributes={"plan": "gold"}, country="DE", platform="ios")
    backend.buy("u1", "premium_monthly")
    plain = (await client.get(v2_url("u1"), headers=V2_AUTH)).json()
    expanded = (await client.get(v2_url("u1?expand=attributes"), headers=V2_AUTH)).json()
    assert problems(plain, v2_customer(expanded=False)) == []
    assert problems(expanded, v2_customer(expanded=True)) == []
    assert len(plain["active_entitlements"]["items"]) == 2
    assert plain["last_seen_country"] == "DE" and plain["project_id"] == PROJECT
    assert expanded["attributes"]["items"][0]["value"] == "gold"


async def test_unknown_expand_value_is_a_parameter_error(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``expand`` accepts only ``attributes``."""
    backend.create_customer("u1")
    response = await client.get(v2_url("u1?expand=everything"), headers=V2_AUTH)
    assert (response.status_code, response.json()["param"]) == (400, "expand")


async def test_delete_customer_answers_the_deleted_object(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """DELETE answers DeletedObject and the customer is gone."""
    backend.create_customer("u1")
    response = await client.delete(v2_url("u1"), headers=V2_AUTH)
    assert problems(response.json(), V2_DELETED) == []
    assert response.json()["deleted_at"] == START_MS
    assert (await client.get(v2_url("u1"), headers=V2_AUTH)).status_code == 404


async def test_another_project_is_not_authorized(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A project other than the configured one gets 403 authorization_error."""
    backend.create_customer("u1")
    response = await client.get("/v2/projects/projOTHER/customers/u1", headers=V2_AUTH)
    assert (response.status_code, response.json()["type"]) == (403, "authorization_error")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v2/projects", 404), ("GET", "/v2", 404), ("PUT", v2_url("u1"), 405)],
)
async def test_unknown_v2_routes_answer_in_the_v2_shape(
    client: httpx.AsyncClient, backend: RevenueCatBackend, method: str, path: str, status: int
) -> None:
    """Unknown paths and methods get v2 error objects, never a bare 404 or a 500."""
    backend.create_customer("u1")
    response = await client.request(method, path, headers=V2_AUTH)
    assert response.status_code == status
    assert problems(response.json(), v2_error()) == []
