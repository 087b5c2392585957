"""Several apps and CleverTap projects in one forwarder ([[routes]], issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import ACCOUNT, PASSCODE, Stack, running_stack, webhook

from integration.admin import outbox_for
from integration.config import Config, ConfigError, config_from_mapping, load_config
from integration.routes import Routes
from mockserver.clevertap import Account, CleverTapBackend

IOS, IOS_PASS, IOS_AUTH = "IOS-486-4W5Z", "ios-passcode", "Bearer ios-hook"
DROID, DROID_PASS, DROID_AUTH = "AND-486-4W5Z", "android-passcode", "Bearer android-hook"


def routes_config(outbox_url: str, **top: Any) -> dict[str, Any]:
    """Two routes by path (own Authorization), the android one also by app id."""
    return {
        "clevertap": {"base_url": "http://clevertap.test", "timeout_s": 10.0},
        "outbox": {"url": outbox_url, "lease_s": 3600.0},
        "dispatcher": {"linger_s": 0.01, "backoff_initial_s": 1.0, "backoff_max_s": 20.0},
        "routes": [
            {
                "name": "ios",
                "path": "ios",
                "authorization": IOS_AUTH,
                "clevertap": {"account_id": IOS, "passcode": IOS_PASS},
            },
            {
                "name": "android",
                "path": "android",
                "authorization": DROID_AUTH,
                "app_ids": ["app_android"],
                "clevertap": {"account_id": DROID, "passcode": DROID_PASS},
                "events": {"initial_purchase": "android_purchase"},
            },
        ],
        **top,
    }


def backend(stack_clock: Any = None, *, android_passcode: str = DROID_PASS) -> CleverTapBackend:
    return CleverTapBackend(
        accounts=[
            Account(ACCOUNT, (PASSCODE,)),
            Account(IOS, (IOS_PASS,)),
            Account(DROID, (android_passcode,)),
        ]
    )


async def post(stack: Stack, path: str, body: bytes, auth: str) -> int:
    answer = await stack.receiver.post(path, content=body, headers={"Authorization": auth})
    return answer.status_code


def names(stack: Stack, account: str) -> list[str]:
    return [e["evtName"] for e in stack.backend.events(account)]


async def test_two_routes_by_path_deliver_to_their_own_accounts(outbox_url: str) -> None:
    """Each route's path, with its own Authorization, delivers to its own CleverTap account,
    with its own event names and counts."""
    config = config_from_mapping(routes_config(outbox_url))
    async with running_stack(config, backend=backend()) as stack:
        ios = await post(stack, "/webhooks/revenuecat/ios", webhook("i1"), IOS_AUTH)
        droid = await post(stack, "/webhooks/revenuecat/android", webhook("a1"), DROID_AUTH)
        assert (ios, droid) == (200, 200)
        await stack.drain()
        assert names(stack, IOS) == ["rc_initial_purchase_event"]
        assert names(stack, DROID) == ["android_purchase"]
        metrics = stack.engine.metrics
        for route in ("ios", "android"):
            labels = {"environment": "PRODUCTION", "route": route}
            assert metrics.value("events_delivered_total", **labels) == 1
            assert metrics.value("webhooks_received_total", route=route) == 1


async def test_a_path_refuses_another_routes_authorization(outbox_url: str) -> None:
    """A route's path answers 401 to the Authorization value of another route."""
    config = config_from_mapping(routes_config(outbox_url))
    async with running_stack(config, backend=backend()) as stack:
        assert await post(stack, "/webhooks/revenuecat/ios", webhook("i1"), DROID_AUTH) == 401
        assert (await stack.engine.outbox.stats()).pending == 0


async def test_an_unclaimed_path_is_404_and_stores_nothing(outbox_url: str) -> None:
    """A webhook for a path no route claims gets 404; nothing is stored or quarantined."""
    config = config_from_mapping(routes_config(outbox_url))
    async with running_stack(config, backend=backend()) as stack:
        assert await post(stack, "/webhooks/revenuecat/web", b"not json", IOS_AUTH) == 404
        stats = await stack.engine.outbox.stats()
        assert (stats.pending, stats.quarantined) == (0, 0)
        assert stack.engine.metrics.value("webhooks_rejected_total", reason="no_route") == 1


async def test_the_shared_path_routes_by_app_id(outbox_url: str) -> None:
    """On /webhooks/revenuecat an event goes to the route its app_id matches; one no route
    takes, without a default account, is refused with 404 and not stored."""
    config = config_from_mapping(routes_config(outbox_url))
    assert not config.default_route
    async with running_stack(config, backend=backend()) as stack:
        matched = webhook("a1", app_id="app_android")
        assert await post(stack, "/webhooks/revenuecat", matched, "") == 200
        other = webhook("x1", app_id="app_unknown")
        assert await post(stack, "/webhooks/revenuecat", other, "") == 404
        await stack.drain()
        assert names(stack, DROID) == ["android_purchase"]
        assert (await stack.engine.outbox.stats()).delivered == 1


async def test_an_unmatched_event_goes_to_the_default_account(outbox_url: str) -> None:
    """With [clevertap] naming an account, the shared path's unmatched events go to it."""
    raw = routes_config(outbox_url)
    raw["clevertap"] |= {"account_id": ACCOUNT, "passcode": PASSCODE}
    async with running_stack(config_from_mapping(raw), backend=backend()) as stack:
        assert await post(stack, "/webhooks/revenuecat", webhook("d1", app_id="other"), "") == 200
        await stack.drain()
        assert names(stack, ACCOUNT) == ["rc_initial_purchase_event"]
        assert names(stack, IOS) == names(stack, DROID) == []


async def test_each_account_keeps_its_own_pause_and_slots(outbox_url: str) -> None:
    """An account whose passcode CleverTap refuses pauses alone: the other route's account
    keeps delivering, and each has its own slots."""
    config = config_from_mapping(routes_config(outbox_url))
    async with running_stack(config, backend=backend(android_passcode="rotated")) as stack:
        assert await post(stack, "/webhooks/revenuecat/ios", webhook("i1"), IOS_AUTH) == 200
        assert await post(stack, "/webhooks/revenuecat/android", webhook("a1"), DROID_AUTH) == 200
        for _ in range(200):
            outcomes = {(a.account_id, a.outcome) for a in await stack.engine.outbox.attempts()}
            if {(IOS, "delivered"), (DROID, "paused")} <= outcomes:
                break
            await stack.clock.sleep(1.0)
        states = {a.account_id: a for a in stack.engine.dispatcher.accounts()}
        assert names(stack, IOS) == ["rc_initial_purchase_event"]
        android = {a.outcome for a in await stack.engine.outbox.attempts() if a.account_id == DROID}
        assert android == {"paused"}  # only ever paused: never delivered, never dead
        assert (states[IOS].routes, states[DROID].routes) == (("ios",), ("android",))
        stats = await stack.engine.outbox.stats()
        assert (stats.delivered, stats.pending + stats.leased, stats.dead) == (1, 1, 0)


async def test_routes_sharing_an_account_share_its_slots(outbox_url: str) -> None:
    """A route with account = "<route>" delivers to that route's account, one slot pool."""
    raw = routes_config(outbox_url)
    raw["routes"][1] = {"name": "android", "path": "android", "account": "ios"}
    config = config_from_mapping(raw)
    async with running_stack(config, backend=backend()) as stack:
        assert await post(stack, "/webhooks/revenuecat/android", webhook("a1"), "") == 200
        await stack.drain()
        assert names(stack, IOS) == ["rc_initial_purchase_event"]
        [state] = [a for a in stack.engine.dispatcher.accounts() if a.account_id == IOS]
        assert state.routes == ("ios", "android")


async def test_the_route_is_kept_on_the_row_through_a_dead_letter_retry(outbox_url: str) -> None:
    """Rows are leased per route and environment, and a retried dead letter stays on its
    route."""
    config = config_from_mapping(routes_config(outbox_url), require_clevertap=False)
    outbox = outbox_for(config)
    await outbox.open()
    try:
        await outbox.enqueue("i1", "PRODUCTION", webhook("i1"), now=1.0, route="ios")
        await outbox.enqueue("d1", "PRODUCTION", webhook("d1"), now=1.0)
        lease = await outbox.lease("PRODUCTION", 10, now=2.0, lease_s=30, route="ios")
        assert lease is not None and [e.event_id for e in lease.events] == ["i1"]
        assert (lease.route, lease.events[0].route) == ("ios", "ios")
        await outbox.settle(lease, dead=[(lease.events[0].row_id, "test")], now=3.0)
        assert await outbox.retry_dead(None, now=4.0) == 1
        again = await outbox.lease("PRODUCTION", 10, now=5.0, lease_s=30, route="ios")
        assert again is not None and [e.event_id for e in again.events] == ["i1"]
        default = await outbox.lease("PRODUCTION", 10, now=5.0, lease_s=30)
        assert default is not None and [e.route for e in default.events] == ["default"]
    finally:
        await outbox.close()


def test_a_single_account_configuration_is_the_default_route() -> None:
    """Without [[routes]] the configuration is one route, default, on the shared path."""
    config = config_from_mapping({"clevertap": {"account_id": ACCOUNT, "passcode": PASSCODE}})
    routes = Routes(config)
    assert routes.names == ("default",) and not routes.several
    assert routes.for_event("any_app", "PRODUCTION") is routes.get("default")
    assert routes.for_path("/webhooks/revenuecat/default") is None


def test_a_route_inherits_the_top_level_sections() -> None:
    """A route's [events] keys override the top level's; the rest are inherited."""
    raw = routes_config("sqlite:///x.db")
    raw["events"] = {"renewal": "top_renewal", "initial_purchase": "top_purchase"}
    raw["revenue"] = {"mode": "after_store_commission"}
    android = config_from_mapping(raw).routes[1].config
    assert (android.events.renewal, android.events.initial_purchase) == (
        "top_renewal",
        "android_purchase",
    )
    assert android.revenue.mode == "after_store_commission"
    assert android.clevertap.base_url == "http://clevertap.test"


def problems_of(raw: dict[str, Any], **options: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(raw, **options)
    return list(caught.value.problems)


def test_two_routes_claiming_one_path_or_app_id_fail_naming_the_key() -> None:
    """A path or an app id claimed twice is a start-up error naming the route's key."""
    raw = routes_config("sqlite:///x.db")
    raw["routes"][0] |= {"path": "android", "app_ids": ["app_android"]}
    assert problems_of(raw) == [
        "routes.android.path: 'android' is claimed by route 'ios' too",
        "routes.android.app_ids: 'app_android' (PRODUCTION) is claimed by route 'ios' too",
    ]


def test_an_unknown_account_fails_naming_the_key() -> None:
    """account = "<name>" must name a route with its own account, or default."""
    raw = routes_config("sqlite:///x.db")
    raw["routes"][1] = {"name": "android", "path": "android", "account": "web"}
    assert problems_of(raw) == ["routes.android.account: unknown account 'web'; known: ios"]


def test_a_route_without_credentials_fails_naming_its_variable() -> None:
    """A route's passcode is required, in the file or in its own variable."""
    raw = routes_config("sqlite:///x.db")
    del raw["routes"][0]["clevertap"]["passcode"]
    assert problems_of(raw) == [
        "routes.ios.clevertap.passcode: is required (in the file or as "
        "RC_CLEVERTAP_ROUTES_IOS_CLEVERTAP_PASSCODE)"
    ]


def test_a_route_claiming_nothing_or_badly_named_fails() -> None:
    """A route needs a valid name and a path or app ids."""
    raw = routes_config("sqlite:///x.db")
    raw["routes"] = [{"name": "Web App"}, {"name": "web"}, {"name": "default", "path": "d"}]
    problems = problems_of(raw)
    assert problems[0].startswith("routes[1].name: must be lowercase letters")
    assert "routes.web: claims no webhooks: give it a path, app_ids, or both" in problems
    assert problems[-1].startswith("routes.default.name: 'default' is the top-level")


def test_route_secrets_come_from_the_environment(tmp_path: Any) -> None:
    """RC_CLEVERTAP_ROUTES_<NAME>_CLEVERTAP_PASSCODE and _AUTHORIZATION set a route's secrets;
    a variable naming no route is an error."""
    path = tmp_path / "rc.toml"
    path.write_text(
        '[outbox]\nurl = "sqlite:///x.db"\n[[routes]]\nname = "ios"\npath = "ios"\n'
        '[routes.clevertap]\naccount_id = "IOS-1"\n',
        encoding="utf-8",
    )
    environ = {
        "RC_CLEVERTAP_ROUTES_IOS_CLEVERTAP_PASSCODE": "from-env",
        "RC_CLEVERTAP_ROUTES_IOS_AUTHORIZATION": "Bearer env-hook",
    }
    config: Config = load_config(path, environ=environ)
    [ios] = config.routes
    assert ios.config.clevertap.passcode.reveal() == "from-env"
    assert ios.config.webhook.authorization is not None
    assert ios.config.webhook.authorization.reveal() == "Bearer env-hook"
    assert "from-env" not in repr(config)
    with pytest.raises(ConfigError, match="RC_CLEVERTAP_ROUTES_WEB_AUTHORIZATION: names no"):
        load_config(path, environ={**environ, "RC_CLEVERTAP_ROUTES_WEB_AUTHORIZATION": "x"})


def test_the_example_configurations_routes_load_when_uncommented() -> None:
    """config.example.toml's commented [[routes]] block is a valid configuration."""
    from integration.config import example_config

    text = example_config()
    start = text.index("# [[routes]]\n")
    block = "\n".join(
        line.removeprefix("#").removeprefix(" ") for line in text[start:].splitlines()
    )
    config = load_config_text(text[:start] + block)
    ios, android = config.routes
    assert (ios.path, ios.config.clevertap.account_id) == ("ios", "IOS-486-4W5Z")
    assert ios.config.events.initial_purchase == "ios_initial_purchase"
    assert android.config.clevertap == config.clevertap
    assert android.config.revenue.mode == "after_store_commission"


def load_config_text(text: str) -> Config:
    import tomllib

    return config_from_mapping(tomllib.loads(text))


def test_map_names_the_route_and_applies_its_transform(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`map` prints the route an event takes and its upload after the route's transform;
    --route maps it as if posted to that route's path."""
    import io
    import json
    import sys
    from pathlib import Path

    from integration.app.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "examples"))
    path = tmp_path / "rc.toml"
    path.write_text(
        '[clevertap]\naccount_id = "DEF-1"\n'
        '[[routes]]\nname = "ios"\npath = "ios"\napp_ids = ["app_ios"]\n'
        '[routes.clevertap]\naccount_id = "IOS-1"\n'
        '[routes.transform]\ncallable = "transforms:transform"\n',
        encoding="utf-8",
    )

    def run(*argv: str, body: bytes) -> dict[str, Any]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
        assert main(["map", "--config", str(path), *argv]) == 0
        return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]

    ios = run(body=webhook("e1", app_id="app_ios"))
    assert (ios["route"], ios["account_id"]) == ("ios", "IOS-1")
    assert ios["d"][0]["evtData"]["price_band"] == "low"
    other = run(body=webhook("e2", app_id="app_web"))
    assert (other["route"], other["account_id"]) == ("default", "DEF-1")
    assert "price_band" not in other["d"][0]["evtData"]
    forced = run("--route", "ios", body=webhook("e3", app_id="app_web", app_user_id="qa-1"))
    assert forced == {"d": [], "skipped": "transform returned no records", "route": "ios"}


def test_status_lists_the_routes_without_secrets(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --json` lists each route: its path or app ids, accounts and transform."""
    import asyncio
    import json

    from integration.app.cli import main

    path = tmp_path / "rc.toml"
    path.write_text(
        f'[outbox]\nurl = "sqlite:///{tmp_path / "o.db"}"\n'
        '[[routes]]\nname = "ios"\npath = "ios"\nauthorization = "Bearer hook-secret"\n'
        '[routes.clevertap]\naccount_id = "IOS-1"\npasscode = "pass-secret"\n',
        encoding="utf-8",
    )
    outbox = outbox_for(load_config(path, environ={}))
    asyncio.run(outbox.open())
    asyncio.run(outbox.close())
    status = main(["status", "--config", str(path), "--json"])
    out = capsys.readouterr().out
    assert status == 0
    assert json.loads(out)["routes"] == [
        {
            "name": "ios",
            "path": "/webhooks/revenuecat/ios",
            "app_ids": [],
            "account_id": "IOS-1",
            "sandbox_account_id": None,
            "transform": None,
        }
    ]
    assert "secret" not in out


def test_the_readme_shows_the_tested_transform_and_a_valid_routes_example() -> None:
    """The README's routes section shows examples/transforms.py's function as it is, and its
    [[routes]] example is a valid configuration."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Several apps, several CleverTap projects") :]
    section = section[: section.index("\n## ")]
    example = (root / "examples" / "transforms.py").read_text(encoding="utf-8")
    assert example[example.index("def transform(") :].strip() in section
    [routes_toml, transform_toml] = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    raw = tomllib.loads(routes_toml) | tomllib.loads(transform_toml)
    raw["clevertap"]["passcode"] = "p"
    raw["routes"][0]["clevertap"]["passcode"] = "p"
    config = config_from_mapping(raw)
    ios, kids = config.routes
    assert kids.config.clevertap.account_id == "IOS-486-4W5Z"
    assert ios.config.events.initial_purchase == "ios_first_purchase"
    assert config.transform.callable == "transforms:transform"


async def test_a_requeued_quarantined_body_takes_its_app_ids_route(outbox_url: str) -> None:
    """`quarantine requeue` files the body under the route its app_id takes on the shared
    path; one no route takes is refused and left in the quarantine."""
    from integration.admin import Unrouted, requeue_quarantined

    config = config_from_mapping(routes_config(outbox_url), require_clevertap=False)
    outbox = outbox_for(config)
    await outbox.open()
    try:
        await outbox.quarantine(webhook("a1", app_id="app_android"), "old parser", now=1.0)
        await outbox.quarantine(webhook("x1", app_id="app_web"), "old parser", now=1.0)
        first, second = sorted(b.quarantine_id for b in await outbox.quarantined())
        assert await requeue_quarantined(config, [first], now=2.0) == 1
        with pytest.raises(Unrouted, match="no route takes app_id 'app_web' in PRODUCTION"):
            await requeue_quarantined(config, [second], now=2.0)
        lease = await outbox.lease("PRODUCTION", 10, now=3.0, lease_s=30, route="android")
        assert lease is not None and [e.event_id for e in lease.events] == ["a1"]
        assert [b.quarantine_id for b in await outbox.quarantined()] == [second]
    finally:
        await outbox.close()
