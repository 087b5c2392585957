"""The README's "Test your own code against the mocks" examples pass as test files of a fresh
pytest run, and the fixtures its reference names exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.plugin.conftest import RunSuite

README = (Path(__file__).parents[2] / "README.md").read_text()
SECTION = README.partition("## Test your own code against the mocks\n")[2].partition("\n## ")[0]
EXAMPLES = re.findall(r"```python\n(.*?)```", SECTION, flags=re.S)
FIXTURE_TABLE = re.findall(r"^\| `(\w+)`", SECTION, flags=re.M)


def test_the_section_has_an_example_for_each_fixture() -> None:
    """Every fixture the reference table lists (the config and outbox excepted: they shape
    the engine) is used by at least one example."""
    shaping = {"rc_clevertap_config", "rc_clevertap_outbox_url"}
    assert FIXTURE_TABLE, "the fixtures' reference table is missing"
    for fixture in set(FIXTURE_TABLE) - shaping:
        assert any(f"{fixture}" in example for example in EXAMPLES), fixture


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: re.findall(r"def (test_\w+)", e)[0])
def test_each_example_passes_in_a_fresh_run(run_suite: RunSuite, example: str) -> None:
    """The example's tests all pass when pytest runs it with nothing but the plugin."""
    tests = re.findall(r"^(?:async )?def test_\w+", example, flags=re.M)
    result = run_suite(example)
    result.assert_outcomes(passed=len(tests))


def test_the_shown_failure_is_what_a_failing_assert_event_prints(run_suite: RunSuite) -> None:
    """The failure message the README shows is the one assert_event gives for its example."""
    shown = re.search(r"```text\n(.*?)```", SECTION, flags=re.S)
    assert shown is not None
    result = run_suite(
        """
        import httpx

        def test_wrong_plan(clevertap_mock):
            with httpx.Client(base_url=clevertap_mock.base_url, headers=clevertap_mock.headers,
                              transport=clevertap_mock.transport()) as http:
                http.post("/1/upload", json={"d": [{"type": "event", "identity": "user-1",
                          "evtName": "Signed Up", "evtData": {"plan": "pro"}}]})
            clevertap_mock.assert_event("user-1", "Signed Up", plan="free")
        """
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"E *{line.strip()}" for line in shown[1].splitlines()])
