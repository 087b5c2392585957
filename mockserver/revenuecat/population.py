"""A seeded population of customers with realistic subscription lifecycles.

Generate a plan (pure data, no backend needed), then play it, all at once or step by step::

    plan = backend.plan_population(200, seed=7)      # lifecycles over the last 120 days
                                                       # (= generate_population(200, seed=7,
                                                       #    end_ms=backend.now_ms()))
    backend.play(plan)                                 # creates users, runs every step
    # or, as `rc-clevertap demo` does, with the client in the middle:
    for user in plan.users:
        backend.create_customer(**user.customer_kwargs())
    for user in plan.users:
        if user.clevertap_id:                          # about 85% of users
            client.set_clevertap_id(user.app_user_id, user.clevertap_id)
    for step in plan.steps:                            # time-ordered across users
        backend.apply(step)

Each user picks a store (App Store, Play, Stripe, Amazon), a country (and so a currency and a
tax share), sometimes the sandbox environment, and one of these journeys: a one-off purchase
(sometimes refunded); a free trial that converts, is cancelled, or hits a billing issue; or a
direct purchase (sometimes at an intro price).  Paid periods then renew, and each period may
bring a cancellation (sometimes undone), a billing issue (recovered or expiring after the
grace period), a refund, a product change, or a pause (Google Play), with lapsed users
sometimes resubscribing.  Steps after ``end_ms`` are left out: those subscriptions are live.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mockserver.revenuecat.catalogue import DAY_MS, Catalogue, Environment, Store, default_catalogue

if TYPE_CHECKING:
    from mockserver.revenuecat.backend import RevenueCatBackend

__all__ = ["PlannedUser", "PopulationPlan", "Step", "apply_step", "generate_population", "play"]

Event = dict[str, Any]

_STORES = ((Store.APP_STORE, 55), (Store.PLAY_STORE, 35), (Store.STRIPE, 5), (Store.AMAZON, 5))
_COUNTRIES = (("US", 40), ("DE", 12), ("GB", 10), ("FR", 6), ("CA", 6), ("IN", 10),
              ("JP", 6), ("BR", 5), ("AU", 5))  # fmt: skip
_FIRST = ("ana", "ben", "chloe", "dev", "emma", "femi", "gus", "hana", "ivan", "jia", "kai", "lea")
_LAST = ("smith", "garcia", "müller", "kumar", "tanaka", "silva", "martin", "cohen", "ito")


@dataclass(frozen=True)
class PlannedUser:
    """One customer of the plan; ``clevertap_id`` is ``None`` for users who have none."""

    app_user_id: str
    original_app_user_id: str
    clevertap_id: str | None
    attributes: Mapping[str, str]
    country: str
    store: Store
    environment: Environment
    platform: str
    joined_at_ms: int
    experiments: tuple[Mapping[str, Any], ...] = ()

    def customer_kwargs(self) -> dict[str, Any]:
        """Arguments for :meth:`RevenueCatBackend.create_customer`."""
        return {
            "app_user_id": self.app_user_id,
            "original_app_user_id": self.original_app_user_id,
            "aliases": [self.original_app_user_id],
            "attributes": dict(self.attributes),
            "country": self.country,
            "platform": self.platform,
            "experiments": list(self.experiments),
            "at_ms": self.joined_at_ms,
        }


@dataclass(frozen=True)
class Step:
    """One simulator operation at a virtual time: ``backend.simulate(name, user, **params)``."""

    at_ms: int
    app_user_id: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PopulationPlan:
    """Users and their time-ordered steps."""

    seed: int
    start_ms: int
    end_ms: int
    users: tuple[PlannedUser, ...]
    steps: tuple[Step, ...]

    def operation_counts(self) -> dict[str, int]:
        return dict(Counter(step.operation for step in self.steps))


def _pick(rng: random.Random, weighted: tuple[tuple[Any, int], ...]) -> Any:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


class _Journey:
    """Builds one user's steps, tracking the subscription's product and period end."""

    def __init__(self, rng: random.Random, user: PlannedUser, catalogue: Catalogue, end_ms: int):
        self.rng, self.user, self.catalogue, self.end_ms = rng, user, catalogue, end_ms
        self.steps: list[Step] = []
        self.last_at = 0  # a step never precedes the user's previous one
        self.grace_days = catalogue.store(user.store).grace_period_days

    def add(self, at_ms: int, operation: str, **params: Any) -> bool:
        """Record a step; ``False`` (and nothing recorded) when it lies after the plan's end."""
        if at_ms > self.end_ms:
            return False
        self.steps.append(Step(at_ms, self.user.app_user_id, operation, params))
        self.last_at = max(self.last_at, at_ms)
        return True

    def purchase_params(self) -> dict[str, Any]:
        u = self.user
        return {"store": str(u.store), "environment": str(u.environment), "country": u.country}

    def one_off(self, t: int) -> None:
        product = "lifetime" if self.rng.random() < 0.4 else "coins_100"
        self.add(t, "buy_non_renewing", product_id=product, **self.purchase_params())
        if self.rng.random() < 0.15:
            self.add(t + self.rng.randint(1, 10) * DAY_MS, "refund", product_id=product)

    def trial(self, t: int) -> None:
        product = "pro_annual" if self.rng.random() < 0.3 else "pro_monthly"
        trial_ms = (self.catalogue.product(product).trial_days or 0) * DAY_MS
        if not self.add(t, "start_trial", product_id=product, **self.purchase_params()):
            return
        trial_end, r = t + trial_ms, self.rng.random()
        if r < 0.3:
            self.add(t + self.rng.randint(1, trial_ms - 1), "cancel", product_id=product)
            self.add(trial_end, "expire", product_id=product)
        elif r < 0.4:
            self.billing_issue(product, trial_end)
        elif self.add(trial_end, "convert_trial", product_id=product):
            self.periods(product, trial_end)

    def direct(self, t: int) -> None:
        product = _pick(
            self.rng, (("pro_monthly", 50), ("pro_weekly", 30), ("premium_monthly", 20))
        )
        spec = self.catalogue.product(product)
        intro = bool(spec.intro_days) and self.rng.random() < 0.5
        if not self.add(t, "buy", product_id=product, intro=intro, **self.purchase_params()):
            return
        self.periods(product, t, first_days=spec.intro_days if intro else None)

    def billing_issue(self, product: str, at: int) -> tuple[bool, int]:
        """Flag a billing issue at a period end; returns (recovered, when)."""
        self.add(at, "billing_issue", product_id=product)
        if self.grace_days and self.rng.random() < 0.5:
            recovery = at + self.rng.randint(1, self.grace_days) * DAY_MS // 2
            return self.add(recovery, "renew", product_id=product), recovery
        self.add(
            at + self.grace_days * DAY_MS, "expire", product_id=product
        ) if self.grace_days else None
        return False, at

    def periods(self, product: str, start: int, *, first_days: int | None = None) -> None:
        days = first_days or self.catalogue.product(product).duration_days or 30
        period_end = start + days * DAY_MS
        for _ in range(60):
            lo = max(start, self.last_at)
            r = self.rng.random() if period_end - lo > 2 else 1.0  # no room: just renew
            mid = self.rng.randint(lo + 1, max(lo + 1, period_end - 1))
            if r < 0.12:  # cancellation, sometimes undone
                if not self.add(mid, "cancel", product_id=product):
                    return
                can_uncancel = self.catalogue.store(self.user.store).supports_uncancel
                if self.rng.random() < 0.25 and can_uncancel:
                    self.add(mid + (period_end - mid) // 2, "uncancel", product_id=product)
                else:
                    if (
                        self.add(period_end, "expire", product_id=product)
                        and self.rng.random() < 0.15
                    ):
                        back = period_end + self.rng.randint(3, 40) * DAY_MS
                        if self.add(back, "renew", product_id=product):
                            start, period_end = (
                                back,
                                back + self.catalogue.product(product).duration_ms,
                            )
                            continue
                    return
            elif r < 0.17:  # billing issue at renewal time
                recovered, _ = self.billing_issue(product, period_end)
                if not recovered:
                    return
                start, period_end = (
                    period_end,
                    period_end + self.catalogue.product(product).duration_ms,
                )
                continue
            elif r < 0.20:  # refund of the current period
                self.add(min(period_end - 1, lo + 2 * DAY_MS), "refund", product_id=product)
                return
            elif r < 0.25 and self.catalogue.store(self.user.store).product_change_event:
                new = "premium_monthly" if product != "premium_monthly" else "pro_annual"
                if not self.add(mid, "change_product", product_id=product, new_product_id=new):
                    return
                product, start = new, mid
                period_end = mid + self.catalogue.product(new).duration_ms
                continue
            elif r < 0.28 and self.user.store is Store.PLAY_STORE:
                resume_days = 30
                if not self.add(mid, "pause", product_id=product, resume_after_days=resume_days):
                    return
                self.add(period_end, "expire", product_id=product)
                back = period_end + resume_days * DAY_MS
                if not self.add(back, "renew", product_id=product):
                    return
                start, period_end = back, back + self.catalogue.product(product).duration_ms
                continue
            if not self.add(period_end, "renew", product_id=product):
                return
            start, period_end = period_end, period_end + self.catalogue.product(product).duration_ms


def generate_population(
    n: int,
    *,
    seed: int = 0,
    end_ms: int | None = None,
    days: int = 120,
    clevertap_share: float = 0.85,
    sandbox_share: float = 0.05,
    catalogue: Catalogue | None = None,
) -> PopulationPlan:
    """Plan ``n`` users whose lifecycles span the ``days`` before ``end_ms`` (default: now).

    The same ``n``, ``seed``, ``end_ms`` and ``days`` always give the same plan.
    """
    if n < 0 or days < 1:
        raise ValueError("n must be >= 0 and days >= 1")
    if not 0 <= clevertap_share <= 1 or not 0 <= sandbox_share <= 1:
        raise ValueError("shares must be between 0 and 1")
    catalogue = catalogue or default_catalogue()
    rng = random.Random(seed)
    end = end_ms if end_ms is not None else int(time.time() * 1000)
    start = end - days * DAY_MS
    users: list[PlannedUser] = []
    steps: list[Step] = []
    for index in range(n):
        store = _pick(rng, _STORES)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        joined = start + rng.randint(0, int(days * 0.7) * DAY_MS)
        attributes = {
            "$email": f"{first}.{last}{index}@example.com",
            "$displayName": f"{first.title()} {last.title()}",
            "$mediaSource": rng.choice(("Organic", "Apple Search Ads", "Facebook Ads")),
            "favorite_plan": rng.choice(("monthly", "annual")),
        }
        experiments: tuple[Mapping[str, Any], ...] = ()
        if rng.random() < 0.2:
            experiments = ({"experiment_id": "prexp7f3a21", "experiment_variant": rng.choice("ab"),
                            "enrolled_at_ms": joined},)  # fmt: skip
        user = PlannedUser(
            app_user_id=f"user_{seed}_{index:05d}",
            original_app_user_id=f"$RCAnonymousID:{rng.getrandbits(128):032x}",
            clevertap_id=f"{rng.getrandbits(128):032x}" if rng.random() < clevertap_share else None,
            attributes=attributes,
            country=_pick(rng, _COUNTRIES),
            store=store,
            environment=Environment.SANDBOX
            if rng.random() < sandbox_share
            else Environment.PRODUCTION,
            platform="android" if store is Store.PLAY_STORE else "ios",
            joined_at_ms=joined,
            experiments=experiments,
        )
        users.append(user)
        journey = _Journey(rng, user, catalogue, end)
        first_purchase = joined + rng.randint(0, 3 * DAY_MS)
        kind = rng.random()
        if kind < 0.12:
            journey.one_off(first_purchase)
        elif kind < 0.5:
            journey.trial(first_purchase)
        else:
            journey.direct(first_purchase)
        steps += journey.steps
    steps.sort(key=lambda s: s.at_ms)  # stable: a user's same-time steps keep their order
    return PopulationPlan(seed, start, end, tuple(users), tuple(steps))


def apply_step(backend: RevenueCatBackend, step: Step) -> list[Event]:
    """Run one step on ``backend``."""
    return backend.simulate(step.operation, step.app_user_id, at_ms=step.at_ms, **step.params)


def play(
    backend: RevenueCatBackend,
    plan: PopulationPlan,
    *,
    create_users: bool = True,
    set_clevertap_ids: bool = False,
) -> list[Event]:
    """Create the plan's users (with ``$clevertapId`` if asked) and run every step."""
    if create_users:
        for user in plan.users:
            backend.create_customer(**user.customer_kwargs())
            if set_clevertap_ids and user.clevertap_id:
                backend.set_attributes(user.app_user_id, {"$clevertapId": user.clevertap_id})
    events: list[Event] = []
    for step in plan.steps:
        events += apply_step(backend, step)
    return events
