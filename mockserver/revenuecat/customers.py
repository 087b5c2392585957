"""The customer registry: customers by app user id and by every alias, bounded, LRU-evicted."""

from __future__ import annotations

from collections import OrderedDict

from mockserver.revenuecat.models import Customer

__all__ = ["CustomerRegistry"]


class CustomerRegistry:
    """Customers keyed by app user id, findable by any alias.

    At most ``max_customers`` are kept: adding one more forgets the least recently used
    customer (every lookup counts as a use).  Not thread-safe: the backend holds its lock.
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
