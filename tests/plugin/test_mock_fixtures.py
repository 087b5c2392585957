"""The plugin's mock fixtures, each used by a generated test file in a fresh pytest run."""

from __future__ import annotations

from importlib.metadata import entry_points

from tests.plugin.conftest import RunSuite


def test_installing_the_package_registers_the_plugin_with_pytest() -> None:
    """The distribution declares the plugin under pytest's ``pytest11`` entry point group."""
    found = {e.name: e.value for e in entry_points(group="pytest11")}
    assert found.get("rc_clevertap") == "integration.app.pytest_plugin"


def test_revenuecat_mock_serves_its_client_and_simulates_the_store(run_suite: RunSuite) -> None:
    """The RevenueCat client the fixture gives reaches the mock; store operations emit events
    on the mock's frozen clock, which moves only when the test advances it."""
    result = run_suite(
        """
        def test_trial_then_conversion(revenuecat_mock):
            revenuecat_mock.client.set_clevertap_id("user-1", "ct-1")
            assert revenuecat_mock.attributes("user-1")["$clevertapId"] == "ct-1"
            start = revenuecat_mock.now_ms()
            revenuecat_mock.simulate("start_trial", "user-1", "pro_monthly")
            assert revenuecat_mock.now_ms() == start
            revenuecat_mock.advance(3 * 86400)
            revenuecat_mock.simulate("convert_trial", "user-1")
            events = revenuecat_mock.events("user-1")
            assert [e["type"] for e in events] == ["INITIAL_PURCHASE", "RENEWAL"]
            gap_ms = events[1]["event_timestamp_ms"] - events[0]["event_timestamp_ms"]
            assert gap_ms >= 3 * 86400_000

        async def test_async_client(revenuecat_mock):
            await revenuecat_mock.async_client.set_attributes("user-2", {"$email": "a@example.com"})
            assert revenuecat_mock.attributes("user-2") == {"$email": "a@example.com"}
        """
    )
    result.assert_outcomes(passed=2)


def test_revenuecat_mock_retries_a_failed_webhook_on_its_schedule(run_suite: RunSuite) -> None:
    """A webhook a receiver refuses is sent again once the clock reaches RevenueCat's first
    retry (5 minutes), and not before."""
    result = run_suite(
        """
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        answers = [500, 200]

        async def hook(request):
            return Response(status_code=answers.pop(0))

        receiver = Starlette(routes=[Route("/hooks", hook, methods=["POST"])])

        def test_retry(revenuecat_mock):
            revenuecat_mock.add_webhook_target("http://my-app.test/hooks", app=receiver)
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            assert revenuecat_mock.flush_webhooks() == 1
            assert revenuecat_mock.deliveries(state="pending")
            revenuecat_mock.advance(299)
            assert revenuecat_mock.flush_webhooks() == 0
            revenuecat_mock.advance(1)
            assert revenuecat_mock.flush_webhooks() == 1
            assert [d.state for d in revenuecat_mock.deliveries()] == ["delivered"]
        """
    )
    result.assert_outcomes(passed=1)


def test_flushing_with_retries_plays_the_whole_schedule(run_suite: RunSuite) -> None:
    """``flush_webhooks(retries=True)`` jumps the clock to each retry until the receiver
    answers 200: three attempts, 5 + 10 minutes later."""
    result = run_suite(
        """
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        answers = [503, 503, 200]

        async def hook(request):
            return Response(status_code=answers.pop(0))

        receiver = Starlette(routes=[Route("/hooks", hook, methods=["POST"])])

        def test_retries(revenuecat_mock):
            revenuecat_mock.add_webhook_target("http://my-app.test/hooks", app=receiver)
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            start = revenuecat_mock.now_ms()
            assert revenuecat_mock.flush_webhooks(retries=True) == 3
            assert revenuecat_mock.now_ms() - start == 15 * 60_000
            assert [d.state for d in revenuecat_mock.deliveries()] == ["delivered"]
        """
    )
    result.assert_outcomes(passed=1)


CLEVERTAP_UPLOAD = """
import httpx

def upload(clevertap_mock, *records):
    with httpx.Client(transport=clevertap_mock.transport(),
                      base_url=clevertap_mock.base_url) as http:
        return http.post("/1/upload", json={"d": list(records)}, headers=clevertap_mock.headers)

def signed_up(user, **data):
    return {"type": "event", "identity": user, "evtName": "Signed Up", "evtData": data}
"""


def test_clevertap_mock_helpers_read_what_was_uploaded(run_suite: RunSuite) -> None:
    """Events of a user and of a name, their properties, profiles and the request journal
    show what the upload stored; the assertion helpers pass on it."""
    result = run_suite(
        CLEVERTAP_UPLOAD
        + """
def test_helpers(clevertap_mock):
    profile = {"type": "profile", "identity": "u1", "profileData": {"plan": "pro"}}
    answer = upload(clevertap_mock, signed_up("u1", plan="pro"), profile,
                    signed_up("u2", plan="free"))
    assert answer.json()["status"] == "success"
    assert clevertap_mock.event_names("u1") == ["Signed Up"]
    assert len(clevertap_mock.events(name="Signed Up")) == 2
    assert clevertap_mock.properties("u2", "Signed Up") == [{"plan": "free"}]
    clevertap_mock.assert_event("u1", "Signed Up", plan="pro")
    clevertap_mock.assert_profile("u1", plan="pro")
    clevertap_mock.assert_no_event("u3")
    assert [(e["path"], e["status"]) for e in clevertap_mock.journal()] == [("/1/upload", 200)]
"""
    )
    result.assert_outcomes(passed=1)


def test_a_failing_assert_event_prints_a_diff_of_what_clevertap_holds(
    run_suite: RunSuite,
) -> None:
    """assert_event's failure lists the user's events and diffs the closest one against what
    was expected, pointing at the test's line rather than the helper's."""
    result = run_suite(
        CLEVERTAP_UPLOAD
        + """
def test_wrong_plan(clevertap_mock):
    upload(clevertap_mock, signed_up("u1", plan="pro", source="ad"))
    clevertap_mock.assert_event("u1", "Signed Up", plan="free")
"""
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: CleverTap holds no event 'Signed Up' with plan='free' for user 'u1'",
            "*events of 'u1' (1):",
            "*Signed Up: plan='pro', source='ad'",
            "*--- expected",
            "*+++ closest event",
            "* evtName: 'Signed Up'",
            "*-plan: 'free'",
            "*+plan: 'pro'",
        ]
    )
    assert "raise AssertionError(" not in result.stdout.str()  # the helper's frame is hidden


def test_the_faults_marker_presets_the_faults_the_test_meets(run_suite: RunSuite) -> None:
    """``@pytest.mark.clevertap_faults("outage", seed=1)`` is in force when the test starts:
    its uploads answer 503, and the fault RNG has the marker's seed."""
    result = run_suite(
        CLEVERTAP_UPLOAD
        + """
import pytest

@pytest.mark.clevertap_faults("outage", seed=1)
def test_outage(clevertap_mock):
    assert clevertap_mock.faults.seed == 1
    assert upload(clevertap_mock, signed_up("u1")).status_code == 503
    clevertap_mock.assert_no_event()

def test_no_marker_no_faults(clevertap_mock):
    assert upload(clevertap_mock, signed_up("u1")).status_code == 200
"""
    )
    result.assert_outcomes(passed=2)


def test_an_unknown_preset_in_the_faults_marker_fails_the_test_in_one_line(
    run_suite: RunSuite,
) -> None:
    """A marker naming no preset errors the test with the known presets, no traceback."""
    result = run_suite(
        """
        import pytest

        @pytest.mark.clevertap_faults("flakey")
        def test_typo(clevertap_mock):
            pass
        """
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["clevertap_faults: unknown fault preset 'flakey'; known: *"])
    assert (
        "Traceback" not in result.stdout.str() and "def clevertap_mock" not in result.stdout.str()
    )


def test_the_faults_marker_refuses_arguments_it_does_not_take(run_suite: RunSuite) -> None:
    """A keyword other than seed= and route=, or a fault that is neither a preset name nor a
    FaultRule, errors the test saying so."""
    result = run_suite(
        """
        import pytest

        @pytest.mark.clevertap_faults("flaky", sed=1)
        def test_keyword(clevertap_mock):
            pass

        @pytest.mark.clevertap_faults(503)
        def test_number(clevertap_mock):
            pass
        """
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "clevertap_faults takes seed= and route=, not sed",
            "clevertap_faults: a fault is a preset name or a FaultRule, not 503",
        ],
        consecutive=False,
    )


def test_inject_adds_faults_during_a_test(run_suite: RunSuite) -> None:
    """``clevertap_mock.inject`` adds a rule mid-test; ``clear_faults`` ends it."""
    result = run_suite(
        CLEVERTAP_UPLOAD
        + """
from mockserver.faults import FaultRule

def test_inject(clevertap_mock):
    clevertap_mock.inject(FaultRule("error", route="/1/upload", status=500, count=1))
    assert upload(clevertap_mock, signed_up("u1")).status_code == 500
    assert upload(clevertap_mock, signed_up("u1")).status_code == 200
    clevertap_mock.inject("outage")
    clevertap_mock.clear_faults()
    assert upload(clevertap_mock, signed_up("u1")).status_code == 200
"""
    )
    result.assert_outcomes(passed=1)


def test_session_mocks_keep_their_state_across_tests_until_reset(run_suite: RunSuite) -> None:
    """The ``*_session`` variants are one object for the run; ``reset`` empties them."""
    result = run_suite(
        CLEVERTAP_UPLOAD
        + """
def test_first(clevertap_mock_session, revenuecat_mock_session):
    upload(clevertap_mock_session, signed_up("u1"))
    revenuecat_mock_session.simulate("buy", "user-1", "pro_monthly")

def test_second(clevertap_mock_session, revenuecat_mock_session):
    assert clevertap_mock_session.event_names("u1") == ["Signed Up"]
    assert len(revenuecat_mock_session.events()) == 1
    clevertap_mock_session.reset()
    revenuecat_mock_session.reset()
    assert clevertap_mock_session.events() == [] and revenuecat_mock_session.events() == []
"""
    )
    result.assert_outcomes(passed=2)


def test_function_mocks_start_empty_in_each_test(run_suite: RunSuite) -> None:
    """What one test uploads or simulates is gone in the next."""
    result = run_suite(
        CLEVERTAP_UPLOAD
        + """
def test_first(clevertap_mock, revenuecat_mock):
    upload(clevertap_mock, signed_up("u1"))
    revenuecat_mock.simulate("buy", "user-1", "pro_monthly")

def test_second(clevertap_mock, revenuecat_mock):
    assert clevertap_mock.events() == [] and revenuecat_mock.events() == []
"""
    )
    result.assert_outcomes(passed=2)
