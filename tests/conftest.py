"""Shared fixtures. Tests run on the CPU, on tiny inputs, in seconds."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# Test modules import shared helpers as `from helpers import ...` (the repository root is itself
# the `zoo` package, so `tests` cannot be imported as a package of its own).
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
# Tiny stand-ins for every public dataset, in the real formats and the data-root layout
# (tests/fixtures/make_fixtures.py writes them). Tests never read a local copy of the real datasets, or the network.
FIXTURE_DATA = Path(__file__).resolve().parent / "fixtures" / "data"

# Tests run on the CPU even where a GPU exists, except the `cuda`-marked ones, which run in their
# own session (`pytest -m cuda`, as scripts/gpu-check.sh does): CUDA_VISIBLE_DEVICES is read once,
# when CUDA starts, so one process cannot hide the GPU from some tests and show it to others.
_CUDA_SESSION = False
_CACHE: str | None = None  # this process's empty ZOO_CACHE_DIR, removed at the end of the session


def pytest_configure(config):
    """Hide CUDA unless the session selects the `cuda` marker (before any test starts CUDA)."""
    global _CUDA_SESSION
    markexpr = (config.getoption("markexpr", "") or "").replace(" ", "")
    _CUDA_SESSION = "cuda" in markexpr and "notcuda" not in markexpr
    if not _CUDA_SESSION:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    _isolate_data()


def _isolate_data() -> None:
    """Every test, and every `zoo` subprocess it starts, finds public datasets in the fixtures
    (``ZOO_DATA_DIR``) and caches into an empty folder of its own (``ZOO_CACHE_DIR``): a
    developer's ZOO_DATA_DIR or download cache never leaks in. Set before collection, so module
    imports and session fixtures see it too; tests that need other roots monkeypatch them."""
    global _CACHE
    os.environ["ZOO_DATA_DIR"] = str(FIXTURE_DATA)
    _CACHE = tempfile.mkdtemp(prefix="zoo-test-cache-")
    os.environ["ZOO_CACHE_DIR"] = _CACHE
    # No test reaches the network: a dataset without a fixture is a one-line error, not a download.
    # The fetch tests unset it and serve their files from a local http.server.
    os.environ["ZOO_OFFLINE"] = "1"



def pytest_unconfigure(config):
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)


# Tiny tensors: one intra-op thread is fastest, and pytest-xdist workers must not oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")


from helpers import run_cli  # noqa: E402


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The fixture data root (what ``ZOO_DATA_DIR`` points at during the tests)."""
    return FIXTURE_DATA


def pytest_collection_modifyitems(config, items):
    """`cuda` tests skip, with the reason, where no GPU is visible to this session."""
    if not any("cuda" in item.keywords for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    reason = ("no CUDA device on this machine" if _CUDA_SESSION else
              "CUDA is hidden from the CPU test session: run `pytest -m cuda tests/cuda` on a GPU machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
