"""``route_to_mocks`` and ``live_mocks``: the mocks for code that makes its own requests, and
what every fixture leaves behind (nothing)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from tests.plugin.conftest import RunSuite


def test_route_to_mocks_answers_httpx_clients_the_code_builds_itself(
    run_suite: RunSuite,
) -> None:
    """Module-level httpx calls and clients of the code under test reach the mocks, sync and
    async; CleverTap's regional host is checked against the account's region."""
    result = run_suite(
        """
        import httpx

        RC_AUTH = {"Authorization": "Bearer sk_mock_secret_key"}

        def upload(host, headers):
            return httpx.post(f"https://{host}/1/upload", headers=headers, json={"d": [
                {"type": "event", "identity": "u1", "evtName": "Signed Up", "evtData": {}}]})

        def test_sync(route_to_mocks, revenuecat_mock, clevertap_mock):
            answer = httpx.get("https://api.revenuecat.com/v1/subscribers/user-1",
                               headers=RC_AUTH)
            assert answer.status_code == 201  # a new customer, as RevenueCat answers
            assert revenuecat_mock.backend.customer("user-1")
            assert upload("eu1.api.clevertap.com", clevertap_mock.headers).status_code == 200
            assert upload("us1.api.clevertap.com", clevertap_mock.headers).status_code == 401
            clevertap_mock.assert_event("u1", "Signed Up")

        async def test_async(route_to_mocks, revenuecat_mock):
            async with httpx.AsyncClient(base_url="https://api.revenuecat.com") as http:
                answer = await http.get("/v1/subscribers/user-2", headers=RC_AUTH)
            assert answer.json()["subscriber"]["original_app_user_id"] == "user-2"

        def test_mounts(route_to_mocks, clevertap_mock):
            with httpx.Client(mounts=route_to_mocks.mounts) as http:
                answer = http.post("https://api.clevertap.com/1/upload", json={"d": []},
                                   headers=clevertap_mock.headers)
            assert answer.json() == {"status": "success", "processed": 0, "unprocessed": []}
        """
    )
    result.assert_outcomes(passed=3)


def test_route_to_mocks_leaves_other_hosts_to_the_network(run_suite: RunSuite) -> None:
    """A host neither mock serves goes out as usual (here: the live mocks on loopback)."""
    result = run_suite(
        """
        import httpx

        def test_other_host(route_to_mocks, live_mocks):
            assert route_to_mocks.mock_for("127.0.0.1") is None
            answer = httpx.get(f"{live_mocks.url}/_mock/clevertap/accounts")
            assert answer.status_code == 200
        """
    )
    result.assert_outcomes(passed=1)


def test_route_to_mocks_goes_through_respx_when_the_test_uses_it(run_suite: RunSuite) -> None:
    """With ``respx_mock`` in the test, the mocks answer as respx routes (respx records the
    calls) beside the test's own routes; unused, they do not trip respx's all-called check."""
    result = run_suite(
        """
        import httpx

        def test_with_respx(respx_mock, route_to_mocks, clevertap_mock):
            respx_mock.get("https://partner.example/ping").respond(204)
            assert httpx.get("https://partner.example/ping").status_code == 204
            answer = httpx.post("https://eu1.api.clevertap.com/1/upload", json={"d": []},
                                headers=clevertap_mock.headers)
            assert answer.json()["status"] == "success"
            assert [c.request.url.host for c in respx_mock.calls] == [
                "partner.example", "eu1.api.clevertap.com"]

        def test_mock_routes_unused(respx_mock, route_to_mocks):
            respx_mock.get("https://partner.example/ping").respond(204)
            assert httpx.get("https://partner.example/ping").status_code == 204
        """
    )
    result.assert_outcomes(passed=2)


def test_live_mocks_serve_both_mocks_over_a_loopback_socket(run_suite: RunSuite) -> None:
    """Code that is not httpx (urllib here) uploads to the live server; the CleverTap fixture
    sees the event, and the RevenueCat API answers on the same port."""
    result = run_suite(
        """
        import json
        import urllib.request

        def test_urllib(live_mocks, clevertap_mock):
            body = json.dumps({"d": [{"type": "event", "identity": "u1",
                                      "evtName": "Signed Up", "evtData": {"plan": "pro"}}]})
            request = urllib.request.Request(
                f"{live_mocks.clevertap_url}/1/upload", data=body.encode(),
                headers={**clevertap_mock.headers, "Content-Type": "application/json"})
            with urllib.request.urlopen(request) as answer:
                assert json.load(answer)["status"] == "success"
            clevertap_mock.assert_event("u1", "Signed Up", plan="pro")
            request = urllib.request.Request(
                f"{live_mocks.revenuecat_url}/v1/subscribers/user-1",
                headers={"Authorization": "Bearer sk_mock_secret_key"})
            with urllib.request.urlopen(request) as answer:
                assert answer.status == 201
        """
    )
    result.assert_outcomes(passed=1)


def test_no_fixture_leaves_a_thread_a_port_or_a_folder_behind(
    run_suite: RunSuite, tmp_path: Path
) -> None:
    """After a run using every fixture (an async test's settle and sync client calls
    included) the process has the threads it had, the live port refuses connections, and the
    outbox's folder is gone."""
    record = tmp_path / "left.txt"
    before = {t.ident for t in threading.enumerate()}
    result = run_suite(
        f"""
        import httpx
        from pathlib import Path

        def test_everything(revenuecat_mock, clevertap_mock, rc_clevertap_engine,
                            route_to_mocks, live_mocks):
            revenuecat_mock.simulate("buy", "user-1", "pro_monthly")
            rc_clevertap_engine.settle()
            assert httpx.get(f"{{live_mocks.url}}/_mock/clevertap/accounts").status_code == 200
            outbox = rc_clevertap_engine.config.outbox.url.removeprefix("sqlite:///")
            Path({str(record)!r}).write_text(f"{{Path(outbox).parent}}\\n{{live_mocks.url}}")

        async def test_async(revenuecat_mock, clevertap_mock, rc_clevertap_engine):
            revenuecat_mock.client.set_clevertap_id("user-2", "ct-2")  # sync, in a running loop
            revenuecat_mock.simulate("buy", "user-2", "pro_monthly")
            await rc_clevertap_engine.asettle()
            clevertap_mock.assert_event("ct-2", "rc_initial_purchase_event")
        """
    )
    result.assert_outcomes(passed=2)
    assert {t.ident for t in threading.enumerate()} == before
    folder, url = record.read_text().splitlines()
    assert not Path(folder).exists()
    port = int(url.rpartition(":")[2])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
