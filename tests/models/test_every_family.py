"""Every plugin that declares models has its module of model checks here (so no model goes untested)."""

from __future__ import annotations

from pathlib import Path

from zoo.core.catalogue import load_catalogue


def test_every_family_with_models_has_a_module():
    families = {entry.plugin for entry in load_catalogue().models.values()}
    modules = {path.stem.removeprefix("test_") for path in Path(__file__).parent.glob("test_*.py")}
    missing = sorted(families - modules)
    assert not missing, f"add tests/models/test_FAMILY.py (PLUGIN = FAMILY) for {missing}"
