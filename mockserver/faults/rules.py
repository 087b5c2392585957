"""Fault rules and presets: which requests a fault picks, how likely, for how long, what it does.

The kinds are described in :mod:`mockserver.faults`; :class:`FaultRule` checks its fields and
:data:`PRESETS` names sets of rules modelled on how CleverTap misbehaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, get_args

__all__ = ["KINDS", "LIES", "PRESETS", "FaultKind", "FaultRule", "Preset"]

FaultKind = Literal[
    "latency",
    "timeout",
    "error",
    "rate_limit",
    "drop",
    "reject_records",
    "slow_drip",
    "lying_200",
    "unlocatable_partial",
    "redirect",
]
KINDS: Final[tuple[str, ...]] = get_args(FaultKind)

#: What a ``lying_200`` rule answers: ``{}``, a request-level fail in a 200 (``{"status":
#: "fail", "error": "Account suspended", "code": 401}``), or ``success`` with about a tenth of
#: the records missing from ``processed`` (45 for 50).
LIES: Final[tuple[str, ...]] = ("empty", "suspended", "short")


@dataclass(frozen=True)
class FaultRule:
    """One fault: which requests, how likely, for how long, and what happens.

    >>> FaultRule("error", route="/1/upload", status=503, probability=0.2, count=10)

    Parameters:
        kind: one of :data:`KINDS` (see :mod:`mockserver.faults`).
        route: a glob on the request path (``"/1/upload"``, ``"/1/*"``, ``"/v2/*"``, ``"*"``).
        method: an HTTP method, or None for any.
        account_id: a CleverTap account id (``X-CleverTap-Account-Id``), or None for any.
        probability: chance that a matching request fires the rule.
        count: firings before the rule expires (None: unlimited).
        ttl: seconds of the injector's clock, from when the rule is added, before it expires.
        status: HTTP status of an ``error`` rule (default 503) or a ``redirect`` (302).
        latency: seconds slept by ``latency`` and ``timeout`` rules, and between two bytes of
            a ``slow_drip`` answer.
        burst: matching requests in a row a ``rate_limit`` or ``error`` rule hits once fired.
        code, share: the per-record code and the share of records of ``reject_records`` and
            ``unlocatable_partial``.
        after: for ``drop``, process the request before dropping the connection.
        lie: for ``lying_200``, one of :data:`LIES`; None draws one per request.
    """

    kind: FaultKind
    route: str = "*"
    method: str | None = None
    account_id: str | None = None
    probability: float = 1.0
    count: int | None = None
    ttl: float | None = None
    status: int | None = None
    latency: float | None = None
    burst: int = 1
    code: int = 555
    share: float = 0.5
    after: bool = False
    lie: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.route, str) or not self.route:
            raise ValueError("route must be a non-empty glob such as '/1/upload' or '*'")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.count is not None and (type(self.count) is not int or self.count < 1):
            raise ValueError("count must be a positive integer or None")
        if self.ttl is not None and not self.ttl > 0:
            raise ValueError("ttl must be a positive number of seconds or None")
        if self.kind == "redirect":
            if not 300 <= self.answer_status <= 399:
                raise ValueError("status of a redirect must be a 3xx status")
        elif not 400 <= self.answer_status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.latency is not None and not self.latency >= 0:
            raise ValueError("latency must be a non-negative number of seconds")
        if type(self.burst) is not int or self.burst < 1:
            raise ValueError("burst must be a positive integer")
        if type(self.code) is not int or not 500 <= self.code <= 599:
            raise ValueError("code must be a CleverTap per-record code (500-599)")
        if not 0.0 < self.share <= 1.0:
            raise ValueError("share must be in (0, 1]")
        if self.lie is not None and self.lie not in LIES:
            raise ValueError(f"lie must be one of {', '.join(LIES)} or None")

    @property
    def answer_status(self) -> int:
        """The status an ``error`` or ``redirect`` rule answers."""
        if self.status is not None:
            return self.status
        return 302 if self.kind == "redirect" else 503

    @property
    def delay(self) -> float:
        """Seconds a latency or timeout rule sleeps, or a slow drip waits between bytes."""
        if self.latency is not None:
            return self.latency
        return {"timeout": 120.0, "slow_drip": 1.0}.get(self.kind, 0.1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """A rule from JSON; unknown keys and wrong types are a ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule fields: {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ValueError("a fault rule needs a kind")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"bad fault rule: {exc}") from None


@dataclass(frozen=True)
class Preset:
    """A named set of rules modelled on how CleverTap misbehaves."""

    description: str
    rules: tuple[FaultRule, ...]


_UPLOAD = "/1/upload"

#: Named presets.  CleverTap's documented failure modes (reference §3.2-3.4): 429 for too many
#: concurrent requests (no Retry-After), 500 and 503 "Please retry later", HTTP 200 with
#: per-record 555 "Miscellaneous server error" or permanent codes.  Presets aim at CleverTap's
#: upload route; :meth:`FaultInjector.apply_preset` can aim them elsewhere.
PRESETS: Final[dict[str, Preset]] = {
    "flaky": Preset(
        "occasional 503/500, 429 bursts, dropped connections, a few 555 record rejections "
        "and a little latency on uploads",
        (
            FaultRule("latency", route=_UPLOAD, probability=0.2, latency=0.05),
            FaultRule("error", route=_UPLOAD, probability=0.08, status=503),
            FaultRule("error", route=_UPLOAD, probability=0.03, status=500),
            FaultRule("rate_limit", route=_UPLOAD, probability=0.03, burst=3),
            FaultRule("drop", route=_UPLOAD, probability=0.03),
            FaultRule("reject_records", route=_UPLOAD, probability=0.05, code=555, share=0.1),
        ),
    ),
    "overloaded": Preset(
        "slow uploads and long 429 bursts, as when every concurrent slot is taken",
        (
            FaultRule("latency", route=_UPLOAD, probability=0.5, latency=0.2),
            FaultRule("rate_limit", route=_UPLOAD, probability=0.2, burst=10),
        ),
    ),
    "outage": Preset(
        "every CleverTap request answers 503 for 10 seconds, then service resumes",
        (FaultRule("error", route="/1/*", status=503, ttl=10.0),),
    ),
    "partial-rejects": Preset(
        "uploads accepted with a share of records refused: 555 (retryable) often, 513 rarely",
        (
            FaultRule("reject_records", route=_UPLOAD, probability=0.3, code=555, share=0.2),
            FaultRule("reject_records", route=_UPLOAD, probability=0.02, code=513, share=0.05),
        ),
    ),
    "timeouts": Preset(
        "some uploads answer after 120 s (past any sane client timeout), still processed",
        (FaultRule("timeout", route=_UPLOAD, probability=0.05),),
    ),
    "chaos": Preset(
        "everything at once, retryable kinds only: 5xx, 429 bursts, timeouts, drops, 555",
        (
            FaultRule("latency", route=_UPLOAD, probability=0.2, latency=0.05),
            FaultRule("error", route=_UPLOAD, probability=0.05, status=503),
            FaultRule("error", route=_UPLOAD, probability=0.03, status=500),
            FaultRule("rate_limit", route=_UPLOAD, probability=0.03, burst=5),
            FaultRule("timeout", route=_UPLOAD, probability=0.01, latency=70.0),
            FaultRule("drop", route=_UPLOAD, probability=0.03),
            FaultRule("drop", route=_UPLOAD, probability=0.02, after=True),
            FaultRule("reject_records", route=_UPLOAD, probability=0.1, code=555, share=0.2),
        ),
    ),
    "hostile": Preset(
        "a CleverTap (or a proxy) that misbehaves beyond its documented failures: answers "
        "dripped a byte at a time, 200s that contradict success, failures naming no record, "
        "redirects and 404s for the whole upload; retryable kinds only",
        (
            FaultRule("slow_drip", route=_UPLOAD, probability=0.03, latency=0.25),
            FaultRule("lying_200", route=_UPLOAD, probability=0.05),
            FaultRule("unlocatable_partial", route=_UPLOAD, probability=0.05, share=0.1),
            FaultRule("redirect", route=_UPLOAD, probability=0.01),
            FaultRule("error", route=_UPLOAD, probability=0.01, status=404),
        ),
    ),
}
