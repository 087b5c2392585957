"""Per-account storage: profiles, the identity index, events, and profile operators.

Identity resolution (reference §5): a record is addressed by ``objectId`` (the CleverTap ID),
``identity``, ``FBID`` or ``GPID``.  An unknown identifier creates a profile.  With several
identifiers in one record (UNCONFIRMED server behaviour) the mock resolves by the first known
one in the order objectId, identity, FBID, GPID and attaches the others to that profile when no
other profile holds them.  ``profileData.identity``/``Identity`` attaches an identity to the
profile the record addresses, as RudderStack's objectId mapping relies on (reference §2).

Memory is bounded (STYLE 12):

- events: the newest ``max_events`` per account are kept (a deque); older ones are dropped and
  counted in ``events_dropped``;
- profiles: at most ``max_profiles`` per account; creating one more evicts the oldest-created
  profile (counted in ``profiles_evicted``).  An evicted profile's events stay in the event
  log, but no identifier finds them any more.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mockserver.clevertap.validation import MILLISECONDS_FROM, Limits

ROOT_KEYS = ("objectId", "identity", "FBID", "GPID")


@dataclass(slots=True)
class Profile:
    """One user profile as the mock holds it."""

    object_id: str
    identities: dict[str, str] = field(default_factory=dict)  # "identity"/"FBID"/"GPID" -> value
    profile_data: dict[str, Any] = field(default_factory=dict)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    event_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: what inspection routes and ``backend.profiles()`` return."""
        return {
            "objectId": self.object_id,
            "identity": self.identities.get("identity"),
            "FBID": self.identities.get("FBID"),
            "GPID": self.identities.get("GPID"),
            "profileData": {
                k: list(v) if type(v) is list else v for k, v in self.profile_data.items()
            },
            "tokens": [dict(t) for t in self.tokens],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "event_count": self.event_count,
        }


def _usable(value: object) -> bool:
    """An identifier validation counts as present: a non-blank string or an integer."""
    return (type(value) is str and bool(value.strip())) or type(value) is int


def _identifier(value: object) -> str:
    # identity 13 was echoed back as "13" (RUBY cassettes, reference §2.2).
    return value if type(value) is str else str(value)


class AccountStore:
    """Profiles, identity index and events of one account."""

    def __init__(
        self, *, max_events: int, max_profiles: int, max_multi_values: int, rng: random.Random
    ) -> None:
        self.max_profiles = max_profiles
        self.max_multi_values = max_multi_values
        self._rng = rng
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.profiles: dict[str, Profile] = {}  # object_id -> profile, in creation order
        # root key ("identity", "FBID", "GPID") -> value -> profile
        self._index: dict[str, dict[str, Profile]] = {"identity": {}, "FBID": {}, "GPID": {}}
        self._email: dict[str, Profile] = {}
        self.event_names: set[str] = set()
        self.event_properties: dict[str, set[str]] = {}
        self.events_dropped = 0
        self.profiles_evicted = 0

    # -- identity -----------------------------------------------------------------------------

    def find(self, key: str, value: object) -> Profile | None:
        """The profile an identifier names, or None."""
        if key == "objectId":
            return self.profiles.get(value) if type(value) is str else None
        if key == "email":
            return self._email.get(value) if type(value) is str else None
        index = self._index.get(key)
        return None if index is None else index.get(_identifier(value))

    def resolve(self, record: dict[str, Any], now: float) -> Profile:
        """The profile a (valid) record addresses, created when unknown."""
        if "objectId" not in record and "FBID" not in record and "GPID" not in record:
            # The common case: addressed by identity alone.
            identity = _identifier(record["identity"])
            by_identity = self._index["identity"]
            profile = by_identity.get(identity)
            if profile is None:
                profile = self._create(f"{self._rng.getrandbits(128):032x}", now)
                self._attach(profile, "identity", identity)
            return profile
        profile = None
        for key in ROOT_KEYS:
            value = record.get(key)
            if _usable(value):
                profile = self.find(key, value)
                if profile is not None:
                    break
        if profile is None:
            object_id = record.get("objectId")
            if type(object_id) is not str or object_id in self.profiles:
                object_id = f"{self._rng.getrandbits(128):032x}"
            profile = self._create(object_id, now)
        for key in ("identity", "FBID", "GPID"):
            value = record.get(key)
            if _usable(value):
                self._attach(profile, key, _identifier(value))
        return profile

    def _create(self, object_id: str, now: float) -> Profile:
        while len(self.profiles) >= self.max_profiles:
            self.delete(next(iter(self.profiles.values())), drop_events=False)
            self.profiles_evicted += 1
        profile = Profile(object_id=object_id, created_at=now, updated_at=now)
        self.profiles[object_id] = profile
        return profile

    def _attach(self, profile: Profile, key: str, value: str) -> None:
        index = self._index[key]
        if value not in index and key not in profile.identities:
            profile.identities[key] = value
            index[value] = profile

    def delete(self, profile: Profile, *, drop_events: bool = True) -> None:
        """Forget a profile and its identifiers (and, by default, its events)."""
        self.profiles.pop(profile.object_id, None)
        for key, value in profile.identities.items():
            if self._index[key].get(value) is profile:
                del self._index[key][value]
        email = profile.profile_data.get("Email")
        if type(email) is str and self._email.get(email) is profile:
            del self._email[email]
        if drop_events:
            kept = [e for e in self.events if e["_object_id"] != profile.object_id]
            self.events.clear()
            self.events.extend(kept)

    def check_event_type(self, record: dict[str, Any], limits: Limits, *, apply: bool) -> int:
        """Account-wide limits: distinct event names and properties per event type (DOC-UE)."""
        name: str = record["evtName"]
        keys = record["evtData"].keys()
        known = self.event_properties.get(name)
        if known is None:
            # Past the distinct-name limit: the code is UNCONFIRMED; 512 "Invalid event
            # structure" is the closest DOC-ERR code.
            if len(self.event_names) >= limits.max_event_names:
                return 512
            if apply:
                self.event_names.add(name)
                self.event_properties[name] = set(keys)
            return 0
        if keys <= known:
            return 0
        fresh = keys - known
        if len(known) + len(fresh) > limits.max_event_properties:
            return 522
        if apply:
            known |= fresh
        return 0

    def store_record(
        self,
        record: dict[str, Any],
        now: float,
        received_ts: int,
        request_id: int,
    ) -> None:
        """Store one valid record: an event (``ts`` filled in), a profile update or a token."""
        profile = self.resolve(record, now)
        kind = record["type"]
        if kind == "event":
            stored = dict(record)
            ts = stored.get("ts")
            if ts is None:
                stored["ts"] = received_ts
            elif ts >= MILLISECONDS_FROM:
                stored["ts"] = ts // 1000  # only reachable with milliseconds_ts="convert"
            stored["_object_id"] = profile.object_id
            stored["_received_at"] = now
            stored["_upload"] = request_id
            self.add_event(stored, profile)
        elif kind == "profile":
            self.update_profile(profile, record["profileData"], now)
        else:
            self.add_token(profile, record["tokenData"], now)

    # -- events -------------------------------------------------------------------------------

    def add_event(self, stored: dict[str, Any], profile: Profile) -> None:
        if len(self.events) == self.events.maxlen:
            self.events_dropped += 1
        self.events.append(stored)
        profile.event_count += 1

    def events_of(self, profile: Profile) -> list[dict[str, Any]]:
        object_id = profile.object_id
        return [e for e in self.events if e["_object_id"] == object_id]

    # -- profiles -----------------------------------------------------------------------------

    def update_profile(self, profile: Profile, data: dict[str, Any], now: float) -> None:
        """Apply a (valid) ``profileData``: plain values set, operators applied (§2, §2.1)."""
        stored = profile.profile_data
        email_before = stored.get("Email")
        for key, value in data.items():
            if key in ("identity", "Identity"):
                if _usable(value):
                    self._attach(profile, "identity", _identifier(value))
                continue
            if type(value) is dict:
                self._apply(stored, key, value)
            elif type(value) is list:
                # Setting a multi-value replaces it (platform-considerations).
                stored[key] = self._dedupe(value)
            elif value is None:
                # null: UNCONFIRMED; the mock leaves the key as it was.
                continue
            else:
                stored[key] = value
        email = stored.get("Email")
        if email != email_before:
            if type(email_before) is str and self._email.get(email_before) is profile:
                del self._email[email_before]
            if type(email) is str:
                self._email[email] = profile
        profile.updated_at = now

    def _apply(self, stored: dict[str, Any], key: str, command: dict[str, Any]) -> None:
        ((op, arg),) = command.items()
        current = stored.get(key)
        if op == "$set":
            stored[key] = self._dedupe(arg) if type(arg) is list else arg
        elif op == "$delete":
            stored.pop(key, None)
        elif op in ("$incr", "$decr"):
            # A non-numeric current value is left alone (UNCONFIRMED).
            if current is None:
                current = 0
            if type(current) in (int, float):
                stored[key] = current + arg if op == "$incr" else current - arg
        elif op == "$add":
            # Adding to a scalar promotes it to a multi-value of strings (platform-considerations).
            items = [] if current is None else current if type(current) is list else [str(current)]
            stored[key] = self._dedupe([*items, *([arg] if type(arg) is str else arg)])
        elif op == "$remove" and current is not None:
            gone = {arg} if type(arg) is str else set(arg)
            items = current if type(current) is list else [str(current)]
            stored[key] = [v for v in items if v not in gone]

    def _dedupe(self, values: Iterable[str]) -> list[str]:
        # Multi-values are unique strings; beyond the cap the oldest go first (FIFO).
        unique = list(dict.fromkeys(values))
        return unique[-self.max_multi_values :] if len(unique) > self.max_multi_values else unique

    def add_token(self, profile: Profile, token: dict[str, Any], now: float) -> None:
        profile.tokens = [t for t in profile.tokens if t.get("id") != token.get("id")]
        profile.tokens.append(dict(token))
        profile.updated_at = now
