"""rc-clevertap's pytest plugin: the RevenueCat and CleverTap mocks and the forwarder as fixtures.

Installing rc-clevertap registers it (the ``pytest11`` entry point ``rc_clevertap``); nothing
to copy into a ``conftest.py``.  Only pytest imports this package.

Fixtures (function scope; the ``*_session`` variants live for the whole run, ``reset()``
them between tests as suits you)::

    revenuecat_mock        RevenueCatMock: API, store simulator, webhooks, virtual clock,
                           .client / .async_client (client.RevenueCat on the mock)
    clevertap_mock         CleverTapMock: upload and read APIs, assert_event / assert_profile
                           / assert_no_event, events(), profiles(), journal(), inject(faults)
    rc_clevertap_engine    LocalEngine: the forwarder between the two, settle() / asettle()
    rc_clevertap_config    the engine's Config (override it in your conftest to change it)
    rc_clevertap_outbox_url  a fresh SQLite file, or a PostgreSQL schema (see below)
    route_to_mocks         MockRoutes: httpx traffic to api.revenuecat.com and
                           <region>.api.clevertap.com answered by the mocks (respx too)
    live_mocks             LiveMocks: both mocks on a loopback port (.url)

Marker: ``@pytest.mark.clevertap_faults("flaky", seed=1)`` (presets or ``FaultRule``s) sets
``clevertap_mock``'s faults before the test runs.

Options: the engine's outbox is a temporary SQLite file, or a throwaway schema of the
PostgreSQL database named by ``--rc-clevertap-postgres-url``, else the
``RC_CLEVERTAP_POSTGRES_URL`` environment variable, else the ``rc_clevertap_postgres_url`` ini
option.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

# The mocks and the engine are imported by the fixtures that use them, not when pytest loads
# the plugin: a run that uses none of them pays nothing, and cannot fail on them.
if TYPE_CHECKING:
    from integration.app.pytest_plugin._world import World
    from integration.app.pytest_plugin.clevertap import CleverTapMock
    from integration.app.pytest_plugin.engine import LocalEngine, NotSettled
    from integration.app.pytest_plugin.revenuecat import RevenueCatMock
    from integration.app.pytest_plugin.routing import LiveMocks, MockRoutes
    from integration.config import Config

__all__ = [
    "CleverTapMock",
    "LiveMocks",
    "LocalEngine",
    "MockRoutes",
    "NotSettled",
    "RevenueCatMock",
]

_HOMES = {
    "CleverTapMock": "clevertap",
    "LiveMocks": "routing",
    "LocalEngine": "engine",
    "MockRoutes": "routing",
    "NotSettled": "engine",
    "RevenueCatMock": "revenuecat",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def _new_world() -> World:
    from integration.app.pytest_plugin._world import World

    return World()


POSTGRES_OPTION = "--rc-clevertap-postgres-url"
POSTGRES_INI = "rc_clevertap_postgres_url"
POSTGRES_ENV = "RC_CLEVERTAP_POSTGRES_URL"
FAULTS_MARKER = "clevertap_faults"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rc-clevertap", "rc-clevertap mocks and engine")
    group.addoption(
        POSTGRES_OPTION,
        default=None,
        metavar="URL",
        help="run rc_clevertap_engine's outbox on this PostgreSQL database (a throwaway "
        f"schema per test) instead of SQLite; also ${POSTGRES_ENV} or the {POSTGRES_INI} ini "
        "option",
    )
    parser.addini(POSTGRES_INI, "PostgreSQL URL for rc_clevertap_engine's outbox", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{FAULTS_MARKER}(*presets_or_rules, seed=None, route=None): CleverTap mock faults "
        "for the test: names of mockserver.faults.PRESETS (flaky, outage, ...) or "
        "mockserver.faults.FaultRule objects",
    )


def _postgres_url(config: pytest.Config) -> str | None:
    url = config.getoption(POSTGRES_OPTION) or os.environ.get(POSTGRES_ENV)
    return url or str(config.getini(POSTGRES_INI)) or None


@pytest.fixture(scope="session")
def rc_clevertap_postgres_url(pytestconfig: pytest.Config) -> str | None:
    """The PostgreSQL database the engine's outbox uses, or None for SQLite."""
    return _postgres_url(pytestconfig)


# -- worlds: the private loop and clocks a set of fixtures shares ---------------------------


@pytest.fixture
def _rc_clevertap_world() -> Iterator[World]:
    world = _new_world()
    yield world
    world.close()


@pytest.fixture(scope="session")
def _rc_clevertap_world_session() -> Iterator[World]:
    world = _new_world()
    yield world
    world.close()


# -- the mocks ------------------------------------------------------------------------------


@pytest.fixture
def revenuecat_mock(_rc_clevertap_world: World) -> Iterator[RevenueCatMock]:
    """The RevenueCat mock in process (frozen virtual clock, webhooks sent on flush)."""
    from integration.app.pytest_plugin.revenuecat import RevenueCatMock

    mock = RevenueCatMock(_rc_clevertap_world)
    yield mock
    mock.close()


@pytest.fixture(scope="session")
def revenuecat_mock_session(_rc_clevertap_world_session: World) -> Iterator[RevenueCatMock]:
    """:func:`revenuecat_mock` for the whole run."""
    from integration.app.pytest_plugin.revenuecat import RevenueCatMock

    mock = RevenueCatMock(_rc_clevertap_world_session)
    yield mock
    mock.close()


@pytest.fixture
def clevertap_mock(
    request: pytest.FixtureRequest, _rc_clevertap_world: World
) -> Iterator[CleverTapMock]:
    """The CleverTap mock in process, with the ``clevertap_faults`` marker's faults."""
    from integration.app.pytest_plugin.clevertap import CleverTapMock

    mock = CleverTapMock(_rc_clevertap_world)
    marker = request.node.get_closest_marker(FAULTS_MARKER)
    if marker is not None:
        unknown = set(marker.kwargs) - {"seed", "route"}
        if unknown:
            pytest.fail(
                f"{FAULTS_MARKER} takes seed= and route=, not {', '.join(sorted(unknown))}",
                pytrace=False,
            )
        try:
            mock.inject(*marker.args, **marker.kwargs)
        except (TypeError, ValueError) as exc:
            pytest.fail(f"{FAULTS_MARKER}: {exc}", pytrace=False)
    yield mock


@pytest.fixture(scope="session")
def clevertap_mock_session(_rc_clevertap_world_session: World) -> CleverTapMock:
    """:func:`clevertap_mock` for the whole run (the marker does not apply: use ``inject``)."""
    from integration.app.pytest_plugin.clevertap import CleverTapMock

    return CleverTapMock(_rc_clevertap_world_session)


# -- the engine -----------------------------------------------------------------------------


@pytest.fixture
def rc_clevertap_outbox_url(rc_clevertap_postgres_url: str | None) -> Iterator[str]:
    """A fresh outbox: a SQLite file in a temporary folder, or a PostgreSQL schema; removed
    at teardown."""
    yield from _outbox_url(rc_clevertap_postgres_url)


@pytest.fixture(scope="session")
def rc_clevertap_outbox_url_session(rc_clevertap_postgres_url: str | None) -> Iterator[str]:
    yield from _outbox_url(rc_clevertap_postgres_url)


def _outbox_url(postgres_url: str | None) -> Iterator[str]:
    if postgres_url:
        schema = f"rcct_test_{secrets.token_hex(6)}"
        separator = "&" if "?" in postgres_url else "?"
        try:
            yield f"{postgres_url}{separator}schema={schema}"
        finally:
            _drop_schema(postgres_url, schema)
        return
    folder = tempfile.mkdtemp(prefix="rc-clevertap-outbox-")
    try:
        yield f"sqlite:///{folder}/outbox.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _drop_schema(postgres_url: str, schema: str) -> None:
    import psycopg  # the postgres extra; only reached when a PostgreSQL URL is given
    from psycopg import sql

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def rc_clevertap_config(rc_clevertap_outbox_url: str, clevertap_mock: CleverTapMock) -> Config:
    """The engine's configuration: the CleverTap mock's accounts, the test's outbox."""
    from integration.app.pytest_plugin.engine import default_config

    return default_config(rc_clevertap_outbox_url, clevertap_mock)


@pytest.fixture(scope="session")
def rc_clevertap_config_session(
    rc_clevertap_outbox_url_session: str, clevertap_mock_session: CleverTapMock
) -> Config:
    from integration.app.pytest_plugin.engine import default_config

    return default_config(rc_clevertap_outbox_url_session, clevertap_mock_session)


@pytest.fixture
def rc_clevertap_engine(
    _rc_clevertap_world: World,
    revenuecat_mock: RevenueCatMock,
    clevertap_mock: CleverTapMock,
    rc_clevertap_config: Config,
) -> Iterator[LocalEngine]:
    """The forwarder between ``revenuecat_mock`` and ``clevertap_mock``, started."""
    from integration.app.pytest_plugin.engine import LocalEngine

    engine = LocalEngine(_rc_clevertap_world, revenuecat_mock, clevertap_mock, rc_clevertap_config)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def rc_clevertap_engine_session(
    _rc_clevertap_world_session: World,
    revenuecat_mock_session: RevenueCatMock,
    clevertap_mock_session: CleverTapMock,
    rc_clevertap_config_session: Config,
) -> Iterator[LocalEngine]:
    """:func:`rc_clevertap_engine` on the session mocks, for the whole run."""
    from integration.app.pytest_plugin.engine import LocalEngine

    engine = LocalEngine(
        _rc_clevertap_world_session,
        revenuecat_mock_session,
        clevertap_mock_session,
        rc_clevertap_config_session,
    )
    yield engine
    engine.close()


# -- reaching the mocks from code that makes its own requests -------------------------------


@pytest.fixture
def route_to_mocks(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    revenuecat_mock: RevenueCatMock,
    clevertap_mock: CleverTapMock,
) -> Iterator[MockRoutes]:
    """httpx requests to RevenueCat's and CleverTap's hosts answered by the mocks, whoever
    built the client; through ``respx_mock`` when the test uses it."""
    from integration.app.pytest_plugin.routing import MockRoutes

    routes = MockRoutes(revenuecat_mock, clevertap_mock)
    if "respx_mock" in request.fixturenames:
        routes.add_to_respx(request.getfixturevalue("respx_mock"))
    else:
        routes.patch_httpx(monkeypatch.setattr)
    yield routes
    routes.close()


@pytest.fixture
def live_mocks(
    revenuecat_mock: RevenueCatMock, clevertap_mock: CleverTapMock
) -> Iterator[LiveMocks]:
    """Both mocks on a loopback port (``.url``), for code that cannot use httpx transports."""
    from integration.app.pytest_plugin.routing import LiveMocks

    live = LiveMocks(revenuecat_mock, clevertap_mock)
    yield live
    live.close()


@pytest.fixture(scope="session")
def live_mocks_session(
    revenuecat_mock_session: RevenueCatMock, clevertap_mock_session: CleverTapMock
) -> Iterator[LiveMocks]:
    from integration.app.pytest_plugin.routing import LiveMocks

    live = LiveMocks(revenuecat_mock_session, clevertap_mock_session)
    yield live
    live.close()
