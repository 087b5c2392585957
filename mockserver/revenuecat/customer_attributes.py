"""Customer attributes by app user id: the v1 and v2 writes and reads of the RevenueCat mock.

The rules for one attribute (keys, values, newer-wins) are in :mod:`.attributes`; this part
finds the customer and applies a whole request under the customers' lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockserver.revenuecat.attributes import MAX_CUSTOM_ATTRIBUTES, is_custom, parse_v2_attributes
from mockserver.revenuecat.customers import Customers
from mockserver.revenuecat.errors import (
    EmptyAppUserId,
    InvalidAttributesBody,
    InvalidSubscriberAttributes,
    ParameterError,
    SubscriberNotFound,
)
from mockserver.revenuecat.models import Customer
from mockserver.revenuecat.views import attribute_list_json

__all__ = ["CustomerAttributes"]


class CustomerAttributes:
    """Attribute writes and reads on :class:`~.customers.Customers`.

    Parameters:
        customers: the customers, and their lock.
        create_on_attribute_post: a v1 attribute POST for an unknown app user id creates the
            customer (``True``) or answers 404.
    """

    def __init__(self, customers: Customers, *, create_on_attribute_post: bool) -> None:
        self.customers = customers
        self.create_on_attribute_post = create_on_attribute_post

    def post_attributes_v1(self, app_user_id: str, body: object) -> Customer:
        """``POST /v1/subscribers/{id}/attributes``: newer-wins, per-key errors (7263/7264)."""
        if not app_user_id:
            raise EmptyAppUserId()
        writes = _v1_writes(body, self.customers.clock.now_ms())
        errors: list[dict[str, str]] = []
        with self.customers.lock:
            customer = self.customers.find(app_user_id)
            if customer is None:
                if not self.create_on_attribute_post:
                    raise SubscriberNotFound()
                customer = self.customers.create_customer(app_user_id)
            for key, value, stamp in writes:
                problem = customer.attributes.set(key, value, stamp)
                if problem is not None:
                    errors.append({"key_name": key, "message": problem})
        if errors:
            raise InvalidSubscriberAttributes(errors)
        return customer

    def v1_post_attributes(
        self, app_user_id: str, body: object, *, include_attributes: bool
    ) -> dict[str, Any]:
        """The HTTP answer to a v1 attribute POST: the customer's Customer Info."""
        with self.customers.lock:
            customer = self.post_attributes_v1(app_user_id, body)
            return self.customers.subscriber_body(customer, include_attributes=include_attributes)

    def set_attributes(
        self, app_user_id: str, attributes: Mapping[str, str | None], *, at_ms: int | None = None
    ) -> Customer:
        """Python API: set attributes as the SDK would (creating the customer if needed)."""
        stamp = self.customers.clock.now_ms() if at_ms is None else at_ms
        body = {
            "attributes": {k: {"value": v, "updated_at_ms": stamp} for k, v in attributes.items()}
        }
        return self.post_attributes_v1(app_user_id, body)

    def v2_list_attributes(
        self,
        project_id: str,
        customer_id: str,
        *,
        limit: int = 20,
        starting_after: str | None = None,
    ) -> dict[str, Any]:
        customer = self.customers.v2_customer(project_id, customer_id)
        with self.customers.lock:
            return attribute_list_json(
                customer, self.customers.project_id, limit=limit, starting_after=starting_after
            )

    def v2_set_attributes(self, project_id: str, customer_id: str, body: object) -> dict[str, Any]:
        """``POST .../attributes``: 1 to 50 ``{name, value}``; all or nothing; ``null`` deletes."""
        customer = self.customers.v2_customer(project_id, customer_id)
        items = parse_v2_attributes(body)
        with self.customers.lock:
            custom = {k for k, _ in customer.attributes.items() if is_custom(k)}
            for name, value in items:
                if is_custom(name):
                    (custom.add if value else custom.discard)(name)
            if len(custom) > MAX_CUSTOM_ATTRIBUTES:
                raise ParameterError(
                    f"a customer can have at most {MAX_CUSTOM_ATTRIBUTES} custom attributes",
                    param="attributes",
                )
            now = self.customers.clock.now_ms()
            for name, value in items:
                current = customer.attributes.get(name)
                # A v2 write is the server's own and always newest, even after a v1 write
                # stamped in the future by a device with a fast clock.
                stamp = max(now, current.updated_at_ms + 1) if current else now
                customer.attributes.set(name, value, stamp)
            return attribute_list_json(customer, self.customers.project_id, limit=50)


def _v1_writes(body: object, now: int) -> list[tuple[str, object, int]]:
    """The ``(key, value, updated_at_ms)`` writes of a v1 attributes body, or 7264."""
    entries = body.get("attributes") if isinstance(body, dict) else None
    if not isinstance(entries, dict):
        raise InvalidAttributesBody("The body must be an object with an 'attributes' object.")
    writes: list[tuple[str, object, int]] = []
    for key, entry in entries.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise InvalidAttributesBody(f"Attribute {key!r} must be an object with a 'value'.")
        stamp = entry.get("updated_at_ms", now)  # missing: server time (UNCONFIRMED)
        if stamp is None:
            stamp = now
        if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp < 0:
            raise InvalidAttributesBody(f"Attribute {key!r} has an invalid 'updated_at_ms'.")
        writes.append((key, entry["value"], stamp))
    return writes
