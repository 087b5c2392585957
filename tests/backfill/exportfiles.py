"""Writing small RevenueCat transaction exports for the backfill tests, in each version's quirks.

Our own writer (the fact sheet's column list and version notes), independent of the RevenueCat
mock's: rows are dicts of typed values (times in epoch ms), encoded as version ``v`` writes them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
DAY = 86_400_000

COLUMNS = (
    "rc_original_app_user_id", "rc_last_seen_app_user_id_alias", "country", "product_identifier",
    "start_time", "end_time", "grace_period_end_time", "effective_end_time", "store",
    "is_auto_renewable", "is_trial_period", "is_in_intro_offer_period", "is_sandbox",
    "price_in_usd", "purchase_price_in_usd", "tax_percentage", "commission_percentage",
    "store_transaction_id", "original_store_transaction_id", "refunded_at",
    "unsubscribe_detected_at", "billing_issues_detected_at", "purchased_currency",
    "price_in_purchased_currency", "purchase_price_in_purchased_currency",
    "entitlement_identifiers", "renewal_number", "is_trial_conversion", "presented_offering",
    "ownership_type", "reserved_subscriber_attributes", "custom_subscriber_attributes",
    "platform", "updated_at",
)  # fmt: skip
_BOOLS = {
    "is_auto_renewable", "is_trial_period", "is_in_intro_offer_period", "is_sandbox",
    "is_trial_conversion",
}  # fmt: skip
_TIMES = {
    "start_time", "end_time", "grace_period_end_time", "effective_end_time", "refunded_at",
    "unsubscribe_detected_at", "billing_issues_detected_at", "updated_at",
}  # fmt: skip
_JSON = {"reserved_subscriber_attributes", "custom_subscriber_attributes"}


def row(transaction: str, **values: Any) -> dict[str, Any]:
    """A paid monthly App Store renewal-able purchase by user u1, changed by ``values``."""
    base: dict[str, Any] = {
        "rc_original_app_user_id": "$RCAnonymousID:u1",
        "rc_last_seen_app_user_id_alias": "u1",
        "country": "DE",
        "product_identifier": "pro.monthly",
        "start_time": T0,
        "end_time": T0 + 30 * DAY,
        "effective_end_time": T0 + 30 * DAY,
        "store": "app_store",
        "is_auto_renewable": True,
        "is_trial_period": False,
        "is_in_intro_offer_period": False,
        "is_sandbox": False,
        "price_in_usd": 10.99,
        "purchase_price_in_usd": 10.99,
        "tax_percentage": 0.16,
        "commission_percentage": 0.3,
        "store_transaction_id": transaction,
        "original_store_transaction_id": transaction,
        "purchased_currency": "EUR",
        "price_in_purchased_currency": 9.99,
        "purchase_price_in_purchased_currency": 9.99,
        "entitlement_identifiers": ["pro", "plus one"],
        "renewal_number": 1,
        "is_trial_conversion": False,
        "ownership_type": "PURCHASED",
        "reserved_subscriber_attributes": {
            "$email": {"value": "u1@example.com", "updated_at_ms": T0},
            "$clevertapId": {"value": "ct-u1", "updated_at_ms": T0},
        },
        "custom_subscriber_attributes": {"plan; tier": {"value": 'gold "A"', "updated_at_ms": T0}},
        "platform": "iOS",
        "updated_at": T0,
    }
    base.update(values)
    return base


def _cell(name: str, value: Any, version: int) -> str:
    if value is None:
        return ""
    if name in _BOOLS:
        if version <= 3:
            return "t" if value else "f"
        return "true" if value else "false"
    if name in _TIMES:
        return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if name == "entitlement_identifiers":
        if version <= 3:  # a PostgreSQL array literal, quoted elements where needed
            return "{" + ",".join(f'"{v}"' if " " in v else v for v in value) + "}"
        return json.dumps(value)
    if name in _JSON:
        return json.dumps(value)
    return str(value)


def csv_text(
    rows: Sequence[Mapping[str, Any]], *, version: int = 6, columns: Sequence[str] = COLUMNS
) -> str:
    """The CSV text of an export: ``;``-separated; v4 and v5 JSON and array cells enclosed in
    quotes with backslash-escaped quotes inside, the other versions standard-quoted."""
    out = io.StringIO()
    if version in (4, 5):
        out.write(";".join(columns) + "\n")
        for values in rows:
            cells = []
            for name in columns:
                text = _cell(name, values.get(name), version)
                if text and (name in _JSON or name == "entitlement_identifiers"):
                    text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
                elif ";" in text or '"' in text:
                    text = '"' + text.replace('"', '\\"') + '"'
                cells.append(text)
            out.write(";".join(cells) + "\n")
        return out.getvalue()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(columns)
    for values in rows:
        writer.writerow([_cell(name, values.get(name), version) for name in columns])
    return out.getvalue()


def write_export(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    version: int = 6,
    columns: Sequence[str] = COLUMNS,
    compress: bool = True,
) -> Path:
    """Write an export file (gzip unless ``compress`` is false) and return its path."""
    text = csv_text(rows, version=version, columns=columns).encode()
    path.write_bytes(gzip.compress(text) if compress else text)
    return path
