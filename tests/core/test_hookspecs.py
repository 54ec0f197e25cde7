"""The contract documents itself: every hook has a summary, its parameters and an example."""

from __future__ import annotations

import inspect

import pytest
from zoo.core.contract import hookspecs


def test_hook_names_match_the_specs():
    specs = {name for name, fn in vars(hookspecs).items() if hasattr(fn, "zoo_spec")}
    assert specs == set(hookspecs.HOOK_NAMES)


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_is_documented(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn)
    assert doc and len(doc.splitlines()[0]) > 10
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name}: parameter {param} undocumented"
    assert "Example::" in doc and "@hookimpl" in doc


def test_export_override_is_firstresult():
    assert hookspecs.export_model.zoo_spec["firstresult"] is True
