"""Fault injection shared by both mocks: rules, presets, an ASGI middleware and HTTP control.

A :class:`FaultRule` picks requests (route glob, method, CleverTap account) and, with a
probability, does one thing to them.  Rules expire after ``count`` firings or ``ttl`` seconds
of the injector's clock, and every draw comes from one RNG seeded by the injector, so the same
seed and the same sequence of requests give the same faults.

Kinds::

    latency         sleep ``latency`` seconds, then serve normally (latency rules stack)
    timeout         sleep ``latency`` seconds (default 120, beyond a client's timeout), then
                    serve: the request is still processed, as a slow server would
    error           answer ``status`` (500, 502, 503, 504, ...) with the API's error body
    rate_limit      answer 429 with the API's body; ``burst`` makes it fire on that many
                    matching requests in a row once it fires
    drop            drop the connection: the client sees a transport error, nothing is stored
                    (``after=True``: the request is processed first, only the answer is lost)
    reject_records  serve the upload but reject a ``share`` of its valid records with ``code``
                    (555 retryable, or a permanent one such as 513); CleverTap uploads only

For each request the middleware applies every matching latency rule, then the first matching
rule of any other kind.  Paths under ``/_mock`` are never faulted.

How a dropped connection is modelled (``drop``): the middleware starts a response (status 200,
a ``content-length`` it never fulfils) and raises :class:`ConnectionDropped`.

- Under uvicorn the headers are on the wire and the server, seeing the app fail after the
  response started, closes the connection: httpx raises ``RemoteProtocolError`` ("peer closed
  connection without sending complete message body").  A log filter keeps uvicorn from
  logging a traceback for these deliberate drops.
- In process, ``httpx.ASGITransport`` and Starlette's ``TestClient`` re-raise what the app
  raised.  :class:`ConnectionDropped` subclasses ``httpx.RemoteProtocolError``, so a client sees
  the same exception type as over a socket and its transport-error handling is exercised.

Starting the response first matters: Starlette's ``ServerErrorMiddleware`` turns an exception
raised before the response started into a 500, which is not a dropped connection.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final, Literal

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["latency", "timeout", "error", "rate_limit", "drop", "reject_records"]
KINDS: Final[tuple[str, ...]] = (
    "latency",
    "timeout",
    "error",
    "rate_limit",
    "drop",
    "reject_records",
)

#: Scope key through which the middleware hands a record rejection to the upload handler.
REJECT_SCOPE_KEY: Final = "mockserver.faults.reject"


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the middleware to drop a connection (see the module docstring)."""


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for each connection a fault rule drops.

    The drop is deliberate and counted in :attr:`FaultInjector.fired`; any other exception is
    still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        return not (info and isinstance(info[1], ConnectionDropped))


_QUIET_DROPS: Final = _QuietDrops()


@dataclass(frozen=True)
class FaultRule:
    """One fault: which requests, how likely, for how long, and what happens.

    >>> FaultRule("error", route="/1/upload", status=503, probability=0.2, count=10)

    Parameters:
        kind: one of :data:`KINDS` (see the module docstring).
        route: a glob on the request path (``"/1/upload"``, ``"/1/*"``, ``"/v2/*"``, ``"*"``).
        method: an HTTP method, or None for any.
        account_id: a CleverTap account id (``X-CleverTap-Account-Id``), or None for any.
        probability: chance that a matching request fires the rule.
        count: firings before the rule expires (None: unlimited).
        ttl: seconds of the injector's clock, from when the rule is added, before it expires.
        status: HTTP status of an ``error`` rule.
        latency: seconds slept by ``latency`` and ``timeout`` rules.
        burst: matching requests in a row a ``rate_limit`` or ``error`` rule hits once fired.
        code, share: the per-record code and the share of records of ``reject_records``.
        after: for ``drop``, process the request before dropping the connection.
    """

    kind: FaultKind
    route: str = "*"
    method: str | None = None
    account_id: str | None = None
    probability: float = 1.0
    count: int | None = None
    ttl: float | None = None
    status: int = 503
    latency: float | None = None
    burst: int = 1
    code: int = 555
    share: float = 0.5
    after: bool = False

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
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.latency is not None and not self.latency >= 0:
            raise ValueError("latency must be a non-negative number of seconds")
        if type(self.burst) is not int or self.burst < 1:
            raise ValueError("burst must be a positive integer")
        if type(self.code) is not int or not 500 <= self.code <= 599:
            raise ValueError("code must be a CleverTap per-record code (500-599)")
        if not 0.0 < self.share <= 1.0:
            raise ValueError("share must be in (0, 1]")

    @property
    def delay(self) -> float:
        """Seconds a latency or timeout rule sleeps."""
        if self.latency is not None:
            return self.latency
        return 120.0 if self.kind == "timeout" else 0.1

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
}


@dataclass
class _Active:
    id: int
    rule: FaultRule
    added_at: float
    fired: int = 0
    burst_left: int = 0


@dataclass(frozen=True)
class Decision:
    """What the injector decided for one request."""

    delay: float = 0.0
    rule: FaultRule | None = None
    rejection: RecordRejection | None = None


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
        if chosen is not None and chosen.kind == "reject_records":
            rejection = RecordRejection(chosen.code, chosen.share, self._rng.getrandbits(64))
        return Decision(delay=delay, rule=chosen, rejection=rejection)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self.seed, "fired": dict(self.fired), "rules": self.rules()}


def forced_rejections(scope: Scope, count: int) -> dict[int, int] | None:
    """For an upload handler: record index -> code the fault injector wants refused, or None."""
    rejection = scope.get(REJECT_SCOPE_KEY)
    if not isinstance(rejection, RecordRejection):
        return None
    return rejection.choose(count)


_CLEVERTAP_MESSAGES: Final = {
    429: "Too many concurrent requests",  # DOC-LIM
    500: "Internal Server Error",
    503: "Service Unavailable. Please retry later.",  # DOC-ERR
}


def error_body(path: str, status: int) -> dict[str, Any]:
    """The error body the mocked API answers with for ``status`` on ``path``.

    CleverTap (``/1/...``): ``{"status": "fail", "error": ..., "code": status}`` (reference
    §3.3).  RevenueCat v2: its error object with ``retryable`` and ``backoff_ms``; v1:
    ``{"code": ..., "message": ...}`` (7110 internalServerError is RevenueCat's only documented
    server-side code; 429 has no documented v1 code).
    """
    if path.startswith("/1/"):
        message = _CLEVERTAP_MESSAGES.get(
            status, "Server Error" if status >= 500 else "Bad Request"
        )
        return {"status": "fail", "error": message, "code": status}
    if path.startswith("/v2/"):
        limited = status == 429
        body: dict[str, Any] = {
            "object": "error",
            "type": "rate_limit_error" if limited else "server_error",
            "message": "Rate limit exceeded" if limited else "The server had an error.",
            "retryable": True,
            "doc_url": "https://errors.rev.cat/"
            + ("rate-limit-error" if limited else "server-error"),
        }
        if limited:
            body["backoff_ms"] = 1000
        return body
    if status == 429:
        return {"code": 7638, "message": "Too many requests. Please retry later."}
    return {"code": 7110, "message": "Internal server error."}


def _error_response(path: str, status: int) -> Response:
    headers: dict[str, str] = {}
    media_type = "application/json"
    if path.startswith("/1/"):
        media_type = "application/json;charset=utf-8"  # as CleverTap's answers (reference §3.1)
    elif path.startswith("/v2/") and status == 429:
        headers["Retry-After"] = "1"  # RevenueCat v2 sends Retry-After with its 429s
    body = json.dumps(error_body(path, status)).encode()
    return Response(body, status_code=status, headers=headers, media_type=media_type)


class FaultMiddleware:
    """Pure ASGI middleware applying a :class:`FaultInjector` to every HTTP request."""

    def __init__(self, app: ASGIApp, *, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector
        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)  # idempotent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        account = None
        for name, value in scope["headers"]:
            if name == b"x-clevertap-account-id":
                account = value.decode("latin-1")
                break
        decision = self.injector.decide(scope["method"], path, account)
        if decision.delay:
            await self.injector.sleep(decision.delay)
        rule = decision.rule
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.kind == "timeout":
            # Read the request before stalling: the server has it, and processes it late even
            # when the client gave up meanwhile (a send after a disconnect is dropped).
            replay = await _buffered(receive)
            await self.injector.sleep(rule.delay)
            await self.app(scope, replay, send)
        elif rule.kind in ("error", "rate_limit"):
            status = 429 if rule.kind == "rate_limit" else rule.status
            await _error_response(path, status)(scope, receive, send)
        elif rule.kind == "drop":
            if rule.after:
                await self.app(scope, receive, _discard)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
                }
            )
            raise ConnectionDropped("connection dropped by a fault rule (mock)")
        else:  # reject_records
            inner: MutableMapping[str, Any] = dict(scope)
            inner[REJECT_SCOPE_KEY] = decision.rejection
            await self.app(inner, receive, send)


async def _discard(message: Message) -> None:
    return None


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned receive hands it out, then defers."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return receive  # disconnected already: the app will see it as usual
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    ]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def fault_routes(injector: FaultInjector) -> list[BaseRoute]:
    """Control routes, to mount under ``/_mock/faults``::

    GET    /                  seed, fired counters, active rules
    GET    /rules             active rules
    POST   /rules             add one rule (JSON object) or several (array); their ids
    DELETE /rules             remove every rule
    DELETE /rules/{id}        remove one rule
    GET    /presets           preset names, descriptions and rules
    POST   /presets/{name}    activate a preset; optional body {"route": "<glob>"}
    POST   /seed              {"seed": <int>}: restart the RNG
    """

    def bad(message: str, status: int = 400) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError("the body is not valid JSON") from None

    async def overview(request: Request) -> Response:
        return JSONResponse(injector.stats())

    async def rules(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"rules": injector.rules()})
        if request.method == "DELETE":
            injector.clear()
            return JSONResponse({"rules": []})
        try:
            body = await body_of(request)
            items = body if isinstance(body, list) else [body]
            if not all(isinstance(item, dict) for item in items):
                raise ValueError("give a rule object or an array of rule objects")
            parsed = [FaultRule.from_dict(item) for item in items]
        except ValueError as exc:
            return bad(str(exc))
        return JSONResponse({"ids": [injector.add(rule) for rule in parsed]}, status_code=201)

    async def one_rule(request: Request) -> Response:
        raw = request.path_params["rule_id"]
        if not raw.isdigit() or not injector.remove(int(raw)):
            return bad(f"no active rule {raw}", 404)
        return JSONResponse({"removed": int(raw)})

    async def presets(request: Request) -> Response:
        return JSONResponse(
            {
                name: {"description": p.description, "rules": [asdict(r) for r in p.rules]}
                for name, p in PRESETS.items()
            }
        )

    async def preset(request: Request) -> Response:
        try:
            body = await body_of(request)
            route = body.get("route") if isinstance(body, dict) else None
            if route is not None and not isinstance(route, str):
                raise ValueError("route must be a string")
            ids = injector.apply_preset(request.path_params["name"], route=route)
        except ValueError as exc:
            return bad(str(exc))
        return JSONResponse({"ids": ids}, status_code=201)

    async def seed(request: Request) -> Response:
        try:
            body = await body_of(request)
        except ValueError as exc:
            return bad(str(exc))
        if not isinstance(body, dict) or type(body.get("seed")) is not int:
            return bad('give {"seed": <integer>}')
        injector.reseed(body["seed"])
        return JSONResponse({"seed": injector.seed})

    return [
        Route("/", overview, methods=["GET"]),
        Route("/rules", rules, methods=["GET", "POST", "DELETE"]),
        Route("/rules/{rule_id}", one_rule, methods=["DELETE"]),
        Route("/presets", presets, methods=["GET"]),
        Route("/presets/{name}", preset, methods=["POST"]),
        Route("/seed", seed, methods=["POST"]),
    ]
