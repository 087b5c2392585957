"""The transform the delivery benchmark runs with RC_CLEVERTAP_BENCH_ROUTES=1 (issue 16): one
computed property per event record, as a user's transform would add."""

from __future__ import annotations

from typing import Any


def add_route_property(
    event: dict[str, Any], route: str, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    for record in records:
        if record["type"] == "event":
            record["evtData"]["rc_route"] = route
    return records
