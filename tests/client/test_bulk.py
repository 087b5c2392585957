"""Bulk identity sync against the RevenueCat mock, in process, on its virtual clock."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from rc_helpers import Script, Sleeps
from starlette.exceptions import StarletteDeprecationWarning

import mockserver
from client import (
    CLEVERTAP_ID,
    AsyncAttributeSyncer,
    AsyncRevenueCat,
    AttributeSyncer,
    AuthenticationError,
    BulkProgress,
    BulkRefusal,
    BulkReport,
    IdentityPair,
    RevenueCat,
    SQLiteAttributeStore,
)
from mockserver import RevenueCatBackend
from mockserver.revenuecat.clock import VirtualClock

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SECRET = "sk_mock_secret_key"
V2_KEY = "sk_mock_v2_key"
PROJECT = "proj1ab2c3d4"
BASE = "http://testserver"
START_MS = 1_700_000_000_000  # 20 s into a minute: the mock's first window has 40 s left


class Mock:
    """The RevenueCat mock on a frozen virtual clock, counting what reaches it."""

    def __init__(self, *, rate_limit: int | None = None) -> None:
        self.clock = VirtualClock(time_scale=0, start_ms=START_MS)
        self.backend = RevenueCatBackend(seed=1, clock=self.clock, v2_rate_limit=rate_limit)
        self.app = mockserver.create_app(revenuecat_backend=self.backend)
        self.posts: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    def now(self) -> float:
        return self.clock.now_ms() / 1000

    def count(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        request = response.request
        if request.method == "POST":
            self.posts[unquote(request.url.path.split("/")[-2])] += 1

    def stored(self, user: str) -> str | None:
        attribute = self.backend.customer(user).attributes.get(CLEVERTAP_ID)
        return None if attribute is None else attribute.value

    def client(self, http: httpx.Client, api_key: str = SECRET) -> RevenueCat:
        http.event_hooks = {"response": [self.count]}
        # The client's sleep moves the mock's clock: a rate-limit wait takes no real time.
        return RevenueCat(
            api_key=api_key,
            base_url=BASE,
            http_client=http,
            sleep=self.clock.advance,
            clock=self.now,
        )


@pytest.fixture
def mock() -> Mock:
    return Mock()


@pytest.fixture
def http(mock: Mock) -> Iterator[httpx.Client]:
    with TestClient(mock.app, base_url=BASE) as client:
        yield client


def pairs(n: int) -> list[tuple[str, str]]:
    return [(f"user-{i}", f"ct-{i}") for i in range(n)]


def syncer(mock: Mock, rc: RevenueCat, path: Path) -> AttributeSyncer:
    return AttributeSyncer(rc, path=path, clock=mock.now)


def test_a_thousand_users_are_set_and_verified(
    mock: Mock, http: httpx.Client, tmp_path: Path
) -> None:
    """1,000 pairs through API v1 are each sent once, stored, and read back as equal."""
    with syncer(mock, mock.client(http), tmp_path / "s.sqlite3") as s:
        report = s.set_clevertap_ids(pairs(1000))
        verified = s.verify_clevertap_ids(pairs(1000))
    assert (report.progress.sent, report.progress.refused, report.progress.failed) == (1000, 0, 0)
    assert set(mock.posts.values()) == {1} and len(mock.posts) == 1000
    assert mock.stored("user-999") == "ct-999"
    assert verified.checked == 1000 and verified.ok


def test_a_second_run_of_the_same_pairs_sends_nothing(
    mock: Mock, http: httpx.Client, tmp_path: Path
) -> None:
    """Values already synced are no-ops: the second run reports them unchanged, sending none."""
    path = tmp_path / "s.sqlite3"
    with syncer(mock, mock.client(http), path) as s:
        s.set_clevertap_ids(pairs(50))
    sent = sum(mock.posts.values())
    with syncer(mock, mock.client(http), path) as s:
        again = s.set_clevertap_ids(pairs(50))
    assert sum(mock.posts.values()) == sent == 50
    assert (again.progress.unchanged, again.progress.sent) == (50, 0)


def test_an_interrupted_run_resumes_and_sends_no_user_twice(
    mock: Mock, http: httpx.Client, tmp_path: Path
) -> None:
    """Interrupted after 300 users, the next run sends only the rest, each user exactly once."""
    path = tmp_path / "s.sqlite3"

    def interrupt(progress: BulkProgress) -> None:
        if progress.done >= 300:
            raise KeyboardInterrupt

    with syncer(mock, mock.client(http), path) as s, pytest.raises(KeyboardInterrupt):
        s.set_clevertap_ids(pairs(1000), on_progress=interrupt)
    first = sum(mock.posts.values())
    assert 300 <= first < 1000
    with syncer(mock, mock.client(http), path) as s:
        resumed = s.set_clevertap_ids(pairs(1000))
    assert len(mock.posts) == 1000 and set(mock.posts.values()) == {1}
    assert resumed.progress.sent == 1000 - first
    assert resumed.progress.unchanged == first


def test_the_v2_rate_limit_is_waited_out_on_the_virtual_clock(tmp_path: Path) -> None:
    """At 480 a minute, 1,000 users take three windows; every worker waits out each 429."""
    mock = Mock(rate_limit=480)
    for user, _ in pairs(1000):
        mock.backend.create_customer(user)
    started = mock.now()
    with TestClient(mock.app, base_url=BASE) as http:
        rc = mock.client(http, api_key=V2_KEY)
        with syncer(mock, rc, tmp_path / "s.sqlite3") as s:
            report = s.set_clevertap_ids(pairs(1000), project_id=PROJECT)
    elapsed = mock.now() - started
    # 480 in the first window's 40 s, 480 in the next minute, 40 in the third.
    assert 100 <= elapsed < 160
    # Two windows to wait out; a late 429 may split a wait in two, never lengthen it.
    assert report.progress.sent == 1000 and 2 <= report.progress.rate_limit_waits <= 4
    assert report.progress.waited_s == pytest.approx(elapsed)
    # At the limit one request probes at a time: at most the workers in flight get a 429.
    assert mock.statuses[429] <= 2 * 8
    assert mock.stored("user-999") == "ct-999"


def test_malformed_pairs_are_refused_by_line_and_the_rest_continue(
    mock: Mock, http: httpx.Client, tmp_path: Path
) -> None:
    """Empty ids, a blank user, an over-long id and a second id for a user are skipped."""
    rows = [
        IdentityPair("user-1", "ct-1", line=2),
        IdentityPair("user-2", "", line=3),
        IdentityPair("  ", "ct-3", line=4),
        IdentityPair("user-4", "x" * 501, line=5),
        IdentityPair("user-1", "ct-other", line=6),
        IdentityPair("user-1", "ct-1", line=7),  # the same pair again is harmless
        IdentityPair("user-5", "ct-5", line=8),
    ]
    seen: list[BulkRefusal] = []
    with syncer(mock, mock.client(http), tmp_path / "s.sqlite3") as s:
        report = s.set_clevertap_ids(rows, on_refusal=seen.append)
    assert [(r.line, r.app_user_id) for r in report.refused] == [
        (3, "user-2"),
        (4, "  "),
        (5, "user-4"),
        (6, "user-1"),
    ]
    assert seen == list(report.refused)
    assert "duplicate user" in report.refused[3].reason
    assert report.progress.sent == 2 and report.progress.unchanged == 1
    assert mock.stored("user-1") == "ct-1" and mock.stored("user-5") == "ct-5"


def test_a_wrong_key_stops_the_run_at_once_and_leaves_the_users_pending(
    mock: Mock, http: httpx.Client, tmp_path: Path
) -> None:
    """A 401 raises after the requests already in flight; nothing is marked synced."""
    path = tmp_path / "s.sqlite3"
    with (
        pytest.raises(AuthenticationError),
        syncer(mock, mock.client(http, api_key="sk_wrong"), path) as s,
    ):
        s.set_clevertap_ids(pairs(500))
    refused = mock.statuses[401]
    # At most the requests already handed to the 8 workers (2 x 8 + 1 queued at a time);
    # leaving the block on a 401 sent nothing more.
    assert 1 <= refused <= 2 * 8 + 1
    store = SQLiteAttributeStore(path)
    try:
        assert len(store.unsynced()) >= refused
    finally:
        store.close()


def test_an_unknown_v2_customer_is_failed_and_stays_pending(tmp_path: Path) -> None:
    """API v2 does not create customers: its 404 is reported and resent by the next run."""
    mock = Mock()
    mock.backend.create_customer("user-0")
    with TestClient(mock.app, base_url=BASE) as http:
        rc = mock.client(http, api_key=V2_KEY)
        with syncer(mock, rc, tmp_path / "s.sqlite3") as s:
            report = s.set_clevertap_ids(pairs(2), project_id=PROJECT)
            assert list(s.pending()) == ["user-1"]
    assert report.progress.sent == 1 and report.progress.failed == 1
    assert report.failed[0].pending and "no such customer" in report.failed[0].reason


def test_a_dry_run_checks_the_pairs_and_sends_nothing(
    mock: Mock, http: httpx.Client, tmp_path: Path
) -> None:
    """--dry-run semantics: refusals are reported, nothing is staged or sent."""
    with syncer(mock, mock.client(http), tmp_path / "s.sqlite3") as s:
        report = s.set_clevertap_ids([*pairs(3), ("user-9", "")], dry_run=True)
        assert s.pending() == {}
    assert report.dry_run and report.progress.read == 4 and report.progress.refused == 1
    assert not mock.posts


def test_verification_reports_a_value_changed_since(
    mock: Mock, http: httpx.Client, tmp_path: Path
) -> None:
    """A user whose id differs on RevenueCat from the input is a mismatch naming both ids."""
    with syncer(mock, mock.client(http), tmp_path / "s.sqlite3") as s:
        s.set_clevertap_ids(pairs(5))
        mock.clock.advance(1)  # newer wins: the app's later write replaces ours
        mock.backend.set_attributes("user-3", {CLEVERTAP_ID: "ct-new"})
        verified = s.verify_clevertap_ids(pairs(5), sample=5)
    assert verified.checked == 5
    assert [(m.app_user_id, m.expected, m.found) for m in verified.mismatches] == [
        ("user-3", "ct-3", "ct-new")
    ]


async def test_the_async_syncer_sets_users_once_across_two_runs(tmp_path: Path) -> None:
    """The asyncio twin sets every user, and its second run sends nothing."""
    mock = Mock()
    path = tmp_path / "s.sqlite3"

    async def advance(seconds: float) -> None:
        mock.clock.advance(seconds)

    transport = httpx.ASGITransport(app=mock.app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, event_hooks={"response": [_async(mock.count)]}
    ) as http:
        rc = AsyncRevenueCat(
            api_key=SECRET, base_url=BASE, http_client=http, sleep=advance, clock=mock.now
        )
        async with AsyncAttributeSyncer(rc, path=path, clock=mock.now) as s:
            first = await s.set_clevertap_ids(pairs(200))
            second = await s.set_clevertap_ids(pairs(200))
            verified = await s.verify_clevertap_ids(pairs(200), sample=20)
    assert first.progress.sent == 200 and second.progress.unchanged == 200
    assert len(mock.posts) == 200 and set(mock.posts.values()) == {1}
    assert verified.checked == 20 and verified.ok


def _async(hook: object) -> object:
    async def call(response: httpx.Response) -> None:
        hook(response)  # type: ignore[operator]

    return call


def test_revenuecats_per_key_refusal_is_reported_with_its_reason(make_client: Any) -> None:
    """A 400 with attribute_errors is a refusal carrying RevenueCat's reason, not resent."""
    refusal = {
        "code": 7263,
        "message": "Some subscriber attributes keys were unable to be saved.",
        "attribute_errors": [{"key_name": CLEVERTAP_ID, "message": "Value is not valid."}],
    }
    script = Script(httpx.Response(400, json=refusal), httpx.Response(200, json={}))
    with AttributeSyncer(make_client(script), max_concurrency=1) as s:
        report = s.set_clevertap_ids([IdentityPair("user-1", "ct-1", line=2), ("user-2", "ct-2")])
        assert s.pending() == {}
    (refused,) = report.refused
    assert (refused.line, refused.app_user_id, refused.pending) == (2, "user-1", False)
    assert [(e.key_name, e.message) for e in refused.errors] == [
        (CLEVERTAP_ID, "Value is not valid.")
    ]
    assert report.progress.sent == 1


def test_a_server_error_after_the_retries_leaves_the_user_for_the_next_run(
    make_client: Any, sleeps: Sleeps
) -> None:
    """5xx on every retry: the user is failed, stays pending, and the next run sends it."""
    script = Script(httpx.Response(503))
    with AttributeSyncer(make_client(script, max_retries=2)) as s:
        report = s.set_clevertap_ids([("user-1", "ct-1")])
        assert list(s.pending()) == ["user-1"]
        script.replies = [httpx.Response(200, json={})]
        again = s.set_clevertap_ids([("user-1", "ct-1")])
    assert report.progress.failed == 1 and report.failed[0].pending
    assert len(sleeps.durations) == 2  # the client's retry policy, with its injected sleep
    assert (again.progress.sent, again.progress.resumed, again.progress.unchanged) == (1, 1, 0)


async def _async_syncer_run(
    mock: Mock, path: Path, api_key: str, project_id: str | None, n: int
) -> BulkReport:
    async def advance(seconds: float) -> None:
        mock.clock.advance(seconds)

    transport = httpx.ASGITransport(app=mock.app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, event_hooks={"response": [_async(mock.count)]}
    ) as http:
        rc = AsyncRevenueCat(
            api_key=api_key, base_url=BASE, http_client=http, sleep=advance, clock=mock.now
        )
        async with AsyncAttributeSyncer(rc, path=path, clock=mock.now) as s:
            return await s.set_clevertap_ids(pairs(n), project_id=project_id)


async def test_the_async_syncer_waits_out_the_rate_limit_on_the_virtual_clock(
    tmp_path: Path,
) -> None:
    """The asyncio twin pauses every task on a 429 too: 250 users at 100 a minute."""
    mock = Mock(rate_limit=100)
    for user, _ in pairs(250):
        mock.backend.create_customer(user)
    started = mock.now()
    report = await _async_syncer_run(mock, tmp_path / "s.sqlite3", V2_KEY, PROJECT, 250)
    elapsed = mock.now() - started
    assert report.progress.sent == 250 and report.progress.rate_limit_waits >= 2
    # 100 in the first window's 40 s, 100 in the next minute, 50 in the third.
    assert 100 <= elapsed < 160
    assert mock.statuses[429] <= 3 * 8


async def test_the_async_syncer_stops_at_a_401(tmp_path: Path) -> None:
    """A wrong key raises from the asyncio twin too, after at most the tasks in flight."""
    mock = Mock()
    with pytest.raises(AuthenticationError):
        await _async_syncer_run(mock, tmp_path / "s.sqlite3", "sk_wrong", None, 200)
    assert 1 <= mock.statuses[401] <= 2 * 8 + 1
