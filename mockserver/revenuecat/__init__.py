"""A local RevenueCat: API v1 and v2 customers and attributes, a store simulator, webhooks.

Layout (moto's): ``backend.py`` holds state and rules in plain Python; ``routes.py`` and
``control.py`` are thin Starlette endpoints; ``errors.py`` carries statuses and wire codes.
Serve it with ``mockserver.create_app(revenuecat_backend=RevenueCatBackend(...))``.
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
from mockserver.revenuecat.keys import ApiKeys
from mockserver.revenuecat.population import (
    PlannedUser,
    PopulationPlan,
    Step,
    generate_population,
)
from mockserver.revenuecat.routes import api_routes
from mockserver.revenuecat.webhooks import (
    Attempt,
    Delivery,
    DeliveryState,
    WebhookEmitter,
    WebhookTarget,
)

__all__ = [
    "ApiKeys",
    "Attempt",
    "Catalogue",
    "Country",
    "Delivery",
    "DeliveryState",
    "Environment",
    "EventType",
    "PlannedUser",
    "PopulationPlan",
    "Product",
    "RevenueCatBackend",
    "RevenueCatMockError",
    "SimulationError",
    "Step",
    "Store",
    "StoreInfo",
    "UnknownEntity",
    "VirtualClock",
    "WebhookEmitter",
    "WebhookTarget",
    "api_routes",
    "control_routes",
    "default_catalogue",
    "generate_population",
]
