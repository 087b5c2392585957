"""Every RevenueCat event type and payload shape, mapped as ``rc-clevertap map`` would print it.

Each file in ``fixtures/webhooks/`` holds a webhook written for this project (modelled on the
shapes RevenueCat documents), the configuration it runs under, and the upload expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integration.config import Config, config_from_mapping
from integration.mapping import KNOWN_EVENT_TYPES, map_event, preview
from integration.webhook import parse_webhook

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
BASE = {"clevertap": {"account_id": "TEST-PROD-001", "passcode": "prod-pass"}}


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _config(overrides: dict[str, dict[str, Any]]) -> Config:
    data = {section: dict(values) for section, values in BASE.items()}
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return config_from_mapping(data)


CASES = sorted(FIXTURES.glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fixture_maps_to_expected_upload(path: Path) -> None:
    """A fixture's webhook maps to exactly the upload (or skip reason) it expects."""
    case = _load(path)
    body = json.dumps(case["webhook"]).encode()
    assert preview(body, _config(case["config"])) == case["expected"], case["about"]


def test_fixtures_cover_every_documented_event_type() -> None:
    """Every event type RevenueCat documents has at least one fixture."""
    covered = {_load(path)["webhook"]["event"]["type"] for path in CASES}
    assert covered >= KNOWN_EVENT_TYPES


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fixture_records_are_uploadable(path: Path) -> None:
    """Every mapped record has a type, one identifier, an integer ts and scalar event data."""
    case = _load(path)
    result = map_event(
        parse_webhook(json.dumps(case["webhook"]).encode()).event, _config(case["config"])
    )
    for record in getattr(result, "records", []):
        assert record["type"] in ("event", "profile")
        assert len({"identity", "objectId"} & record.keys()) == 1
        assert isinstance(record["ts"], int) and record["ts"] > 0
        data = record.get("evtData", record.get("profileData"))
        for key, value in data.items():
            assert key == "Items" or isinstance(value, str | int | float | bool), key
    json.dumps(case["expected"], allow_nan=False)  # no NaN or Infinity ever reaches CleverTap
