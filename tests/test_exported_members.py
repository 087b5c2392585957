"""Every package's public names are re-exported, sorted, and importable."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["client", "mockserver", "integration"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_importable(name: str) -> None:
    """Each name in a package's __all__ exists, and __all__ is sorted."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.{member} is in __all__ but missing"
