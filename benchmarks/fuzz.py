"""Bad webhook bodies for the receiver, from seeded hand-rolled generators.

Each generator starts from a realistic webhook (``WebhookFactory``) and breaks it one way::

    truncated       cut anywhere                    bitflip        a few bytes replaced
    wrong_type      a field given another type      missing        a required field removed
    not_object      JSON that is not an object      random_json    arbitrary nested JSON
    deep            nesting far past any parser's   huge_number    ints of 5,000 digits, 1e400
    nan             NaN and Infinity literals       unicode        lone surrogates, NUL, RTL
    non_utf8        Latin-1, UTF-16, random bytes   empty          no body at all
    long_id         an event id of 10,000 chars     bad_auth       a wrong Authorization value
    oversized       a body past webhook.max_body_bytes (1 MiB by default)

The receiver must answer each with a 4xx (or a 200 when the break left a valid event), never
a 5xx, and stay up.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.workload import WEBHOOK_AUTH, WebhookFactory

__all__ = ["BadInput", "bad_inputs"]

OVERSIZED_BYTES = 1_048_576 + 4096


@dataclass(frozen=True)
class BadInput:
    kind: str
    body: bytes
    content_type: str = "application/json"
    authorization: str | None = WEBHOOK_AUTH
    oversized: bool = False


_FIELDS = (
    ("event",),
    ("event", "id"),
    ("event", "type"),
    ("event", "event_timestamp_ms"),
    ("event", "environment"),
    ("event", "app_user_id"),
    ("event", "price"),
    ("event", "currency"),
    ("event", "subscriber_attributes"),
    ("event", "aliases"),
    ("event", "product_id"),
    ("event", "store"),
    ("api_version",),
)


def _odd_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            None, True, False, 0, -1, 2**63, -(2**63) - 1, 1.5, -0.0, "", " ", "x" * 600,
            [], [1, "a", None], {}, {"value": None}, {"nested": {"deeper": [1, 2]}},
            "PRODUCTION\u0000", "\u202eDOCUDORP",
        ]
    )  # fmt: skip


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 5 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-(2**70), 2**70)
    if kind == "float":
        return rng.uniform(-1e300, 1e300)
    if kind == "str":
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(12)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _random_json(rng, depth + 1) for i in range(rng.randrange(4))}


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target: Any = document
    for key in path[:-1]:
        if not isinstance(target, dict):
            return
        target = target.setdefault(key, {})
    if isinstance(target, dict):
        target[path[-1]] = value


def _delete(document: dict[str, Any], path: tuple[str, ...]) -> None:
    target: Any = document
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
    if isinstance(target, dict):
        target.pop(path[-1], None)


def bad_inputs(factory: WebhookFactory, rng: random.Random, count: int) -> list[BadInput]:
    """``count`` bad inputs, the same for the same seed."""

    def valid(i: int) -> bytes:
        return factory.body(f"fuzz-{rng.randrange(10**9)}-{i}")

    def truncated(i: int) -> BadInput:
        body = valid(i)
        return BadInput("truncated", body[: rng.randrange(len(body))])

    def bitflip(i: int) -> BadInput:
        body = bytearray(valid(i))
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        return BadInput("bitflip", bytes(body))

    def wrong_type(i: int) -> BadInput:
        document = json.loads(valid(i))
        _set(document, rng.choice(_FIELDS), _odd_value(rng))
        return BadInput("wrong_type", json.dumps(document).encode())

    def missing(i: int) -> BadInput:
        document = json.loads(valid(i))
        _delete(document, rng.choice(_FIELDS))
        return BadInput("missing", json.dumps(document).encode())

    def not_object(i: int) -> BadInput:
        value: Any = rng.choice([[1, 2], 3, "event", None, True, [{"event": {}}]])
        return BadInput("not_object", json.dumps(value).encode())

    def random_json(i: int) -> BadInput:
        return BadInput("random_json", json.dumps(_random_json(rng)).encode())

    def deep(i: int) -> BadInput:
        depth = rng.choice([1000, 10_000, 100_000])
        if rng.random() < 0.5:
            return BadInput("deep", b"[" * depth + b"]" * depth)
        inner = b'{"event": ' * depth + b"{}" + b"}" * depth
        return BadInput("deep", inner)

    def huge_number(i: int) -> BadInput:
        text = valid(i).decode()
        if rng.random() < 0.5:
            text = text.replace('"event_timestamp_ms": ', '"event_timestamp_ms": ' + "9" * 5000)
        else:
            text = text.replace('"price": ', '"price": 1e400, "x": ', 1)
        return BadInput("huge_number", text.encode())

    def nan(i: int) -> BadInput:
        text = valid(i).decode()
        literal = rng.choice(["NaN", "Infinity", "-Infinity"])
        return BadInput("nan", text.replace('"price": ', f'"price": {literal}, "y": ', 1).encode())

    def unicode(i: int) -> BadInput:
        document = json.loads(valid(i))
        weird = rng.choice(["\ud800", "\udfff", "a\u0000b", "\u202e\u0301", "\U0010ffff"])
        _set(document, rng.choice(_FIELDS[1:]), weird)
        return BadInput("unicode", json.dumps(document).encode())

    def non_utf8(i: int) -> BadInput:
        choice = rng.randrange(3)
        if choice == 0:
            return BadInput("non_utf8", valid(i).decode().replace("e", "\u00e9").encode("latin-1"))
        if choice == 1:
            return BadInput("non_utf8", valid(i).decode().encode("utf-16"))
        return BadInput("non_utf8", rng.randbytes(rng.randrange(1, 2000)))

    def empty(i: int) -> BadInput:
        return BadInput("empty", b"")

    def long_id(i: int) -> BadInput:
        document = json.loads(valid(i))
        document["event"]["id"] = "x" * 10_000
        return BadInput("long_id", json.dumps(document).encode())

    def bad_auth(i: int) -> BadInput:
        return BadInput("bad_auth", valid(i), authorization=rng.choice(["", "Bearer nope"]))

    def oversized(i: int) -> BadInput:
        document = json.loads(valid(i))
        document["event"]["subscriber_attributes"]["padding"] = {"value": "p" * OVERSIZED_BYTES}
        return BadInput("oversized", json.dumps(document).encode(), oversized=True)

    generators: list[tuple[Callable[[int], BadInput], int]] = [
        (truncated, 10), (bitflip, 10), (wrong_type, 20), (missing, 10), (not_object, 4),
        (random_json, 6), (deep, 3), (huge_number, 4), (nan, 4), (unicode, 8),
        (non_utf8, 6), (empty, 2), (long_id, 3), (bad_auth, 4), (oversized, 1),
    ]  # fmt: skip
    weights = [w for _, w in generators]
    picks = rng.choices([g for g, _ in generators], weights=weights, k=count)
    return [pick(i) for i, pick in enumerate(picks)]
