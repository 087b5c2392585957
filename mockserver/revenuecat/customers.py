"""Customers: created, found by app user id or any alias, deleted, rendered.

:class:`Customers` is the backend's customer part.  It holds the backend's one (re-entrant)
lock, which the attribute and store-operation parts take too, so that an attribute write and a
purchase on the same customer never interleave: Starlette's ``TestClient`` serves requests from
another thread than the test that inspects them.  :class:`CustomerRegistry` underneath is the
bounded index, not thread-safe on its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from mockserver.revenuecat.catalogue import Catalogue
from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.errors import (
    AuthorizationError,
    EmptyAppUserId,
    InvalidSubscriberAttributes,
    ParameterError,
    ResourceMissing,
    SubscriberNotFound,
    UnknownEntity,
)
from mockserver.revenuecat.models import Customer
from mockserver.revenuecat.views import customer_json, customer_summary_json, subscriber_json

__all__ = ["CustomerRegistry", "Customers"]


class CustomerRegistry:
    """Customers keyed by app user id, findable by any alias.

    At most ``max_customers`` are kept: adding one more forgets the least recently used
    customer (every lookup counts as a use).  Not thread-safe: :class:`Customers` holds its lock.
    """

    def __init__(self, *, max_customers: int) -> None:
        if max_customers < 1:
            raise ValueError("max_customers must be >= 1")
        self.max_customers = max_customers
        self._customers: OrderedDict[str, Customer] = OrderedDict()
        self._ids: dict[str, Customer] = {}

    def __len__(self) -> int:
        return len(self._customers)

    def get(self, app_user_id: str) -> Customer | None:
        """The customer known by ``app_user_id`` or one of its aliases, marked recently used."""
        customer = self._ids.get(app_user_id)
        if customer is not None:
            self._customers.move_to_end(customer.app_user_id)
        return customer

    def add(self, customer: Customer) -> None:
        self._customers[customer.app_user_id] = customer
        for known in customer.all_ids():
            self._ids[known] = customer
        while len(self._customers) > self.max_customers:
            _, evicted = self._customers.popitem(last=False)
            self._forget_ids(evicted)

    def remove(self, customer: Customer) -> None:
        self._customers.pop(customer.app_user_id, None)
        self._forget_ids(customer)

    def _forget_ids(self, customer: Customer) -> None:
        for known in customer.all_ids():
            if self._ids.get(known) is customer:
                del self._ids[known]

    def values(self) -> list[Customer]:
        """Every customer, least recently used first."""
        return list(self._customers.values())

    def clear(self) -> None:
        self._customers.clear()
        self._ids.clear()


class Customers:
    """A backend's customers, thread-safe: the customer concept of the RevenueCat mock.

    Parameters:
        clock: the virtual clock (first and last seen times, request dates).
        catalogue: products and stores, for rendering purchases.
        project_id: the one project API v2 serves.
        max_customers: customers kept; beyond it the least recently used one is forgotten.
    """

    def __init__(
        self, *, clock: VirtualClock, catalogue: Catalogue, project_id: str, max_customers: int
    ) -> None:
        self.clock = clock
        self.catalogue = catalogue
        self.project_id = project_id
        self.lock = threading.RLock()
        self._registry = CustomerRegistry(max_customers=max_customers)

    def __len__(self) -> int:
        return len(self._registry)

    @property
    def max_customers(self) -> int:
        return self._registry.max_customers

    def clear(self) -> None:
        with self.lock:
            self._registry.clear()

    def find(self, app_user_id: str) -> Customer | None:
        """The customer known by ``app_user_id`` (or an alias), or None."""
        with self.lock:
            return self._registry.get(app_user_id)

    def find_or_create(self, app_user_id: str) -> Customer:
        with self.lock:
            return self._registry.get(app_user_id) or self.create_customer(app_user_id)

    def customer(self, app_user_id: str) -> Customer:
        """The customer known by ``app_user_id`` (or an alias); UnknownEntity otherwise."""
        customer = self.find(app_user_id)
        if customer is None:
            raise UnknownEntity(f"unknown customer {app_user_id!r}")
        return customer

    def customers(self) -> list[Customer]:
        with self.lock:
            return self._registry.values()

    def create_customer(
        self,
        app_user_id: str,
        *,
        original_app_user_id: str | None = None,
        aliases: Iterable[str] = (),
        attributes: Mapping[str, str | None] | None = None,
        country: str | None = None,
        platform: str | None = None,
        experiments: Iterable[Mapping[str, Any]] = (),
        at_ms: int | None = None,
    ) -> Customer:
        """Create a customer (or return the existing one) with optional attributes."""
        if not app_user_id:
            raise EmptyAppUserId()
        now = self.clock.now_ms() if at_ms is None else at_ms
        with self.lock:
            customer = self._registry.get(app_user_id)
            if customer is None:
                customer = Customer(
                    app_user_id=app_user_id,
                    original_app_user_id=original_app_user_id or app_user_id,
                    first_seen_ms=now,
                    last_seen_ms=now,
                    aliases=[a for a in aliases if a != app_user_id],
                    country_code=country,
                    last_seen_platform=platform,
                    experiments=[dict(e) for e in experiments],
                )
                self._registry.add(customer)
            for key, value in (attributes or {}).items():
                problem = customer.attributes.set(key, value, now)
                if problem is not None:
                    raise InvalidSubscriberAttributes([{"key_name": key, "message": problem}])
        return customer

    def get_or_create(
        self, app_user_id: str, *, platform: str | None = None
    ) -> tuple[Customer, bool]:
        """``GET /v1/subscribers``: the customer and whether it was just created."""
        if not app_user_id:
            raise EmptyAppUserId()
        with self.lock:
            customer = self._registry.get(app_user_id)
            if customer is not None:
                if platform:
                    customer.last_seen_ms = self.clock.now_ms()
                    customer.last_seen_platform = platform
                return customer, False
            return self.create_customer(app_user_id, platform=platform), True

    def delete_customer(self, app_user_id: str) -> Customer:
        """Delete a customer and all its aliases; SubscriberNotFound if unknown."""
        if not app_user_id:
            raise EmptyAppUserId()
        with self.lock:
            customer = self._registry.get(app_user_id)
            if customer is None:
                raise SubscriberNotFound()
            self._registry.remove(customer)
        return customer

    # --- views ------------------------------------------------------------------------------

    def subscriber_body(self, customer: Customer, *, include_attributes: bool) -> dict[str, Any]:
        """The v1 Customer Info body of ``customer``."""
        with self.lock:
            return subscriber_json(
                customer, self.catalogue, self.clock.now_ms(), include_attributes=include_attributes
            )

    def v1_get_subscriber(
        self, app_user_id: str, *, platform: str | None = None, include_attributes: bool
    ) -> tuple[dict[str, Any], bool]:
        """``GET /v1/subscribers/{id}``: Customer Info, and whether the customer is new."""
        with self.lock:
            customer, created = self.get_or_create(app_user_id, platform=platform)
            return self.subscriber_body(customer, include_attributes=include_attributes), created

    def customer_summaries(self, *, limit: int) -> list[dict[str, Any]]:
        """The control API's summary of the first ``limit`` customers (least recent first)."""
        with self.lock:
            now = self.clock.now_ms()
            return [customer_summary_json(c, now) for c in self._registry.values()[:limit]]

    def inspect_customer(self, app_user_id: str) -> dict[str, Any]:
        """The control API's view of one customer: its summary and its Customer Info."""
        with self.lock:
            customer = self.customer(app_user_id)
            return {
                **customer_summary_json(customer, self.clock.now_ms()),
                "customer_info": self.subscriber_body(customer, include_attributes=True),
            }

    # --- API v2 -----------------------------------------------------------------------------

    def v2_customer(self, project_id: str, customer_id: str) -> Customer:
        """The customer a v2 path names, after checking the project and the id."""
        if project_id != self.project_id:
            raise AuthorizationError()
        if not customer_id or len(customer_id) > 1500:
            raise ParameterError("customer_id must be 1 to 1500 characters", param="customer_id")
        customer = self.find(customer_id)
        if customer is None:
            raise ResourceMissing(param="customer_id")
        return customer

    def v2_get_customer(
        self, project_id: str, customer_id: str, *, expand_attributes: bool = False
    ) -> dict[str, Any]:
        customer = self.v2_customer(project_id, customer_id)
        with self.lock:
            return customer_json(
                customer, self.catalogue, self.project_id, self.clock.now_ms(),
                expand_attributes=expand_attributes,
            )  # fmt: skip

    def v2_delete_customer(self, project_id: str, customer_id: str) -> dict[str, Any]:
        customer = self.v2_customer(project_id, customer_id)
        self.delete_customer(customer.app_user_id)
        deleted_at = self.clock.now_ms()
        return {"object": "customer", "id": customer.app_user_id, "deleted_at": deleted_at}
