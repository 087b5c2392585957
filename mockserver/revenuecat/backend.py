"""The RevenueCat mock's backend: state and rules in plain Python, no HTTP.

The backend composes three parts, one concept each, and offers their methods under its own
name (``backend.create_customer``, ``backend.set_attributes``, ``backend.buy``)::

    Customers            customers.py            create, find, delete, render customers
    CustomerAttributes   customer_attributes.py  v1 and v2 attribute writes and reads
    StoreOperations      store.py                the store simulator by app user id, events

Beside them: the API keys, the v2 rate limiter, the webhook emitter and the population
generator.  Routes (``routes.py``, ``control.py``) are thin: they authenticate, parse, call one
method here, and render.  Tests and notebooks call the same methods directly.  Every state
change holds the customers' lock, because Starlette's ``TestClient`` serves requests from
another thread than the test.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from mockserver.revenuecat.catalogue import Catalogue, default_catalogue
from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.customer_attributes import CustomerAttributes
from mockserver.revenuecat.customers import Customers
from mockserver.revenuecat.exports import LATEST_VERSION, TransactionExport, export_history
from mockserver.revenuecat.keys import (
    DEFAULT_PUBLIC_KEY,
    DEFAULT_SECRET_KEY,
    DEFAULT_V2_KEY,
    ApiKeys,
    redact,
)
from mockserver.revenuecat.population import (
    PopulationPlan,
    Step,
    apply_step,
    generate_population,
    play,
)
from mockserver.revenuecat.ratelimit import DEFAULT_V2_RATE_LIMIT, RateLimiter
from mockserver.revenuecat.simulator import StoreSimulator
from mockserver.revenuecat.store import StoreOperations
from mockserver.revenuecat.webhooks import RESPONSE_TIMEOUT_S, WebhookEmitter, WebhookTarget

__all__ = ["DEFAULT_PROJECT_ID", "RevenueCatBackend"]

DEFAULT_PROJECT_ID = "proj1ab2c3d4"
Event = dict[str, Any]


class RevenueCatBackend:
    """A RevenueCat you run yourself: customers, attributes, a store simulator and webhooks.

    Example::

        backend = RevenueCatBackend(
            webhooks=[WebhookTarget("http://127.0.0.1:8000/webhooks/revenuecat",
                                    authorization="Bearer hook-secret")],
            time_scale=600,              # the 2.6-hour retry schedule in 15.5 s
        )
        backend.create_customer("user_1", attributes={"$email": "a@example.com"})
        backend.start_trial("user_1", "pro_monthly")
        backend.convert_trial("user_1")
        app = mockserver.create_app(revenuecat_backend=backend)

    Parameters (all keyword-only; defaults are what ``rc-clevertap mock`` starts with):
        public_keys: v1 public (SDK) keys.  Default ``("appl_mock_public_key",)``.
        secret_keys: v1 secret keys (``sk_...``).  Default ``("sk_mock_secret_key",)``.
        v2_keys: API v2 keys.  Default ``("sk_mock_v2_key",)``.
        project_id: the one project API v2 serves.  Default ``"proj1ab2c3d4"``.
        webhooks: webhook targets (URL, Authorization value, environment filter).  Default none.
        time_scale: speed of the virtual clock (virtual seconds per real second).  Default 1.
        clock: a clock to share (overrides ``time_scale``), e.g. a frozen one in tests.
        v2_rate_limit: requests per minute per v2 key; ``None`` = off.  Default 480.
        seed: seeds ids and the population generator; ``None`` = random.  Default ``None``.
        max_customers: customers kept; beyond it the least recently used one is forgotten.
            Default 100,000.
        max_deliveries: webhook deliveries kept in the log.  Default 10,000.
        max_events: emitted events kept for inspection (oldest dropped first).  Default 50,000.
        webhook_concurrency: webhook attempts in flight at once.  Default 8.
        webhook_response_timeout_s: virtual seconds a webhook receiver has to answer before
            the attempt counts as failed.  Default 60, RevenueCat's limit.
        http_client: the client webhooks are POSTed with (tests inject one with
            ``httpx.ASGITransport``).  Default: one the backend creates and closes.
        catalogue: products, stores and prices.  Default :func:`default_catalogue`.
        create_on_attribute_post: a v1 attribute POST for an unknown app user id creates the
            customer (``True``, the default) or answers 404 as RevenueCat did in 2020
            (revenuecat.md section 1.2; which one it does today is UNCONFIRMED).
    """

    def __init__(
        self,
        *,
        public_keys: Iterable[str] = (DEFAULT_PUBLIC_KEY,),
        secret_keys: Iterable[str] = (DEFAULT_SECRET_KEY,),
        v2_keys: Iterable[str] = (DEFAULT_V2_KEY,),
        project_id: str = DEFAULT_PROJECT_ID,
        webhooks: Iterable[WebhookTarget] = (),
        time_scale: float = 1.0,
        clock: VirtualClock | None = None,
        v2_rate_limit: int | None = DEFAULT_V2_RATE_LIMIT,
        seed: int | None = None,
        max_customers: int = 100_000,
        max_deliveries: int = 10_000,
        max_events: int = 50_000,
        webhook_concurrency: int = 8,
        http_client: httpx.AsyncClient | None = None,
        catalogue: Catalogue | None = None,
        create_on_attribute_post: bool = True,
        webhook_response_timeout_s: float = RESPONSE_TIMEOUT_S,
    ) -> None:
        if not project_id or len(project_id) > 20:
            raise ValueError("project_id must be 1 to 20 characters (api-v2.yaml Customer)")
        if max_customers < 1 or max_events < 1:
            raise ValueError("max_customers and max_events must be >= 1")
        self.keys = ApiKeys.of(public=public_keys, secret=secret_keys, v2=v2_keys)
        self.project_id = project_id
        self.clock = clock if clock is not None else VirtualClock(time_scale=time_scale)
        self.seed = seed
        self.catalogue = catalogue if catalogue is not None else default_catalogue()
        self.max_customers = max_customers
        self.create_on_attribute_post = create_on_attribute_post
        self.rate_limiter = RateLimiter(clock=self.clock, limit=v2_rate_limit)
        self.webhooks = WebhookEmitter(
            clock=self.clock,
            targets=webhooks,
            http_client=http_client,
            max_deliveries=max_deliveries,
            max_concurrency=webhook_concurrency,
            response_timeout_s=webhook_response_timeout_s,
        )
        self.simulator = StoreSimulator(catalogue=self.catalogue, rng=random.Random(seed))
        customers = Customers(
            clock=self.clock,
            catalogue=self.catalogue,
            project_id=project_id,
            max_customers=max_customers,
        )
        attributes = CustomerAttributes(
            customers, create_on_attribute_post=create_on_attribute_post
        )
        store = StoreOperations(
            customers, simulator=self.simulator, webhooks=self.webhooks, max_events=max_events
        )
        self._customers, self._store = customers, store
        self._adopt(customers, attributes, store)

    def _adopt(
        self, customers: Customers, attributes: CustomerAttributes, store: StoreOperations
    ) -> None:
        """Take the parts' methods as the backend's own API, one name each (documented there)."""
        self.customer = customers.customer
        self.customers = customers.customers
        self.create_customer = customers.create_customer
        self.get_or_create = customers.get_or_create
        self.delete_customer = customers.delete_customer
        self.subscriber_body = customers.subscriber_body
        self.v1_get_subscriber = customers.v1_get_subscriber
        self.customer_summaries = customers.customer_summaries
        self.inspect_customer = customers.inspect_customer
        self.v2_get_customer = customers.v2_get_customer
        self.v2_delete_customer = customers.v2_delete_customer
        self.post_attributes_v1 = attributes.post_attributes_v1
        self.v1_post_attributes = attributes.v1_post_attributes
        self.set_attributes = attributes.set_attributes
        self.v2_list_attributes = attributes.v2_list_attributes
        self.v2_set_attributes = attributes.v2_set_attributes
        self.simulate = store.simulate
        self.events = store.events
        self.start_trial = store.start_trial
        self.buy = store.buy
        self.convert_trial = store.convert_trial
        self.renew = store.renew
        self.cancel = store.cancel
        self.uncancel = store.uncancel
        self.refund = store.refund
        self.billing_issue = store.billing_issue
        self.expire = store.expire
        self.change_product = store.change_product
        self.buy_non_renewing = store.buy_non_renewing
        self.transfer = store.transfer
        self.pause = store.pause
        self.send_test_event = store.send_test_event
        self.extend = store.extend
        self.reverse_refund = store.reverse_refund
        self.grant_temporary_entitlement = store.grant_temporary_entitlement
        self.issue_invoice = store.issue_invoice
        self.grant_virtual_currency = store.grant_virtual_currency
        self.enroll_in_experiment = store.enroll_in_experiment

    def __repr__(self) -> str:
        return (
            f"RevenueCatBackend(project_id={self.project_id!r}, keys={self.keys!r}, "
            f"webhooks={self.webhooks!r}, customers={len(self._customers)})"
        )

    def describe(self, *, reveal_keys: bool = False) -> dict[str, Any]:
        """The effective configuration, for ``rc-clevertap mock`` to print at start-up.

        Keys are shown redacted unless ``reveal_keys`` (the CLI reveals the built-in defaults,
        which are documented and not secret); webhook authorization values never appear.
        """

        def show(keys: tuple[str, ...]) -> list[str]:
            return list(keys) if reveal_keys else [redact(k) for k in keys]

        return {
            "public_keys": show(self.keys.public),
            "secret_keys": show(self.keys.secret),
            "v2_keys": show(self.keys.v2),
            "project_id": self.project_id,
            "time_scale": self.clock.time_scale,
            "v2_rate_limit_per_minute": self.rate_limiter.limit,
            "webhooks": [
                {
                    "url": t.url,
                    "authorization": "set" if t.authorization is not None else "none",
                    "environments": sorted(str(e) for e in t.environments),
                }
                for t in self.webhooks.targets
            ],
            "retry_schedule_minutes": list(self.webhooks.retry_delays_minutes),
            "max_customers": self.max_customers,
            "max_deliveries": self.webhooks.max_deliveries,
            "max_events": self._store.max_events,
            "seed": self.seed,
        }

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the webhook emitter's background task (the app's lifespan calls this)."""
        await self.webhooks.start()

    async def stop(self) -> None:
        """Stop the emitter: in-flight attempts finish or are cancelled; nothing is left running."""
        await self.webhooks.stop()

    async def __aenter__(self) -> RevenueCatBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def reset(self) -> None:
        """Forget customers, events, deliveries and rate-limit windows (keys and config stay)."""
        self._customers.clear()
        self._store.clear_events()
        self.webhooks.clear()
        self.rate_limiter.reset()

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward (due webhook retries then fire)."""
        self.clock.advance(seconds)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def add_webhook_target(self, target: WebhookTarget) -> None:
        """Send webhooks to ``target`` too, from the next event on (safe while running)."""
        self.webhooks.add_target(target)

    def stats(self) -> dict[str, Any]:
        """What the control API's ``GET /`` shows: configuration (no keys) and counters."""
        states = Counter(str(d.state) for d in self.webhooks.deliveries())
        return {
            "project_id": self.project_id,
            "keys": {"public": len(self.keys.public), "secret": len(self.keys.secret),
                     "v2": len(self.keys.v2)},
            "now_ms": self.now_ms(),
            "time_scale": self.clock.time_scale,
            "v2_rate_limit": self.rate_limiter.limit,
            "customers": len(self._customers),
            "events": len(self.events()),
            "webhook_targets": [
                {"url": t.url, "environments": sorted(str(e) for e in t.environments),
                 "authorization": t.authorization is not None}
                for t in self.webhooks.targets
            ],
            "deliveries": dict(states),
            "dropped_deliveries": self.webhooks.dropped,
        }  # fmt: skip

    # --- population -------------------------------------------------------------------------

    def plan_population(
        self, n: int, *, seed: int | None = None, days: int = 120, **options: Any
    ) -> PopulationPlan:
        """A population plan on this backend's clock and catalogue, ending at its now.

        ``seed`` defaults to the backend's seed (or 0); ``options`` go to
        :func:`~mockserver.revenuecat.population.generate_population`.
        """
        return generate_population(
            n,
            seed=seed if seed is not None else (self.seed or 0),
            end_ms=self.clock.now_ms(),
            days=days,
            catalogue=self.catalogue,
            **options,
        )

    def apply(self, step: Step) -> list[Event]:
        """Run one step of a population plan."""
        return apply_step(self, step)

    def play(
        self, plan: PopulationPlan, *, create_users: bool = True, set_clevertap_ids: bool = False
    ) -> list[Event]:
        """Create the plan's users (unless ``create_users=False``: already done) and run every
        step in time order; ``set_clevertap_ids`` also stores each user's ``$clevertapId``
        directly (the demo sets them through the v1 API with the client instead)."""
        return play(self, plan, create_users=create_users, set_clevertap_ids=set_clevertap_ids)

    def export_transactions(
        self,
        *,
        version: int = LATEST_VERSION,
        fmt: str = "csv",
        since_ms: int | None = None,
        as_of_ms: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> TransactionExport:
        """The store's history as a Scheduled Data Export (``exports.py``): format ``version``
        3-7, ``fmt`` csv or parquet, only rows updated after ``since_ms`` (incremental), what
        had happened by ``as_of_ms`` (default now), a subset of ``columns``.  Write it with
        ``.write(base)``, or take ``.to_bytes()``."""
        with self._customers.lock:
            return export_history(
                self.events(), log_capacity=self._store.max_events,
                customer=self._customers.find, catalogue=self.catalogue, now_ms=self.now_ms(),
                version=version, fmt=fmt, since_ms=since_ms, as_of_ms=as_of_ms, columns=columns,
            )  # fmt: skip
