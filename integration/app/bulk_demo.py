"""``rc-clevertap set-id --demo N``: a migration of N users against the RevenueCat mock.

The mock runs in process with API v2's limit on (480 requests a minute) and a virtual clock:
a rate-limit wait moves the clock, and takes ``1 / speed`` of its length in real time so the
progress bar shows it (``speed`` 60: a minute's wait lasts a second; 0: no real waiting).
"""

from __future__ import annotations

import csv
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.exceptions import StarletteDeprecationWarning

import mockserver
from mockserver import RevenueCatBackend
from mockserver.revenuecat.backend import DEFAULT_PROJECT_ID
from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.keys import DEFAULT_V2_KEY
from mockserver.revenuecat.ratelimit import DEFAULT_V2_RATE_LIMIT

with warnings.catch_warnings():  # TestClient is an httpx.Client; Starlette prefers httpx2
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["DemoTarget", "demo_revenuecat"]

BASE_URL = "http://revenuecat.mock"


@dataclass(frozen=True, slots=True)
class DemoTarget:
    """Where the demo migration sends, and its mapping file."""

    http: httpx.Client
    api_key: str
    project_id: str
    mapping: Path
    clock: VirtualClock
    rate_limit: int
    speed: float

    def now(self) -> float:
        return self.clock.now_ms() / 1000

    def sleep(self, seconds: float) -> None:
        if self.speed > 0:
            time.sleep(seconds / self.speed)
        self.clock.advance(seconds)


@contextmanager
def demo_revenuecat(users: int, workdir: Path, *, speed: float = 60.0) -> Iterator[DemoTarget]:
    """A RevenueCat mock holding ``users`` customers, and a CSV mapping each to an id."""
    clock = VirtualClock(time_scale=0)
    backend = RevenueCatBackend(
        seed=7, clock=clock, v2_rate_limit=DEFAULT_V2_RATE_LIMIT, max_customers=max(users, 1)
    )
    mapping = workdir / "demo-mapping.csv"
    with mapping.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["app_user_id", "clevertap_id"])
        for i in range(users):
            user = f"demo-user-{i:06d}"
            backend.create_customer(user)
            writer.writerow([user, f"demo-ct-{i:06d}"])
    app = mockserver.create_app(revenuecat_backend=backend)
    with TestClient(app, base_url=BASE_URL) as http:
        yield DemoTarget(
            http, DEFAULT_V2_KEY, DEFAULT_PROJECT_ID, mapping, clock, DEFAULT_V2_RATE_LIMIT, speed
        )
