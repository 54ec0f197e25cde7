"""Shared fixtures. Tests run on the CPU, on tiny inputs, in seconds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Test modules import shared helpers as `from helpers import ...` (the repository root is itself
# the `zoo` package, so `tests` cannot be imported as a package of its own).
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests run on the CPU even where a GPU exists


from helpers import run_cli  # noqa: E402


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not present")
    return SHARED_DATA
