"""Meta-tests (datasette style): every hook is documented in docs/plugins.md and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from zoo.core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")


def _signature(name: str) -> str:
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    return f"{name}({params})"


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_hook_is_documented_with_its_signature_and_an_example(name):
    assert f"### `{_signature(name)}`" in GUIDE, f"docs/plugins.md lacks a section for {_signature(name)}"
    section = GUIDE.split(f"### `{_signature(name)}`", 1)[1].split("\n### ", 1)[0]
    assert "@hookimpl" in section and f"def {name}(" in section, f"{name}: no runnable example"


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_hook_has_a_test(name):
    pattern = re.compile(rf"def {name}\(")
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert tests, f"no test implements the hook {name}"


def test_guide_examples_compile():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)
    assert len(blocks) >= 8
    for block in blocks:
        compile(block, "docs/plugins.md", "exec")
