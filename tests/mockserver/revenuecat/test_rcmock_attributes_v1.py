"""API v1 attribute writes: newer-wins, deletes, key and value rules, 7263 and 7264."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from rcmock_helpers import PUBLIC, SECRET, V1_PUBLIC, V1_SECRET, V2
from rcmock_schemas import V1_ATTRIBUTE_ERROR, V1_ERROR, problems, v1_subscriber

from mockserver.revenuecat import RevenueCatBackend, VirtualClock

URL = "/v1/subscribers/u1/attributes"


def body(**attributes: tuple[Any, int]) -> dict[str, Any]:
    return {"attributes": {k: {"value": v, "updated_at_ms": t} for k, (v, t) in attributes.items()}}


def stored(backend: RevenueCatBackend, key: str) -> str | None:
    attribute = backend.customer("u1").attributes.get(key)
    return attribute.value if attribute else None


async def test_a_public_key_can_write_and_the_answer_is_customer_info(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """SDKs write with the public key; the 200 carries Customer Info (api-v1.yaml)."""
    response = await client.post(URL, json=body(**{"$clevertapId": ("ct-1", 5)}), headers=V1_PUBLIC)
    assert response.status_code == 200
    assert problems(response.json(), v1_subscriber(with_attributes=False)) == []
    assert stored(backend, "$clevertapId") == "ct-1"


async def test_newer_updated_at_ms_wins(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A write older than (or as old as) the stored one is ignored without an error."""
    await client.post(URL, json=body(color=("red", 200)), headers=V1_SECRET)
    late = await client.post(URL, json=body(color=("blue", 100)), headers=V1_SECRET)
    same = await client.post(URL, json=body(color=("green", 200)), headers=V1_SECRET)
    assert (late.status_code, same.status_code) == (200, 200)
    assert stored(backend, "color") == "red"
    await client.post(URL, json=body(color=("teal", 201)), headers=V1_SECRET)
    assert stored(backend, "color") == "teal"


@pytest.mark.parametrize("empty", [None, ""])
async def test_null_or_empty_deletes(
    client: httpx.AsyncClient, backend: RevenueCatBackend, empty: str | None
) -> None:
    """``null`` and ``""`` both delete the attribute."""
    await client.post(URL, json=body(color=("red", 1)), headers=V1_SECRET)
    response = await client.post(URL, json=body(color=(empty, 2)), headers=V1_SECRET)
    assert response.status_code == 200
    assert "color" not in response.json()["subscriber"]["subscriber_attributes"]


async def test_a_delete_is_newer_wins_too(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A write older than a delete does not bring the attribute back."""
    await client.post(URL, json=body(color=("red", 1)), headers=V1_SECRET)
    await client.post(URL, json=body(color=(None, 10)), headers=V1_SECRET)
    await client.post(URL, json=body(color=("blue", 5)), headers=V1_SECRET)
    assert stored(backend, "color") is None


async def test_missing_updated_at_ms_uses_server_time(
    client: httpx.AsyncClient, backend: RevenueCatBackend, clock: VirtualClock
) -> None:
    """Without ``updated_at_ms`` the write is stamped with the server's clock."""
    await client.post(URL, json={"attributes": {"color": {"value": "red"}}}, headers=V1_SECRET)
    attribute = backend.customer("u1").attributes.get("color")
    assert attribute is not None and attribute.updated_at_ms == clock.now_ms()


async def test_invalid_keys_get_7263_listing_only_them_and_valid_ones_are_saved(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A mixed body saves the valid keys and answers 400 7263 naming only the failing ones."""
    payload = body(**{
        "good_key": ("yes", 1),
        "bad key": ("x", 1),
        "$email": ("not-an-email", 1),
        "long_value": ("v" * 501, 1),
        "k" * 41: ("x", 1),
        "$madeUp": ("x", 1),
        "1starts_with_digit": ("x", 1),
        "$displayName": ("Ana", 1),
    })  # fmt: skip
    response = await client.post(URL, json=payload, headers=V1_SECRET)
    assert response.status_code == 400
    error = response.json()
    assert problems(error, V1_ATTRIBUTE_ERROR) == []
    assert error["code"] == 7263
    failing = {e["key_name"] for e in error["attribute_errors"]}
    assert failing == {"bad key", "$email", "long_value", "k" * 41, "$madeUp", "1starts_with_digit"}
    assert stored(backend, "good_key") == "yes"
    assert stored(backend, "$displayName") == "Ana"


async def test_a_non_string_value_is_a_per_key_error(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """A number as a value is rejected for that key only."""
    response = await client.post(URL, json=body(age=(42, 1), name=("x", 1)), headers=V1_SECRET)
    assert [e["key_name"] for e in response.json()["attribute_errors"]] == ["age"]
    assert stored(backend, "name") == "x"


async def test_both_clevertap_spellings_are_accepted(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """``$clevertapId`` (SDKs) and ``$cleverTapId`` (RevenueCat's Android docs) are both kept."""
    payload = body(**{"$clevertapId": ("a", 1), "$cleverTapId": ("b", 1)})
    response = await client.post(URL, json=payload, headers=V1_SECRET)
    assert response.status_code == 200
    assert (stored(backend, "$clevertapId"), stored(backend, "$cleverTapId")) == ("a", "b")


@pytest.mark.parametrize("key", ["$idfa", "$ip", "$mediaSource", "$campaign"])
async def test_device_and_attribution_keys_are_write_once(
    client: httpx.AsyncClient, backend: RevenueCatBackend, key: str
) -> None:
    """Once set, a device or attribution key keeps its first value, even against newer writes."""
    await client.post(URL, json=body(**{key: ("first", 1)}), headers=V1_SECRET)
    response = await client.post(URL, json=body(**{key: ("second", 2)}), headers=V1_SECRET)
    assert response.status_code == 200
    assert stored(backend, key) == "first"


async def test_fifty_custom_attributes_at_most(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """The 51st custom key is rejected; reserved keys do not count towards the 50."""
    fifty = {f"k{i}": (str(i), 1) for i in range(50)}
    assert (await client.post(URL, json=body(**fifty), headers=V1_SECRET)).status_code == 200
    payload = body(k50=("x", 2), k0=("changed", 2), **{"$email": ("a@example.com", 2)})
    response = await client.post(URL, json=payload, headers=V1_SECRET)
    assert [e["key_name"] for e in response.json()["attribute_errors"]] == ["k50"]
    assert stored(backend, "k0") == "changed" and stored(backend, "$email") == "a@example.com"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"attributes": []}',
        b'{"nothing": {}}',
        b'{"attributes": {"a": "plain string"}}',
        b'{"attributes": {"a": {"updated_at_ms": 1}}}',
        b'{"attributes": {"a": {"value": "x", "updated_at_ms": "soon"}}}',
        b'{"attributes": {"a": {"value": "x", "updated_at_ms": true}}}',
        b'{"attributes": {"a": {"value": "x", "updated_at_ms": -5}}}',
    ],
)
async def test_malformed_bodies_get_7264_and_save_nothing(
    client: httpx.AsyncClient, backend: RevenueCatBackend, raw: bytes
) -> None:
    """A body that is not ``{"attributes": {key: {"value": ...}}}`` gets 400 7264."""
    backend.create_customer("u1")
    response = await client.post(URL, content=raw, headers=V1_SECRET)
    assert response.status_code == 400
    assert response.json()["code"] == 7264
    assert problems(response.json(), V1_ERROR) == []
    assert len(backend.customer("u1").attributes) == 0


async def test_posting_for_an_unknown_user_creates_it(
    client: httpx.AsyncClient, backend: RevenueCatBackend
) -> None:
    """By default an attribute POST creates the customer, as the client flows expect."""
    await client.post(
        "/v1/subscribers/new_user/attributes", json=body(a=("1", 1)), headers=V1_SECRET
    )
    assert backend.customer("new_user").attributes.get("a") is not None


async def test_posting_for_an_unknown_user_can_404_like_older_revenuecat() -> None:
    """With ``create_on_attribute_post=False`` an unknown user gets 404 (the SDKs' 2020 case)."""
    from mockserver import create_app

    backend = RevenueCatBackend(
        public_keys=[PUBLIC], secret_keys=[SECRET], v2_keys=[V2], create_on_attribute_post=False
    )
    transport = httpx.ASGITransport(app=create_app(revenuecat_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.post(URL, json=body(a=("1", 1)), headers=V1_SECRET)
    assert response.status_code == 404
    assert problems(response.json(), V1_ERROR) == []


async def test_absurdly_nested_json_is_a_7264_not_a_crash(client: httpx.AsyncClient) -> None:
    """A body nested too deep for the JSON parser gets 7264, never a 500."""
    response = await client.post(URL, content=b"[" * 200_000, headers=V1_SECRET)
    assert (response.status_code, response.json()["code"]) == (400, 7264)
