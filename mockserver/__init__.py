"""Local mocks of RevenueCat and CleverTap, served by one Starlette app."""

from __future__ import annotations

from mockserver.app import create_app
from mockserver.clevertap import CleverTapBackend
from mockserver.faults import FaultInjector, FaultRule
from mockserver.revenuecat import RevenueCatBackend

__all__ = ["CleverTapBackend", "FaultInjector", "FaultRule", "RevenueCatBackend", "create_app"]
