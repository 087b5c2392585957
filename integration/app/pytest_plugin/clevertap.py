"""The ``clevertap_mock`` fixture's object: the CleverTap mock in process, with assertions that
say what CleverTap holds when they fail."""

from __future__ import annotations

import difflib
import pprint
from collections.abc import Iterable
from typing import Any

import httpx
from starlette.types import ASGIApp

from integration.app.pytest_plugin._world import ASGIRouter, SyncASGITransport, World
from mockserver.app import create_app
from mockserver.clevertap import REGIONS, Account, CleverTapBackend
from mockserver.faults import FaultInjector, FaultRule

__all__ = ["PRODUCTION_ACCOUNT", "SANDBOX_ACCOUNT", "CleverTapMock"]

#: The mock's accounts.  Their credentials are the mock's own and guard nothing.
PRODUCTION_ACCOUNT = Account("TEST-RCC-MOCK", ("mock-passcode",), region="eu1")
SANDBOX_ACCOUNT = Account("TEST-RCC-SBOX", ("mock-sandbox-passcode",), region="eu1")

#: Events listed in a failed assertion's message, newest last; older ones are counted.
SHOWN_EVENTS = 20


class CleverTapMock:
    """CleverTap's upload and read APIs in process, with assertion helpers and faults.

    Example::

        def test_signup_event(clevertap_mock):
            my_code_that_uploads(base_url=clevertap_mock.base_url,
                                 transport=clevertap_mock.transport(),
                                 headers=clevertap_mock.headers)
            clevertap_mock.assert_event("user-1", "Signed Up", plan="pro")

    Every host ``<region>.api.clevertap.com`` (and ``api.clevertap.com``) is served; the
    mock checks the Host against the account's region, as CleverTap does (``eu1`` here).

    Attributes:
        backend: the :class:`~mockserver.clevertap.CleverTapBackend` (stores, journal,
            counters).
        faults: the :class:`~mockserver.faults.FaultInjector` (see :meth:`inject`).
        account, sandbox_account: the accounts served; helpers read ``account`` by default.
        headers: the production account's credential headers.
    """

    base_url = "https://eu1.api.clevertap.com"

    def __init__(self, world: World, *, seed: int = 0) -> None:
        self.account = PRODUCTION_ACCOUNT
        self.sandbox_account = SANDBOX_ACCOUNT
        self.backend = CleverTapBackend(
            accounts=[self.account, self.sandbox_account], clock=world.now, seed=seed
        )
        # Stalls (latency, timeouts) pass on downstream time, not on the wall clock.
        self.faults = FaultInjector(seed=seed, clock=world.now, sleep=world.sleep)
        self.app: ASGIApp = create_app(clevertap_backend=self.backend, faults=self.faults)
        hosts = ["api.clevertap.com", *(f"{region}.api.clevertap.com" for region in REGIONS)]
        self.router = ASGIRouter(dict.fromkeys(hosts, self.app))
        self._world = world

    def __repr__(self) -> str:
        return f"CleverTapMock(account={self.account.account_id!r}, events={len(self.events())})"

    @property
    def headers(self) -> dict[str, str]:
        """``X-CleverTap-Account-Id`` and ``X-CleverTap-Passcode`` of the production account."""
        return {
            "X-CleverTap-Account-Id": self.account.account_id,
            "X-CleverTap-Passcode": self.account.passcodes[0],
        }

    def transport(self) -> httpx.BaseTransport:
        """A sync httpx transport to the mock, for an ``httpx.Client`` of your own."""
        return SyncASGITransport(self._world, self.router)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """An async httpx transport to the mock, for an ``httpx.AsyncClient`` of your own."""
        return self.router

    # -- what CleverTap holds ----------------------------------------------------------------

    def _account_id(self, account: str | None) -> str:
        return self.account.account_id if account is None else account

    def events(
        self, user: str | None = None, *, name: str | None = None, account: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored events in arrival order: all, one user's (``user`` is an identity or a
        CleverTap ID), and/or one name's.  Each is the record as uploaded (``evtName``,
        ``evtData``, ``ts``...) plus ``_object_id``, ``_received_at`` and ``_upload``."""
        account_id = self._account_id(account)
        if user is None:
            found = self.backend.events(account_id)
        else:
            found = self.backend.events_for(account_id, identity=user) or self.backend.events_for(
                account_id, object_id=user
            )
        return [e for e in found if name is None or e.get("evtName") == name]

    def event_names(self, user: str | None = None, *, account: str | None = None) -> list[str]:
        """The names of :meth:`events`, in arrival order."""
        return [str(e.get("evtName")) for e in self.events(user, account=account)]

    def properties(
        self, user: str, name: str, *, account: str | None = None
    ) -> list[dict[str, Any]]:
        """The ``evtData`` of each of a user's events of that name, in arrival order."""
        return [dict(e.get("evtData", {})) for e in self.events(user, name=name, account=account)]

    def profiles(self, *, account: str | None = None) -> list[dict[str, Any]]:
        """Every profile, in creation order (``objectId``, ``identity``, ``profileData``...)."""
        return self.backend.profiles(self._account_id(account))

    def profile(self, user: str, *, account: str | None = None) -> dict[str, Any] | None:
        """The profile an identity or a CleverTap ID names, or None."""
        account_id = self._account_id(account)
        return self.backend.profile(account_id, identity=user) or self.backend.profile(
            account_id, object_id=user
        )

    def journal(self) -> list[dict[str, Any]]:
        """The requests CleverTap received, oldest first (no credentials in them)."""
        return self.backend.journal()

    def counters(self, *, account: str | None = None) -> dict[str, Any]:
        """Uploads, records processed and rejected (by code), reads, refusals of one account."""
        return self.backend.counters(self._account_id(account))

    # -- assertions --------------------------------------------------------------------------

    def assert_event(
        self, user: str, name: str, *, account: str | None = None, **properties: Any
    ) -> dict[str, Any]:
        """The user's event of that name whose ``evtData`` has these properties; otherwise an
        AssertionError showing the user's events and a diff against the closest one."""
        __tracebackhide__ = True  # pytest shows the caller's line, not this one
        candidates = self.events(user, account=account)
        for event in candidates:
            if event.get("evtName") == name and _has(event.get("evtData", {}), properties):
                return event
        wanted = f"{name!r}" + (f" with {_kwargs(properties)}" if properties else "")
        raise AssertionError(
            f"CleverTap holds no event {wanted} for user {user!r}\n"
            + _listing(f"events of {user!r}", candidates)
            + _closest_diff(name, properties, candidates)
        )

    def assert_no_event(
        self, user: str | None = None, *, name: str | None = None, account: str | None = None
    ) -> None:
        """No stored event matches (all events, a user's, a name's); otherwise an
        AssertionError listing those that do."""
        __tracebackhide__ = True  # pytest shows the caller's line, not this one
        found = self.events(user, name=name, account=account)
        if found:
            what = " ".join(
                part
                for part in (f"named {name!r}" if name else "", f"of {user!r}" if user else "")
                if part
            )
            raise AssertionError(
                f"CleverTap holds {len(found)} event(s){' ' + what if what else ''}, expected "
                "none\n" + _listing("matching events", found)
            )

    def assert_profile(
        self, user: str, *, account: str | None = None, **properties: Any
    ) -> dict[str, Any]:
        """The user's profile, whose ``profileData`` has these properties; otherwise an
        AssertionError with a diff of what the profile holds."""
        __tracebackhide__ = True  # pytest shows the caller's line, not this one
        found = self.profile(user, account=account)
        if found is None:
            known = [p.get("identity") or p.get("objectId") for p in self.profiles(account=account)]
            raise AssertionError(
                f"CleverTap holds no profile for {user!r}; profiles: {known[:SHOWN_EVENTS]!r}"
            )
        data = found.get("profileData", {})
        if not _has(data, properties):
            raise AssertionError(
                f"the profile of {user!r} does not hold {_kwargs(properties)}\n"
                + _diff(properties, {k: data.get(k, _MISSING) for k in properties}, "profile")
                + f"its profileData:\n{_indent(pprint.pformat(data, sort_dicts=True))}\n"
            )
        return found

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self, *faults: str | FaultRule, seed: int | None = None, route: str | None = None
    ) -> list[int]:
        """Add fault presets (``"flaky"``, ``"outage"``, ... ``mockserver.faults.PRESETS``) or
        rules; ``seed`` restarts the fault RNG, ``route`` aims presets at another path glob.
        Returns the rule ids (``faults.remove(id)`` ends one)."""
        if seed is not None:
            self.faults.reseed(seed)
        ids: list[int] = []
        for fault in faults:
            if isinstance(fault, FaultRule):
                ids.append(self.faults.add(fault))
            elif isinstance(fault, str):
                ids += self.faults.apply_preset(fault, route=route)
            else:
                raise TypeError(f"a fault is a preset name or a FaultRule, not {fault!r}")
        return ids

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        """Forget profiles, events, journal and counters, and every fault rule."""
        self.backend.reset()
        self.faults.clear()
        self.faults.fired.clear()


_MISSING = "<missing>"


def _has(data: dict[str, Any], properties: dict[str, Any]) -> bool:
    return all(key in data and data[key] == value for key, value in properties.items())


def _kwargs(properties: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in properties.items())


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def _listing(title: str, events: Iterable[dict[str, Any]]) -> str:
    events = list(events)
    if not events:
        return f"{title}: none\n"
    shown = events[-SHOWN_EVENTS:]
    lines = [f"{title} ({len(events)}):"]
    if len(events) > len(shown):
        lines.append(f"    ... {len(events) - len(shown)} older not shown")
    for event in shown:
        data = event.get("evtData", {})
        fields = ", ".join(f"{k}={data[k]!r}" for k in sorted(data))
        lines.append(f"    {event.get('evtName')!s}: {fields}")
    return "\n".join(lines) + "\n"


def _closest_diff(name: str, properties: dict[str, Any], events: list[dict[str, Any]]) -> str:
    if not events:
        return ""

    def score(event: dict[str, Any]) -> int:
        data = event.get("evtData", {})
        same = sum(1 for k, v in properties.items() if k in data and data[k] == v)
        return same + (len(properties) + 1 if event.get("evtName") == name else 0)

    closest = max(reversed(events), key=score)  # the newest of the best
    data = closest.get("evtData", {})
    expected = {"evtName": name, **properties}
    actual = {"evtName": closest.get("evtName"), **{k: data.get(k, _MISSING) for k in properties}}
    return _diff(expected, actual, "closest event")


def _diff(expected: dict[str, Any], actual: dict[str, Any], label: str) -> str:
    lines = difflib.unified_diff(
        [f"{k}: {v!r}" for k, v in expected.items()],
        [f"{k}: {v!r}" for k, v in actual.items()],
        "expected",
        label,
        lineterm="",
        n=len(expected),
    )
    return "\n".join(lines) + "\n"
