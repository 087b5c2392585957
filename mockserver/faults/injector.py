"""Decisions: the active fault rules, their seeded RNG and clock, and what each request meets.

Every draw comes from one RNG seeded by the injector, so the same seed and the same sequence of
requests give the same faults.  Rules expire after ``count`` firings or ``ttl`` seconds of the
injector's clock.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

from starlette.types import Scope

from mockserver.faults.rules import LIES, PRESETS, FaultRule

__all__ = [
    "REJECT_SCOPE_KEY",
    "Decision",
    "FaultInjector",
    "RecordRejection",
    "forced_rejections",
]

#: Scope key through which the middleware hands a record rejection to the upload handler.
REJECT_SCOPE_KEY: Final = "mockserver.faults.reject"


@dataclass
class _Active:
    id: int
    rule: FaultRule
    added_at: float
    fired: int = 0
    burst_left: int = 0


@dataclass(frozen=True)
class Decision:
    """What the injector decided for one request: the delay, the rule it meets, and what a
    ``reject_records`` or ``unlocatable_partial`` rule refuses, or a ``lying_200`` answers."""

    delay: float = 0.0
    rule: FaultRule | None = None
    rejection: RecordRejection | None = None
    lie: str | None = None


@dataclass(frozen=True)
class RecordRejection:
    """A share of an upload's records to refuse with one code, drawn from its own seed."""

    code: int
    share: float
    seed: int

    def choose(self, count: int) -> dict[int, int]:
        """0-based record index -> code; at least one record when there is any."""
        if count <= 0:
            return {}
        k = min(count, max(1, round(self.share * count)))
        picked = random.Random(self.seed).sample(range(count), k)
        return dict.fromkeys(picked, self.code)


class FaultInjector:
    """The active fault rules, their RNG and clock.

    >>> injector = FaultInjector(seed=7)
    >>> rule_id = injector.add(FaultRule("error", route="/1/upload", status=503, count=2))

    Parameters:
        seed: seeds every probability draw and record choice.
        clock: seconds, monotonic, for ``ttl`` (injectable).
        sleep: the async sleep used for latency and timeouts (injectable).
        rules: rules active from the start.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rules: Iterable[FaultRule] = (),
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        # Rules are changed from tests and notebooks on other threads while the server decides.
        self._lock = threading.RLock()
        self._rules: list[_Active] = []
        self._next_id = 0
        self.fired: Counter[str] = Counter()
        self.reseed(seed)
        for rule in rules:
            self.add(rule)

    def reseed(self, seed: int) -> None:
        """Restart the RNG from ``seed``."""
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> int:
        """Activate a rule; returns its id."""
        with self._lock:
            self._next_id += 1
            self._rules.append(_Active(self._next_id, rule, self.clock()))
            return self._next_id

    def remove(self, rule_id: int) -> bool:
        """Deactivate a rule; False when no active rule has that id."""
        with self._lock:
            before = len(self._rules)
            self._rules = [a for a in self._rules if a.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        """Deactivate every rule (the RNG and the fired counters stay)."""
        with self._lock:
            self._rules.clear()

    def apply_preset(self, name: str, *, route: str | None = None) -> list[int]:
        """Activate a preset's rules (optionally aimed at another route glob); their ids."""
        try:
            preset = PRESETS[name]
        except KeyError:
            raise ValueError(
                f"unknown fault preset {name!r}; known: {', '.join(PRESETS)}"
            ) from None
        ids = []
        for rule in preset.rules:
            if route is not None:
                rule = FaultRule(**{**asdict(rule), "route": route})
            ids.append(self.add(rule))
        return ids

    def rules(self) -> list[dict[str, Any]]:
        """The active (unexpired) rules with their ids and firing counts."""
        with self._lock:
            self._expire()
            return self._describe_rules()

    def _describe_rules(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [
            {
                "id": a.id,
                "fired": a.fired,
                "remaining": None if a.rule.count is None else a.rule.count - a.fired,
                "expires_in": None if a.rule.ttl is None else a.added_at + a.rule.ttl - now,
                **asdict(a.rule),
            }
            for a in self._rules
        ]

    def _expire(self) -> None:
        now = self.clock()
        self._rules = [
            a
            for a in self._rules
            if (a.rule.count is None or a.fired < a.rule.count)
            and (a.rule.ttl is None or now < a.added_at + a.rule.ttl)
        ]

    def decide(self, method: str, path: str, account_id: str | None = None) -> Decision:
        """Which faults a request meets; consumes RNG draws and rule counts."""
        if path.startswith("/_mock") or not self._rules:
            return Decision()
        with self._lock:
            return self._decide(method, path, account_id)

    def _decide(self, method: str, path: str, account_id: str | None) -> Decision:
        self._expire()
        delay = 0.0
        chosen: FaultRule | None = None
        for active in self._rules:
            rule = active.rule
            if rule.method is not None and rule.method.upper() != method.upper():
                continue
            if rule.account_id is not None and rule.account_id != account_id:
                continue
            if not fnmatch.fnmatchcase(path, rule.route):
                continue
            if rule.kind != "latency" and chosen is not None:
                continue
            if active.burst_left > 0:
                active.burst_left -= 1
            elif rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            else:
                active.burst_left = rule.burst - 1
            active.fired += 1
            self.fired[rule.kind] += 1
            if rule.kind == "latency":
                delay += rule.delay
            else:
                chosen = rule
        rejection = None
        lie = None
        if chosen is not None and chosen.kind in ("reject_records", "unlocatable_partial"):
            rejection = RecordRejection(chosen.code, chosen.share, self._rng.getrandbits(64))
        elif chosen is not None and chosen.kind == "lying_200":
            lie = chosen.lie if chosen.lie is not None else self._rng.choice(LIES)
        return Decision(delay=delay, rule=chosen, rejection=rejection, lie=lie)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self.seed, "fired": dict(self.fired), "rules": self.rules()}


def forced_rejections(scope: Scope, count: int) -> dict[int, int] | None:
    """For an upload handler: record index -> code the fault injector wants refused, or None."""
    rejection = scope.get(REJECT_SCOPE_KEY)
    if not isinstance(rejection, RecordRejection):
        return None
    return rejection.choose(count)
