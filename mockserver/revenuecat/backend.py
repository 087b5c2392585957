"""The RevenueCat mock's backend: state and rules in plain Python, no HTTP.

Routes (``routes.py``, ``control.py``) are thin: they authenticate, parse, call a method here,
and render.  Tests and notebooks call the same methods directly.  All state changes hold one
lock, because Starlette's ``TestClient`` serves requests from another thread than the test.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from mockserver.revenuecat.attributes import (
    MAX_CUSTOM_ATTRIBUTES,
    is_custom,
    parse_v2_attributes,
)
from mockserver.revenuecat.catalogue import Catalogue, default_catalogue
from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.customers import CustomerRegistry
from mockserver.revenuecat.errors import (
    AuthorizationError,
    EmptyAppUserId,
    InvalidAttributesBody,
    InvalidSubscriberAttributes,
    ParameterError,
    ResourceMissing,
    SubscriberNotFound,
    UnknownEntity,
)
from mockserver.revenuecat.keys import (
    DEFAULT_PUBLIC_KEY,
    DEFAULT_SECRET_KEY,
    DEFAULT_V2_KEY,
    ApiKeys,
    redact,
)
from mockserver.revenuecat.models import Customer
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
from mockserver.revenuecat.views import attribute_list_json, customer_json, subscriber_json
from mockserver.revenuecat.webhooks import WebhookEmitter, WebhookTarget

__all__ = ["DEFAULT_PROJECT_ID", "RevenueCatBackend"]

DEFAULT_PROJECT_ID = "proj1ab2c3d4"
Event = dict[str, Any]


class RevenueCatBackend(StoreOperations):
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
        )
        self.simulator = StoreSimulator(catalogue=self.catalogue, rng=random.Random(seed))
        self._events: deque[Event] = deque(maxlen=max_events)
        self._registry = CustomerRegistry(max_customers=max_customers)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return (
            f"RevenueCatBackend(project_id={self.project_id!r}, keys={self.keys!r}, "
            f"webhooks={self.webhooks!r}, customers={len(self._registry)})"
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
            "max_events": self._events.maxlen,
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
        with self._lock:
            self._registry.clear()
            self._events.clear()
        self.webhooks.clear()
        self.rate_limiter.reset()

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward (due webhook retries then fire)."""
        self.clock.advance(seconds)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    # --- customers --------------------------------------------------------------------------

    def _lookup(self, app_user_id: str) -> Customer | None:
        return self._registry.get(app_user_id)

    def customer(self, app_user_id: str) -> Customer:
        """The customer known by ``app_user_id`` (or an alias); UnknownEntity otherwise."""
        with self._lock:
            customer = self._lookup(app_user_id)
        if customer is None:
            raise UnknownEntity(f"unknown customer {app_user_id!r}")
        return customer

    def customers(self) -> list[Customer]:
        with self._lock:
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
        with self._lock:
            customer = self._lookup(app_user_id)
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
        with self._lock:
            customer = self._lookup(app_user_id)
            if customer is not None:
                if platform:
                    customer.last_seen_ms = self.clock.now_ms()
                    customer.last_seen_platform = platform
                return customer, False
            return self.create_customer(app_user_id, platform=platform), True

    def subscriber_body(self, customer: Customer, *, include_attributes: bool) -> dict[str, Any]:
        with self._lock:
            return subscriber_json(
                customer, self.catalogue, self.clock.now_ms(), include_attributes=include_attributes
            )

    def delete_customer(self, app_user_id: str) -> Customer:
        """Delete a customer and all its aliases; SubscriberNotFound if unknown."""
        if not app_user_id:
            raise EmptyAppUserId()
        with self._lock:
            customer = self._lookup(app_user_id)
            if customer is None:
                raise SubscriberNotFound()
            self._registry.remove(customer)
        return customer

    # --- attributes, v1 ---------------------------------------------------------------------

    def post_attributes_v1(self, app_user_id: str, body: object) -> Customer:
        """``POST /v1/subscribers/{id}/attributes``: newer-wins, per-key errors (7263/7264)."""
        if not app_user_id:
            raise EmptyAppUserId()
        entries = body.get("attributes") if isinstance(body, dict) else None
        if not isinstance(entries, dict):
            raise InvalidAttributesBody("The body must be an object with an 'attributes' object.")
        now = self.clock.now_ms()
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
        errors: list[dict[str, str]] = []
        with self._lock:
            customer = self._lookup(app_user_id)
            if customer is None:
                if not self.create_on_attribute_post:
                    raise SubscriberNotFound()
                customer = self.create_customer(app_user_id)
            for key, value, stamp in writes:
                problem = customer.attributes.set(key, value, stamp)
                if problem is not None:
                    errors.append({"key_name": key, "message": problem})
        if errors:
            raise InvalidSubscriberAttributes(errors)
        return customer

    def set_attributes(
        self, app_user_id: str, attributes: Mapping[str, str | None], *, at_ms: int | None = None
    ) -> Customer:
        """Python API: set attributes as the SDK would (creating the customer if needed)."""
        stamp = self.clock.now_ms() if at_ms is None else at_ms
        body = {
            "attributes": {k: {"value": v, "updated_at_ms": stamp} for k, v in attributes.items()}
        }
        return self.post_attributes_v1(app_user_id, body)

    # --- API v2 -----------------------------------------------------------------------------

    def _v2_customer(self, project_id: str, customer_id: str) -> Customer:
        if project_id != self.project_id:
            raise AuthorizationError()
        if not customer_id or len(customer_id) > 1500:
            raise ParameterError("customer_id must be 1 to 1500 characters", param="customer_id")
        with self._lock:
            customer = self._lookup(customer_id)
        if customer is None:
            raise ResourceMissing(param="customer_id")
        return customer

    def v2_get_customer(
        self, project_id: str, customer_id: str, *, expand_attributes: bool = False
    ) -> dict[str, Any]:
        customer = self._v2_customer(project_id, customer_id)
        with self._lock:
            return customer_json(
                customer, self.catalogue, self.project_id, self.clock.now_ms(),
                expand_attributes=expand_attributes,
            )  # fmt: skip

    def v2_delete_customer(self, project_id: str, customer_id: str) -> dict[str, Any]:
        customer = self._v2_customer(project_id, customer_id)
        self.delete_customer(customer.app_user_id)
        return {"object": "customer", "id": customer.app_user_id, "deleted_at": self.now_ms()}

    def v2_list_attributes(
        self,
        project_id: str,
        customer_id: str,
        *,
        limit: int = 20,
        starting_after: str | None = None,
    ) -> dict[str, Any]:
        customer = self._v2_customer(project_id, customer_id)
        with self._lock:
            return attribute_list_json(
                customer, self.project_id, limit=limit, starting_after=starting_after
            )

    def v2_set_attributes(self, project_id: str, customer_id: str, body: object) -> dict[str, Any]:
        """``POST .../attributes``: 1 to 50 ``{name, value}``; all or nothing; ``null`` deletes."""
        customer = self._v2_customer(project_id, customer_id)
        items = parse_v2_attributes(body)
        with self._lock:
            custom = {k for k, _ in customer.attributes.items() if is_custom(k)}
            for name, value in items:
                if is_custom(name):
                    (custom.add if value else custom.discard)(name)
            if len(custom) > MAX_CUSTOM_ATTRIBUTES:
                raise ParameterError(
                    f"a customer can have at most {MAX_CUSTOM_ATTRIBUTES} custom attributes",
                    param="attributes",
                )
            now = self.clock.now_ms()
            for name, value in items:
                current = customer.attributes.get(name)
                # A v2 write is the server's own and always newest, even after a v1 write
                # stamped in the future by a device with a fast clock.
                stamp = max(now, current.updated_at_ms + 1) if current else now
                customer.attributes.set(name, value, stamp)
            return attribute_list_json(customer, self.project_id, limit=50)

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
