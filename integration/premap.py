"""Mapping at store time (issue 21): the verdict kept beside the body, and when it still holds.

The receiver has parsed and checked every webhook before it stores it, so it also maps it
there (:func:`stored_form`) and the outbox keeps the encoded verdict beside the body, with the
:func:`fingerprint` of what produced it.  At delivery a row whose fingerprint is the route's
current one is read back (:func:`from_stored`) instead of being parsed, checked and mapped
again; any other row (stored by an older release or by hand, re-queued from quarantine, or
stored under a configuration that has changed since) is mapped from its body as before.  The
backfill stores a form with each event too (integration/backfill/run.py).  So replays and
configuration changes keep their meaning: what is sent is always what
:func:`integration.mapping.map_event` makes of the body under the configuration in force.

The fingerprint covers the configuration :func:`~integration.mapping.map_event` reads
(``[events]`` with ``[events.stores]``, ``[identity]``, ``[revenue]``, ``[extras]``,
``budget.context_properties``, and whether a sandbox account is configured) and the source
text of the modules that make the records (:data:`CODE_MODULES`), so an upgrade that changes
the mapping re-maps what was stored before it.  The stored form is JSON::

    {"environment": "PRODUCTION", "records": [...]}      mapped
    {"skipped": "<reason>", "code": "<SKIP_CODES entry>"}  skipped

with ``"fast": true`` added when orjson's reading of the body was the one the receiver kept
(:attr:`integration.webhook.WebhookEnvelope.fast`): a route with a transform, which needs the
event object, then reads it with ``orjson.loads`` alone instead of parsing and checking the
body again.

What delivery adds after mapping (the backfill marker, the property budget, the route's
transform, the records an earlier try already delivered) is not part of it.

Example::

    fp = fingerprint(config)
    data = stored_form(envelope.event, config, fast=envelope.fast)  # None: map at delivery
    if data is not None:
        assert from_stored(data).result == map_event(envelope.event, config)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from integration.config import Config
from integration.mapping import Mapped, Skipped, map_event

__all__ = ["CODE_MODULES", "Stored", "fingerprint", "from_stored", "stored_form"]

#: The modules whose code decides the records of an event; their source is in the fingerprint.
CODE_MODULES = (
    "integration.config",
    "integration.extras",
    "integration.mapping",
    "integration.revenue",
    "integration.webhook",
)


def fingerprint(config: Config) -> str:
    """16 hex digits naming what :func:`~integration.mapping.map_event` makes of any body
    under ``config`` with this release's code: equal fingerprints, equal records."""
    parts = {
        "events": _canonical(config.events),
        "identity": _canonical(config.identity),
        "revenue": _canonical(config.revenue),
        "extras": _canonical(config.extras),
        "context_properties": config.budget.context_properties,
        # map_event skips a sandbox event when no sandbox account is configured.
        "sandbox_account": config.clevertap.account_for("SANDBOX") is not None,
        "code": _code_digest(),
    }
    encoded = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()[:16]


class Stored(NamedTuple):
    """A stored form read back: the verdict, and whether ``orjson.loads(body)["event"]`` is
    the event the receiver checked (``WebhookEnvelope.fast``)."""

    result: Mapped | Skipped
    fast: bool


def stored_form(event: Mapping[str, Any], config: Config, *, fast: bool = False) -> bytes | None:
    """``map_event(event, config)`` encoded for the outbox, or ``None`` when it is better
    mapped at delivery: mapping raised (delivery then dead-letters the event with the reason,
    as it always has), or a value has no exact JSON form here (an integer past 64 bits).
    ``fast`` is the envelope's: say so only when orjson's reading of the body was kept."""
    try:
        result = map_event(event, config)
        if isinstance(result, Skipped):
            form: dict[str, Any] = {"skipped": result.reason, "code": result.code}
        else:
            form = {"environment": result.environment, "records": result.records}
        if fast:
            form["fast"] = True
        return orjson.dumps(form)
    except Exception:  # the body is stored all the same, and delivery maps it
        return None


def from_stored(data: bytes) -> Stored:
    """The verdict :func:`stored_form` encoded.

    Raises ``ValueError`` (``orjson.JSONDecodeError`` is one) or ``KeyError`` for data it did
    not write; delivery then maps the body instead.
    """
    stored = orjson.loads(data)
    if type(stored) is not dict:
        raise ValueError("a stored form is a JSON object")
    fast = stored.get("fast") is True
    if "skipped" in stored:
        return Stored(Skipped(str(stored["skipped"]), str(stored["code"])), fast)
    records = stored["records"]
    if type(records) is not list or any(type(r) is not dict for r in records):
        raise ValueError("stored records are not a list of objects")
    return Stored(Mapped(environment=str(stored["environment"]), records=records), fast)


def _canonical(value: object) -> object:
    """``value`` as JSON the same in every process: sets sorted (their order follows the
    string hash, which differs between processes), dataclasses by field name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, frozenset | set):
        return sorted(_canonical(item) for item in value)  # type: ignore[type-var]
    if isinstance(value, tuple | list):
        return [_canonical(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # No other type is in the sections above today; a new one must be added here on purpose.
    raise TypeError(f"no canonical form for {type(value).__name__}")


@functools.cache
def _code_digest() -> str:
    digest = hashlib.sha256()
    # The release, with the sources below, so that a build without them still changes.
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        digest.update(importlib.metadata.version("rc-clevertap").encode() + b"\0")
    for name in CODE_MODULES:
        digest.update(name.encode() + b"\0")
        path = getattr(sys.modules[name], "__file__", None)
        # No source on disk (a frozen build): the module's name and the release stand for it.
        with contextlib.suppress(OSError):
            digest.update(Path(path).read_bytes() if path else b"")
    return digest.hexdigest()
