"""The store simulator: purchase lifecycle operations and the webhook events each produces.

Each operation changes a customer's purchases and returns the events RevenueCat sends for it
(event-flows page, revenuecat.md section 4.3):

=================  ===========================================================================
start_trial        INITIAL_PURCHASE, period_type TRIAL, price 0
buy                INITIAL_PURCHASE, period_type NORMAL (or INTRO at the intro price)
convert_trial      RENEWAL with is_trial_conversion true (trial conversions count as renewals)
renew              RENEWAL, renewal_number + 1 (also a lapsed resubscription, a resume, a
                   billing recovery, and where a deferred product change takes effect); the
                   new period starts at the event (purchased_at_ms <= event_timestamp_ms):
                   renewing before the period ends ends it early
cancel(reason)     CANCELLATION with cancel_reason; auto-renew off, access kept until expiry
uncancel           UNCANCELLATION
refund             CANCELLATION with CUSTOMER_SUPPORT and negative prices; access revoked
billing_issue      BILLING_ISSUE + CANCELLATION(BILLING_ERROR), + EXPIRATION(BILLING_ERROR)
                   when the store has no grace period
expire(reason)     EXPIRATION with expiration_reason
change_product     PRODUCT_CHANGE, + RENEWAL (App Store) or + INITIAL_PURCHASE (Play) when
                   immediate; deferred changes apply at the next renew
buy_non_renewing   NON_RENEWING_PURCHASE, expiration_at_ms null
transfer           TRANSFER (destination customer only; no app_user_id)
pause              SUBSCRIPTION_PAUSED with auto_resume_at_ms (Google Play only)
=================  ===========================================================================

A state that does not allow an operation raises :class:`SimulationError`.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from mockserver.revenuecat.catalogue import (
    DAY_MS,
    Catalogue,
    Environment,
    Product,
    Store,
)
from mockserver.revenuecat.errors import SimulationError, UnknownEntity
from mockserver.revenuecat.events import (
    CANCEL_REASONS,
    EXPIRATION_REASONS,
    EventType,
    purchase_event,
    transfer_event,
)
from mockserver.revenuecat.models import Customer, Purchase

__all__ = ["StoreSimulator"]

Event = dict[str, Any]


class StoreSimulator:
    """Runs lifecycle operations on customers' purchases.

    The backend calls it with a resolved :class:`Customer`; every operation takes ``at_ms``,
    the virtual time the store reported the change, which becomes ``event_timestamp_ms``.

    Parameters:
        catalogue: products, stores, countries and rates.
        rng: the seeded random source for transaction and event ids.
    """

    def __init__(self, *, catalogue: Catalogue, rng: random.Random) -> None:
        self.catalogue = catalogue
        self._rng = rng
        self._counter = 0

    # --- ids ------------------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh uuid4 from the seeded source (event ids, purchase ids)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _original_transaction_id(self, store: Store) -> str:
        self._counter += 1
        if store is Store.PLAY_STORE:
            digits = f"{self._rng.getrandbits(60):017d}"[-17:]
            return f"GPA.{digits[:4]}-{digits[4:8]}-{digits[8:12]}-{digits[12:17]}"
        if store in (Store.APP_STORE, Store.MAC_APP_STORE):
            return f"2000{self._counter:012d}"
        if store is Store.STRIPE:
            return f"sub_{self._rng.getrandbits(96):024x}"
        return f"{store.value.lower()[:3]}_{self._rng.getrandbits(96):024x}"

    def _next_transaction_id(self, purchase: Purchase) -> str:
        purchase.renewal_count += 1
        if purchase.store is Store.PLAY_STORE:
            # Play renewals keep the order id with a "..N" suffix.
            return f"{purchase.original_transaction_id}..{purchase.renewal_count - 1}"
        if purchase.store in (Store.APP_STORE, Store.MAC_APP_STORE):
            self._counter += 1
            return f"2000{self._counter:012d}"
        return f"in_{self._rng.getrandbits(96):024x}"

    # --- helpers ----------------------------------------------------------------------------

    def _event(
        self,
        event_type: EventType,
        customer: Customer,
        purchase: Purchase,
        at_ms: int,
        *,
        refund: bool = False,
        **extra: Any,
    ) -> Event:
        return purchase_event(
            event_type,
            event_id=self.new_id(),
            at_ms=at_ms,
            customer=customer,
            purchase=purchase,
            catalogue=self.catalogue,
            refund=refund,
            extra=extra,
        )

    def find(self, customer: Customer, product_id: str | None = None) -> Purchase:
        """The customer's latest purchase of ``product_id`` (or latest subscription)."""
        for purchase in reversed(customer.purchases):
            if purchase.replaced:
                continue
            if product_id is None and purchase.is_subscription:
                return purchase
            if purchase.product_id == product_id:
                return purchase
        what = f"product {product_id!r}" if product_id else "any subscription"
        raise UnknownEntity(f"customer {customer.app_user_id!r} has no purchase of {what}")

    def subscription(self, customer: Customer, product_id: str | None) -> Purchase:
        """:meth:`find`, refusing a one-off purchase."""
        purchase = self.find(customer, product_id)
        if not purchase.is_subscription:
            raise SimulationError(f"{purchase.product_id!r} is not a subscription")
        return purchase

    @staticmethod
    def require_live(
        purchase: Purchase, at_ms: int, operation: str, *, inclusive: bool = False
    ) -> None:
        """Refuse ``operation`` on a subscription that has ended or whose period is over."""
        if purchase.expired or purchase.refunded_at_ms is not None or purchase.replaced:
            raise SimulationError(f"cannot {operation}: the subscription has ended")
        until = purchase.access_until_ms()
        if until is not None and (until < at_ms or (until == at_ms and not inclusive)):
            raise SimulationError(f"cannot {operation}: the subscription period has ended")

    def _country(self, customer: Customer, country: str | None) -> str:
        code = country or customer.country_code or "US"
        self.catalogue.country(code)
        customer.country_code = code
        return code

    def _new_purchase(
        self,
        customer: Customer,
        product: Product,
        *,
        store: Store | str,
        environment: Environment | str,
        country: str | None,
        at_ms: int,
        period_type: str,
        expires_at_ms: int | None,
        local_price: float,
        presented_offering_id: str | None,
        offer_code: str | None,
    ) -> Purchase:
        store_info = self.catalogue.store(store)
        try:
            env = Environment(environment)
        except ValueError:
            raise SimulationError(f"unknown environment {environment!r}") from None
        code = self._country(customer, country)
        currency = self.catalogue.countries[code].currency
        if currency not in self.catalogue.usd_rates:
            raise SimulationError(f"no USD rate for {currency}")
        original = self._original_transaction_id(store_info.store)
        purchase = Purchase(
            id=self.new_id().replace("-", "")[:10],
            product_id=product.id,
            store=store_info.store,
            environment=env,
            is_subscription=product.is_subscription,
            original_transaction_id=original,
            transaction_id=original,
            original_purchased_at_ms=at_ms,
            purchased_at_ms=at_ms,
            expires_at_ms=expires_at_ms,
            period_type=period_type,
            currency=currency,
            price_in_purchased_currency=local_price,
            price_usd=self.catalogue.to_usd(local_price, currency),
            country_code=code,
            presented_offering_id=presented_offering_id,
            offer_code=offer_code,
            # "renewal_number ... starts at 1; trial conversions count as renewals"
            # (revenuecat.md 4.3): the first period is 1 (INFERRED), null for one-off products.
            renewal_number=1 if product.is_subscription else None,
        )
        customer.purchases.append(purchase)
        return purchase

    def _reprice(self, purchase: Purchase, product: Product, *, intro: bool = False) -> None:
        local = self.catalogue.local_price(product, purchase.currency, intro=intro)
        purchase.price_in_purchased_currency = local
        purchase.price_usd = self.catalogue.to_usd(local, purchase.currency)

    def _check_no_active(self, customer: Customer, product: Product, at_ms: int) -> None:
        for purchase in customer.purchases:
            if purchase.product_id == product.id and purchase.is_active(at_ms):
                raise SimulationError(
                    f"customer {customer.app_user_id!r} already has an active {product.id!r}"
                )

    # --- operations -------------------------------------------------------------------------

    def start_trial(
        self,
        customer: Customer,
        product_id: str,
        *,
        at_ms: int,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
        country: str | None = None,
        presented_offering_id: str | None = "default",
    ) -> list[Event]:
        """Start a free trial: INITIAL_PURCHASE with period_type TRIAL and price 0."""
        product = self.catalogue.product(product_id)
        if not product.is_subscription or not product.trial_days:
            raise SimulationError(f"{product_id!r} has no free trial")
        self._check_no_active(customer, product, at_ms)
        purchase = self._new_purchase(
            customer, product, store=store, environment=environment, country=country,
            at_ms=at_ms, period_type="TRIAL", expires_at_ms=at_ms + product.trial_days * DAY_MS,
            local_price=0.0, presented_offering_id=presented_offering_id, offer_code=None,
        )  # fmt: skip
        return [self._event(EventType.INITIAL_PURCHASE, customer, purchase, at_ms)]

    def buy(
        self,
        customer: Customer,
        product_id: str,
        *,
        at_ms: int,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
        country: str | None = None,
        intro: bool = False,
        offer_code: str | None = None,
        presented_offering_id: str | None = "default",
    ) -> list[Event]:
        """Buy a subscription: INITIAL_PURCHASE, NORMAL or (with ``intro``) INTRO."""
        product = self.catalogue.product(product_id)
        if not product.is_subscription:
            raise SimulationError(f"{product_id!r} is not a subscription; use buy_non_renewing")
        if intro and not product.intro_days:
            raise SimulationError(f"{product_id!r} has no introductory price")
        self._check_no_active(customer, product, at_ms)
        code = self._country(customer, country)
        currency = self.catalogue.countries[code].currency
        days = product.intro_days if intro and product.intro_days else product.duration_days
        assert days is not None
        purchase = self._new_purchase(
            customer, product, store=store, environment=environment, country=code,
            at_ms=at_ms, period_type="INTRO" if intro else "NORMAL",
            expires_at_ms=at_ms + days * DAY_MS,
            local_price=self.catalogue.local_price(product, currency, intro=intro),
            presented_offering_id=presented_offering_id, offer_code=offer_code,
        )  # fmt: skip
        return [self._event(EventType.INITIAL_PURCHASE, customer, purchase, at_ms)]

    def buy_non_renewing(
        self,
        customer: Customer,
        product_id: str,
        *,
        at_ms: int,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
        country: str | None = None,
        presented_offering_id: str | None = "default",
    ) -> list[Event]:
        """Buy a one-off product: NON_RENEWING_PURCHASE with ``expiration_at_ms`` null."""
        product = self.catalogue.product(product_id)
        if product.is_subscription:
            raise SimulationError(f"{product_id!r} is a subscription; use buy")
        code = self._country(customer, country)
        currency = self.catalogue.countries[code].currency
        purchase = self._new_purchase(
            customer, product, store=store, environment=environment, country=code,
            at_ms=at_ms, period_type="NORMAL", expires_at_ms=None,
            local_price=self.catalogue.local_price(product, currency),
            presented_offering_id=presented_offering_id, offer_code=None,
        )  # fmt: skip
        return [self._event(EventType.NON_RENEWING_PURCHASE, customer, purchase, at_ms)]

    def renew(
        self, customer: Customer, product_id: str | None = None, *, at_ms: int
    ) -> list[Event]:
        """Start the next paid period: RENEWAL (a trial converts, a lapsed one resubscribes)."""
        purchase = self.subscription(customer, product_id)
        if purchase.refunded_at_ms is not None:
            raise SimulationError("cannot renew a refunded subscription; buy again")
        lapsed = purchase.expired or (purchase.access_until_ms() or 0) <= at_ms
        recovering = purchase.billing_issue_detected_at_ms is not None
        resuming = purchase.auto_resume_at_ms is not None
        if not purchase.auto_renew and not (lapsed or recovering):
            raise SimulationError("cannot renew: auto-renew is off (uncancel it first)")
        # A trial converts when the paid period starts at its end or before it; only one that
        # ended earlier (expired, or access over before ``at_ms``) starts afresh.  At the exact
        # end of the trial, where populations convert, it is still a conversion.
        in_trial = not purchase.expired and (purchase.access_until_ms() or 0) >= at_ms
        trial_conversion = purchase.period_type == "TRIAL" and in_trial
        if purchase.pending_product_id is not None:
            purchase.product_id = purchase.pending_product_id
            purchase.pending_product_id = None
        product = self.catalogue.product(purchase.product_id)
        # The store reports a renewal when the new period starts, so it never starts after
        # the event: a renewal (or trial conversion) before the period's end, e.g. called
        # without a clock advance, ends the current period early at ``at_ms``, as an early
        # trial conversion does.  Only a billing recovery in the grace period starts where the
        # unpaid period began (before ``at_ms``).
        start = at_ms if (lapsed or resuming) else min(at_ms, purchase.expires_at_ms or at_ms)
        purchase.purchased_at_ms = start
        purchase.expires_at_ms = start + product.duration_ms
        purchase.period_type = "NORMAL"
        purchase.transaction_id = self._next_transaction_id(purchase)
        purchase.renewal_number = (purchase.renewal_number or 0) + 1
        purchase.auto_renew = True
        purchase.expired = False
        purchase.unsubscribe_detected_at_ms = None
        purchase.billing_issue_detected_at_ms = None
        purchase.grace_period_expires_at_ms = None
        purchase.auto_resume_at_ms = None
        self._reprice(purchase, product)
        return [
            self._event(
                EventType.RENEWAL, customer, purchase, at_ms, is_trial_conversion=trial_conversion
            )
        ]

    def convert_trial(
        self, customer: Customer, product_id: str | None = None, *, at_ms: int
    ) -> list[Event]:
        """Convert a trial to paid: RENEWAL with ``is_trial_conversion`` true."""
        purchase = self.subscription(customer, product_id)
        if purchase.period_type != "TRIAL":
            raise SimulationError("cannot convert: the subscription is not in a trial")
        if not purchase.auto_renew or purchase.expired:
            raise SimulationError("cannot convert: the trial was cancelled or has expired")
        return self.renew(customer, purchase.product_id, at_ms=at_ms)

    def cancel(
        self,
        customer: Customer,
        product_id: str | None = None,
        *,
        at_ms: int,
        reason: str = "UNSUBSCRIBE",
    ) -> list[Event]:
        """Turn auto-renew off: CANCELLATION with ``cancel_reason`` (CUSTOMER_SUPPORT refunds)."""
        if reason not in CANCEL_REASONS:
            raise SimulationError(f"unknown cancel_reason {reason!r}")
        if reason == "CUSTOMER_SUPPORT":
            return self.refund(customer, product_id, at_ms=at_ms)
        purchase = self.subscription(customer, product_id)
        self.require_live(purchase, at_ms, "cancel")
        if not purchase.auto_renew:
            raise SimulationError("cannot cancel: auto-renew is already off")
        purchase.auto_renew = False
        purchase.unsubscribe_detected_at_ms = at_ms
        return [
            self._event(EventType.CANCELLATION, customer, purchase, at_ms, cancel_reason=reason)
        ]

    def uncancel(
        self, customer: Customer, product_id: str | None = None, *, at_ms: int
    ) -> list[Event]:
        """Turn auto-renew back on before expiry: UNCANCELLATION."""
        purchase = self.subscription(customer, product_id)
        self.require_live(purchase, at_ms, "uncancel")
        if purchase.auto_renew:
            raise SimulationError("cannot uncancel: the subscription is not cancelled")
        if purchase.billing_issue_detected_at_ms is not None:
            raise SimulationError("cannot uncancel a billing issue; renew to recover it")
        if not self.catalogue.store(purchase.store).supports_uncancel:
            raise SimulationError(f"{purchase.store} does not report uncancellations")
        purchase.auto_renew = True
        purchase.unsubscribe_detected_at_ms = None
        return [self._event(EventType.UNCANCELLATION, customer, purchase, at_ms)]

    def refund(
        self, customer: Customer, product_id: str | None = None, *, at_ms: int
    ) -> list[Event]:
        """Refund the latest period (or a one-off purchase): CANCELLATION, CUSTOMER_SUPPORT.

        Prices are negative; access is revoked at once.  Auto-renew may stay on, as with
        RevenueCat (revenuecat.md section 4.3, ``CUSTOMER_SUPPORT``).
        """
        purchase = self.find(customer, product_id)
        if purchase.refunded_at_ms is not None:
            raise SimulationError("cannot refund: already refunded")
        purchase.refunded_at_ms = at_ms
        purchase.expires_before_refund_ms = purchase.expires_at_ms  # for a REFUND_REVERSED
        if purchase.is_subscription and (purchase.expires_at_ms or 0) > at_ms:
            purchase.expires_at_ms = at_ms
        event = self._event(
            EventType.CANCELLATION, customer, purchase, at_ms, refund=True,
            cancel_reason="CUSTOMER_SUPPORT",
        )  # fmt: skip
        return [event]

    def billing_issue(
        self,
        customer: Customer,
        product_id: str | None = None,
        *,
        at_ms: int,
        grace_period_days: int | None = None,
    ) -> list[Event]:
        """The store could not charge: BILLING_ISSUE + CANCELLATION(BILLING_ERROR).

        With a grace period (the store's default unless ``grace_period_days`` is given) access
        continues until it ends; without one, EXPIRATION(BILLING_ERROR) follows at once
        (event-flows page).
        """
        purchase = self.subscription(customer, product_id)
        self.require_live(purchase, at_ms, "flag a billing issue", inclusive=True)
        if not purchase.auto_renew:
            raise SimulationError("no billing issue possible: auto-renew is off")
        days = grace_period_days
        if days is None:
            days = self.catalogue.store(purchase.store).grace_period_days
        if days < 0:
            raise SimulationError("grace_period_days must be >= 0")
        base = purchase.expires_at_ms or at_ms
        grace_end = base + days * DAY_MS if days else None
        purchase.billing_issue_detected_at_ms = at_ms
        purchase.grace_period_expires_at_ms = grace_end
        purchase.auto_renew = False
        events = [
            self._event(
                EventType.BILLING_ISSUE, customer, purchase, at_ms,
                grace_period_expiration_at_ms=grace_end,
            ),
            self._event(
                EventType.CANCELLATION, customer, purchase, at_ms, cancel_reason="BILLING_ERROR"
            ),
        ]  # fmt: skip
        if grace_end is None:
            events += self.expire(
                customer, purchase.product_id, at_ms=at_ms, reason="BILLING_ERROR"
            )
        return events

    def expire(
        self,
        customer: Customer,
        product_id: str | None = None,
        *,
        at_ms: int,
        reason: str | None = None,
    ) -> list[Event]:
        """End access: EXPIRATION with ``expiration_reason``.

        Without a reason: UNSUBSCRIBE after a cancel, BILLING_ERROR after a billing issue,
        SUBSCRIPTION_PAUSED after a pause.  An auto-renewing subscription needs an explicit one.
        """
        purchase = self.subscription(customer, product_id)
        if purchase.expired:
            raise SimulationError("cannot expire: already expired")
        if reason is None:
            if purchase.auto_resume_at_ms is not None:
                reason = "SUBSCRIPTION_PAUSED"
            elif purchase.billing_issue_detected_at_ms is not None:
                reason = "BILLING_ERROR"
            elif purchase.refunded_at_ms is not None:
                reason = "CUSTOMER_SUPPORT"
            elif not purchase.auto_renew:
                reason = "UNSUBSCRIBE"
            else:
                raise SimulationError(
                    "the subscription renews: cancel it, flag a billing issue, or give a reason"
                )
        if reason not in EXPIRATION_REASONS:
            raise SimulationError(f"unknown expiration_reason {reason!r}")
        if purchase.expires_at_ms is None or purchase.expires_at_ms > at_ms:
            purchase.expires_at_ms = at_ms
        purchase.expired = True
        purchase.grace_period_expires_at_ms = None
        return [
            self._event(EventType.EXPIRATION, customer, purchase, at_ms, expiration_reason=reason)
        ]

    def change_product(
        self,
        customer: Customer,
        product_id: str | None,
        new_product_id: str,
        *,
        at_ms: int,
        immediate: bool = True,
    ) -> list[Event]:
        """Switch plans: PRODUCT_CHANGE, plus the store's follow-up event when immediate."""
        purchase = self.subscription(customer, product_id)
        self.require_live(purchase, at_ms, "change product")
        new_product = self.catalogue.product(new_product_id)
        if not new_product.is_subscription or new_product.id == purchase.product_id:
            raise SimulationError(f"cannot change to {new_product_id!r}")
        store = self.catalogue.store(purchase.store)
        if store.product_change_event is None:
            raise SimulationError(f"{purchase.store} does not report product changes")
        events = [
            self._event(
                EventType.PRODUCT_CHANGE, customer, purchase, at_ms, new_product_id=new_product.id
            )
        ]
        if not immediate:
            purchase.pending_product_id = new_product.id
            return events
        if store.product_change_event == "INITIAL_PURCHASE":
            # Google Play: the upgrade is a new purchase token; the old one is replaced.
            purchase.replaced = True
            purchase.expires_at_ms = at_ms
            new = self._new_purchase(
                customer, new_product, store=purchase.store, environment=purchase.environment,
                country=purchase.country_code, at_ms=at_ms, period_type="NORMAL",
                expires_at_ms=at_ms + new_product.duration_ms,
                local_price=self.catalogue.local_price(new_product, purchase.currency),
                presented_offering_id=purchase.presented_offering_id, offer_code=None,
            )  # fmt: skip
            return [*events, self._event(EventType.INITIAL_PURCHASE, customer, new, at_ms)]
        # App Store (and the others): the same subscription continues on the new product.
        purchase.product_id = new_product.id
        purchase.purchased_at_ms = at_ms
        purchase.expires_at_ms = at_ms + new_product.duration_ms
        purchase.period_type = "NORMAL"
        purchase.transaction_id = self._next_transaction_id(purchase)
        purchase.renewal_number = (purchase.renewal_number or 0) + 1
        self._reprice(purchase, new_product)
        renewal = self._event(
            EventType.RENEWAL, customer, purchase, at_ms, is_trial_conversion=False
        )
        return [*events, renewal]

    def pause(
        self,
        customer: Customer,
        product_id: str | None = None,
        *,
        at_ms: int,
        resume_after_days: int = 30,
    ) -> list[Event]:
        """Schedule a pause at period end (Google Play only): SUBSCRIPTION_PAUSED."""
        purchase = self.subscription(customer, product_id)
        self.require_live(purchase, at_ms, "pause")
        if not self.catalogue.store(purchase.store).supports_pause:
            raise SimulationError("only Google Play subscriptions can be paused")
        if not purchase.auto_renew or purchase.auto_resume_at_ms is not None:
            raise SimulationError("cannot pause: cancelled or already paused")
        if resume_after_days < 1:
            raise SimulationError("resume_after_days must be >= 1")
        resume = (purchase.expires_at_ms or at_ms) + resume_after_days * DAY_MS
        purchase.auto_resume_at_ms = resume
        return [
            self._event(
                EventType.SUBSCRIPTION_PAUSED, customer, purchase, at_ms, auto_resume_at_ms=resume
            )
        ]

    def transfer(self, source: Customer, destination: Customer, *, at_ms: int) -> list[Event]:
        """Move every purchase of ``source`` to ``destination`` (a restore on another account)."""
        if source is destination:
            raise SimulationError("cannot transfer a customer's purchases to itself")
        if not source.purchases:
            raise SimulationError(f"customer {source.app_user_id!r} has nothing to transfer")
        moved = list(source.purchases)
        source.purchases.clear()
        destination.purchases.extend(moved)
        return [
            transfer_event(
                event_id=self.new_id(),
                at_ms=at_ms,
                purchase=moved[-1],
                catalogue=self.catalogue,
                transferred_from=[source.app_user_id],
                transferred_to=[destination.app_user_id],
            )
        ]
