"""A worked transform (README, "Several apps, several CleverTap projects"): add a computed
property to each purchase and send nothing for test users.

Configure it with ``[transform] callable = "transforms:transform"`` and this folder on
``PYTHONPATH`` (or copy the function into a module of your own).
"""

from __future__ import annotations

from typing import Any


def transform(
    event: dict[str, Any], route: str, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Drop QA accounts; add ``price_band`` to every event record that has an amount."""
    if str(event.get("app_user_id", "")).startswith("qa-"):
        return []  # skipped with the reason code "transform"
    for record in records:
        data = record.get("evtData", {})
        if record["type"] == "event" and isinstance(data.get("amount"), int | float):
            data["price_band"] = "high" if data["amount"] >= 50 else "low"
            data["rc_route"] = route
    return records
