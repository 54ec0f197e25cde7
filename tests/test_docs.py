"""Meta-tests (datasette style): every hook is documented in docs/plugins.md and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from zoo.core.contract import hookspecs

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


def test_cli_reference_matches_help():
    from zoo.cli import reference_markdown

    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == reference_markdown(), "docs/cli.md is stale: run python scripts/cli_reference.py"


def test_readme_catalogue_table_lists_every_model():
    """The README's catalogue table names, per plugin, exactly the models the registry declares."""
    from zoo.core.contract.catalogue import load_catalogue

    catalogue = load_catalogue()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## The catalogue", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        plugin, models, datasets = (cell.strip() for cell in line.strip("|").split("|"))
        for name in plugin.split(", "):
            rows[name] = {m for m in models.split(", ") if m and not m.startswith("–")}
    for plugin in {entry.plugin for entry in catalogue.models.values()}:
        declared = {name for name, entry in catalogue.models.items() if entry.plugin == plugin}
        assert plugin in rows, f"README catalogue table has no row for plugin {plugin!r}"
        assert rows[plugin] == declared, (plugin, rows[plugin] ^ declared)
