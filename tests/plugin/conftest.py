"""Generated test suites run by a fresh pytest, in process, with the plugin its entry point
loads (``-p pytester`` in the project's addopts provides ``pytester``)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

# What a user's suite might set: warnings are errors there too, so the plugin must raise none.
# Hypothesis's plugin is left out: its terminal summary costs about half a second a run.
INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
addopts = -p no:cacheprovider -p no:hypothesispytest
"""

RunSuite = Callable[..., pytest.RunResult]


@pytest.fixture
def run_suite(pytester: pytest.Pytester) -> RunSuite:
    """Write ``source`` as a test file of a fresh project and run pytest on it in process."""
    pytester.makeini(INI)

    def run(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_generated=textwrap.dedent(source))
        return pytester.runpytest_inprocess(*args)

    return run
