"""Fixtures of the CNN family tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fashion_mnist():
    """Skip when the Fashion-MNIST files are not installed."""
    from zoo.core.contract.plugins import get_zoo

    try:
        return get_zoo().registry.dataset("fashion-mnist").loader(None, None)
    except Exception as err:  # DataUnavailable, or the datasets plugin missing
        pytest.skip(f"fashion-mnist unavailable: {err}")
