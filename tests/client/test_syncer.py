"""The attribute syncer: staging, one POST per user, and the SDKs' marking rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from rc_helpers import API_KEY, Reply, Sleeps

import client
from client import CLEVERTAP_ID, EMAIL, AttributeSyncer, RevenueCat, SyncResult


class Server:
    """Answers attribute POSTs per app user id (default 200) and records what each got."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.during: Callable[[], None] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        user = request.url.path.split("/")[3]
        self.posts.append((user, json.loads(request.read())["attributes"]))
        if self.during is not None:
            self.during()
        reply = self.replies.get(user, httpx.Response(200, json={}))
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)


class Clock:
    """A settable clock in seconds."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rc(server: Server) -> Iterator[RevenueCat]:
    with httpx.Client(transport=httpx.MockTransport(server)) as http:
        yield RevenueCat(api_key=API_KEY, http_client=http, sleep=Sleeps(), max_retries=1)


@pytest.fixture
def syncer(rc: RevenueCat, clock: Clock) -> Iterator[AttributeSyncer]:
    s = AttributeSyncer(rc, clock=clock)
    yield s
    s._core.store.close()


def test_staging_sends_nothing(syncer: AttributeSyncer, server: Server) -> None:
    """Setting attributes only stages them; nothing goes out before sync()."""
    syncer.set_clevertap_id("u1", "ct-1")
    assert server.posts == []
    assert syncer.pending()["u1"][CLEVERTAP_ID].value == "ct-1"


def test_setting_the_stored_value_is_a_no_op(syncer: AttributeSyncer, clock: Clock) -> None:
    """Staging an equal value changes nothing, not even the set time."""
    assert syncer.set_email("u1", "a@b.co") == [EMAIL]
    clock.now += 5
    assert syncer.set_email("u1", "a@b.co") == []
    assert syncer.pending()["u1"][EMAIL].set_time_ms == 1_000_000


def test_an_equal_value_after_sync_is_still_a_no_op(
    syncer: AttributeSyncer, server: Server
) -> None:
    """Re-setting a synced value stages nothing and sends nothing."""
    syncer.set_display_name("u1", "Ada")
    syncer.sync()
    assert syncer.set_display_name("u1", "Ada") == []
    syncer.sync()
    assert len(server.posts) == 1


def test_sync_sends_one_post_per_user_with_each_set_time(
    syncer: AttributeSyncer, server: Server, clock: Clock
) -> None:
    """Each user gets one POST holding all its unsynced keys, each with its own set time."""
    syncer.set_clevertap_id("u1", "ct-1")
    clock.now += 2
    syncer.set_email("u1", "a@b.co")
    syncer.set_attributes("u2", {"plan": "pro", "gone": None})
    report = syncer.sync()
    assert sorted(server.posts, key=lambda p: p[0]) == [
        (
            "u1",
            {
                CLEVERTAP_ID: {"value": "ct-1", "updated_at_ms": 1_000_000},
                EMAIL: {"value": "a@b.co", "updated_at_ms": 1_002_000},
            },
        ),
        (
            "u2",
            {
                "gone": {"value": None, "updated_at_ms": 1_002_000},
                "plan": {"value": "pro", "updated_at_ms": 1_002_000},
            },
        ),
    ]
    assert len(report.synced) == 2
    assert syncer.pending() == {}


def test_an_empty_string_stages_a_deletion(syncer: AttributeSyncer, server: Server) -> None:
    """set_clevertap_id(user, "") is staged and sent as a null value."""
    syncer.set_clevertap_id("u1", "")
    syncer.sync()
    assert server.posts == [("u1", {CLEVERTAP_ID: {"value": None, "updated_at_ms": 1_000_000}})]


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500),
        httpx.Response(503, text="<html>"),
        httpx.Response(404, json={"message": "not found"}),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
)
def test_5xx_404_and_no_response_keep_attributes_unsynced(
    syncer: AttributeSyncer, server: Server, reply: Reply
) -> None:
    """After a 5xx, a 404 or no response the attributes stay staged and are resent."""
    syncer.set_clevertap_id("u1", "ct-1")
    server.replies["u1"] = reply
    report = syncer.sync()
    assert [r.resend for r in report.failed] == [True]
    assert CLEVERTAP_ID in syncer.pending()["u1"]
    del server.replies["u1"]
    first = server.posts[0][1]
    syncer.sync()
    assert server.posts[-1] == ("u1", first)
    assert syncer.pending() == {}


def test_attribute_errors_are_reported_and_not_resent(
    rc: RevenueCat, server: Server, clock: Clock
) -> None:
    """A 400 with attribute_errors is marked synced, reported, and passed to on_error."""
    seen: list[SyncResult] = []
    syncer = AttributeSyncer(rc, clock=clock, on_error=seen.append)
    syncer.set_email("u1", "not-an-email")
    server.replies["u1"] = httpx.Response(
        400,
        json={
            "code": "7263",
            "message": "Some subscriber attributes keys were unable to be saved.",
            "attribute_errors": [{"key_name": EMAIL, "message": "Email address is not valid."}],
        },
    )
    report = syncer.sync()
    assert [r.app_user_id for r in report.rejected] == ["u1"]
    assert report.rejected[0].attribute_errors == [
        client.AttributeErrorDetail(EMAIL, "Email address is not valid.")
    ]
    assert seen == report.rejected
    assert syncer.pending() == {}
    syncer.sync()
    assert len(server.posts) == 1
    syncer._core.store.close()


@pytest.mark.parametrize("status", [401, 403, 409])
def test_other_4xx_are_dropped_as_the_sdks_do(
    syncer: AttributeSyncer, server: Server, status: int
) -> None:
    """Any other 4xx counts as received: marked synced, reported as dropped."""
    syncer.set_clevertap_id("u1", "ct-1")
    server.replies["u1"] = httpx.Response(status, json={"message": "no"})
    report = syncer.sync()
    assert [r.error.status_code for r in report.dropped] == [status]  # type: ignore[union-attr]
    assert syncer.pending() == {}


def test_429_is_resent_by_default(syncer: AttributeSyncer, server: Server) -> None:
    """A 429 that outlasts the client's retries leaves the attributes staged."""
    syncer.set_clevertap_id("u1", "ct-1")
    server.replies["u1"] = httpx.Response(429, headers={"Retry-After": "1"})
    report = syncer.sync()
    assert len(report.failed) == 1
    assert CLEVERTAP_ID in syncer.pending()["u1"]


def test_429_follows_the_sdk_rule_when_asked(rc: RevenueCat, server: Server, clock: Clock) -> None:
    """With resend_rate_limited=False a 429 marks the attributes synced, like the SDKs."""
    syncer = AttributeSyncer(rc, clock=clock, resend_rate_limited=False)
    syncer.set_clevertap_id("u1", "ct-1")
    server.replies["u1"] = httpx.Response(429)
    report = syncer.sync()
    assert len(report.dropped) == 1
    assert syncer.pending() == {}
    syncer._core.store.close()


def test_a_value_changed_during_the_request_stays_unsynced(
    syncer: AttributeSyncer, server: Server, clock: Clock
) -> None:
    """Only entries whose stored value still equals the sent one are marked synced."""
    syncer.set_clevertap_id("u1", "old")

    def change() -> None:
        server.during = None
        clock.now += 1
        syncer.set_clevertap_id("u1", "new")

    server.during = change
    syncer.sync()
    staged = syncer.pending()["u1"][CLEVERTAP_ID]
    assert (staged.value, staged.set_time_ms) == ("new", 1_001_000)
    syncer.sync()
    assert server.posts[-1][1][CLEVERTAP_ID] == {"value": "new", "updated_at_ms": 1_001_000}


def test_more_than_50_custom_keys_go_in_several_posts(
    syncer: AttributeSyncer, server: Server
) -> None:
    """A user with 60 custom keys is sent in POSTs of at most 50 custom keys each."""
    syncer.set_attributes("u1", {f"k{i}": "v" for i in range(30)})
    syncer.set_attributes("u1", {f"k{i}": "v" for i in range(30, 60)} | {EMAIL: "a@b.co"})
    report = syncer.sync()
    assert [len(attrs) for _, attrs in server.posts] == [50, 11]
    assert len(report.synced) == 2
    assert syncer.pending() == {}


def test_invalid_input_stages_nothing(syncer: AttributeSyncer) -> None:
    """A bad key raises InvalidAttributeError and stages none of the call's keys."""
    with pytest.raises(client.InvalidAttributeError):
        syncer.set_attributes("u1", {"plan": "pro", "bad key": "x"})
    with pytest.raises(client.InvalidAttributeError):
        syncer.set_clevertap_id("", "ct-1")
    assert syncer.pending() == {}


def test_a_failing_callback_does_not_break_sync(
    rc: RevenueCat, server: Server, clock: Clock
) -> None:
    """An exception in on_error is logged; the other users still sync."""

    def explode(result: SyncResult) -> None:
        raise RuntimeError("callback bug")

    syncer = AttributeSyncer(rc, clock=clock, on_error=explode)
    syncer.set_clevertap_id("u1", "ct-1")
    syncer.set_clevertap_id("u2", "ct-2")
    server.replies["u1"] = httpx.Response(401)
    report = syncer.sync()
    assert len(report.synced) == 1
    assert len(report.dropped) == 1
    syncer._core.store.close()


def test_close_flushes(rc: RevenueCat, server: Server) -> None:
    """Leaving the with block syncs what is staged."""
    with AttributeSyncer(rc) as syncer:
        syncer.set_clevertap_id("u1", "ct-1")
    assert [user for user, _ in server.posts] == ["u1"]


def test_bad_syncer_arguments_are_refused(rc: RevenueCat, tmp_path: Any) -> None:
    """A wrong client type, a bad concurrency or both path and store raise at once."""
    with pytest.raises(TypeError):
        AttributeSyncer(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AttributeSyncer(rc, max_concurrency=0)
    with pytest.raises(ValueError):
        AttributeSyncer(rc, path=tmp_path / "a.db", store=client.MemoryAttributeStore())


def test_a_closed_syncer_refuses_to_stage(rc: RevenueCat) -> None:
    """Staging or syncing after close() raises RuntimeError instead of losing the value."""
    syncer = AttributeSyncer(rc)
    syncer.close()
    with pytest.raises(RuntimeError):
        syncer.set_clevertap_id("u1", "ct-1")
    with pytest.raises(RuntimeError):
        syncer.sync()


def test_a_row_the_rules_refuse_is_dropped_not_resent(rc: RevenueCat, server: Server) -> None:
    """A stored row with an invalid key (another version's file) is reported and dropped."""
    store = client.MemoryAttributeStore()
    store.stage("u1", {"bad key": "x"}, 5)
    with AttributeSyncer(rc, store=store) as syncer:
        report = syncer.sync()
        assert isinstance(report.dropped[0].error, client.InvalidAttributeError)
        assert syncer.pending() == {}
    assert server.posts == []
