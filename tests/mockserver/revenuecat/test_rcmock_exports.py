"""The RevenueCat mock package re-exports its public names, sorted, and the app contract holds."""

from __future__ import annotations

import inspect

import mockserver.revenuecat as package
from mockserver.revenuecat import RevenueCatBackend


def test_all_is_sorted_and_importable() -> None:
    """Every name in ``__all__`` exists and ``__all__`` is sorted."""
    assert list(package.__all__) == sorted(package.__all__)
    for name in package.__all__:
        assert hasattr(package, name), name


def test_the_backend_offers_what_the_app_factory_needs() -> None:
    """The backend has async start/stop and the package builds both route lists."""
    backend = RevenueCatBackend()
    assert inspect.iscoroutinefunction(backend.start)
    assert inspect.iscoroutinefunction(backend.stop)
    assert package.api_routes(backend) and package.control_routes(backend)


def test_constructor_is_keyword_only() -> None:
    """Every constructor parameter is keyword-only."""
    parameters = inspect.signature(RevenueCatBackend).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
