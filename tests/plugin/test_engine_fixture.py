"""``rc_clevertap_engine``: the forwarder between the two mocks, in generated test files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.plugin.conftest import INI, RunSuite

POSTGRES_URL = os.environ.get("RC_CLEVERTAP_TEST_POSTGRES_URL", "")


def test_settle_carries_a_simulated_trial_to_clevertap(run_suite: RunSuite) -> None:
    """A trial started on the RevenueCat mock is in CleverTap after ``settle``, on the
    profile of the CleverTap ID the backend set through the client."""
    result = run_suite(
        """
        def test_trial(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            revenuecat_mock.client.set_clevertap_id("user-1", "ct-1")
            revenuecat_mock.simulate("start_trial", "user-1", "pro_monthly")
            stats = rc_clevertap_engine.settle()
            assert (stats.delivered, stats.pending, stats.dead) == (1, 0, 0)
            event = clevertap_mock.assert_event("ct-1", "rc_trial_started_event",
                                                product_id="pro_monthly", period_type="TRIAL")
            assert event["objectId"] == "ct-1"
            assert [d.state for d in revenuecat_mock.deliveries()] == ["delivered"]
        """
    )
    result.assert_outcomes(passed=1)


def test_settle_waits_out_a_clevertap_outage_in_virtual_time(run_suite: RunSuite) -> None:
    """Under the ``outage`` preset (503 for 10 s) the engine retries with backoff and the
    event lands once the outage is over, in no real time."""
    result = run_suite(
        """
        import time
        import pytest

        @pytest.mark.clevertap_faults("outage")
        def test_outage(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            started = time.monotonic()
            rc_clevertap_engine.settle()
            assert time.monotonic() - started < 5
            clevertap_mock.assert_event("user-1", "rc_initial_purchase_event")
            assert clevertap_mock.faults.fired["error"] >= 1  # 503s, answered before the journal
        """
    )
    result.assert_outcomes(passed=1)


def test_every_event_arrives_once_through_flaky_faults(run_suite: RunSuite) -> None:
    """With the ``flaky`` preset (503s, 429 bursts, drops, 555 rejections) every event of
    thirty purchases, uploaded one by one, reaches CleverTap, none twice."""
    result = run_suite(
        """
        import pytest

        @pytest.mark.clevertap_faults("flaky", seed=4)
        def test_flaky(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            sent = []
            for n in range(30):  # one upload each: thirty draws of the fault rules
                sent.append(revenuecat_mock.simulate("buy", f"user-{n}", "pro_monthly")[0]["id"])
                rc_clevertap_engine.settle()
            arrived = [e["evtData"]["rc_event_id"] for e in clevertap_mock.events()]
            assert sorted(arrived) == sorted(sent)
            assert sum(clevertap_mock.faults.fired.values()) > 0
        """
    )
    result.assert_outcomes(passed=1)


def test_asettle_settles_the_flow_from_an_async_test(run_suite: RunSuite) -> None:
    """An async test (pytest-asyncio) awaits ``asettle`` and the async client's writes."""
    result = run_suite(
        """
        async def test_async(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            await revenuecat_mock.async_client.set_clevertap_id("user-2", "ct-2")
            revenuecat_mock.simulate("buy", "user-2", "pro_monthly")
            await rc_clevertap_engine.asettle()
            clevertap_mock.assert_event("ct-2", "rc_initial_purchase_event")
        """
    )
    result.assert_outcomes(passed=1)


def test_a_flow_that_cannot_drain_raises_not_settled_naming_what_is_left(
    run_suite: RunSuite,
) -> None:
    """With a passcode CleverTap refuses (``rc_clevertap_config`` overridden), ``settle``
    raises NotSettled saying what is pending and which account is paused."""
    result = run_suite(
        """
        import dataclasses
        import pytest
        from integration.app.pytest_plugin import NotSettled
        from integration.config import Secret

        @pytest.fixture
        def rc_clevertap_config(rc_clevertap_config):
            clevertap = dataclasses.replace(rc_clevertap_config.clevertap,
                                            passcode=Secret("wrong-passcode"))
            return dataclasses.replace(rc_clevertap_config, clevertap=clevertap)

        def test_refused(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            with pytest.raises(NotSettled, match="1 event.s. pending.*paused: TEST-RCC-MOCK"):
                rc_clevertap_engine.settle()
            clevertap_mock.assert_no_event()
        """
    )
    result.assert_outcomes(passed=1)


def test_a_failed_settle_points_at_the_test_line_not_at_asyncio(run_suite: RunSuite) -> None:
    """An unguarded ``settle`` that cannot drain fails the test at its own line, with the
    reason and without the event loop's frames."""
    result = run_suite(
        """
        import dataclasses
        import pytest
        from integration.config import Secret

        @pytest.fixture
        def rc_clevertap_config(rc_clevertap_config):
            clevertap = dataclasses.replace(rc_clevertap_config.clevertap,
                                            passcode=Secret("wrong-passcode"))
            return dataclasses.replace(rc_clevertap_config, clevertap=clevertap)

        def test_refused(revenuecat_mock, rc_clevertap_engine):
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            rc_clevertap_engine.settle(budget_s=600)
        """,
        "-p",
        "no:logging",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       rc_clevertap_engine.settle(budget_s=600)",
            "E   *NotSettled: not settled within 600 s*",
        ]
    )
    assert "base_events.py" not in result.stdout.str()


def test_an_overridden_config_changes_what_the_engine_sends(run_suite: RunSuite) -> None:
    """Overriding ``rc_clevertap_config`` in a conftest reaches the engine: ``charged_event``
    adds CleverTap's Charged event beside the purchase."""
    result = run_suite(
        """
        import dataclasses
        import pytest
        from integration.config import ExtrasConfig

        @pytest.fixture
        def rc_clevertap_config(rc_clevertap_config):
            return dataclasses.replace(rc_clevertap_config,
                                       extras=ExtrasConfig(charged_event=True))

        def test_charged(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            rc_clevertap_engine.settle()
            assert set(clevertap_mock.event_names("user-1")) == {
                "rc_initial_purchase_event", "Charged"}
        """
    )
    result.assert_outcomes(passed=1)


def test_the_session_engine_keeps_one_outbox_for_the_run(run_suite: RunSuite) -> None:
    """``rc_clevertap_engine_session`` is one engine on one outbox for every test."""
    result = run_suite(
        """
        def test_first(revenuecat_mock_session, rc_clevertap_engine_session):
            revenuecat_mock_session.simulate("buy", "user-1", "pro_monthly")
            assert rc_clevertap_engine_session.settle().delivered == 1

        def test_second(revenuecat_mock_session, rc_clevertap_engine_session):
            revenuecat_mock_session.simulate("renew", "user-1")
            assert rc_clevertap_engine_session.settle().delivered == 2
        """
    )
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("option", "environment", "ini", "chosen"),
    [
        ("postgresql://cli/db", "postgresql://env/db", "postgresql://ini/db", "cli"),
        (None, "postgresql://env/db", "postgresql://ini/db", "env"),
        (None, None, "postgresql://ini/db", "ini"),
        (None, None, None, None),
    ],
)
def test_the_postgresql_url_comes_from_the_option_then_the_environment_then_the_ini(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    environment: str | None,
    ini: str | None,
    chosen: str | None,
) -> None:
    """``--rc-clevertap-postgres-url`` wins over ``RC_CLEVERTAP_POSTGRES_URL``, which wins
    over the ``rc_clevertap_postgres_url`` ini option; with none, the outbox is SQLite."""
    pytester.makeini(INI + (f"rc_clevertap_postgres_url = {ini}\n" if ini else ""))
    if environment:
        monkeypatch.setenv("RC_CLEVERTAP_POSTGRES_URL", environment)
    else:
        monkeypatch.delenv("RC_CLEVERTAP_POSTGRES_URL", raising=False)
    expected = None if chosen is None else f"postgresql://{chosen}/db"
    pytester.makepyfile(
        f"""
        def test_url(rc_clevertap_postgres_url):
            assert rc_clevertap_postgres_url == {expected!r}
        """
    )
    args = [f"--rc-clevertap-postgres-url={option}"] if option else []
    pytester.runpytest_inprocess(*args).assert_outcomes(passed=1)


@pytest.mark.skipif(not POSTGRES_URL, reason="RC_CLEVERTAP_TEST_POSTGRES_URL is not set")
def test_the_engine_runs_on_postgresql_when_given_a_url(
    run_suite: RunSuite, tmp_path: Path
) -> None:
    """``--rc-clevertap-postgres-url`` puts the outbox in a throwaway schema of that
    database, dropped at teardown."""
    import psycopg

    record = tmp_path / "outbox-url.txt"
    result = run_suite(
        f"""
        from pathlib import Path

        def test_postgres(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            url = rc_clevertap_engine.config.outbox.url
            Path({str(record)!r}).write_text(url)
            assert url.startswith("postgresql://")
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            assert rc_clevertap_engine.settle().delivered == 1
            clevertap_mock.assert_event("user-1", "rc_initial_purchase_event")
        """,
        f"--rc-clevertap-postgres-url={POSTGRES_URL}",
    )
    result.assert_outcomes(passed=1)
    schema = record.read_text().rpartition("schema=")[2]
    with psycopg.connect(POSTGRES_URL) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    assert found == (0,)
