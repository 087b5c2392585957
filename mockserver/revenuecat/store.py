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
        self, operation: Callable[..., list[Event]], app_user_id: str, **kwargs: Any
    ) -> list[Event]:
        at_ms = kwargs.pop("at_ms", None)
        with self._lock:
            customer = self._lookup(app_user_id) or self.create_customer(app_user_id)
            events = operation(
                customer, at_ms=self.clock.now_ms() if at_ms is None else at_ms, **kwargs
            )
            return self._emit(events)

    def start_trial(self, app_user_id: str, product_id: str, **kwargs: Any) -> list[Event]:
        """INITIAL_PURCHASE (TRIAL).  Keywords: store, environment, country, at_ms."""
        return self._run(self.simulator.start_trial, app_user_id, product_id=product_id, **kwargs)

    def buy(self, app_user_id: str, product_id: str, **kwargs: Any) -> list[Event]:
        """INITIAL_PURCHASE.  Keywords: store, environment, country, intro, offer_code, at_ms."""
        return self._run(self.simulator.buy, app_user_id, product_id=product_id, **kwargs)

    def buy_non_renewing(self, app_user_id: str, product_id: str, **kwargs: Any) -> list[Event]:
        """NON_RENEWING_PURCHASE.  Keywords: store, environment, country, at_ms."""
        return self._run(
            self.simulator.buy_non_renewing, app_user_id, product_id=product_id, **kwargs
        )

    def convert_trial(
        self, app_user_id: str, product_id: str | None = None, **kwargs: Any
    ) -> list[Event]:
        """RENEWAL with ``is_trial_conversion`` true."""
        return self._run(self.simulator.convert_trial, app_user_id, product_id=product_id, **kwargs)

    def renew(self, app_user_id: str, product_id: str | None = None, **kwargs: Any) -> list[Event]:
        """RENEWAL with the next ``renewal_number``."""
        return self._run(self.simulator.renew, app_user_id, product_id=product_id, **kwargs)

    def cancel(self, app_user_id: str, product_id: str | None = None, **kwargs: Any) -> list[Event]:
        """CANCELLATION.  Keyword: reason (default UNSUBSCRIBE)."""
        return self._run(self.simulator.cancel, app_user_id, product_id=product_id, **kwargs)

    def uncancel(
        self, app_user_id: str, product_id: str | None = None, **kwargs: Any
    ) -> list[Event]:
        """UNCANCELLATION."""
        return self._run(self.simulator.uncancel, app_user_id, product_id=product_id, **kwargs)

    def refund(self, app_user_id: str, product_id: str | None = None, **kwargs: Any) -> list[Event]:
        """CANCELLATION with CUSTOMER_SUPPORT and negative prices."""
        return self._run(self.simulator.refund, app_user_id, product_id=product_id, **kwargs)

    def billing_issue(
        self, app_user_id: str, product_id: str | None = None, **kwargs: Any
    ) -> list[Event]:
        """BILLING_ISSUE + CANCELLATION(BILLING_ERROR).  Keyword: grace_period_days."""
        return self._run(self.simulator.billing_issue, app_user_id, product_id=product_id, **kwargs)

    def expire(self, app_user_id: str, product_id: str | None = None, **kwargs: Any) -> list[Event]:
        """EXPIRATION.  Keyword: reason."""
        return self._run(self.simulator.expire, app_user_id, product_id=product_id, **kwargs)

    def change_product(
        self, app_user_id: str, new_product_id: str, product_id: str | None = None, **kwargs: Any
    ) -> list[Event]:
        """PRODUCT_CHANGE (+ RENEWAL / INITIAL_PURCHASE).  Keyword: immediate (default True)."""
        return self._run(
            self.simulator.change_product, app_user_id, product_id=product_id,
            new_product_id=new_product_id, **kwargs,
        )  # fmt: skip

    def pause(self, app_user_id: str, product_id: str | None = None, **kwargs: Any) -> list[Event]:
        """SUBSCRIPTION_PAUSED (Google Play).  Keyword: resume_after_days."""
        return self._run(self.simulator.pause, app_user_id, product_id=product_id, **kwargs)

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
