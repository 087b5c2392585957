"""CleverTap's read APIs over the mock's stores: cursors, profiles, counts, deletion.

Shapes (reference §4):

- ``events.json`` / ``profiles.json``: a query (POST body, or GET ``query=<JSON>`` as NODE and
  PYCT send it) with ``batch_size`` returns ``{"status": "success", "cursor": ...}``;
  ``GET ?cursor=`` returns ``{"status": "success", "records": [...], "next_cursor": ...}`` and
  leaves ``next_cursor`` out after the last batch.
- ``counts/*.json``: ``{"status": "success", "count": N}``, or with deferred counts
  ``{"status": "partial", "req_id": ...}`` first, to be polled with ``?req_id=`` (the polling
  method is UNCONFIRMED; the mock accepts GET and POST).
- ``profile.json``: ``{"status": "success", "record": {...}}``.

The full record shapes are UNCONFIRMED (reference open question 12).  The mock's event record
follows CleverTap's Get Events documentation as far as it is known: ``profile`` (objectId,
identity, email, name, all_identities), ``ts`` as ``YYYYMMDDHHMMSS``, ``event_props``,
``session_props``.  A profile record carries ``identity``, ``name``, ``email``,
``all_identities``, ``platformInfo`` and ``profileData``.

Error answers use CleverTap's request-level body with HTTP 400; their messages are the mock's.
Open cursors and pending count results are capped (``max_cursors``, oldest forgotten); a
cursor keeps references to the matches and renders each page when it is fetched.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mockserver.clevertap.errors import CleverTapError
from mockserver.clevertap.store import AccountStore, Profile

MAX_BATCH_SIZE = 5000  # DOC-GE, DOC-GP
DEFAULT_BATCH_SIZE = 10  # NODE's default; the server's default is UNCONFIRMED


@dataclass(frozen=True, slots=True)
class Query:
    """An events/profiles/counts query: an event name and a YYYYMMDD date range (DOC-GE)."""

    event_name: str
    date_from: int
    date_to: int

    @classmethod
    def parse(cls, raw: object) -> Query:
        if type(raw) is not dict:
            raise CleverTapError(400, "Query must be a JSON object")
        name = raw.get("event_name")
        if type(name) is not str or not name:
            raise CleverTapError(400, "event_name is mandatory")
        dates = []
        for key in ("from", "to"):
            value = raw.get(key)
            if type(value) is str and value.isdigit():
                value = int(value)
            if type(value) is not int or not 19700101 <= value <= 99991231:
                raise CleverTapError(400, f"{key} must be a date as YYYYMMDD")
            dates.append(value)
        if dates[0] > dates[1]:
            raise CleverTapError(400, "from must not be after to")
        return cls(event_name=name, date_from=dates[0], date_to=dates[1])

    def matches(self, event: dict[str, Any]) -> bool:
        if event["evtName"] != self.event_name:
            return False
        day = _yyyymmdd(event["ts"])
        return self.date_from <= day <= self.date_to


def parse_batch_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_BATCH_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BATCH_SIZE:
        raise CleverTapError(400, f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}")
    return int(raw)


def _yyyymmdd(ts: int) -> int:
    t = time.gmtime(ts)
    return t.tm_year * 10_000 + t.tm_mon * 100 + t.tm_mday


def _timestamp(ts: int) -> int:
    t = time.gmtime(ts)
    return int(time.strftime("%Y%m%d%H%M%S", t))


def _identities(profile: Profile) -> list[str]:
    return [v for k, v in profile.identities.items() if k == "identity"]


def profile_record(profile: Profile) -> dict[str, Any]:
    """A profile in the read APIs' shape."""
    data = profile.profile_data
    return {
        "identity": profile.identities.get("identity", ""),
        "name": data.get("Name", ""),
        "email": data.get("Email", ""),
        "all_identities": _identities(profile),
        "platformInfo": [{"objectId": profile.object_id, "platform": "API"}],
        "profileData": {k: list(v) if type(v) is list else v for k, v in data.items()},
    }


def event_record(event: dict[str, Any], profile: Profile | None) -> dict[str, Any]:
    """A stored event in the Get Events API's shape."""
    summary: dict[str, Any] = {"objectId": event["_object_id"]}
    if profile is not None:
        summary.update(
            identity=profile.identities.get("identity", ""),
            email=profile.profile_data.get("Email", ""),
            name=profile.profile_data.get("Name", ""),
            all_identities=_identities(profile),
            platform="API",
        )
    return {
        "profile": summary,
        "ts": _timestamp(event["ts"]),
        "event_props": dict(event["evtData"]),
        "session_props": {},
    }


Render = Callable[[Any], dict[str, Any]]


@dataclass(slots=True)
class _Cursor:
    account_id: str
    items: list[Any]  # references to stored events or profiles, rendered page by page
    offset: int
    batch_size: int
    render: Render


class Cursors:
    """Open result cursors, capped; each step hands out a fresh cursor for the rest.

    A cursor holds references to the matching stored objects (8 bytes each), not rendered
    records; pages are rendered when fetched.
    """

    def __init__(self, *, max_cursors: int, rng: random.Random) -> None:
        self.max_cursors = max_cursors
        self._rng = rng
        self._open: OrderedDict[str, _Cursor] = OrderedDict()
        self._counts: OrderedDict[int, tuple[str, int]] = OrderedDict()
        self._req_ids = 0

    def open(self, account_id: str, items: list[Any], batch_size: int, render: Render) -> str:
        return self._keep(_Cursor(account_id, items, 0, batch_size, render))

    def _keep(self, cursor: _Cursor) -> str:
        name = f"{self._rng.getrandbits(96):024x}"
        self._open[name] = cursor
        while len(self._open) > self.max_cursors:
            self._open.popitem(last=False)
        return name

    def step(self, account_id: str, name: str) -> dict[str, Any]:
        cursor = self._open.pop(name, None)
        if cursor is None or cursor.account_id != account_id:
            raise CleverTapError(400, "Invalid cursor")
        end = cursor.offset + cursor.batch_size
        page = [cursor.render(item) for item in cursor.items[cursor.offset : end]]
        answer: dict[str, Any] = {"status": "success", "records": page}
        if end < len(cursor.items):
            cursor.offset = end
            answer["next_cursor"] = self._keep(cursor)
        return answer

    def defer_count(self, account_id: str, count: int) -> int:
        self._req_ids += 1
        self._counts[self._req_ids] = (account_id, count)
        while len(self._counts) > self.max_cursors:
            self._counts.popitem(last=False)
        return self._req_ids

    def collect_count(self, account_id: str, req_id: str) -> int:
        entry = self._counts.get(int(req_id)) if req_id.isdigit() else None
        if entry is None or entry[0] != account_id:
            raise CleverTapError(400, "Invalid req_id")
        return entry[1]


def matching_events(store: AccountStore, query: Query) -> list[dict[str, Any]]:
    return [e for e in store.events if query.matches(e)]


def event_renderer(store: AccountStore) -> Render:
    """Renders a stored event of ``store`` in the Get Events shape, with its profile."""
    profiles = store.profiles

    def render(event: dict[str, Any]) -> dict[str, Any]:
        return event_record(event, profiles.get(event["_object_id"]))

    return render


def profiles_with(store: AccountStore, query: Query) -> list[Profile]:
    """Profiles that did the query's event in its date range, each once, in first-seen order."""
    seen: dict[str, Profile] = {}
    for event in matching_events(store, query):
        profile = store.profiles.get(event["_object_id"])
        if profile is not None:
            seen.setdefault(profile.object_id, profile)
    return list(seen.values())


def delete_profiles(store: AccountStore, body: object) -> int:
    """Delete by ``identity`` or ``guid`` (the CleverTap ID), each a string or a list.

    RudderStack sends ``{"identity": [...]}`` in chunks of 100, Segment one string, NODE
    ``{"guid": ...}`` (reference §4).  Unknown ids are not an error (UNCONFIRMED).
    """
    if type(body) is not dict or not ({"identity", "guid"} & body.keys()):
        raise CleverTapError(400, 'Malformed request. Give "identity" or "guid"')
    deleted = 0
    for key, lookup in (("identity", "identity"), ("guid", "objectId")):
        if key not in body:
            continue
        values = body[key]
        items: Iterable[object] = values if type(values) is list else [values]
        for value in items:
            if type(value) not in (str, int) or value == "":
                raise CleverTapError(400, f"{key} values must be non-empty strings")
            profile = store.find(lookup, value)
            if profile is not None:
                store.delete(profile)
                deleted += 1
    return deleted
