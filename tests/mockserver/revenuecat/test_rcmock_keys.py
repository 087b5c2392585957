"""Keys: v1 accepts Bearer or bare public/secret keys, v2 only Bearer v2 keys; nothing leaks."""

from __future__ import annotations

import logging

import httpx
import pytest
from rcmock_helpers import PUBLIC, SECRET, V1_SECRET, V2, V2_AUTH, v2_url
from rcmock_schemas import V1_ERROR, problems, v2_error

from mockserver.revenuecat import ApiKeys, RevenueCatBackend, WebhookTarget


async def test_v1_accepts_a_bearer_secret_key(client: httpx.AsyncClient) -> None:
    """A v1 request with ``Bearer sk_...`` is served."""
    response = await client.get("/v1/subscribers/u1", headers=V1_SECRET)
    assert response.status_code == 201


@pytest.mark.parametrize("key", [PUBLIC, SECRET])
async def test_v1_accepts_the_bare_key(client: httpx.AsyncClient, key: str) -> None:
    """v1 also takes the key alone in the Authorization header, as RevenueCat allowed."""
    response = await client.get("/v1/subscribers/u1", headers={"Authorization": key})
    assert response.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {V2}"},
        {"Authorization": ""},
    ],
)
async def test_v1_rejects_missing_unknown_and_v2_keys(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """A bad v1 key gets 401 with RevenueCat's v1 error body, code 7225."""
    response = await client.get("/v1/subscribers/u1", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API key.", "code": 7225}
    assert problems(response.json(), V1_ERROR) == []


@pytest.mark.parametrize(
    "authorization", [None, f"Bearer {SECRET}", f"Bearer {PUBLIC}", V2, "Basic abc", "Bearer "]
)
async def test_v2_requires_bearer_and_a_v2_key(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    """v2 answers 401 authentication_error to v1 keys, bare keys and other schemes."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.get(v2_url("u1", "/attributes"), headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "authentication_error" and body["retryable"] is False
    assert problems(body, v2_error()) == []


async def test_v2_accepts_its_key(client: httpx.AsyncClient, backend: RevenueCatBackend) -> None:
    """A Bearer v2 key reaches the endpoint."""
    backend.create_customer("u1")
    response = await client.get(v2_url("u1", "/attributes"), headers=V2_AUTH)
    assert response.status_code == 200


def test_secret_keys_must_start_with_sk() -> None:
    """A configured secret key without the ``sk_`` prefix is refused at construction."""
    with pytest.raises(ValueError, match="sk_"):
        ApiKeys(public=("a",), secret=("not_secret",), v2=("b",))


def test_a_key_cannot_be_of_two_kinds() -> None:
    """The same key configured as v1 and v2 is refused."""
    with pytest.raises(ValueError, match="two kinds"):
        ApiKeys(public=("a",), secret=("sk_x",), v2=("sk_x",))


def test_keys_and_webhook_auth_never_appear_in_reprs(backend: RevenueCatBackend) -> None:
    """Neither the backend, its keys nor a webhook target show a secret in their repr."""
    target = WebhookTarget("http://receiver/hook", authorization="Bearer hook-secret-value")
    texts = [repr(backend), repr(backend.keys), repr(target), str(backend.keys)]
    for text in texts:
        for secret in (SECRET, PUBLIC, V2, "hook-secret-value"):
            assert secret not in text


async def test_rejected_keys_are_not_echoed_or_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong key is neither in the 401 body nor in any log line."""
    caplog.set_level(logging.DEBUG)
    wrong = "sk_leaky_key_123456"
    v1 = await client.get("/v1/subscribers/u1", headers={"Authorization": wrong})
    v2 = await client.get(v2_url("u1"), headers={"Authorization": f"Bearer {wrong}"})
    assert wrong not in v1.text and wrong not in v2.text
    assert wrong not in caplog.text
