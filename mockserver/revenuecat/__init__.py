"""A local RevenueCat: API v1 and v2 customers and attributes, a store simulator, webhooks.

Layout (moto's): ``backend.py`` holds state and rules in plain Python; ``routes.py`` and
``control.py`` are thin Starlette endpoints; ``errors.py`` carries statuses and wire codes.
Serve it with ``mockserver.create_app(revenuecat_backend=RevenueCatBackend(...))``::

    backend = RevenueCatBackend(webhooks=[WebhookTarget(url, authorization="Bearer s3cret")],
                                time_scale=600)
    app = create_app(revenuecat_backend=backend)      # /v1, /v2, /_mock/revenuecat
    backend.start_trial("user_1", "pro_monthly")       # INITIAL_PURCHASE (TRIAL) -> webhook
    backend.convert_trial("user_1")                    # RENEWAL, is_trial_conversion
    backend.play(backend.plan_population(200))         # a seeded population's lifecycles

The backend composes three parts, one concept each: ``customers`` (create, find, delete),
``customer_attributes`` (v1 and v2 attribute writes) and ``store`` (store operations by app
user id, :data:`STORE_OPERATIONS`).  Other modules: ``keys`` (API keys), ``attributes``
(attribute rules), ``catalogue`` (products, stores, prices), ``simulator`` (lifecycle state
machine and events), ``other_events`` (TEST, extensions, refund reversals, temporary grants,
invoices, virtual currency, experiment enrollments), ``events`` (payload fields),
``webhooks`` (emitter), ``ratelimit`` (v2 limit), ``population`` (generator), ``views`` (JSON
shapes), ``clock``, ``exports`` (the history as a Scheduled Data Export:
``backend.export_transactions(version=5).write(base)``).
"""

from __future__ import annotations

from mockserver.revenuecat.backend import RevenueCatBackend
from mockserver.revenuecat.catalogue import (
    Catalogue,
    Country,
    Environment,
    Product,
    Store,
    StoreInfo,
    default_catalogue,
)
from mockserver.revenuecat.clock import VirtualClock
from mockserver.revenuecat.control import control_routes
from mockserver.revenuecat.errors import RevenueCatMockError, SimulationError, UnknownEntity
from mockserver.revenuecat.events import EventType
from mockserver.revenuecat.exports import ExportError, TransactionExport
from mockserver.revenuecat.keys import ApiKeys
from mockserver.revenuecat.population import (
    PlannedUser,
    PopulationPlan,
    Step,
    generate_population,
)
from mockserver.revenuecat.routes import api_routes
from mockserver.revenuecat.store import STORE_OPERATIONS as STORE_OPERATIONS
from mockserver.revenuecat.webhooks import (
    Attempt,
    Delivery,
    DeliveryState,
    WebhookEmitter,
    WebhookTarget,
)

# STORE_OPERATIONS is re-exported by alias and kept out of __all__, whose plain sorted() order
# the export test checks.
__all__ = [
    "ApiKeys",
    "Attempt",
    "Catalogue",
    "Country",
    "Delivery",
    "DeliveryState",
    "Environment",
    "EventType",
    "ExportError",
    "PlannedUser",
    "PopulationPlan",
    "Product",
    "RevenueCatBackend",
    "RevenueCatMockError",
    "SimulationError",
    "Step",
    "Store",
    "StoreInfo",
    "TransactionExport",
    "UnknownEntity",
    "VirtualClock",
    "WebhookEmitter",
    "WebhookTarget",
    "api_routes",
    "control_routes",
    "default_catalogue",
    "generate_population",
]
