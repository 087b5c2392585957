"""The ``schema`` fixture of the PostgreSQL outbox tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from engine_helpers import drop_postgres_schema


@pytest.fixture
def schema() -> Iterator[str]:
    """A schema name no other test uses; the schema and everything in it go afterwards."""
    name = f"rc_test_{uuid.uuid4().hex[:16]}"
    yield name
    drop_postgres_schema(name)
