"""Store operations by app user id: the store simulator run on a backend's customers.

:class:`StoreOperations` is the backend's store part: each method finds the customer (creating
it when missing), runs the simulator operation at ``at_ms`` (default: the virtual clock's now)
under the customers' lock, records the events and queues them for the webhook targets.
:data:`STORE_OPERATIONS` names them all; :meth:`StoreOperations.simulate` runs one by name.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

from mockserver.revenuecat.catalogue import Environment, Store
from mockserver.revenuecat.customers import Customers
from mockserver.revenuecat.models import Customer
from mockserver.revenuecat.other_events import OtherEvents
from mockserver.revenuecat.simulator import StoreSimulator
from mockserver.revenuecat.webhooks import WebhookEmitter

__all__ = ["STORE_OPERATIONS", "StoreOperations"]

Event = dict[str, Any]

#: Every store operation, by the name of its method (and of ``POST /simulate/{name}``).
STORE_OPERATIONS: Final[tuple[str, ...]] = (
    "start_trial",
    "buy",
    "convert_trial",
    "renew",
    "cancel",
    "uncancel",
    "refund",
    "billing_issue",
    "expire",
    "change_product",
    "buy_non_renewing",
    "transfer",
    "pause",
    # outside the purchase lifecycle (other_events.py)
    "send_test_event",
    "extend",
    "reverse_refund",
    "grant_temporary_entitlement",
    "issue_invoice",
    "grant_virtual_currency",
    "enroll_in_experiment",
)


class StoreOperations:
    """Simulator operations on :class:`~.customers.Customers`, and the log of emitted events.

    Parameters:
        customers: the customers, and their lock.
        simulator: the store's state machine.
        webhooks: the emitter every event is queued on.
        max_events: emitted events kept for inspection (oldest dropped first).
    """

    def __init__(
        self,
        customers: Customers,
        *,
        simulator: StoreSimulator,
        webhooks: WebhookEmitter,
        max_events: int,
    ) -> None:
        self.customers = customers
        self.simulator = simulator
        self.other = OtherEvents(simulator)
        self.webhooks = webhooks
        self._events: deque[Event] = deque(maxlen=max_events)

    @property
    def max_events(self) -> int | None:
        return self._events.maxlen

    def _emit(self, events: list[Event]) -> list[Event]:
        for event in events:
            self._events.append(event)
            self.webhooks.enqueue(event)
        return events

    def _run(
        self, app_user_id: str, at_ms: int | None, operation: Callable[[Customer, int], list[Event]]
    ) -> list[Event]:
        with self.customers.lock:
            customer = self.customers.find_or_create(app_user_id)
            events = operation(customer, self.customers.clock.now_ms() if at_ms is None else at_ms)
            return self._emit(events)

    def simulate(self, operation: str, app_user_id: str, *args: Any, **kwargs: Any) -> list[Event]:
        """Run the store operation named ``operation`` on ``app_user_id``; the events emitted.

        Like every store operation it creates the customer when missing (a ``transfer``
        creates its destination; its source, ``app_user_id``, must exist).  An unknown
        operation is a ValueError naming the known ones.
        """
        if operation not in STORE_OPERATIONS:
            known = ", ".join(STORE_OPERATIONS)
            raise ValueError(f"unknown store operation {operation!r}; known: {known}")
        run: Callable[..., list[Event]] = getattr(self, operation)
        return run(app_user_id, *args, **kwargs)

    def start_trial(
        self,
        app_user_id: str,
        product_id: str,
        *,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
        country: str | None = None,
        presented_offering_id: str | None = "default",
        at_ms: int | None = None,
    ) -> list[Event]:
        """INITIAL_PURCHASE with period_type TRIAL (see :meth:`StoreSimulator.start_trial`)."""
        return self._run(app_user_id, at_ms, lambda customer, at: self.simulator.start_trial(
            customer, product_id, at_ms=at, store=store, environment=environment,
            country=country, presented_offering_id=presented_offering_id,
        ))  # fmt: skip

    def buy(
        self,
        app_user_id: str,
        product_id: str,
        *,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
        country: str | None = None,
        intro: bool = False,
        offer_code: str | None = None,
        presented_offering_id: str | None = "default",
        at_ms: int | None = None,
    ) -> list[Event]:
        """INITIAL_PURCHASE, NORMAL or INTRO (see :meth:`StoreSimulator.buy`)."""
        return self._run(app_user_id, at_ms, lambda customer, at: self.simulator.buy(
            customer, product_id, at_ms=at, store=store, environment=environment,
            country=country, intro=intro, offer_code=offer_code,
            presented_offering_id=presented_offering_id,
        ))  # fmt: skip

    def buy_non_renewing(
        self,
        app_user_id: str,
        product_id: str,
        *,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
        country: str | None = None,
        presented_offering_id: str | None = "default",
        at_ms: int | None = None,
    ) -> list[Event]:
        """NON_RENEWING_PURCHASE (see :meth:`StoreSimulator.buy_non_renewing`)."""
        return self._run(app_user_id, at_ms, lambda customer, at: self.simulator.buy_non_renewing(
            customer, product_id, at_ms=at, store=store, environment=environment,
            country=country, presented_offering_id=presented_offering_id,
        ))  # fmt: skip

    def convert_trial(
        self, app_user_id: str, product_id: str | None = None, *, at_ms: int | None = None
    ) -> list[Event]:
        """RENEWAL with ``is_trial_conversion`` true."""
        return self._run(
            app_user_id, at_ms, lambda c, at: self.simulator.convert_trial(c, product_id, at_ms=at)
        )

    def renew(
        self, app_user_id: str, product_id: str | None = None, *, at_ms: int | None = None
    ) -> list[Event]:
        """RENEWAL with the next ``renewal_number``."""
        return self._run(
            app_user_id, at_ms, lambda c, at: self.simulator.renew(c, product_id, at_ms=at)
        )

    def cancel(
        self,
        app_user_id: str,
        product_id: str | None = None,
        *,
        reason: str = "UNSUBSCRIBE",
        at_ms: int | None = None,
    ) -> list[Event]:
        """CANCELLATION with ``cancel_reason`` (CUSTOMER_SUPPORT is a refund)."""
        return self._run(
            app_user_id,
            at_ms,
            lambda c, at: self.simulator.cancel(c, product_id, at_ms=at, reason=reason),
        )

    def uncancel(
        self, app_user_id: str, product_id: str | None = None, *, at_ms: int | None = None
    ) -> list[Event]:
        """UNCANCELLATION."""
        return self._run(
            app_user_id, at_ms, lambda c, at: self.simulator.uncancel(c, product_id, at_ms=at)
        )

    def refund(
        self, app_user_id: str, product_id: str | None = None, *, at_ms: int | None = None
    ) -> list[Event]:
        """CANCELLATION with CUSTOMER_SUPPORT and negative prices."""
        return self._run(
            app_user_id, at_ms, lambda c, at: self.simulator.refund(c, product_id, at_ms=at)
        )

    def billing_issue(
        self,
        app_user_id: str,
        product_id: str | None = None,
        *,
        grace_period_days: int | None = None,
        at_ms: int | None = None,
    ) -> list[Event]:
        """BILLING_ISSUE + CANCELLATION(BILLING_ERROR) (+ EXPIRATION without a grace period)."""
        return self._run(app_user_id, at_ms, lambda c, at: self.simulator.billing_issue(
            c, product_id, at_ms=at, grace_period_days=grace_period_days
        ))  # fmt: skip

    def expire(
        self,
        app_user_id: str,
        product_id: str | None = None,
        *,
        reason: str | None = None,
        at_ms: int | None = None,
    ) -> list[Event]:
        """EXPIRATION with ``expiration_reason`` (inferred from the state when not given)."""
        return self._run(
            app_user_id,
            at_ms,
            lambda c, at: self.simulator.expire(c, product_id, at_ms=at, reason=reason),
        )

    def change_product(
        self,
        app_user_id: str,
        new_product_id: str,
        product_id: str | None = None,
        *,
        immediate: bool = True,
        at_ms: int | None = None,
    ) -> list[Event]:
        """PRODUCT_CHANGE (+ RENEWAL on the App Store, + INITIAL_PURCHASE on Play)."""
        return self._run(app_user_id, at_ms, lambda c, at: self.simulator.change_product(
            c, product_id, new_product_id, at_ms=at, immediate=immediate
        ))  # fmt: skip

    def pause(
        self,
        app_user_id: str,
        product_id: str | None = None,
        *,
        resume_after_days: int = 30,
        at_ms: int | None = None,
    ) -> list[Event]:
        """SUBSCRIPTION_PAUSED (Google Play only)."""
        return self._run(app_user_id, at_ms, lambda c, at: self.simulator.pause(
            c, product_id, at_ms=at, resume_after_days=resume_after_days
        ))  # fmt: skip

    def transfer(
        self, from_app_user_id: str, to_app_user_id: str, *, at_ms: int | None = None
    ) -> list[Event]:
        """TRANSFER of every purchase from one customer to another (created if new)."""
        with self.customers.lock:
            source = self.customers.customer(from_app_user_id)
            destination = self.customers.find_or_create(to_app_user_id)
            stamp = self.customers.clock.now_ms() if at_ms is None else at_ms
            return self._emit(self.simulator.transfer(source, destination, at_ms=stamp))

    # --- outside the purchase lifecycle (other_events.py) ------------------------------------

    def send_test_event(
        self,
        app_user_id: str,
        *,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
        at_ms: int | None = None,
    ) -> list[Event]:
        """TEST, the dashboard's test event (shape UNCONFIRMED)."""
        return self._run(app_user_id, at_ms, lambda c, at: self.other.send_test_event(
            c, at_ms=at, store=store, environment=environment
        ))  # fmt: skip

    def extend(
        self,
        app_user_id: str,
        product_id: str | None = None,
        *,
        days: int = 7,
        at_ms: int | None = None,
    ) -> list[Event]:
        """SUBSCRIPTION_EXTENDED: the renewal date moves ``days`` (1-90) later."""
        return self._run(
            app_user_id, at_ms, lambda c, at: self.other.extend(c, product_id, at_ms=at, days=days)
        )

    def reverse_refund(
        self, app_user_id: str, product_id: str | None = None, *, at_ms: int | None = None
    ) -> list[Event]:
        """REFUND_REVERSED (App Store): the refund is undone, access comes back."""
        return self._run(
            app_user_id, at_ms, lambda c, at: self.other.reverse_refund(c, product_id, at_ms=at)
        )

    def grant_temporary_entitlement(
        self,
        app_user_id: str,
        *,
        store: Store | str = Store.APP_STORE,
        at_ms: int | None = None,
    ) -> list[Event]:
        """TEMPORARY_ENTITLEMENT_GRANT, with its reduced field set."""
        return self._run(app_user_id, at_ms, lambda c, at: self.other.grant_temporary_entitlement(
            c, at_ms=at, store=store
        ))  # fmt: skip

    def issue_invoice(
        self,
        app_user_id: str,
        product_id: str,
        *,
        country: str | None = None,
        environment: Environment | str = Environment.PRODUCTION,
        at_ms: int | None = None,
    ) -> list[Event]:
        """INVOICE_ISSUANCE: a Web Billing invoice for ``product_id``."""
        return self._run(app_user_id, at_ms, lambda c, at: self.other.issue_invoice(
            c, product_id, at_ms=at, country=country, environment=environment
        ))  # fmt: skip

    def grant_virtual_currency(
        self,
        app_user_id: str,
        product_id: str | None = None,
        *,
        amount: int = 100,
        currency: str = "CRD",
        at_ms: int | None = None,
    ) -> list[Event]:
        """VIRTUAL_CURRENCY_TRANSACTION: the currency a purchase grants."""
        return self._run(app_user_id, at_ms, lambda c, at: self.other.grant_virtual_currency(
            c, product_id, at_ms=at, amount=amount, currency=currency
        ))  # fmt: skip

    def enroll_in_experiment(
        self,
        app_user_id: str,
        *,
        experiment_id: str = "prexp1a2b3c4",
        variant: str = "b",
        offering_id: str | None = None,
        at_ms: int | None = None,
    ) -> list[Event]:
        """EXPERIMENT_ENROLLMENT; later events carry it in ``experiments``."""
        return self._run(app_user_id, at_ms, lambda c, at: self.other.enroll_in_experiment(
            c, at_ms=at, experiment_id=experiment_id, variant=variant, offering_id=offering_id
        ))  # fmt: skip

    def events(
        self, *, event_type: str | None = None, app_user_id: str | None = None
    ) -> list[Event]:
        """Events emitted (up to ``max_events``), oldest first, whatever the targets.

        ``event_type`` and ``app_user_id`` keep only the events of that type or that user.
        """
        with self.customers.lock:
            return [
                e for e in self._events
                if (event_type is None or e.get("type") == event_type)
                and (app_user_id is None or e.get("app_user_id") == app_user_id)
            ]  # fmt: skip

    def clear_events(self) -> None:
        with self.customers.lock:
            self._events.clear()
