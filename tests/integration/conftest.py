"""The ``outbox_url`` fixture: each engine test that takes it runs once per outbox backend.

SQLite always (a file in ``tmp_path``); PostgreSQL too when ``RC_CLEVERTAP_TEST_POSTGRES_URL``
names a database, each test in a schema of its own, dropped afterwards.  Without the variable
the PostgreSQL parameter is not generated at all, so no skipped test counts as a pass.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import (
    OUTBOX_BACKENDS,
    drop_postgres_schema,
    outbox_url_for,
    postgres_outbox_url,
)


@pytest.fixture(params=OUTBOX_BACKENDS)
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty outbox's URL: ``sqlite:///<tmp_path>/outbox.db`` or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield outbox_url_for(tmp_path)
        return
    schema = f"rc_test_{uuid.uuid4().hex[:16]}"
    try:
        yield postgres_outbox_url(schema)
    finally:
        drop_postgres_schema(schema)
