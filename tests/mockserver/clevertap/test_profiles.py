"""Storage and identity: profiles found or created per identifier, profile operators."""

from __future__ import annotations

from typing import Any

import pytest

from mockserver.clevertap import Account, CleverTapBackend
from tests.mockserver.clevertap.conftest import ACCOUNT_ID, PASSCODE, event, profile


@pytest.fixture
def backend() -> CleverTapBackend:
    return CleverTapBackend(accounts=[Account(ACCOUNT_ID, (PASSCODE,))], clock=lambda: 100.0)


def data_of(backend: CleverTapBackend, identity: str = "u1") -> dict[str, Any]:
    found = backend.profile(ACCOUNT_ID, identity=identity)
    assert found is not None
    data: dict[str, Any] = found["profileData"]
    return data


def test_unknown_identity_creates_a_profile(backend: CleverTapBackend) -> None:
    """An event for an unknown identity creates its profile (reference §5)."""
    backend.upload(ACCOUNT_ID, [event("new-user")])
    (created,) = backend.profiles(ACCOUNT_ID)
    assert created["identity"] == "new-user"
    assert created["event_count"] == 1


def test_numeric_identity_is_the_same_user_as_its_string(backend: CleverTapBackend) -> None:
    """identity 13 and "13" address one profile (CleverTap echoes 13 as "13")."""
    backend.upload(ACCOUNT_ID, [event(13), event("13")])  # type: ignore[arg-type]
    assert len(backend.profiles(ACCOUNT_ID)) == 1


def test_object_id_record_creates_profile_with_that_clevertap_id(
    backend: CleverTapBackend,
) -> None:
    """A record addressed by an unknown objectId creates a profile with that CleverTap ID."""
    record = {"type": "event", "objectId": "__h1234abcd", "evtName": "X", "evtData": {}}
    backend.upload(ACCOUNT_ID, [record])
    assert backend.events_for(ACCOUNT_ID, object_id="__h1234abcd")[0]["evtName"] == "X"


def test_profile_data_identity_attaches_identity_to_object_id_profile(
    backend: CleverTapBackend,
) -> None:
    """objectId plus profileData.identity links the identity to that profile (RudderStack)."""
    backend.upload(
        ACCOUNT_ID,
        [
            {"type": "event", "objectId": "anon-1", "evtName": "Browse", "evtData": {}},
            {"type": "profile", "objectId": "anon-1", "profileData": {"identity": "user-7"}},
            event("user-7", "Buy"),
        ],
    )
    names = [e["evtName"] for e in backend.events_for(ACCOUNT_ID, identity="user-7")]
    assert names == ["Browse", "Buy"]


def test_several_identifiers_attach_to_one_profile(backend: CleverTapBackend) -> None:
    """A record with identity and FBID makes both find the same profile."""
    backend.upload(ACCOUNT_ID, [{**event("u1"), "FBID": "fb-1"}])
    backend.upload(ACCOUNT_ID, [{"type": "event", "FBID": "fb-1", "evtName": "Y", "evtData": {}}])
    assert len(backend.events_for(ACCOUNT_ID, identity="u1")) == 2


def test_plain_values_set_and_overwrite(backend: CleverTapBackend) -> None:
    """A plain profile value sets the key; a later upload overwrites it."""
    backend.upload(ACCOUNT_ID, [profile(Plan="basic", Name="Ann")])
    backend.upload(ACCOUNT_ID, [profile(Plan="pro")])
    assert data_of(backend) == {"Plan": "pro", "Name": "Ann"}


def test_dates_are_kept_as_d_strings(backend: CleverTapBackend) -> None:
    """A "$D_<epoch seconds>" date is stored as sent (reference §2.3)."""
    backend.upload(ACCOUNT_ID, [profile(rc_expiration_at="$D_1700000000")])
    assert data_of(backend)["rc_expiration_at"] == "$D_1700000000"


def test_add_appends_unique_values_and_promotes_scalars(backend: CleverTapBackend) -> None:
    """$add appends unique strings and turns a scalar into a multi-value (platform docs)."""
    backend.upload(ACCOUNT_ID, [profile(Lang="English")])
    backend.upload(ACCOUNT_ID, [profile(Lang={"$add": ["Spanish", "English", "German"]})])
    assert data_of(backend)["Lang"] == ["English", "Spanish", "German"]


def test_add_keeps_the_newest_100_values(backend: CleverTapBackend) -> None:
    """Multi-values hold at most 100 items; the oldest go first (FIFO)."""
    backend.upload(ACCOUNT_ID, [profile(Tags={"$add": [f"t{i}" for i in range(105)]})])
    tags = data_of(backend)["Tags"]
    assert len(tags) == 100 and tags[0] == "t5" and tags[-1] == "t104"


def test_remove_drops_values(backend: CleverTapBackend) -> None:
    """$remove takes values out of a multi-value."""
    backend.upload(ACCOUNT_ID, [profile(Tags=["a", "b", "c"])])
    backend.upload(ACCOUNT_ID, [profile(Tags={"$remove": ["b"]})])
    assert data_of(backend)["Tags"] == ["a", "c"]


def test_incr_and_decr_count(backend: CleverTapBackend) -> None:
    """$incr and $decr add to a number, starting from 0 when the key is new."""
    backend.upload(ACCOUNT_ID, [profile(Visits={"$incr": 5})])
    backend.upload(ACCOUNT_ID, [profile(Visits={"$decr": 2})])
    assert data_of(backend)["Visits"] == 3


def test_delete_removes_a_key(backend: CleverTapBackend) -> None:
    """$delete removes the key from the profile."""
    backend.upload(ACCOUNT_ID, [profile(Plan="pro", Name="A")])
    backend.upload(ACCOUNT_ID, [profile(Plan={"$delete": True})])
    assert data_of(backend) == {"Name": "A"}


def test_set_operator_replaces(backend: CleverTapBackend) -> None:
    """$set sets a value like a plain value does."""
    backend.upload(ACCOUNT_ID, [profile(Tags=["a"])])
    backend.upload(ACCOUNT_ID, [profile(Tags={"$set": ["x", "y"]})])
    assert data_of(backend)["Tags"] == ["x", "y"]


def test_email_lookup_follows_changes(backend: CleverTapBackend) -> None:
    """A profile is found by its current Email, not by an old one."""
    backend.upload(ACCOUNT_ID, [profile(Email="old@example.com")])
    backend.upload(ACCOUNT_ID, [profile(Email="new@example.com")])
    assert backend.profile(ACCOUNT_ID, email="old@example.com") is None
    assert backend.profile(ACCOUNT_ID, email="new@example.com") is not None


def test_token_is_stored_on_the_profile(backend: CleverTapBackend) -> None:
    """A token record adds its token to the objectId's profile."""
    token = {"type": "token", "objectId": "dev-1", "tokenData": {"id": "t1", "type": "fcm"}}
    backend.upload(ACCOUNT_ID, [token, token])
    found = backend.profile(ACCOUNT_ID, object_id="dev-1")
    assert found is not None and found["tokens"] == [{"id": "t1", "type": "fcm"}]


def test_events_beyond_the_cap_drop_the_oldest() -> None:
    """With max_events_per_account=3, the newest 3 events stay and the drop is counted."""
    backend = CleverTapBackend(
        accounts=[Account(ACCOUNT_ID, (PASSCODE,))], max_events_per_account=3
    )
    backend.upload(ACCOUNT_ID, [event(name=f"E{i}") for i in range(5)])
    assert [e["evtName"] for e in backend.events(ACCOUNT_ID)] == ["E2", "E3", "E4"]
    assert backend.counters(ACCOUNT_ID)["events_dropped"] == 2


def test_profiles_beyond_the_cap_evict_the_oldest() -> None:
    """With max_profiles_per_account=2, a third user evicts the first-created profile."""
    backend = CleverTapBackend(
        accounts=[Account(ACCOUNT_ID, (PASSCODE,))], max_profiles_per_account=2
    )
    backend.upload(ACCOUNT_ID, [event("a"), event("b"), event("c")])
    assert [p["identity"] for p in backend.profiles(ACCOUNT_ID)] == ["b", "c"]
    assert backend.counters(ACCOUNT_ID)["profiles_evicted"] == 1


def test_events_for_needs_exactly_one_key(backend: CleverTapBackend) -> None:
    """events_for with neither identity nor object_id is a ValueError."""
    with pytest.raises(ValueError, match="exactly one"):
        backend.events_for(ACCOUNT_ID)


def test_blank_identity_beside_object_id_is_not_attached(backend: CleverTapBackend) -> None:
    """An empty identity next to a valid objectId is ignored, not stored as an identity."""
    record = {"type": "event", "objectId": "dev-9", "identity": "", "evtName": "X", "evtData": {}}
    backend.upload(ACCOUNT_ID, [record])
    found = backend.profile(ACCOUNT_ID, object_id="dev-9")
    assert found is not None and found["identity"] is None
