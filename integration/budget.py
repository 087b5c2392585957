"""CleverTap's property budget per event name: which ``evtData`` keys each event may carry.

CleverTap counts the distinct properties of each event name over all its uploads, 100 by
default and configurable per account, and refuses a record that would pass the limit with
code 522 "Event properties limit exceeded" (clevertap.md §1.3, §3.1).  Today's per-event cap
(``extras.max_event_properties``) cannot prevent that: forty different custom attributes on
each of three users make 120 distinct keys for one event name.  :class:`PropertyBudget`
keeps each (account, event name) within ``budget.max_event_properties_per_name`` keys:

1. the core keys (:data:`integration.mapping.CORE_KEYS`, every key of a ``Charged`` record)
   and, unless ``budget.context_properties`` is off, the context keys
   (:data:`~integration.mapping.CONTEXT_KEYS`) are always kept;
2. then the attribute keys the name already holds, which cost nothing;
3. then new attribute keys, in the mapping's order (key order), while the name has room;
   the rest are dropped and counted (``event_properties_dropped_total{reason="budget"}``).

What the name "holds" is, per (account, event name):

- ``known``: keys CleverTap confirmed, that is keys of records it processed (a 200 that
  vouched for every record, the record not among the unprocessed).  Stored in the outbox
  (``event_properties`` / ``add_event_properties``, both backends), loaded once per process,
  written only when a key is new, just before the settle of the upload that confirmed it.
- ``used``: ``known`` plus the keys sent and not yet confirmed, in memory.  An upload that
  timed out may still have reached CleverTap, so what was sent counts against the budget
  until a 522 says otherwise; a restart forgets it (the stored ``known`` is what is certain).

A 522 is not a dead letter (:mod:`integration.policy`): the record is sent again with its
core keys only (:meth:`PropertyBudget.core_only`; the attributes it loses are counted with
``reason="core_only"``), and the name learns the account's real limit: CleverTap holds at
least the ``known`` keys, so the limit is at least their number, and no new attribute key
is sent for the name past it.  The learned limit is stored with the budget configured when it
was learned, and forgotten when that configuration changes (an operator who raised the
account's limit in CleverTap raises ``max_event_properties_per_name`` too).  A record that
still gets a 522 with only its core keys is dead-lettered with CleverTap's message.

Memory is bounded: one entry per (account, event name) the configuration can produce, each
holding at most the budget's keys plus the fixed keys.  Several instances sharing one
PostgreSQL outbox each load the stored keys at start and keep their own ``used``: together
they may send more new keys than the budget, and CleverTap's 522 then corrects it as above.

Example (what :class:`~integration.delivery.LeaseDelivery` does)::

    await budget.load(outbox)                       # once; later calls return at once
    dropped = budget.fit(account_id, records, limit=100, context=True)
    ...                                             # upload
    new = budget.confirmed(account_id, accepted_records)   # -> add_event_properties
    learned = budget.refused(account_id, "rc_renewal_event", limit=100)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from integration.extras import CHARGED_EVENT_NAME
from integration.mapping import CONTEXT_KEYS, CORE_KEYS
from integration.outbox.base import EventProperties, Outbox

__all__ = ["DROP_REASONS", "PropertyBudget"]

logger = logging.getLogger("integration.dispatcher")

#: The label values of ``event_properties_dropped_total{reason}``: a new attribute key for
#: which the event name had no room, and an attribute left out of a record sent again with
#: its core keys only after a 522.
DROP_REASONS = ("budget", "core_only")

_FIXED = CORE_KEYS | CONTEXT_KEYS
# Amount, Currency, Charged ID and Items (integration/extras.py): a Charged record has no
# attributes, so nothing of it is ever dropped.
_CHARGED_FIXED = frozenset({"Amount", "Currency", "Charged ID", "Items"})


@dataclass(slots=True)
class _Name:
    """The budget's state for one (account, event name)."""

    known: set[str] = field(default_factory=set)  # confirmed by CleverTap (stored)
    used: set[str] = field(default_factory=set)  # known, and sent since the process started
    learned: int | None = None  # the limit a 522 taught
    learned_under: int | None = None  # the configured budget when it was learned
    full_logged: bool = False

    def cap(self, limit: int) -> int:
        """The most distinct keys the name may hold under the configured ``limit``."""
        if self.learned is not None and self.learned_under == limit:
            return min(limit, self.learned)
        return limit


class PropertyBudget:
    """The distinct ``evtData`` keys of each event name of each account, kept within budget.

    One per dispatcher (the dispatcher's lanes share it; everything runs on its event loop).
    See the module docstring for the rules.
    """

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], _Name] = {}
        self._loaded = False
        self._lock = asyncio.Lock()

    async def load(self, outbox: Outbox) -> None:
        """Read what the outbox holds, once; later calls return at once."""
        async with self._lock:  # the lanes' first deliveries start together
            if self._loaded:
                return
            for entry in await outbox.event_properties():
                state = self._state(entry.account_id, entry.event_name)
                state.known.update(entry.keys)
                state.used.update(entry.keys)
                state.learned = entry.learned_limit
                state.learned_under = entry.learned_under
            self._loaded = True

    def fit(
        self, account_id: str, records: Sequence[dict[str, Any]], *, limit: int, context: bool
    ) -> int:
        """Cut the ``evtData`` of each event record in ``records`` to its name's budget, in
        place, and count what it sends as used; returns the attribute keys dropped."""
        dropped = 0
        for record in records:
            if record.get("type") != "event":
                continue
            name = record["evtName"]
            data: dict[str, Any] = record["evtData"]
            state = self._state(account_id, name)
            used = state.used
            if data.keys() <= used:  # the usual case once a name has seen its keys
                continue
            fixed = _fixed_keys(name, context)
            used.update(key for key in data if key in fixed)
            cap = state.cap(limit)
            out: list[str] = []
            for key in data:
                if key in used:
                    continue
                if len(used) < cap:
                    used.add(key)
                else:
                    out.append(key)
            if out:
                for key in out:
                    del data[key]
                dropped += len(out)
                if not state.full_logged:
                    state.full_logged = True
                    logger.warning(
                        "event %s of account %s holds its budget of %d properties: new "
                        "attributes are left out of its events (event_properties_dropped_total)",
                        name,
                        account_id,
                        cap,
                    )
        return dropped

    def core_only(self, record: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """``record`` with its ``evtData`` cut to the core keys, and how many keys that drops
        (0: the record has nothing to give up, sending it again would change nothing)."""
        data: dict[str, Any] = record.get("evtData") or {}
        fixed = _fixed_keys(str(record.get("evtName")), context=False)
        # Context keys go too: with the attributes, they are what may be new to the name.
        kept = {key: value for key, value in data.items() if key in fixed}
        dropped = len(data) - len(kept)
        if not dropped:
            return record, 0
        return {**record, "evtData": kept}, dropped

    def confirmed(
        self, account_id: str, records: Iterable[dict[str, Any]]
    ) -> list[EventProperties]:
        """Keys of event ``records`` CleverTap processed that were not known: to store."""
        new: dict[str, set[str]] = {}
        for record in records:
            if record.get("type") != "event":
                continue
            name = record["evtName"]
            state = self._state(account_id, name)
            keys = record["evtData"].keys()
            if keys <= state.known:  # the usual case: nothing new, no set made
                continue
            fresh = keys - state.known
            if fresh:
                state.known |= fresh
                state.used |= fresh
                new.setdefault(name, set()).update(fresh)
        return [
            EventProperties(account_id, name, tuple(sorted(keys))) for name, keys in new.items()
        ]

    def refused(self, account_id: str, name: str, *, limit: int) -> EventProperties:
        """A 522 for a record of ``name``: learn the limit (at least the known keys, which
        CleverTap holds) and forget what was sent unconfirmed; returns the entry to store."""
        state = self._state(account_id, name)
        learned = max(1, min(limit, len(state.known)))
        if state.learned != learned or state.learned_under != limit:
            logger.warning(
                "CleverTap refused an event %s of account %s for its properties (522): the "
                "account's limit for it is taken to be %d; new attributes are left out",
                name,
                account_id,
                learned,
            )
        state.learned, state.learned_under = learned, limit
        state.used = set(state.known)
        return EventProperties(account_id, name, (), learned, limit)

    def keys(self, account_id: str, name: str) -> frozenset[str]:
        """The keys CleverTap confirmed for ``name`` (for ``status`` and tests)."""
        state = self._names.get((account_id, name))
        return frozenset(state.known) if state is not None else frozenset()

    def _state(self, account_id: str, name: str) -> _Name:
        state = self._names.get((account_id, name))
        if state is None:
            state = self._names[account_id, name] = _Name()
        return state


def _fixed_keys(name: str, context: bool) -> frozenset[str]:
    if name == CHARGED_EVENT_NAME:
        return _CHARGED_FIXED
    return _FIXED if context else CORE_KEYS
