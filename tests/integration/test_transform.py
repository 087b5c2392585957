"""The transform hook ([transform] callable, issue 16) through the engine and alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import transform_hooks
from engine_helpers import ACCOUNT, make_config, running_stack, webhook

from integration.config import ConfigError, TransformConfig
from integration.routes import Routes
from integration.transform import Transform, checked_records

EXAMPLES = Path(__file__).parents[2] / "examples"


def with_transform(outbox_url: str, reference: str, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    config = make_config(outbox_url)
    return dataclasses.replace(
        config, transform=TransformConfig(callable=reference, timeout_s=timeout_s)
    )


async def deliver(config, users: list[str]):  # type: ignore[no-untyped-def]
    """Post one purchase per user, deliver, and return the stack's outcome."""
    async with running_stack(config) as stack:
        for user in users:
            assert (await stack.post(webhook(f"e-{user}", user=user))).status_code == 200
        await stack.drain()
        dead = {d.event_id: d.reason for d in await stack.engine.outbox.dead_letters()}
        delivered = stack.backend.events(ACCOUNT)
        stats = await stack.engine.outbox.stats()
        return delivered, dead, stats, stack.engine.metrics


async def test_the_readme_transform_adds_a_property_and_drops_test_users(
    outbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worked example adds price_band to purchases and skips qa- users (code transform)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    config = with_transform(outbox_url, "transforms:transform")
    delivered, dead, stats, metrics = await deliver(config, ["alice", "qa-robot"])
    [event] = delivered
    assert event["evtData"]["price_band"] == "low"
    assert event["evtData"]["rc_route"] == "default"
    assert dead == {}
    assert stats.skipped_by_reason == {"transform returned no records": 1}
    assert metrics.value("events_skipped_total", reason="transform") == 1


async def test_a_raising_transform_dead_letters_only_its_event(outbox_url: str) -> None:
    """An exception dead-letters that event with its type (not its message); the batch's
    other events are delivered."""
    config = with_transform(outbox_url, "transform_hooks:raise_for_bob")
    delivered, dead, _, _ = await deliver(config, ["alice", "bob", "carol"])
    assert sorted(e["identity"] for e in delivered) == ["alice", "carol"]
    assert dead == {"e-bob": "transform raised ValueError"}


@pytest.mark.parametrize("hook", ["hang_for_bob", "async_hang_for_bob"])
async def test_a_hanging_transform_times_out_without_stalling_its_batch(
    outbox_url: str, hook: str
) -> None:
    """A transform that never returns dead-letters its event at [transform] timeout_s (a
    real 50 ms); the rest of the batch is delivered."""
    config = with_transform(outbox_url, f"transform_hooks:{hook}", timeout_s=0.05)
    transform_hooks.RELEASE.clear()
    try:
        delivered, dead, _, _ = await deliver(config, ["alice", "bob"])
    finally:
        transform_hooks.RELEASE.set()  # frees the sync variant's worker thread
    assert [e["identity"] for e in delivered] == ["alice"]
    assert dead == {"e-bob": "transform timed out"}


async def test_a_result_that_is_not_a_list_of_records_is_dead_lettered(outbox_url: str) -> None:
    """A transform returning something else dead-letters its event with a clear reason."""
    config = with_transform(outbox_url, "transform_hooks:not_a_list")
    delivered, dead, _, _ = await deliver(config, ["alice"])
    assert delivered == []
    assert dead == {"e-alice": "transform returned dict: not a list of CleverTap records"}


async def test_a_hung_first_call_holds_only_its_own_event() -> None:
    """A batch is one job for the worker threads (issue 21), yet a plain function that never
    returns for the batch's first event leaves the others to another worker: only that
    event times out (a real 50 ms)."""
    records = [{"type": "event", "identity": "u", "evtName": "x", "evtData": {}}]
    transform_hooks.RELEASE.clear()
    try:
        outcomes = await Transform(transform_hooks.hang_for_bob, timeout_s=0.05).apply(
            [({"app_user_id": "bob"}, records), ({"app_user_id": "alice"}, records)],
            route="default",
        )
    finally:
        transform_hooks.RELEASE.set()  # frees the worker thread
    assert [o.error for o in outcomes] == ["transform timed out", None]
    assert outcomes[1].records == records


def test_records_are_checked_minimally() -> None:
    """Records must be CleverTap event or profile dicts addressed by identity or objectId."""
    good = {"type": "event", "identity": "u", "evtName": "x", "evtData": {}}
    assert checked_records([good]).records == [good]
    reason = checked_records([{"type": "event", "evtName": "x", "evtData": {}}]).error
    assert reason == (
        "transform returned a list whose item 0 has no string identity or objectId: "
        "not a list of CleverTap records"
    )
    assert checked_records([good, "x"]).error is not None
    assert checked_records([{"type": "page"}]).error is not None


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module_xyz:f", "transform.callable: cannot import 'no_such_module_xyz'"),
        ("transform_hooks:missing", "transform.callable: module 'transform_hooks' has no"),
        ("transform_hooks:not_callable", "transform.callable: 'transform_hooks:not_callable' is"),
    ],
)
def test_a_transform_that_cannot_be_used_fails_at_start_naming_the_key(
    tmp_path: Path, reference: str, message: str
) -> None:
    """An unimportable, missing or uncallable transform is one start-up error naming its key."""
    config = with_transform(f"sqlite:///{tmp_path / 'x.db'}", reference)
    with pytest.raises(ConfigError, match=message):
        Routes(config)


def test_a_malformed_reference_is_a_configuration_error() -> None:
    """[transform] callable must look like package.module:function."""
    with pytest.raises(ConfigError, match=r"transform\.callable: must look like"):
        TransformConfig(callable="transforms.transform")


def test_config_check_imports_the_transform(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config check` fails with exit 2 and one line when the transform cannot be imported,
    as serve does at start-up."""
    from integration.app.cli import main

    path = tmp_path / "rc.toml"
    path.write_text(
        '[clevertap]\naccount_id = "A"\npasscode = "p"\n'
        '[transform]\ncallable = "no_such_module_xyz:f"\n',
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as exited:
        main(["config", "check", "--config", str(path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("rc-clevertap: error: invalid configuration: transform.callable:")
    assert len(err.strip().splitlines()) == 1
