"""The store simulator's operations on the backend, addressed by app user id.

:class:`StoreOperations` is a mixin of :class:`~mockserver.revenuecat.backend.RevenueCatBackend`:
each method finds (or creates) the customer, runs the simulator operation at ``at_ms`` (default:
the virtual clock's now), records the events and queues them for the webhook targets.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from mockserver.revenuecat.catalogue import Environment, Store
from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.errors import UnknownEntity
from mockserver.revenuecat.models import Customer
from mockserver.revenuecat.simulator import StoreSimulator
from mockserver.revenuecat.webhooks import WebhookEmitter

__all__ = ["StoreOperations"]

Event = dict[str, Any]


class StoreOperations:
    """Simulator operations by app user id; mixed into the backend, which provides the state."""

    clock: VirtualClock
    simulator: StoreSimulator
    webhooks: WebhookEmitter
    _lock: threading.RLock
    _events: deque[Event]

    def _lookup(self, app_user_id: str) -> Customer | None:
        raise NotImplementedError

    def customer(self, app_user_id: str) -> Customer:
        raise NotImplementedError

    def create_customer(self, app_user_id: str) -> Customer:
        raise NotImplementedError

    def _emit(self, events: list[Event]) -> list[Event]:
        for event in events:
            self._events.append(event)
            self.webhooks.enqueue(event)
        return events

    def _run(
        self, app_user_id: str, at_ms: int | None, operation: Callable[[Customer, int], list[Event]]
    ) -> list[Event]:
        with self._lock:
            customer = self._lookup(app_user_id) or self.create_customer(app_user_id)
            events = operation(customer, self.clock.now_ms() if at_ms is None else at_ms)
            return self._emit(events)

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
        with self._lock:
            source = self.customer(from_app_user_id)
            destination = self._lookup(to_app_user_id) or self.create_customer(to_app_user_id)
            stamp = self.clock.now_ms() if at_ms is None else at_ms
            return self._emit(self.simulator.transfer(source, destination, at_ms=stamp))

    def operation(self, name: str) -> Callable[..., list[Event]]:
        """A simulator operation by name (the control API's ``POST /simulate/{name}``)."""
        operations: dict[str, Callable[..., list[Event]]] = {
            "start_trial": self.start_trial, "buy": self.buy,
            "buy_non_renewing": self.buy_non_renewing, "convert_trial": self.convert_trial,
            "renew": self.renew, "cancel": self.cancel, "uncancel": self.uncancel,
            "refund": self.refund, "billing_issue": self.billing_issue, "expire": self.expire,
            "change_product": self.change_product, "pause": self.pause,
            "transfer": self.transfer,
        }  # fmt: skip
        try:
            return operations[name]
        except KeyError:
            raise UnknownEntity(f"unknown operation {name!r}") from None

    def events(self) -> list[Event]:
        """Every event emitted (up to ``max_events``), oldest first, whatever the targets."""
        with self._lock:
            return list(self._events)
