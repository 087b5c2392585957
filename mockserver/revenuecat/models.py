"""The mock's state: customers and their purchases, as plain mutable dataclasses.

The backend owns these objects; views (``views.py``) render them as RevenueCat's JSON and the
store simulator (``simulator.py``) changes them.  A purchase moves through these states::

    active ──cancel──> cancelled ──uncancel──> active
      │  └─billing_issue─> in grace (billing issue) ──renew──> active
      │  └─pause──> pause scheduled ──expire(SUBSCRIPTION_PAUSED)──> expired ──renew──> active
      └─refund──> refunded (access revoked) ──reverse_refund (App Store)──> as before
    any ──expire──> expired ──renew──> active;  active ──extend──> active, later expiry
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mockserver.revenuecat.attributes import AttributeStore
from mockserver.revenuecat.catalogue import Environment, Store

__all__ = ["Customer", "Purchase"]


@dataclass(eq=False)
class Purchase:
    """One store purchase: a subscription with its current period, or a one-off product."""

    id: str
    product_id: str
    store: Store
    environment: Environment
    is_subscription: bool
    original_transaction_id: str
    transaction_id: str
    original_purchased_at_ms: int
    purchased_at_ms: int
    expires_at_ms: int | None
    period_type: str  # TRIAL | INTRO | NORMAL, as in webhook events
    currency: str
    price_in_purchased_currency: float  # what the current period cost the buyer
    price_usd: float
    country_code: str
    presented_offering_id: str | None = None
    offer_code: str | None = None
    renewal_number: int | None = None
    auto_renew: bool = True
    unsubscribe_detected_at_ms: int | None = None
    billing_issue_detected_at_ms: int | None = None
    grace_period_expires_at_ms: int | None = None
    refunded_at_ms: int | None = None
    expires_before_refund_ms: int | None = None  # the expiry a refund cut short
    auto_resume_at_ms: int | None = None
    pending_product_id: str | None = None
    expired: bool = False  # an EXPIRATION was emitted for the current period
    replaced: bool = False  # superseded by another purchase (Play product change)
    renewal_count: int = 0  # store-side counter for transaction ids

    @property
    def is_sandbox(self) -> bool:
        return self.environment is Environment.SANDBOX

    def access_until_ms(self) -> int | None:
        """When access ends: the grace period extends the paid period; ``None`` = forever."""
        if self.expires_at_ms is None:
            return None
        if self.grace_period_expires_at_ms is not None and not self.expired:
            return max(self.expires_at_ms, self.grace_period_expires_at_ms)
        return self.expires_at_ms

    def is_active(self, now_ms: int) -> bool:
        if self.refunded_at_ms is not None or self.replaced:
            return False
        until = self.access_until_ms()
        if not self.is_subscription:
            return until is None or until > now_ms
        return not self.expired and until is not None and until > now_ms


@dataclass(eq=False)
class Customer:
    """A RevenueCat customer: identity, attributes and purchases."""

    app_user_id: str
    original_app_user_id: str
    first_seen_ms: int
    last_seen_ms: int
    aliases: list[str] = field(default_factory=list)
    attributes: AttributeStore = field(default_factory=AttributeStore)
    purchases: list[Purchase] = field(default_factory=list)
    country_code: str | None = None
    last_seen_platform: str | None = None
    experiments: list[dict[str, Any]] = field(default_factory=list)

    def all_ids(self) -> list[str]:
        """Every app user id this customer is known by, the original first."""
        ids = [self.original_app_user_id, *self.aliases, self.app_user_id]
        return list(dict.fromkeys(ids))
