"""Scheduled Data Exports from the RevenueCat mock: rows agree with the simulator, versions differ
as RevenueCat's do, files are gzip ``;`` CSV or Parquet, full or incremental; Python and HTTP."""

from __future__ import annotations

import csv
import gzip
import importlib
import io
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from rcmock_helpers import START_MS

from mockserver.revenuecat import (
    ExportError,
    RevenueCatBackend,
    TransactionExport,
    VirtualClock,
)
from mockserver.revenuecat.catalogue import DAY_MS
from mockserver.revenuecat.exports import (
    V7_EXPERIMENTS_COLUMN,
    ExportOptionError,
    ParquetUnavailable,
    columns_for,
)

BASE = "/_mock/revenuecat"
HOUR_MS = 3_600_000
STARTS = ("INITIAL_PURCHASE", "RENEWAL", "NON_RENEWING_PURCHASE")


def _rows(export: TransactionExport) -> dict[str, dict[str, Any]]:
    return {row["store_transaction_id"]: dict(row) for row in export.rows}


def _parse(data: bytes, *, escaped: bool = False) -> list[dict[str, str]]:
    """A gzip CSV export read with the standard library (v4/v5: the backslash dialect)."""
    text = gzip.decompress(data).decode("utf-8")
    options: dict[str, Any] = {"doublequote": False, "escapechar": "\\"} if escaped else {}
    return list(csv.DictReader(io.StringIO(text), delimiter=";", **options))


def _time(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


# ----------------------------------------------------------------------------- agreement


def test_every_started_transaction_is_one_row(backend: RevenueCatBackend) -> None:
    """A population's export has exactly one row per transaction the simulator started."""
    events = backend.play(backend.plan_population(60, seed=5), set_clevertap_ids=True)
    started = {e["transaction_id"] for e in events if e["type"] in STARTS}
    export = backend.export_transactions()
    assert len(export.rows) == len(started)
    assert {row["store_transaction_id"] for row in export.rows} == started


def test_row_money_fields_equal_the_webhook_event(backend: RevenueCatBackend) -> None:
    """Prices in USD and in the buyer's currency, tax and commission are the event's."""
    backend.create_customer("u1", country="DE")
    (event,) = backend.buy("u1", "pro_monthly", store="PLAY_STORE", at_ms=START_MS - DAY_MS)
    row = _rows(backend.export_transactions(version=5))[event["transaction_id"]]
    assert row["price_in_usd"] == row["purchase_price_in_usd"] == event["price"]
    assert row["price_in_purchased_currency"] == event["price_in_purchased_currency"] == 9.99
    assert row["purchased_currency"] == "EUR" == event["currency"]
    assert row["tax_percentage"] == event["tax_percentage"] == 0.1597
    assert row["commission_percentage"] == event["commission_percentage"] == 0.15
    assert row["store"] == "play_store" and row["product_duration"] == "P1M"


def test_population_revenue_per_currency_matches_the_simulator(backend: RevenueCatBackend) -> None:
    """Gross revenue per currency in the export equals the priced webhooks' sums."""
    events = backend.play(backend.plan_population(80, seed=11))
    truth: defaultdict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        if e["type"] in STARTS:
            truth[e["currency"]] += Decimal(str(e["price_in_purchased_currency"]))
    exported: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in backend.export_transactions(version=5).rows:
        exported[row["purchased_currency"]] += Decimal(
            str(row["purchase_price_in_purchased_currency"])
        )
    assert exported == truth


def test_clevertap_id_is_in_the_reserved_attributes(backend: RevenueCatBackend) -> None:
    """``$clevertapId`` is a reserved attribute; custom keys go to the custom column."""
    backend.create_customer("u1", attributes={"$clevertapId": "ct-1", "plan": "gold"})
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    (row,) = backend.export_transactions().rows
    assert row["reserved_subscriber_attributes"]["$clevertapId"]["value"] == "ct-1"
    assert row["custom_subscriber_attributes"] == {
        "plan": {"value": "gold", "updated_at_ms": START_MS}
    }


# ----------------------------------------------------------------------------- lifecycles


def test_a_trial_and_its_conversion_are_two_rows(backend: RevenueCatBackend) -> None:
    """The trial row is free and flagged; the conversion row is paid, renewal 2, a conversion."""
    at = START_MS - 30 * DAY_MS
    (trial,) = backend.start_trial("u1", "pro_monthly", at_ms=at)
    (paid,) = backend.convert_trial("u1", at_ms=at + 7 * DAY_MS - HOUR_MS)
    rows = _rows(backend.export_transactions())
    assert rows[trial["transaction_id"]]["is_trial_period"] is True
    assert rows[trial["transaction_id"]]["price_in_usd"] == 0.0
    converted = rows[paid["transaction_id"]]
    assert converted["is_trial_conversion"] is True and converted["renewal_number"] == 2
    assert converted["price_in_usd"] == 9.99 and converted["is_trial_period"] is False


def test_a_refund_zeroes_the_net_price_from_v4_on(backend: RevenueCatBackend) -> None:
    """After a refund v5's price_in_* are 0 and purchase_price_* keep the gross; v3 keeps it."""
    (bought,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 10 * DAY_MS)
    backend.refund("u1", at_ms=START_MS - 5 * DAY_MS)
    v5 = _rows(backend.export_transactions(version=5))[bought["transaction_id"]]
    assert v5["refunded_at"] == START_MS - 5 * DAY_MS == v5["effective_end_time"]
    assert (v5["price_in_usd"], v5["purchase_price_in_usd"]) == (0.0, 9.99)
    assert v5["price_in_purchased_currency"] == 0.0
    v3 = _rows(backend.export_transactions(version=3))[bought["transaction_id"]]
    assert v3["price_in_usd"] == 9.99 and "purchase_price_in_usd" not in v3


def test_cancel_and_uncancel_set_and_clear_the_unsubscribe_time(
    backend: RevenueCatBackend,
) -> None:
    """A cancellation sets unsubscribe_detected_at; an uncancellation clears it again."""
    (bought,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 10 * DAY_MS)
    backend.cancel("u1", at_ms=START_MS - 8 * DAY_MS)
    cancelled = _rows(backend.export_transactions())[bought["transaction_id"]]
    assert cancelled["unsubscribe_detected_at"] == START_MS - 8 * DAY_MS
    backend.uncancel("u1", at_ms=START_MS - 6 * DAY_MS)
    restored = _rows(backend.export_transactions())[bought["transaction_id"]]
    assert restored["unsubscribe_detected_at"] is None
    assert restored["updated_at"] == START_MS - 6 * DAY_MS


def test_a_billing_issue_extends_access_to_the_grace_period(backend: RevenueCatBackend) -> None:
    """billing_issues_detected_at and the grace period's end; effective_end_time is the latter."""
    (bought,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 40 * DAY_MS)
    period_end = bought["expiration_at_ms"]
    backend.billing_issue("u1", at_ms=period_end)
    row = _rows(backend.export_transactions())[bought["transaction_id"]]
    assert row["billing_issues_detected_at"] == period_end
    assert row["grace_period_end_time"] == period_end + 16 * DAY_MS == row["effective_end_time"]
    assert row["unsubscribe_detected_at"] is None


def test_an_expiration_ends_access_when_it_happened(backend: RevenueCatBackend) -> None:
    """An expiration after a grace period sets effective_end_time to the expiry."""
    (bought,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 60 * DAY_MS)
    period_end = bought["expiration_at_ms"]
    backend.billing_issue("u1", at_ms=period_end)
    backend.expire("u1", at_ms=period_end + 3 * DAY_MS)
    row = _rows(backend.export_transactions())[bought["transaction_id"]]
    assert row["effective_end_time"] == period_end + 3 * DAY_MS
    assert row["end_time"] == period_end


def test_a_non_renewing_purchase_has_no_end(backend: RevenueCatBackend) -> None:
    """One-off purchases are not auto-renewable, have no end_time and renewal_number 1."""
    (bought,) = backend.buy_non_renewing("u1", "lifetime", at_ms=START_MS - DAY_MS)
    row = _rows(backend.export_transactions())[bought["transaction_id"]]
    assert row["is_auto_renewable"] is False and row["end_time"] is None
    assert row["effective_end_time"] is None and row["renewal_number"] == 1
    assert row["product_duration"] is None and row["price_in_usd"] == 149.99


def test_an_app_store_upgrade_ends_the_old_row_at_the_change(backend: RevenueCatBackend) -> None:
    """An immediate App Store product change ends the previous row and starts a new one."""
    (bought,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 20 * DAY_MS)
    change_at = START_MS - 10 * DAY_MS
    _, renewal = backend.change_product("u1", "premium_monthly", at_ms=change_at)
    rows = _rows(backend.export_transactions())
    assert rows[bought["transaction_id"]]["effective_end_time"] == change_at
    assert rows[renewal["transaction_id"]]["product_identifier"] == "premium_monthly"
    assert rows[renewal["transaction_id"]]["start_time"] == change_at


def test_a_play_upgrade_ends_the_replaced_purchase(backend: RevenueCatBackend) -> None:
    """On Google Play the upgrade is a new purchase; the replaced row ends at the change."""
    (bought,) = backend.buy("u1", "pro_monthly", store="PLAY_STORE", at_ms=START_MS - 20 * DAY_MS)
    change_at = START_MS - 10 * DAY_MS
    _, new = backend.change_product("u1", "premium_monthly", at_ms=change_at)
    rows = _rows(backend.export_transactions())
    assert rows[bought["transaction_id"]]["effective_end_time"] == change_at
    assert new["original_transaction_id"] != bought["original_transaction_id"]
    assert rows[new["transaction_id"]]["renewal_number"] == 1


def test_a_pause_sets_the_auto_resume_time(backend: RevenueCatBackend) -> None:
    """SUBSCRIPTION_PAUSED's resume time is the row's auto_resume_time (v5 on)."""
    (bought,) = backend.buy("u1", "pro_monthly", store="PLAY_STORE", at_ms=START_MS - 20 * DAY_MS)
    (paused,) = backend.pause("u1", at_ms=START_MS - 10 * DAY_MS)
    row = _rows(backend.export_transactions(version=5))[bought["transaction_id"]]
    assert row["auto_resume_time"] == paused["auto_resume_at_ms"]


def test_a_transfer_moves_the_rows_to_the_destination(backend: RevenueCatBackend) -> None:
    """After a transfer the rows name the destination customer."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - 20 * DAY_MS)
    backend.transfer("u1", "u2", at_ms=START_MS - 10 * DAY_MS)
    (row,) = backend.export_transactions().rows
    assert row["rc_last_seen_app_user_id_alias"] == "u2"
    assert row["updated_at"] == START_MS - 10 * DAY_MS


def test_sandbox_purchases_are_flagged(backend: RevenueCatBackend) -> None:
    """A sandbox purchase's row has is_sandbox true."""
    backend.buy("u1", "pro_monthly", environment="SANDBOX", at_ms=START_MS - DAY_MS)
    (row,) = backend.export_transactions().rows
    assert row["is_sandbox"] is True


# ----------------------------------------------------------------------------- full or incremental


def test_an_incremental_export_holds_only_rows_updated_since(backend: RevenueCatBackend) -> None:
    """since_ms keeps the rows created or changed after it; a later refund repeats an old row."""
    (old,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 20 * DAY_MS)
    cut = START_MS - 15 * DAY_MS
    (new,) = backend.buy("u2", "pro_monthly", at_ms=START_MS - 10 * DAY_MS)
    assert [r["store_transaction_id"] for r in backend.export_transactions(since_ms=cut).rows] == [
        new["transaction_id"]
    ]
    backend.refund("u1", at_ms=START_MS - 5 * DAY_MS)
    repeated = _rows(backend.export_transactions(since_ms=cut))
    assert set(repeated) == {old["transaction_id"], new["transaction_id"]}
    assert repeated[old["transaction_id"]]["refunded_at"] == START_MS - 5 * DAY_MS


def test_as_of_leaves_out_what_happened_later(backend: RevenueCatBackend) -> None:
    """An export as of a past time has neither later transactions nor later changes."""
    (first,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 20 * DAY_MS)
    backend.refund("u1", at_ms=START_MS - 5 * DAY_MS)
    backend.buy("u2", "pro_monthly", at_ms=START_MS - 4 * DAY_MS)
    export = backend.export_transactions(as_of_ms=START_MS - 10 * DAY_MS)
    (row,) = export.rows
    assert row["store_transaction_id"] == first["transaction_id"]
    assert row["refunded_at"] is None and export.as_of_ms == START_MS - 10 * DAY_MS


def test_since_after_as_of_is_refused(backend: RevenueCatBackend) -> None:
    """An incremental window that ends before it starts is an option error."""
    with pytest.raises(ExportOptionError, match="since_ms"):
        backend.export_transactions(since_ms=START_MS, as_of_ms=START_MS - 1)


def test_a_full_event_log_is_refused(clock: VirtualClock) -> None:
    """When the event log may have dropped events, the export is refused, not written short."""
    backend = RevenueCatBackend(clock=clock, seed=1, max_events=2)
    backend.buy("u1", "pro_monthly", at_ms=START_MS - 20 * DAY_MS)
    backend.cancel("u1", at_ms=START_MS - 19 * DAY_MS)
    with pytest.raises(ExportError, match="max_events"):
        backend.export_transactions()


# ----------------------------------------------------------------------------- versions


def _single_purchase(backend: RevenueCatBackend) -> None:
    backend.create_customer("u1", attributes={"$email": "a@example.com", "note": 'say "hi"; ok'})
    backend.buy("u1", "premium_monthly", at_ms=START_MS - DAY_MS)


def test_each_version_has_its_columns() -> None:
    """v3 lacks gross prices and updated_at, v5 adds offers, v7 swaps the experiment columns."""
    v3, v4, v5, v7 = (set(columns_for(v)) for v in (3, 4, 5, 7))
    assert {"purchase_price_in_usd", "updated_at", "country_source"} <= v4 - v3
    assert {"offer", "offer_type", "first_seen_time", "auto_resume_time"} == v5 - v4
    assert v7 - v5 == {V7_EXPERIMENTS_COLUMN} and v5 - v7 == {"experiment_id", "experiment_variant"}
    assert columns_for(6) == columns_for(5)


def test_v3_writes_t_f_and_curly_arrays(backend: RevenueCatBackend) -> None:
    """Version 3: booleans t/f and entitlement_identifiers as a {a,b} literal."""
    _single_purchase(backend)
    (row,) = _parse(backend.export_transactions(version=3).to_bytes())
    assert (row["is_auto_renewable"], row["is_sandbox"]) == ("t", "f")
    assert row["entitlement_identifiers"] == "{pro,premium}"


def test_v5_encloses_json_with_backslash_escapes(backend: RevenueCatBackend) -> None:
    """Version 4/5: true/false, [..] arrays, JSON enclosed in quotes with inner ones escaped."""
    _single_purchase(backend)
    data = backend.export_transactions(version=5).to_bytes()
    assert '"{\\"$email\\": {\\"value\\": \\"a@example.com\\"' in gzip.decompress(data).decode()
    (row,) = _parse(data, escaped=True)
    assert row["is_auto_renewable"] == "true"
    assert row["entitlement_identifiers"] == '["pro", "premium"]'
    assert '"value": "say \\"hi\\"; ok"' in row["custom_subscriber_attributes"]


def test_v6_quotes_json_the_standard_way(backend: RevenueCatBackend) -> None:
    """Version 6: a plain CSV reader reads the JSON columns back intact."""
    import json

    _single_purchase(backend)
    (row,) = _parse(backend.export_transactions(version=6).to_bytes())
    assert json.loads(row["custom_subscriber_attributes"])["note"]["value"] == 'say "hi"; ok'
    assert json.loads(row["entitlement_identifiers"]) == ["pro", "premium"]


def test_v7_writes_experiments_by_layer(clock: VirtualClock) -> None:
    """Version 7: one JSON column of enrollments by layer instead of experiment_id/variant."""
    import json

    backend = RevenueCatBackend(clock=clock, seed=1)
    experiment = {"experiment_id": "prexp1", "experiment_variant": "b", "enrolled_at_ms": 1}
    backend.create_customer("u1", experiments=[experiment])
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    (row,) = _parse(backend.export_transactions(version=7).to_bytes())
    assert json.loads(row[V7_EXPERIMENTS_COLUMN]) == {
        "default": {"experiment_id": "prexp1", "experiment_variant": "b"}
    }
    assert "experiment_id" not in row
    (v5,) = _parse(backend.export_transactions(version=5).to_bytes(), escaped=True)
    assert (v5["experiment_id"], v5["experiment_variant"]) == ("prexp1", "b")


def test_times_are_utc_to_the_second_and_nulls_empty(backend: RevenueCatBackend) -> None:
    """start_time is written ``YYYY-MM-DD HH:MM:SS`` in UTC; a null is an empty field."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS + 123)
    (row,) = _parse(backend.export_transactions(version=6).to_bytes())
    assert row["start_time"] == _time(START_MS - DAY_MS) and row["refunded_at"] == ""


def test_a_column_subset_keeps_the_file_order(backend: RevenueCatBackend) -> None:
    """Chosen columns are written in the version's order, the others left out."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    export = backend.export_transactions(
        columns=["store_transaction_id", "rc_original_app_user_id"]
    )
    header = gzip.decompress(export.to_bytes()).decode().splitlines()[0]
    assert header == "rc_original_app_user_id;store_transaction_id"


def test_an_unknown_column_or_version_is_refused(backend: RevenueCatBackend) -> None:
    """A column the version does not have, or a version that does not exist, is an option error."""
    with pytest.raises(ExportOptionError, match="offer"):
        backend.export_transactions(version=4, columns=["offer"])
    with pytest.raises(ExportOptionError, match="version"):
        backend.export_transactions(version=2)


# ----------------------------------------------------------------------------- files


def test_write_lays_the_file_out_as_in_a_bucket(backend: RevenueCatBackend, tmp_path: Path) -> None:
    """``write`` puts a gzip file at <base>/<date>/transactions_<timestamp>.csv.gz."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    path = backend.export_transactions().write(tmp_path)
    assert path == tmp_path / "2023-11-14" / "transactions_20231114T221320Z.csv.gz"
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert len(_parse(path.read_bytes())) == 1


def test_the_same_history_gives_the_same_bytes(backend: RevenueCatBackend) -> None:
    """The gzip stream has no timestamp: two exports of one history are identical."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    assert backend.export_transactions().to_bytes() == backend.export_transactions().to_bytes()


def test_parquet_keeps_types(backend: RevenueCatBackend) -> None:
    """A Parquet export has native booleans, floats and UTC timestamps, JSON as text."""
    pq = importlib.import_module("pyarrow.parquet")
    backend.create_customer("u1", attributes={"$clevertapId": "ct-1"})
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    data = backend.export_transactions(fmt="parquet").to_bytes()
    (row,) = pq.read_table(io.BytesIO(data)).to_pylist()
    assert row["is_sandbox"] is False and row["price_in_usd"] == 9.99
    assert int(row["start_time"].timestamp() * 1000) == START_MS - DAY_MS
    assert '"$clevertapId"' in row["reserved_subscriber_attributes"]
    assert row["entitlement_identifiers"] == ["pro"]


def test_parquet_without_pyarrow_is_a_clear_error(
    backend: RevenueCatBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pyarrow a Parquet export names the extra to install."""
    real = importlib.import_module

    def no_pyarrow(name: str, package: str | None = None) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_pyarrow)
    with pytest.raises(ParquetUnavailable, match=r"rc-clevertap\[exports\]"):
        backend.export_transactions(fmt="parquet").to_bytes()


# ----------------------------------------------------------------------------- HTTP


async def test_http_answers_the_file_with_its_name_and_count(
    backend: RevenueCatBackend, client: httpx.AsyncClient
) -> None:
    """GET /exports/transactions answers the gzip CSV, named as RevenueCat names it."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    response = await client.get(f"{BASE}/exports/transactions", params={"version": 6})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert (
        'filename="transactions_20231114T221320Z.csv.gz"' in response.headers["content-disposition"]
    )
    assert response.headers["x-export-rows"] == "1"
    assert _parse(response.content)[0]["product_identifier"] == "pro_monthly"


async def test_http_incremental_export(
    backend: RevenueCatBackend, client: httpx.AsyncClient
) -> None:
    """since_ms over HTTP gives only the rows updated after it."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - 20 * DAY_MS)
    (new,) = backend.buy("u2", "pro_monthly", at_ms=START_MS - 2 * DAY_MS)
    response = await client.get(
        f"{BASE}/exports/transactions", params={"since_ms": START_MS - 10 * DAY_MS}
    )
    assert [r["store_transaction_id"] for r in _parse(response.content)] == [new["transaction_id"]]


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ({"version": "9"}, 400, "version"),
        ({"version": "five"}, 400, "version"),
        ({"format": "xlsx"}, 400, "format"),
        ({"columns": "nope"}, 400, "nope"),
        ({"since": "1"}, 400, "since"),
    ],
)
async def test_http_bad_options_are_400(
    client: httpx.AsyncClient, query: dict[str, str], status: int, word: str
) -> None:
    """An unknown version, format, column or parameter is a 400 naming it."""
    response = await client.get(f"{BASE}/exports/transactions", params=query)
    assert response.status_code == status
    assert word in response.json()["message"]


async def test_http_full_event_log_is_409(clock: VirtualClock) -> None:
    """Over HTTP a possibly incomplete history is a 409, not a short file."""
    from mockserver.app import create_app

    backend = RevenueCatBackend(clock=clock, seed=1, max_events=1)
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    transport = httpx.ASGITransport(app=create_app(revenuecat_backend=backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(f"{BASE}/exports/transactions")
    assert response.status_code == 409 and "max_events" in response.json()["message"]


def test_population_rows_count_each_kind_of_change(backend: RevenueCatBackend) -> None:
    """Refund, cancellation and billing-issue times in a population match its events' counts."""
    events = backend.play(backend.plan_population(120, seed=2))
    kinds = Counter(
        "refund" if e.get("cancel_reason") == "CUSTOMER_SUPPORT" else e["type"] for e in events
    )
    rows = backend.export_transactions().rows
    assert sum(r["refunded_at"] is not None for r in rows) == kinds["refund"]
    assert sum(r["billing_issues_detected_at"] is not None for r in rows) == kinds["BILLING_ISSUE"]


def test_an_extension_moves_the_end_time(backend: RevenueCatBackend) -> None:
    """SUBSCRIPTION_EXTENDED moves the row's end_time (and effective end) later."""
    (bought,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 10 * DAY_MS)
    (extended,) = backend.simulate("extend", "u1", days=5, at_ms=START_MS - 9 * DAY_MS)
    row = _rows(backend.export_transactions())[bought["transaction_id"]]
    assert row["end_time"] == bought["expiration_at_ms"] + 5 * DAY_MS == row["effective_end_time"]
    assert extended["expiration_at_ms"] == row["end_time"]


def test_a_reversed_refund_restores_the_row(backend: RevenueCatBackend) -> None:
    """REFUND_REVERSED clears refunded_at and gives the price and the period back."""
    (bought,) = backend.buy("u1", "pro_monthly", at_ms=START_MS - 10 * DAY_MS)
    backend.refund("u1", at_ms=START_MS - 9 * DAY_MS)
    backend.simulate("reverse_refund", "u1", at_ms=START_MS - 8 * DAY_MS)
    row = _rows(backend.export_transactions(version=5))[bought["transaction_id"]]
    assert row["refunded_at"] is None and row["price_in_usd"] == 9.99
    assert row["effective_end_time"] == bought["expiration_at_ms"]


def test_events_outside_store_transactions_change_no_row(backend: RevenueCatBackend) -> None:
    """A test event and an invoice add no row; the purchase's row stays as it was."""
    backend.buy("u1", "pro_monthly", at_ms=START_MS - 10 * DAY_MS)
    before = backend.export_transactions().rows
    backend.simulate("send_test_event", "u1", at_ms=START_MS - 9 * DAY_MS)
    backend.simulate("issue_invoice", "u2", "pro_monthly", at_ms=START_MS - 8 * DAY_MS)
    assert backend.export_transactions().rows == before


async def test_http_parquet_without_pyarrow_is_501(
    backend: RevenueCatBackend, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP a Parquet export on a mock without pyarrow is a 501 naming the extra."""
    real = importlib.import_module

    def no_pyarrow(name: str, package: str | None = None) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_pyarrow)
    response = await client.get(f"{BASE}/exports/transactions", params={"format": "parquet"})
    assert response.status_code == 501 and "exports" in response.json()["message"]


async def test_http_parquet_export(backend: RevenueCatBackend, client: httpx.AsyncClient) -> None:
    """format=parquet answers a Parquet file named .parquet."""
    pq = importlib.import_module("pyarrow.parquet")
    backend.buy("u1", "pro_monthly", at_ms=START_MS - DAY_MS)
    response = await client.get(f"{BASE}/exports/transactions", params={"format": "parquet"})
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert ".parquet" in response.headers["content-disposition"]
    assert pq.read_table(io.BytesIO(response.content)).num_rows == 1
