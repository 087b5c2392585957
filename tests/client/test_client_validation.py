"""Bad input is refused with a typed error before anything is sent."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from rc_helpers import Script

import client
from client import RevenueCat


@pytest.mark.parametrize(
    ("attributes", "bad_key"),
    [
        ({"$notAThing": "x"}, "$notAThing"),
        ({"$cleverTapId": "x"}, "$cleverTapId"),
        ({"1starts_with_digit": "x"}, "1starts_with_digit"),
        ({"has space": "x"}, "has space"),
        ({"dot.ted": "x"}, "dot.ted"),
        ({"a" * 41: "x"}, "a" * 41),
        ({"plan": "x" * 501}, "plan"),
        ({"plan": 5}, "plan"),
        ({"": "x"}, ""),
    ],
)
def test_invalid_attributes_raise_before_sending(
    make_client: Callable[..., RevenueCat], attributes: Mapping[str, object], bad_key: str
) -> None:
    """Each rule violation raises InvalidAttributeError naming the key, and sends nothing."""
    script = Script()
    with pytest.raises(client.InvalidAttributeError) as info:
        make_client(script).set_attributes("u", attributes)  # type: ignore[arg-type]
    assert [e.key_name for e in info.value.errors] == [bad_key]
    assert script.requests == []


def test_a_batch_with_one_bad_key_is_rejected_whole(
    make_client: Callable[..., RevenueCat],
) -> None:
    """One bad key rejects the whole call, listing every bad key."""
    script = Script()
    with pytest.raises(client.InvalidAttributeError) as info:
        make_client(script).set_attributes("u", {"ok": "1", "bad key": "2", "$nope": "3"})
    assert [e.key_name for e in info.value.errors] == ["bad key", "$nope"]
    assert script.requests == []


def test_the_capital_t_spelling_gets_a_hint() -> None:
    """The docs' spelling "$cleverTapId" is refused with a hint naming "$clevertapId"."""
    with (
        RevenueCat(api_key="sk_x") as rc,
        pytest.raises(client.InvalidAttributeError, match=r"\$clevertapId"),
    ):
        rc.set_attributes("u", {"$cleverTapId": "x"})


def test_boundary_lengths_are_accepted(make_client: Callable[..., RevenueCat]) -> None:
    """A 40-character key and a 500-character value are allowed."""
    script = Script()
    make_client(script).set_attributes("u", {"a" * 40: "x" * 500, "telemetry_deck_app_id": "t"})
    assert len(script.requests) == 1


def test_more_than_50_custom_attributes_are_refused(
    make_client: Callable[..., RevenueCat],
) -> None:
    """51 custom keys in one call raise; reserved keys do not count toward the 50."""
    script = Script()
    rc = make_client(script)
    fifty = {f"k{i}": "v" for i in range(50)}
    rc.set_attributes("u", {**fifty, "$email": "a@b.co", "$displayName": "Ada"})
    with pytest.raises(client.InvalidAttributeError):
        rc.set_attributes("u", {**fifty, "k50": "v"})
    assert len(script.requests) == 1


def test_v2_caps_every_attribute_at_50(make_client: Callable[..., RevenueCat]) -> None:
    """The v2 body allows at most 50 items, reserved keys included."""
    script = Script()
    attributes = {f"k{i}": "v" for i in range(49)} | {"$email": "a", "$displayName": "b"}
    with pytest.raises(client.InvalidAttributeError):
        make_client(script).set_customer_attributes("p", "c", attributes)
    assert script.requests == []


@pytest.mark.parametrize("attributes", [{}, [("plan", "pro")], None])
def test_empty_or_non_mapping_attributes_are_refused(
    make_client: Callable[..., RevenueCat], attributes: object
) -> None:
    """An empty or non-mapping attributes argument raises InvalidAttributeError."""
    with pytest.raises(client.InvalidAttributeError):
        make_client(Script()).set_attributes("u", attributes)  # type: ignore[arg-type]


@pytest.mark.parametrize("app_user_id", ["", "   ", None, 42])
def test_bad_app_user_ids_are_refused(
    make_client: Callable[..., RevenueCat], app_user_id: object
) -> None:
    """An empty or non-string app user id raises before anything is sent."""
    script = Script()
    rc = make_client(script)
    with pytest.raises(client.InvalidAttributeError):
        rc.set_clevertap_id(app_user_id, "x")  # type: ignore[arg-type]
    with pytest.raises(client.InvalidAttributeError):
        rc.get_subscriber(app_user_id)  # type: ignore[arg-type]
    assert script.requests == []


def test_overlong_v2_ids_are_refused(make_client: Callable[..., RevenueCat]) -> None:
    """A customer id over 1500 characters or a project id over 255 is refused."""
    rc = make_client(Script())
    with pytest.raises(client.InvalidAttributeError):
        rc.list_customer_attributes("p", "c" * 1501)
    with pytest.raises(client.InvalidAttributeError):
        rc.list_customer_attributes("p" * 256, "c")


def test_invalid_attribute_error_is_a_value_error() -> None:
    """InvalidAttributeError is also a ValueError, for callers that catch that."""
    assert issubclass(client.InvalidAttributeError, ValueError)


@pytest.mark.parametrize("stamp", [-1, 1.5, "123", True])
def test_a_bad_updated_at_ms_is_refused(
    make_client: Callable[..., RevenueCat], stamp: object
) -> None:
    """updated_at_ms must be a non-negative int of epoch milliseconds."""
    script = Script()
    with pytest.raises(client.InvalidAttributeError):
        make_client(script).set_attributes("u", {"plan": "pro"}, updated_at_ms=stamp)  # type: ignore[arg-type]
    assert script.requests == []
