"""What the benchmarks send: realistic RevenueCat webhook bodies with unique event ids.

The bodies come from the RevenueCat mock's store simulator (a seeded population of customers
going through trials, renewals, cancellations, refunds...), so they carry every field a real
webhook carries, subscriber attributes included.  A few hundred distinct events serve as
templates; each body sent is a template with a fresh ``event.id``, so the receiver stores every
one of them and CleverTap receives it with that id as ``evtData.rc_event_id``.

Example::

    factory = WebhookFactory.build(seed=1)
    body = factory.body("bench-1-0")       # bytes, about 1.4 kB
    factory.forwarded("bench-1-0")         # True unless mapping skips this template's type
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integration.config import Config, config_from_mapping
from integration.mapping import Mapped, map_event
from integration.outbox import open_outbox
from integration.outbox.base import QueueDepths
from mockserver.clevertap import DEFAULT_ACCOUNT
from mockserver.revenuecat import RevenueCatBackend

__all__ = [
    "ACCOUNT_ID",
    "BENCH_ROUTE",
    "PASSCODE",
    "WEBHOOK_AUTH",
    "WebhookFactory",
    "engine_config",
    "fresh_outbox_url",
    "outbox_depths",
    "routes_enabled",
    "write_config",
]

ACCOUNT_ID = DEFAULT_ACCOUNT.account_id
PASSCODE = DEFAULT_ACCOUNT.passcodes[0]
WEBHOOK_AUTH = "Bearer benchmark-webhook-secret"
_PLACEHOLDER = "@@RC_EVENT_ID@@"


@dataclass(frozen=True)
class WebhookFactory:
    """Webhook bodies from templates: ``prefix + event id + suffix`` (bytes, no re-encoding)."""

    templates: tuple[tuple[bytes, bytes], ...]
    forwarded_mask: tuple[bool, ...]
    environments: tuple[str, ...]

    @classmethod
    def build(cls, *, seed: int = 1, users: int = 120) -> WebhookFactory:
        backend = RevenueCatBackend(seed=seed, max_events=100_000)
        events = backend.play(backend.plan_population(users, seed=seed), set_clevertap_ids=True)
        config = _mapping_config()
        templates: list[tuple[bytes, bytes]] = []
        mask: list[bool] = []
        environments: list[str] = []
        for event in events:
            if event.get("type") == "TRANSFER":
                continue  # not forwarded by RevenueCat's CleverTap integration either
            event = {**event, "id": _PLACEHOLDER}
            text = json.dumps({"api_version": "1.0", "event": event})
            prefix, _, suffix = text.partition(_PLACEHOLDER)
            templates.append((prefix.encode(), suffix.encode()))
            mask.append(isinstance(map_event(event, config), Mapped))
            environments.append(str(event.get("environment", "PRODUCTION")))
        if not templates:
            raise RuntimeError("the population produced no events; use more users")
        return cls(tuple(templates), tuple(mask), tuple(environments))

    def _index(self, event_id: str) -> int:
        # The template follows from the id's trailing number, so sender and checker agree.
        return int(event_id.rsplit("-", 1)[1]) % len(self.templates)

    def body(self, event_id: str) -> bytes:
        prefix, suffix = self.templates[self._index(event_id)]
        return prefix + event_id.encode() + suffix

    def environment(self, event_id: str) -> str:
        return self.environments[self._index(event_id)]

    def forwarded(self, event_id: str) -> bool:
        """Whether the engine sends this event to CleverTap (a few types are skipped)."""
        return self.forwarded_mask[self._index(event_id)]

    def records(self, event_id: str) -> list[dict[str, Any]]:
        """The CleverTap records the engine makes of this event (for ceilings and baselines)."""
        document = json.loads(self.body(event_id))
        result = map_event(document["event"], _mapping_config())
        return result.records if isinstance(result, Mapped) else []


@functools.cache
def _mapping_config() -> Config:
    """The mapping the engine applies (only the mapping matters here, not the URLs)."""
    return as_config(engine_config("http://127.0.0.1:9", "sqlite:///unused.db"))


def engine_config(
    clevertap_url: str,
    outbox_url: str,
    *,
    passcode: str = PASSCODE,
    timeout_s: float = 30.0,
    lease_s: float = 60.0,
    concurrency: int = 4,
    backoff_initial_s: float = 1.0,
    backoff_max_s: float = 300.0,
    linger_s: float = 0.05,
    features: bool | None = None,
) -> dict[str, Any]:
    """The engine's configuration as TOML tables; both environments go to the mock's account.

    ``features`` (by default ``RC_CLEVERTAP_BENCH_ROUTES=1``): the sections' ``features``
    variant (issue 21), with two routes, the property budget stated and a transform."""
    data: dict[str, Any] = {
        "clevertap": {
            "account_id": ACCOUNT_ID,
            "passcode": passcode,
            "sandbox_account_id": ACCOUNT_ID,
            "sandbox_passcode": passcode,
            "base_url": clevertap_url,
            "timeout_s": timeout_s,
        },
        "webhook": {"authorization": WEBHOOK_AUTH},
        "outbox": {"url": outbox_url, "lease_s": lease_s},
        "dispatcher": {
            "concurrency": concurrency,
            "backoff_initial_s": backoff_initial_s,
            "backoff_max_s": backoff_max_s,
            "linger_s": linger_s,
        },
    }
    if routes_enabled() if features is None else features:
        # Issues 16 and 21: a second route (its own path, the same mock account), the property
        # budget (on by default; stated so that the variant says what it runs) and a
        # transform; prefill puts every other event on the second route.
        data["routes"] = [{"name": BENCH_ROUTE, "path": BENCH_ROUTE, "account": "default"}]
        data["budget"] = {"max_event_properties_per_name": 100}
        data["transform"] = {"callable": "benchmarks.transform_hook:add_route_property"}
    config_from_mapping(data)  # fail here, not in a child process
    return data


#: The second route of RC_CLEVERTAP_BENCH_ROUTES=1.
BENCH_ROUTE = "second"


def routes_enabled() -> bool:
    """Whether the delivery benchmark runs with two routes and a transform
    (``RC_CLEVERTAP_BENCH_ROUTES=1``)."""
    return os.environ.get("RC_CLEVERTAP_BENCH_ROUTES", "") == "1"


def as_config(data: dict[str, Any]) -> Config:
    return config_from_mapping(data)


def write_config(data: dict[str, Any], path: Path) -> Path:
    """Write the tables as TOML (tables and arrays of tables of strings, numbers and booleans
    only)."""
    lines: list[str] = []
    for section, tables in data.items():
        # A list of tables is an array of tables ([[routes]]).
        for table in tables if isinstance(tables, list) else [tables]:
            lines.append(f"[[{section}]]" if isinstance(tables, list) else f"[{section}]")
            for key, value in table.items():
                if isinstance(value, bool):
                    lines.append(f"{key} = {'true' if value else 'false'}")
                elif isinstance(value, int | float):
                    lines.append(f"{key} = {value!r}")
                else:
                    lines.append(f"{key} = {json.dumps(str(value))}")
            lines.append("")
    path.write_text("\n".join(lines))
    return path


def fresh_outbox_url(base: str | None, name: str, workdir: Path) -> str:
    """An empty outbox for one measurement: a new SQLite file, or a new PostgreSQL schema."""
    if base is None or base.startswith("sqlite"):
        path = workdir / f"{name}.db"
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        return f"sqlite:///{path.resolve()}"
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}schema={schema}"


def drop_outbox(url: str) -> None:
    """Remove what :func:`fresh_outbox_url` made (the file, or the schema and its tables)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        return
    import psycopg

    base, _, query = url.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
    schema = params.pop("schema", "")
    if not schema.startswith("bench_"):
        return  # never drop a schema the benchmark did not make
    rest = "&".join(f"{k}={v}" for k, v in params.items())
    with psycopg.connect(base + (f"?{rest}" if rest else ""), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def outbox_depths(url: str) -> QueueDepths:
    """The outbox's pending, leased and dead counts, exact and read now, by index (an
    engine's ``/healthz`` shows no counts and its ``/metrics`` depths may be 2 s old)."""
    outbox = open_outbox(url)
    await outbox.open()
    try:
        return await outbox.depths()
    finally:
        await outbox.close()


def tool_path(name: str) -> str | None:
    return shutil.which(name)
