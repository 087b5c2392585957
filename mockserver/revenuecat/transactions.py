"""The store's transactions, from the events the simulator emitted (for Scheduled Data Exports).

A RevenueCat export has one row per store transaction (``exports.py``); the simulator keeps
only each purchase's current state, so the rows are rebuilt from its event log, in the order
the events were emitted, which is the order the state machine ran them in::

    rows = transactions_from_events(backend.events(), as_of_ms=now)

How the events become rows:

=======================  ====================================================================
INITIAL_PURCHASE,        a new row: ``start_time`` = ``purchased_at``, ``end_time`` = the
RENEWAL,                 period's expiration (null for non-renewing products), prices from the
NON_RENEWING_PURCHASE    event; a RENEWAL that starts inside the previous period of the same
                         subscription (an App Store product change) ends that row there
CANCELLATION             ``unsubscribe_detected_at``; ``CUSTOMER_SUPPORT`` is a refund instead:
                         ``refunded_at``, access ends, and from v4 on ``price_in_*`` are 0 while
                         ``purchase_price_in_*`` keep the gross price; ``BILLING_ERROR`` is the
                         billing issue's companion and adds nothing
UNCANCELLATION           clears ``unsubscribe_detected_at`` (the row changed, so it reappears in
                         an incremental export)
BILLING_ISSUE            ``billing_issues_detected_at`` and ``grace_period_end_time``
EXPIRATION               access ends (``effective_end_time``) when the event says so
PRODUCT_CHANGE           on Google Play, the INITIAL_PURCHASE that follows ends the old row
SUBSCRIPTION_PAUSED      ``auto_resume_time``
SUBSCRIPTION_EXTENDED    ``end_time`` (the renewal date moved later)
REFUND_REVERSED          the refund is undone: ``refunded_at`` cleared, the period's end back
TRANSFER                 the rows move to the destination customer
(others)                 TEST, temporary grants, invoices, virtual currency and experiment
                         enrollments are not store transactions and change no row
=======================  ====================================================================

Every change sets the row's ``updated_at`` to the event's time; an incremental export
(``since_ms``) holds the rows with ``updated_at`` after it.  Times are epoch milliseconds here;
``exports.py`` writes them as RevenueCat does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mockserver.revenuecat.catalogue import Store

__all__ = ["Transaction", "transactions_from_events"]

Event = Mapping[str, Any]


@dataclass
class Transaction:
    """One store transaction as the export knows it (times in epoch ms, UTC)."""

    store_transaction_id: str
    original_store_transaction_id: str
    app_user_id: str
    original_app_user_id: str
    product_id: str
    store: str
    is_sandbox: bool
    is_auto_renewable: bool
    is_trial_period: bool
    is_in_intro_offer_period: bool
    is_trial_conversion: bool
    renewal_number: int
    start_ms: int
    end_ms: int | None
    currency: str | None
    price_usd: float
    price_local: float
    takehome_percentage: float
    tax_percentage: float
    commission_percentage: float
    entitlement_ids: tuple[str, ...]
    country: str | None
    presented_offering: str | None
    offer_code: str | None
    updated_ms: int
    attributes: Mapping[str, Any] = field(default_factory=dict)  # the last event's
    experiments: Sequence[Mapping[str, Any]] = ()  # the last event's
    grace_period_end_ms: int | None = None
    refunded_at_ms: int | None = None
    unsubscribe_detected_at_ms: int | None = None
    billing_issues_detected_at_ms: int | None = None
    ended_at_ms: int | None = None  # access ended before the period's end (expiry, upgrade)
    auto_resume_ms: int | None = None

    @property
    def effective_end_ms(self) -> int | None:
        """When access ends: refunds, early ends and grace periods included (v3 page)."""
        if self.refunded_at_ms is not None:
            return self.refunded_at_ms
        if self.ended_at_ms is not None:
            return self.ended_at_ms
        if self.end_ms is None:
            return None
        return max(self.end_ms, self.grace_period_end_ms or self.end_ms)

    def touch(self, event: Event) -> None:
        self.updated_ms = max(self.updated_ms, int(event["event_timestamp_ms"]))
        if "subscriber_attributes" in event:
            self.attributes = event["subscriber_attributes"] or {}
            self.experiments = event.get("experiments") or ()


def _new_transaction(event: Event) -> Transaction:
    at = int(event["event_timestamp_ms"])
    auto_renewable = event["type"] != "NON_RENEWING_PURCHASE"
    return Transaction(
        store_transaction_id=event["transaction_id"],
        original_store_transaction_id=event["original_transaction_id"],
        app_user_id=event["app_user_id"],
        original_app_user_id=event.get("original_app_user_id") or event["app_user_id"],
        product_id=event["product_id"],
        store=event["store"],
        is_sandbox=event["environment"] == "SANDBOX",
        is_auto_renewable=auto_renewable,
        is_trial_period=event.get("period_type") == "TRIAL",
        is_in_intro_offer_period=event.get("period_type") == "INTRO",
        is_trial_conversion=bool(event.get("is_trial_conversion")),
        # Not nullable in the export; the webhook's null for a one-off purchase becomes 1.
        renewal_number=int(event.get("renewal_number") or 1),
        start_ms=int(event.get("purchased_at_ms") or at),
        end_ms=event.get("expiration_at_ms") if auto_renewable else None,
        currency=event.get("currency"),
        price_usd=float(event.get("price") or 0.0),
        price_local=float(event.get("price_in_purchased_currency") or 0.0),
        takehome_percentage=float(event.get("takehome_percentage") or 0.0),
        tax_percentage=float(event.get("tax_percentage") or 0.0),
        commission_percentage=float(event.get("commission_percentage") or 0.0),
        entitlement_ids=tuple(event.get("entitlement_ids") or ()),
        country=event.get("country_code"),
        presented_offering=event.get("presented_offering_id"),
        offer_code=event.get("offer_code"),
        updated_ms=at,
        attributes=event.get("subscriber_attributes") or {},
        experiments=event.get("experiments") or (),
    )


class _Ledger:
    """Folds the simulator's events, in the order it emitted them, into transactions."""

    def __init__(self) -> None:
        self.rows: dict[str, Transaction] = {}
        self._latest: dict[str, Transaction] = {}  # by original_store_transaction_id
        self._play_change: dict[str, tuple[Transaction, int, str]] = {}  # by app user id

    def _row(self, event: Event) -> Transaction | None:
        row = self.rows.get(str(event.get("transaction_id")))
        if row is None:
            row = self._latest.get(str(event.get("original_transaction_id")))
        return row

    def apply(self, event: Event) -> None:
        kind, at = event.get("type"), int(event["event_timestamp_ms"])
        if kind in ("INITIAL_PURCHASE", "RENEWAL", "NON_RENEWING_PURCHASE"):
            self._start(event, at)
        elif kind == "TRANSFER":
            self._transfer(event, at)
        elif (row := self._row(event)) is not None:
            self._change(row, event, str(kind), at)

    def _start(self, event: Event, at: int) -> None:
        new = _new_transaction(event)
        previous = self._latest.get(new.original_store_transaction_id)
        if previous is not None:
            end = previous.effective_end_ms
            if end is not None and new.start_ms < end:  # an upgrade cut the period short
                previous.ended_at_ms = new.start_ms
                previous.touch(event)
        change = self._play_change.pop(new.app_user_id, None)
        if change is not None and event["type"] == "INITIAL_PURCHASE":
            old, changed_at, new_product = change
            if changed_at == at and new_product == new.product_id:
                old.ended_at_ms = at  # Google Play: the upgrade is a new purchase token
                old.touch(event)
        self.rows[new.store_transaction_id] = new
        self._latest[new.original_store_transaction_id] = new

    def _change(self, row: Transaction, event: Event, kind: str, at: int) -> None:
        if kind == "CANCELLATION":
            reason = event.get("cancel_reason")
            if reason == "CUSTOMER_SUPPORT":  # RevenueCat's refund shape
                row.refunded_at_ms = at
            elif reason != "BILLING_ERROR":
                row.unsubscribe_detected_at_ms = at
        elif kind == "UNCANCELLATION":
            row.unsubscribe_detected_at_ms = None
        elif kind == "BILLING_ISSUE":
            row.billing_issues_detected_at_ms = at
            row.grace_period_end_ms = event.get("grace_period_expiration_at_ms")
        elif kind == "EXPIRATION":
            natural = row.effective_end_ms
            row.ended_at_ms = at if natural is None else min(at, natural)
        elif kind == "SUBSCRIPTION_PAUSED":
            row.auto_resume_ms = event.get("auto_resume_at_ms")
        elif kind == "SUBSCRIPTION_EXTENDED":  # the renewal date, and any grace, move later
            extended = event.get("expiration_at_ms")
            if extended is not None and row.end_ms is not None:
                if row.grace_period_end_ms is not None:
                    row.grace_period_end_ms += int(extended) - row.end_ms
                row.end_ms = int(extended)
        elif kind == "REFUND_REVERSED":  # access and expiry come back
            row.refunded_at_ms = None
            row.ended_at_ms = None
            row.end_ms = event.get("expiration_at_ms", row.end_ms)
        elif kind == "PRODUCT_CHANGE" and row.store == str(Store.PLAY_STORE):
            self._play_change[row.app_user_id] = (row, at, str(event.get("new_product_id")))
            return  # the row changes only if the new purchase follows
        else:
            return
        row.touch(event)

    def _transfer(self, event: Event, at: int) -> None:
        sources = set(event.get("transferred_from") or ())
        destination = (event.get("transferred_to") or [None])[0]
        if destination is None:
            return
        for row in self.rows.values():
            if row.app_user_id in sources:
                row.app_user_id = row.original_app_user_id = destination
                row.updated_ms = max(row.updated_ms, at)


def transactions_from_events(
    events: Iterable[Event], *, as_of_ms: int | None = None
) -> list[Transaction]:
    """The transactions ``events`` (in emission order) describe, as of ``as_of_ms``.

    Events after ``as_of_ms`` have not happened yet for this export and are left out.
    """
    ledger = _Ledger()
    for event in events:
        if as_of_ms is None or int(event["event_timestamp_ms"]) <= as_of_ms:
            ledger.apply(event)
    return sorted(ledger.rows.values(), key=lambda r: (r.start_ms, r.store_transaction_id))
