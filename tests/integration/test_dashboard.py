"""The dashboard at /ui, in process (httpx over ASGI): access, sessions, CSRF, pages, actions.

The same behaviours in a real browser are in tests/integration/test_dashboard_browser.py.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from engine_helpers import Stack, make_config, running_stack, webhook

from integration.app.dashboard import with_dashboard
from integration.config import AdminConfig, Config, Secret
from mockserver.faults import FaultInjector, FaultRule

TOKEN = "dashboard-admin-token-for-tests"


def with_token(config: Config, token: str | None = TOKEN) -> Config:
    return dataclasses.replace(
        config, admin=AdminConfig(token=None if token is None else Secret(token))
    )


@asynccontextmanager
async def dashboard(
    config: Config, *, base_url: str = "http://forwarder.test", **stack_options: object
) -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    """A running engine on the CleverTap mock, and a client of its app with the dashboard."""
    async with running_stack(config, **stack_options) as stack:  # type: ignore[arg-type]
        app = with_dashboard(stack.engine, clock=stack.clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url
        ) as client:
            yield stack, client


async def log_in(client: httpx.AsyncClient) -> str:
    """Log in; the CSRF token of the session, read from the overview page."""
    response = await client.post("/ui/login", data={"token": TOKEN})
    assert response.status_code == 303
    page = await client.get("/ui")
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match is not None
    return match.group(1)


async def test_without_a_token_ui_is_404_and_webhooks_are_unaffected(tmp_path) -> None:
    """No [admin] token: every /ui path answers 404, and webhooks are stored as before."""
    async with dashboard(with_token(make_config(tmp_path), None)) as (stack, client):
        for path in ("/ui", "/ui/events", "/ui/api/overview", "/ui/static/htmx.min.js"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.post("/ui/login", data={"token": TOKEN})).status_code == 404
        assert (await stack.post(webhook("e1"))).status_code == 200


async def test_without_a_session_pages_show_the_login_form_and_the_api_401(tmp_path) -> None:
    """With a token but no session: the login page for pages, 401 for the JSON API."""
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("e1", subscriber_attributes={"$email": {"value": "a@b.example"}}))
        page = await client.get("/ui/events/1")
        assert page.status_code == 200
        assert 'action="/ui/login"' in page.text and "a@b.example" not in page.text
        api = await client.get("/ui/api/events/1")
        assert api.status_code == 401 and "a@b.example" not in api.text


async def test_a_wrong_token_is_401_and_sets_no_cookie(tmp_path) -> None:
    """A wrong token at the login form answers 401 and sets nothing."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        response = await client.post("/ui/login", data={"token": TOKEN + "x"})
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert TOKEN not in response.text


async def test_the_right_token_sets_an_httponly_strict_session_cookie(tmp_path) -> None:
    """Logging in sets a session cookie that is HttpOnly, SameSite=Strict, scoped to /ui."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        response = await client.post("/ui/login", data={"token": TOKEN})
        cookie = response.headers["set-cookie"]
        assert response.status_code == 303 and response.headers["location"] == "/ui"
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert "Secure" not in cookie and TOKEN not in cookie
        assert 'hx-get="/ui/overview/live' in (await client.get("/ui")).text


async def test_the_session_cookie_is_secure_over_https(tmp_path) -> None:
    """Served over HTTPS, the session cookie is marked Secure."""
    config = with_token(make_config(tmp_path))
    async with dashboard(config, base_url="https://forwarder.test") as (_, client):
        response = await client.post("/ui/login", data={"token": TOKEN})
        assert "Secure" in response.headers["set-cookie"]


async def test_a_session_ends_when_it_expires(tmp_path) -> None:
    """Past [admin] session_s the cookie no longer opens pages."""
    config = dataclasses.replace(
        make_config(tmp_path), admin=AdminConfig(token=Secret(TOKEN), session_s=60.0)
    )
    async with dashboard(config) as (stack, client):
        await log_in(client)
        stack.clock.advance(61.0)
        assert 'action="/ui/login"' in (await client.get("/ui")).text


async def test_a_forged_cookie_opens_nothing(tmp_path) -> None:
    """A session cookie whose signature does not match is no session."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        client.cookies.set("rcct_session", "9999999999.00ff.deadbeef", path="/ui")
        assert (await client.get("/ui/api/overview")).status_code == 401


async def test_a_cookie_with_non_ascii_text_opens_nothing_and_breaks_nothing(tmp_path) -> None:
    """A stranger's cookie with non-ASCII digits or signature is no session (401), never a
    500: compare_digest and int() would raise on it."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        for value in ("\u00b2\u00b2.00ff.deadbeef", "9999999999.00ff.d\u00e9adbeef"):
            cookie = f"rcct_session={value}".encode()  # raw bytes, as any client may send
            answer = await client.get("/ui/api/overview", headers=[(b"cookie", cookie)])
            assert answer.status_code == 401


async def test_ids_and_numbers_that_are_not_plain_digits_are_ignored(tmp_path) -> None:
    """A feed cursor, a page size or an id of unicode digits or 40 digits is not a 500: the
    cursor and size fall back to their defaults and the action names no row."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        csrf = await log_in(client)
        feed = await client.get("/ui/events", params={"before": "\u00b2", "limit": "9" * 40})
        assert feed.status_code == 200
        form = {"csrf": csrf, "id": ["\u00b2", "1" * 40], "confirm": "yes"}
        retried = await client.post("/ui/dead/retry", data=form)
        assert retried.status_code == 303
        assert "done=none" in retried.headers["location"]


async def test_the_api_answers_a_bearer_of_the_token(tmp_path) -> None:
    """The JSON API answers Authorization: Bearer <admin token> without a session."""
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("e1"))
        await stack.drain()
        response = await client.get(
            "/ui/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 200
        assert (response.json()["received"], response.json()["delivered"]) == (1, 1)


def dead_first_upload() -> FaultInjector:
    """CleverTap refuses the first upload's records for good (a 513-style record error)."""
    return FaultInjector(rules=[FaultRule("reject_records", code=513, share=1.0, count=1)])


async def test_an_action_without_the_csrf_token_is_403_and_changes_nothing(tmp_path) -> None:
    """Retrying a dead letter without the session's CSRF token is refused with 403."""
    config = with_token(make_config(tmp_path))
    async with dashboard(config, faults=dead_first_upload()) as (stack, client):
        await stack.post(webhook("dead-1"))
        await stack.drain()
        await log_in(client)
        [dead] = await stack.engine.dead_letters()
        data = {"id": str(dead.row_id), "confirm": "yes"}
        response = await client.post("/ui/dead/retry", data=data)
        assert response.status_code == 403
        forged = await client.post("/ui/dead/retry", data={**data, "csrf": "0" * 32})
        assert forged.status_code == 403
        assert [d.event_id for d in await stack.engine.dead_letters()] == ["dead-1"]


async def test_retrying_a_dead_letter_asks_first_then_delivers_it_and_logs(
    tmp_path, caplog
) -> None:
    """The first POST only asks; the confirmation requeues, the engine delivers, a line says so."""
    config = with_token(make_config(tmp_path))
    async with dashboard(config, faults=dead_first_upload()) as (stack, client):
        await stack.post(webhook("dead-1"))
        await stack.drain()
        csrf = await log_in(client)
        [dead] = await stack.engine.dead_letters()
        form = {"id": str(dead.row_id), "csrf": csrf}
        question = await client.post("/ui/dead/retry", data=form)
        assert question.status_code == 200 and "Retry 1 dead letter?" in question.text
        assert len(await stack.engine.dead_letters()) == 1
        with caplog.at_level(logging.INFO, logger="integration.app.dashboard"):
            done = await client.post("/ui/dead/retry", data={**form, "confirm": "yes"})
        assert done.status_code == 303 and "done=requeued" in done.headers["location"]
        await stack.drain()
        assert stack.delivered_ids() == ["dead-1"]
        assert f"requeued 1 dead letter (row ids {dead.row_id})" in caplog.text


async def test_the_feed_filters_by_user_and_opens_one_event(tmp_path) -> None:
    """The feed lists one user's events; an event page shows its body and upload response."""
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("e-alice", user="alice"))
        await stack.post(webhook("e-bob", user="bob", kind="RENEWAL"))
        await stack.drain()
        await log_in(client)
        feed = await client.get("/ui/events", params={"user": "alice"})
        assert "e-alice" in feed.text and "e-bob" not in feed.text
        row_id = re.search(r'href="/ui/events/(\d+)">e-alice', feed.text)
        assert row_id is not None
        event = await client.get(f"/ui/events/{row_id.group(1)}")
        assert event.status_code == 200
        assert "&#34;app_user_id&#34;: &#34;alice&#34;" in event.text  # the body, escaped
        assert '<td data-field="status">200</td>' in event.text
        api = (await client.get(f"/ui/api/events/{row_id.group(1)}")).json()
        assert api["attempts"][0]["outcome"] == "delivered"
        assert api["records"][0]["identity"] == "alice"


async def test_replay_shows_the_count_before_it_runs(tmp_path) -> None:
    """The replay page counts what would be sent; only the confirmation requeues it."""
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("e1"))
        await stack.post(webhook("e2"))
        await stack.drain()
        csrf = await log_in(client)
        page = await client.get("/ui/replay", params={"since": "2020-01-01T00:00"})
        assert "2 events delivered since 2020-01-01 00:00:00 UTC would be sent again" in page.text
        question = await client.post("/ui/replay", data={"since": "2020-01-01T00:00", "csrf": csrf})
        assert "Send 2 events" in question.text
        assert (await stack.engine.outbox.stats()).delivered == 2
        await client.post(
            "/ui/replay", data={"since": "2020-01-01T00:00", "csrf": csrf, "confirm": "yes"}
        )
        await stack.drain()
        assert stack.delivered_ids() == ["e1", "e2", "e1", "e2"]


async def test_replay_of_a_range_counts_and_requeues_only_what_was_delivered_in_it(
    tmp_path,
) -> None:
    """With an end, the replay page counts and requeues only the events delivered before it."""
    import datetime as dt

    def local(epoch: float) -> str:  # what a datetime-local input sends
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")

    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("e1"))
        await stack.drain()
        stack.clock.advance(3600)
        split = stack.clock()
        await stack.post(webhook("e2"))
        await stack.drain()
        csrf = await log_in(client)
        form = {"since": "2020-01-01T00:00", "until": local(split)}
        page = await client.get("/ui/replay", params=form)
        end = local(split).replace("T", " ")
        assert f"1 event delivered since 2020-01-01 00:00:00 UTC and before {end} UTC" in page.text
        question = await client.post("/ui/replay", data=form | {"csrf": csrf})
        assert "Send 1 event delivered from" in question.text
        await client.post("/ui/replay", data=form | {"csrf": csrf, "confirm": "yes"})
        await stack.drain()
        assert stack.delivered_ids() == ["e1", "e2", "e1"]


async def test_replay_refuses_an_end_before_its_start(tmp_path) -> None:
    """An end at or before the start is an error on the page, and nothing is counted."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        await log_in(client)
        form = {"since": "2021-01-01T00:00", "until": "2020-01-01T00:00"}
        page = await client.get("/ui/replay", params=form)
        assert "The end must be after the start." in page.text
        assert 'data-field="dry-run"' not in page.text


async def test_the_overview_shows_how_many_events_came_from_a_backfill(tmp_path) -> None:
    """A backfilled event counts in received and delivered, and again apart as backfilled."""
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("live-1"))
        stored = await stack.engine.outbox.enqueue(
            "backfill-1", "PRODUCTION", webhook("backfill-1"), now=stack.clock(), source="backfill"
        )
        assert stored
        stack.engine.dispatcher.wake_all()
        await stack.drain()
        await log_in(client)
        overview = (await client.get("/ui/api/overview", params={"w": "15m"})).json()
        assert (overview["received"], overview["backfill_received"]) == (2, 1)
        assert (overview["delivered"], overview["backfill_delivered"]) == (2, 1)
        live = await client.get("/ui/overview/live", params={"w": "15m"})
        assert '<span data-count="backfill_delivered">1</span> delivered' in live.text


async def test_the_overview_says_nothing_of_backfills_when_there_were_none(tmp_path) -> None:
    """Without backfilled events in the window, the overview shows no backfill line."""
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("live-1"))
        await stack.drain()
        await log_in(client)
        live = await client.get("/ui/overview/live", params={"w": "15m"})
        assert 'data-count="delivered">1<' in live.text
        assert 'data-field="backfill"' not in live.text


async def test_the_overview_counts_retried_uploads_and_each_accounts_latency(tmp_path) -> None:
    """An upload CleverTap answered 503 counts as retried; the account shows its latencies."""
    faults = FaultInjector(rules=[FaultRule("error", route="/1/upload", status=503, count=1)])
    async with dashboard(with_token(make_config(tmp_path)), faults=faults) as (stack, client):
        await stack.post(webhook("e1"))
        await stack.drain()
        await log_in(client)
        overview = (await client.get("/ui/api/overview", params={"w": "15m"})).json()
        assert (overview["delivered"], overview["uploads_retried"]) == (1, 1)
        [production] = [a for a in overview["accounts"] if a["environments"] == ["PRODUCTION"]]
        assert production["uploads"] == 2 and production["uploads_last_minute"] == 2
        assert production["latency_p99_ms"] is not None and production["state"] == "delivering"


async def test_a_refresh_after_the_session_ended_sends_the_page_to_the_login(tmp_path) -> None:
    """The overview's htmx refresh without a session answers HX-Redirect to /ui, no data."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        response = await client.get("/ui/overview/live", headers={"HX-Request": "true"})
        assert response.status_code == 200
        assert response.headers["hx-redirect"] == "/ui" and response.text == ""


async def test_every_action_needs_the_csrf_token(tmp_path) -> None:
    """Each state-changing route answers 403 to a logged-in POST without the CSRF token."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        await log_in(client)
        for path in (
            "/ui/dead/retry",
            "/ui/dead/discard",
            "/ui/quarantine/requeue",
            "/ui/quarantine/discard",
            "/ui/replay",
            "/ui/logout",
        ):
            response = await client.post(path, data={"id": "1", "confirm": "yes"})
            assert response.status_code == 403, path


async def test_an_action_without_a_session_is_401(tmp_path) -> None:
    """A POST to an action without a session is refused with 401 and the login form."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        response = await client.post("/ui/dead/retry", data={"all": "yes", "confirm": "yes"})
        assert response.status_code == 401 and 'action="/ui/login"' in response.text


async def test_discarding_a_dead_letter_deletes_it_after_the_confirmation(tmp_path) -> None:
    """Discard asks first, then deletes the selected dead letter for good."""
    config = with_token(make_config(tmp_path))
    async with dashboard(config, faults=dead_first_upload()) as (stack, client):
        await stack.post(webhook("dead-1"))
        await stack.drain()
        csrf = await log_in(client)
        [dead] = await stack.engine.dead_letters()
        form = {"id": str(dead.row_id), "csrf": csrf}
        question = await client.post("/ui/dead/discard", data=form)
        assert "Discard 1 dead letter?" in question.text
        assert len(await stack.engine.dead_letters()) == 1
        done = await client.post("/ui/dead/discard", data={**form, "confirm": "yes"})
        assert "done=discarded" in done.headers["location"]
        assert await stack.engine.dead_letters() == []


async def test_a_quarantined_body_that_now_parses_is_requeued_and_delivered(tmp_path) -> None:
    """Requeue moves a quarantined body that is a valid event into the queue."""
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        # Quarantined as the receiver would, with a reason this parser no longer has.
        await stack.engine.outbox.quarantine(webhook("late"), "an old reason", now=stack.clock())
        csrf = await log_in(client)
        page = await client.get("/ui/quarantine")
        [quarantine_id] = re.findall(r'name="id" value="(\d+)"', page.text)
        form = {"id": quarantine_id, "csrf": csrf}
        assert (
            "Requeue 1 quarantined body?"
            in (await client.post("/ui/quarantine/requeue", data=form)).text
        )
        done = await client.post("/ui/quarantine/requeue", data={**form, "confirm": "yes"})
        assert "done=requeued" in done.headers["location"]
        await stack.drain()
        assert stack.delivered_ids() == ["late"]


async def test_logging_out_clears_the_session_cookie(tmp_path) -> None:
    """Log out answers with the cookie cleared; the next page is the login form."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        csrf = await log_in(client)
        response = await client.post("/ui/logout", data={"csrf": csrf})
        assert response.status_code == 303
        assert 'rcct_session=""' in response.headers["set-cookie"]
        assert 'action="/ui/login"' in (await client.get("/ui")).text


async def test_login_never_redirects_off_the_dashboard(tmp_path) -> None:
    """A login's next address outside /ui is replaced by /ui."""
    async with dashboard(with_token(make_config(tmp_path))) as (_, client):
        for target in ("https://evil.example/", "//evil.example/ui", "/metrics"):
            response = await client.post("/ui/login", data={"token": TOKEN, "next": target})
            assert response.headers["location"] == "/ui", target
        kept = await client.post("/ui/login", data={"token": TOKEN, "next": "/ui/events?user=a"})
        assert kept.headers["location"] == "/ui/events?user=a"


async def test_a_feed_no_index_narrows_looks_at_a_bounded_range_per_page(
    tmp_path, monkeypatch
) -> None:
    """Filtered by account alone, a page looks at MAX_FEED_SCAN rows and links further down."""
    from integration.app.dashboard import queries

    monkeypatch.setattr(queries, "MAX_FEED_SCAN", 2)
    async with dashboard(with_token(make_config(tmp_path))) as (stack, client):
        await stack.post(webhook("s1", environment="SANDBOX"))
        for event_id in ("p2", "p3", "p4"):
            await stack.post(webhook(event_id))
        await log_in(client)
        sandbox = {"account": "SBX-486-4W5Z"}
        first = (await client.get("/ui/api/events", params=sandbox)).json()
        assert first["events"] == [] and first["before"] is not None
        page = await client.get("/ui/events", params=sandbox)
        assert (
            "Search older events" in page.text and "No more matches among the 2 rows" in page.text
        )
        second = await client.get("/ui/api/events", params={**sandbox, "before": first["before"]})
        assert [e["event_id"] for e in second.json()["events"]] == ["s1"]
        assert second.json()["before"] is None


async def test_the_account_filter_follows_routes_to_their_accounts(tmp_path) -> None:
    """With [[routes]] to two accounts, filtering by one account lists that route's events."""
    from integration.config import config_from_mapping
    from mockserver.clevertap import Account, CleverTapBackend

    ios, android = ("IOS-486-4W5Z", "ios-pass", "Bearer ios"), ("AND-486-4W5Z", "and-pass", "")
    config = config_from_mapping(
        {
            "clevertap": {"base_url": "http://clevertap.test", "timeout_s": 10.0},
            "outbox": {"url": f"sqlite:///{tmp_path / 'outbox.db'}", "lease_s": 3600.0},
            "dispatcher": {"linger_s": 0.01},
            "admin": {"token": TOKEN},
            "routes": [
                {"name": name, "path": name, "authorization": f"Bearer {name}",
                 "clevertap": {"account_id": account, "passcode": passcode}}
                for name, (account, passcode, _) in (("ios", ios), ("android", android))
            ],
        }
    )  # fmt: skip
    accounts = [Account(ios[0], (ios[1],)), Account(android[0], (android[1],))]
    backend = CleverTapBackend(accounts=accounts)
    async with dashboard(config, backend=backend) as (stack, client):
        for name, event_id in (("ios", "from-ios"), ("android", "from-android")):
            answer = await stack.receiver.post(
                f"/webhooks/revenuecat/{name}",
                content=webhook(event_id),
                headers={"Authorization": f"Bearer {name}"},
            )
            assert answer.status_code == 200
        await stack.drain()
        await log_in(client)
        listed = await client.get("/ui/api/events", params={"account": android[0]})
        assert [e["event_id"] for e in listed.json()["events"]] == ["from-android"]
        overview = (await client.get("/ui/api/overview")).json()
        assert {a["account_id"]: a["routes"] for a in overview["accounts"]} == {
            ios[0]: ["ios"],
            android[0]: ["android"],
        }
