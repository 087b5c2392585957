"""Store simulator operations outside the purchase lifecycle, and the events they emit.

Each event has the field set of RevenueCat's own sample for its type
(``revenuecat-docs/webhook-samples/``, revenuecat.md sections 4.2-4.4), values from the
mock's state:

===========================  =================================================================
send_test_event              TEST: the dashboard's test event.  RevenueCat publishes no sample
                             (revenuecat.md 4.4, UNCONFIRMED), so the mock sends the common
                             fields with ``store`` and ``environment``, and changes nothing
extend                       SUBSCRIPTION_EXTENDED: the renewal date moves 1-90 days later
                             (api-v1.yaml ``extend-an-apple-subscription``); price 0
reverse_refund               REFUND_REVERSED (App Store only): a refund is undone, access and
                             expiry come back; the transaction's price, ``metadata`` null
grant_temporary_entitlement  TEMPORARY_ENTITLEMENT_GRANT: the reduced field set of its sample
                             (no ``environment``, no attributes); state unchanged (temporary
                             grants are not modelled in Customer Info)
issue_invoice                INVOICE_ISSUANCE (Web Billing, ``RC_BILLING``): an invoice for a
                             product, no purchase yet; no ``price`` (USD), null shares and ids,
                             as in the sample
grant_virtual_currency       VIRTUAL_CURRENCY_TRANSACTION: a purchase's virtual currency
                             (``adjustments``, ``purchase_environment``, ``source``
                             ``in_app_purchase``); no ``original_app_user_id``, as in the sample
enroll_in_experiment         EXPERIMENT_ENROLLMENT; the customer's later events carry the
                             enrollment in ``experiments`` (RevenueCat's 2025 field)
===========================  =================================================================

A state that does not allow an operation raises :class:`SimulationError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from mockserver.revenuecat.catalogue import DAY_MS, Environment, Store
from mockserver.revenuecat.errors import SimulationError
from mockserver.revenuecat.events import EventType, purchase_event
from mockserver.revenuecat.models import Customer, Purchase

if TYPE_CHECKING:
    from mockserver.revenuecat.simulator import StoreSimulator

__all__ = ["MAX_EXTENSION_DAYS", "VIRTUAL_CURRENCIES", "OtherEvents"]

Event = dict[str, Any]

MAX_EXTENSION_DAYS: Final = 90  # "for up to 90 days" (api-v1.yaml extend-an-apple-subscription)
#: Virtual currencies the simulated app has: code -> (name, description).
VIRTUAL_CURRENCIES: Final = {
    "CRD": ("Credits", "The main currency unit"),
    "GEM": ("Gems", "A premium currency"),
}
_APPLE = frozenset({Store.APP_STORE, Store.MAC_APP_STORE})
_VARIANTS = frozenset("abcd")  # "'a' represents the Control, and 'b' the Treatment" (api-v2)


def _environment(environment: Environment | str) -> Environment:
    try:
        return Environment(environment)
    except ValueError:
        raise SimulationError(f"unknown environment {environment!r}") from None


class OtherEvents:
    """The operations of the table above, on the simulator's customers and catalogue.

    Parameters:
        simulator: the store simulator, for ids, purchase lookup and the catalogue.
    """

    def __init__(self, simulator: StoreSimulator) -> None:
        self.simulator = simulator
        self.catalogue = simulator.catalogue

    def _common(self, event_type: EventType, customer: Customer, at_ms: int) -> Event:
        """The fields every event about a customer carries (revenuecat.md 4.3)."""
        return {
            "type": str(event_type),
            "id": self.simulator.new_id(),
            "event_timestamp_ms": at_ms,
            "app_user_id": customer.app_user_id,
            "original_app_user_id": customer.original_app_user_id,
            "aliases": customer.all_ids(),
            "subscriber_attributes": customer.attributes.to_json(),
            "experiments": [dict(e) for e in customer.experiments],
        }

    def _purchase_event(
        self, event_type: EventType, customer: Customer, purchase: Purchase, at_ms: int
    ) -> Event:
        return purchase_event(
            event_type, event_id=self.simulator.new_id(), at_ms=at_ms, customer=customer,
            purchase=purchase, catalogue=self.catalogue,
        )  # fmt: skip

    def send_test_event(
        self,
        customer: Customer,
        *,
        at_ms: int,
        store: Store | str = Store.APP_STORE,
        environment: Environment | str = Environment.PRODUCTION,
    ) -> list[Event]:
        """TEST, as the dashboard's "send test event" button sends (shape UNCONFIRMED)."""
        info = self.catalogue.store(store)
        event = self._common(EventType.TEST, customer, at_ms)
        event.update(
            app_id=info.app_id, store=str(info.store), environment=str(_environment(environment))
        )
        return [event]

    def extend(
        self, customer: Customer, product_id: str | None = None, *, at_ms: int, days: int = 7
    ) -> list[Event]:
        """Move a live subscription's renewal date ``days`` later: SUBSCRIPTION_EXTENDED."""
        if not 1 <= days <= MAX_EXTENSION_DAYS:
            raise SimulationError(f"days must be 1 to {MAX_EXTENSION_DAYS}")
        purchase = self.simulator.subscription(customer, product_id)
        self.simulator.require_live(purchase, at_ms, "extend")
        assert purchase.expires_at_ms is not None  # a live subscription has an expiry
        purchase.expires_at_ms += days * DAY_MS
        if purchase.grace_period_expires_at_ms is not None:
            purchase.grace_period_expires_at_ms += days * DAY_MS
        return [self._purchase_event(EventType.SUBSCRIPTION_EXTENDED, customer, purchase, at_ms)]

    def reverse_refund(
        self, customer: Customer, product_id: str | None = None, *, at_ms: int
    ) -> list[Event]:
        """Undo the refund of the latest purchase (of ``product_id``): REFUND_REVERSED.

        App Store only (revenuecat.md 4.2; the Mac App Store is Apple's too).  The expiry the
        refund cut short comes back, so access returns if that expiry is still ahead.
        """
        purchase = self.simulator.find(customer, product_id)
        if purchase.refunded_at_ms is None:
            raise SimulationError("cannot reverse a refund: the purchase is not refunded")
        if purchase.store not in _APPLE:
            raise SimulationError("only App Store refunds are reversed (REFUND_REVERSED)")
        purchase.refunded_at_ms = None
        purchase.expires_at_ms = purchase.expires_before_refund_ms
        purchase.expires_before_refund_ms = None
        event = self._purchase_event(EventType.REFUND_REVERSED, customer, purchase, at_ms)
        event["metadata"] = None  # null in RevenueCat's sample; its contents are undocumented
        return [event]

    def grant_temporary_entitlement(
        self, customer: Customer, *, at_ms: int, store: Store | str = Store.APP_STORE
    ) -> list[Event]:
        """TEMPORARY_ENTITLEMENT_GRANT, with the reduced field set of RevenueCat's sample."""
        info = self.catalogue.store(store)
        return [
            {
                "type": str(EventType.TEMPORARY_ENTITLEMENT_GRANT),
                "id": self.simulator.new_id(),
                "app_id": info.app_id,
                "event_timestamp_ms": at_ms,
                "app_user_id": customer.app_user_id,
                "store": str(info.store),
            }
        ]

    def issue_invoice(
        self,
        customer: Customer,
        product_id: str,
        *,
        at_ms: int,
        country: str | None = None,
        environment: Environment | str = Environment.PRODUCTION,
    ) -> list[Event]:
        """An invoice for ``product_id`` on Web Billing: INVOICE_ISSUANCE (no purchase yet)."""
        product = self.catalogue.product(product_id)
        code = country or customer.country_code or "US"
        currency = self.catalogue.country(code).currency
        if currency not in self.catalogue.usd_rates:
            raise SimulationError(f"no USD rate for {currency}")
        info = self.catalogue.store(Store.RC_BILLING)
        event = self._common(EventType.INVOICE_ISSUANCE, customer, at_ms)
        event.update(
            app_id=info.app_id, product_id=product.id, period_type=None, purchased_at_ms=at_ms,
            expiration_at_ms=None, environment=str(_environment(environment)),
            entitlement_id=None, entitlement_ids=None, presented_offering_id=None,
            transaction_id=None, original_transaction_id=None, is_family_share=False,
            country_code=code, currency=currency,
            price_in_purchased_currency=self.catalogue.local_price(product, currency),
            store=str(info.store), takehome_percentage=None, offer_code=None,
            tax_percentage=None, commission_percentage=None, metadata=None, renewal_number=None,
        )  # fmt: skip
        return [event]

    def grant_virtual_currency(
        self,
        customer: Customer,
        product_id: str | None = None,
        *,
        at_ms: int,
        amount: int = 100,
        currency: str = "CRD",
    ) -> list[Event]:
        """The virtual currency the latest purchase (of ``product_id``) grants:
        VIRTUAL_CURRENCY_TRANSACTION with one adjustment of ``amount`` ``currency``."""
        if currency not in VIRTUAL_CURRENCIES:
            raise SimulationError(f"unknown virtual currency {currency!r}")
        if amount < 1:
            raise SimulationError("amount must be >= 1 (a purchase grants currency)")
        purchase = self.simulator.find(customer, product_id)
        if purchase.refunded_at_ms is not None:
            raise SimulationError("a refunded purchase grants no virtual currency")
        name, description = VIRTUAL_CURRENCIES[currency]
        product = self.catalogue.product(purchase.product_id)
        event = self._common(EventType.VIRTUAL_CURRENCY_TRANSACTION, customer, at_ms)
        del event["original_app_user_id"]  # not in RevenueCat's sample
        event.update(
            app_id=self.catalogue.store(purchase.store).app_id,
            adjustments=[
                {"amount": amount,
                 "currency": {"code": currency, "description": description, "name": name}}
            ],
            country_code=purchase.country_code, product_display_name=product.display_name,
            product_id=product.id, purchase_environment=str(purchase.environment),
            source="in_app_purchase", store=str(purchase.store),
            transaction_id=purchase.transaction_id,
            virtual_currency_transaction_id="vatx" + self.simulator.new_id().replace("-", "")[:15],
        )  # fmt: skip
        return [event]

    def enroll_in_experiment(
        self,
        customer: Customer,
        *,
        at_ms: int,
        experiment_id: str = "prexp1a2b3c4",
        variant: str = "b",
        offering_id: str | None = None,
    ) -> list[Event]:
        """Enroll the customer in an experiment: EXPERIMENT_ENROLLMENT.

        Later events of the customer carry ``{experiment_id, experiment_variant,
        enrolled_at_ms}`` in ``experiments``.  ``offering_id`` defaults to
        ``experiment_offering_<variant>``, as in RevenueCat's sample.
        """
        if not experiment_id:
            raise SimulationError("experiment_id must not be empty")
        if variant not in _VARIANTS:
            raise SimulationError("variant must be one of a, b, c, d (a is the control)")
        if any(e["experiment_id"] == experiment_id for e in customer.experiments):
            raise SimulationError(f"already enrolled in experiment {experiment_id!r}")
        customer.experiments.append(
            {"experiment_id": experiment_id, "experiment_variant": variant, "enrolled_at_ms": at_ms}
        )
        return [
            {
                "type": str(EventType.EXPERIMENT_ENROLLMENT),
                "id": self.simulator.new_id(),
                "event_timestamp_ms": at_ms,
                "app_user_id": customer.app_user_id,
                "original_app_user_id": customer.original_app_user_id,
                "aliases": customer.all_ids(),
                "experiment_id": experiment_id,
                "experiment_variant": variant,
                "offering_id": offering_id or f"experiment_offering_{variant}",
                "experiment_enrolled_at_ms": at_ms,
            }
        ]
