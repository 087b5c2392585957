"""The simulated app's catalogue: products, prices, stores and countries.

A :class:`Catalogue` is plain immutable data; the store simulator reads it to price purchases
and to fill the money fields of webhook events (revenuecat.md section 4.3):

* ``price`` is in USD, ``price_in_purchased_currency`` in the buyer's currency, converted at the
  catalogue's USD rate (the samples show e.g. CAD 32.99 -> USD 25.487);
* ``commission_percentage`` comes from the store, ``tax_percentage`` from the buyer's country
  (the share of the price that is VAT/GST), ``takehome_percentage`` = 1 - commission.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

from mockserver.revenuecat.errors import UnknownEntity

__all__ = [
    "DAY_MS",
    "Catalogue",
    "Country",
    "Environment",
    "Product",
    "Store",
    "StoreInfo",
    "default_catalogue",
    "money",
]

DAY_MS = 86_400_000


class Environment(enum.StrEnum):
    """The store environment of a transaction (webhook ``environment``)."""

    PRODUCTION = "PRODUCTION"
    SANDBOX = "SANDBOX"


class Store(enum.StrEnum):
    """Stores as webhook events name them; :attr:`StoreInfo.v1_name` is the Customer Info name."""

    APP_STORE = "APP_STORE"
    MAC_APP_STORE = "MAC_APP_STORE"
    PLAY_STORE = "PLAY_STORE"
    AMAZON = "AMAZON"
    STRIPE = "STRIPE"
    RC_BILLING = "RC_BILLING"


def money(value: Decimal | float | str, places: str = "0.001") -> float:
    """A float with no binary noise: ``value`` rounded (half-even) to ``places``."""
    return float(Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class StoreInfo:
    """What the simulator needs to know about one store.

    Parameters:
        store: the store.
        app_id: the RevenueCat app id events carry as ``app_id``.
        v1_name: the store's name in Customer Info (``app_store``, ``play_store``...).
        commission_percentage: the store's cut of the price.
        management_url: Customer Info ``management_url`` while a subscription is active.
        grace_period_days: billing grace period; 0 = none (EXPIRATION comes with the issue).
        product_change_event: the event an immediate product change adds to PRODUCT_CHANGE
            (App Store: RENEWAL, Play: INITIAL_PURCHASE; event-flows page); ``None`` when the
            store does not report product changes (Amazon).
        supports_pause: only Google Play pauses subscriptions.
        supports_uncancel: Stripe reports no UNCANCELLATION (event-types table).
    """

    store: Store
    app_id: str
    v1_name: str
    commission_percentage: float
    management_url: str | None
    grace_period_days: int = 0
    product_change_event: str | None = "RENEWAL"
    supports_pause: bool = False
    supports_uncancel: bool = True


@dataclass(frozen=True)
class Country:
    """A buyer's country: its currency and the estimated tax share of store prices."""

    code: str
    currency: str
    tax_percentage: float


@dataclass(frozen=True)
class Product:
    """A product in the catalogue.

    Parameters:
        id: the store product identifier.
        display_name: shown in Customer Info.
        entitlement_ids: entitlements the product unlocks.
        duration_days: the subscription period; ``None`` for a non-renewing product.
        trial_days: length of the free trial, if the product has one.
        intro_days: length of the introductory price period, if any.
        prices: normal price per currency.
        intro_prices: introductory price per currency.
        lifetime: a non-renewing product that never expires (else it expires after
            ``duration_days`` if set, or is consumable when both are unset).
    """

    id: str
    display_name: str
    entitlement_ids: tuple[str, ...]
    prices: Mapping[str, float]
    duration_days: int | None = None
    trial_days: int | None = None
    intro_days: int | None = None
    intro_prices: Mapping[str, float] = field(default_factory=dict)
    lifetime: bool = False

    @property
    def is_subscription(self) -> bool:
        return self.duration_days is not None and not self.lifetime

    @property
    def duration_ms(self) -> int:
        if self.duration_days is None:
            raise ValueError(f"{self.id} is not a subscription")
        return self.duration_days * DAY_MS


@dataclass(frozen=True)
class Catalogue:
    """Products, stores, countries and USD exchange rates.

    Example::

        catalogue = default_catalogue()
        usd, local = catalogue.price("pro_monthly", "EUR")
    """

    products: Mapping[str, Product]
    stores: Mapping[Store, StoreInfo]
    countries: Mapping[str, Country]
    usd_rates: Mapping[str, float]  # USD per one unit of the currency

    def product(self, product_id: str) -> Product:
        try:
            return self.products[product_id]
        except KeyError:
            raise UnknownEntity(f"unknown product {product_id!r}") from None

    def store(self, store: Store | str) -> StoreInfo:
        try:
            return self.stores[Store(store)]
        except (KeyError, ValueError):
            raise UnknownEntity(f"unknown store {store!r}") from None

    def country(self, code: str) -> Country:
        try:
            return self.countries[code]
        except KeyError:
            raise UnknownEntity(f"unknown country {code!r}") from None

    def to_usd(self, amount: float, currency: str) -> float:
        """``amount`` of ``currency`` in USD, rounded to 3 places as in RevenueCat's samples."""
        rate = Decimal(str(self.usd_rates[currency]))
        return money(Decimal(str(amount)) * rate)

    def local_price(self, product: Product, currency: str, *, intro: bool = False) -> float:
        """The price in ``currency``; converted from USD when the product has no such price."""
        table = product.intro_prices if intro else product.prices
        if currency in table:
            return table[currency]
        usd = Decimal(str(table["USD"])) / Decimal(str(self.usd_rates[currency]))
        return money(usd, "0.01")


_STORES = (
    StoreInfo(Store.APP_STORE, "app7d2f4c1a", "app_store", 0.3,
              "https://apps.apple.com/account/subscriptions", grace_period_days=16),
    StoreInfo(Store.MAC_APP_STORE, "app5b9e0d33", "mac_app_store", 0.3,
              "https://apps.apple.com/account/subscriptions", grace_period_days=16),
    StoreInfo(Store.PLAY_STORE, "app3c81a6f0", "play_store", 0.15,
              "https://play.google.com/store/account/subscriptions", grace_period_days=7,
              product_change_event="INITIAL_PURCHASE", supports_pause=True),
    StoreInfo(Store.AMAZON, "app0e4b7d92", "amazon", 0.3,
              "https://www.amazon.com/yourmembershipsandsubscriptions",
              product_change_event=None),
    StoreInfo(Store.STRIPE, "app91f0c5e7", "stripe", 0.029, None, supports_uncancel=False),
    StoreInfo(Store.RC_BILLING, "app64a2e8b1", "rc_billing", 0.05, None),
)  # fmt: skip

_COUNTRIES = (
    Country("US", "USD", 0.0),
    Country("CA", "CAD", 0.0),
    Country("DE", "EUR", 0.1597),  # 19% VAT included in the price: 0.19 / 1.19
    Country("FR", "EUR", 0.1667),
    Country("GB", "GBP", 0.1667),
    Country("IN", "INR", 0.1525),
    Country("JP", "JPY", 0.0909),
    Country("BR", "BRL", 0.0),
    Country("AU", "AUD", 0.0909),
    Country("PH", "PHP", 0.1071),
)

_USD_RATES = {
    "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.7726, "INR": 0.012, "JPY": 0.0067,
    "BRL": 0.2, "AUD": 0.66, "PHP": 0.018,
}  # fmt: skip

_PRODUCTS = (
    Product("pro_monthly", "Pro Monthly", ("pro",), duration_days=30, trial_days=7,
            prices={"USD": 9.99, "EUR": 9.99, "GBP": 8.99, "CAD": 12.99, "INR": 799.0,
                    "JPY": 1500.0, "BRL": 49.9, "AUD": 14.99, "PHP": 549.0}),
    Product("pro_annual", "Pro Annual", ("pro",), duration_days=365, trial_days=14,
            prices={"USD": 59.99, "EUR": 59.99, "GBP": 54.99, "CAD": 79.99, "INR": 3999.0,
                    "JPY": 9000.0, "BRL": 299.9, "AUD": 89.99, "PHP": 2990.0}),
    Product("pro_weekly", "Pro Weekly", ("pro",), duration_days=7, intro_days=7,
            prices={"USD": 2.99, "EUR": 2.99, "GBP": 2.49, "INR": 199.0},
            intro_prices={"USD": 0.99, "EUR": 0.99, "GBP": 0.99, "INR": 49.0}),
    Product("premium_monthly", "Premium Monthly", ("pro", "premium"), duration_days=30,
            prices={"USD": 14.99, "EUR": 14.99, "GBP": 12.99, "INR": 1199.0, "JPY": 2200.0}),
    Product("lifetime", "Lifetime Access", ("pro",), lifetime=True,
            prices={"USD": 149.99, "EUR": 149.99, "GBP": 129.99, "INR": 9999.0}),
    Product("coins_100", "100 Coins", (), prices={"USD": 0.99, "EUR": 0.99, "CAD": 1.39}),
)  # fmt: skip


def default_catalogue() -> Catalogue:
    """The catalogue the mock starts with: four subscriptions and two one-off products."""
    return Catalogue(
        products=MappingProxyType({p.id: p for p in _PRODUCTS}),
        stores=MappingProxyType({s.store: s for s in _STORES}),
        countries=MappingProxyType({c.code: c for c in _COUNTRIES}),
        usd_rates=MappingProxyType(dict(_USD_RATES)),
    )
