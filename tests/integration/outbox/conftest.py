"""Fixtures of the outbox tests: ``outbox`` on every backend, and a PostgreSQL ``schema``.

The ``outbox`` fixture is SQLite always, and PostgreSQL too when ``RC_CLEVERTAP_TEST_POSTGRES_URL``
names a database; each PostgreSQL run works in its own throwaway schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from engine_helpers import drop_postgres_schema

from integration.outbox import Outbox, open_outbox

POSTGRES_URL = os.environ.get("RC_CLEVERTAP_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
QUARANTINE_CAP = 3  # small, so that the cap is reached by a test


@pytest.fixture
def schema() -> Iterator[str]:
    """A schema name no other test uses; the schema and everything in it go afterwards."""
    name = f"rc_test_{uuid.uuid4().hex[:16]}"
    yield name
    drop_postgres_schema(name)


@pytest.fixture(params=BACKENDS)
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outbox]:
    """An opened, empty outbox of each backend (``quarantine_cap`` 3)."""
    if request.param == "sqlite":
        box = open_outbox(f"sqlite:///{tmp_path / 'outbox.db'}", quarantine_cap=QUARANTINE_CAP)
        await box.open()
        yield box
        await box.close()
        return
    schema = f"rc_test_{uuid.uuid4().hex[:16]}"
    box = open_outbox(POSTGRES_URL, schema=schema, max_size=3, quarantine_cap=QUARANTINE_CAP)
    await box.open()
    try:
        yield box
    finally:
        await box.close()
        drop_postgres_schema(schema)
