"""docs/plugins.md states what a plugin author needs, checked against the code (issue 20, points 12-13):
DataInfo in full, the input shapes of the built-in datasets, every key a run records, the test API."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    assert f"\n## {title}" in GUIDE, f"docs/plugins.md has no section '## {title}'"
    return GUIDE.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def _table(section: str, first_column: str) -> list[list[str]]:
    """Rows of the markdown table whose header starts with ``first_column``."""
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_datainfo_is_documented_in_full():
    from zoo import DataInfo

    documented = " ".join(row[0] for row in _table(_section("DataInfo"), "field"))
    for name in [f.name for f in dataclasses.fields(DataInfo)] + ["input_size"]:
        assert f"`{name}`" in documented, f"DataInfo.{name} is not in docs/plugins.md"


def _documented_shapes() -> dict[str, str]:
    shapes = {}
    for row in _table(_section("DataInfo"), "dataset"):
        for name in re.findall(r"`([a-z0-9-]+)`", row[0]):
            shapes[name] = row[2]
    return shapes


def test_every_built_in_dataset_has_its_input_shape_documented():
    from zoo.core.contract.plugins import get_zoo

    shapes = _documented_shapes()
    missing = sorted(set(get_zoo().registry.datasets) - set(shapes))
    assert not missing, f"docs/plugins.md lacks the input shape of: {', '.join(missing)}"


@pytest.mark.slow
def test_documented_fixed_shapes_are_what_the_loaders_give():
    """Each documented literal shape, e.g. ``(1, 28, 28)``, against the loader (tiny fixtures)."""
    from zoo.core.contract.errors import DataUnavailable, ZooError
    from zoo.core.contract.plugins import get_zoo

    checked = []
    for name, cell in _documented_shapes().items():
        literal = re.match(r"`(\((?:\d+, )*\d*,?\))`", cell)
        spec = get_zoo().registry.datasets.get(name)
        if literal is None or spec is None:
            continue
        try:
            options = spec.options_class() if spec.options_class is not None else None
            info = spec.loader(options, None).info
        except (DataUnavailable, ZooError):
            continue  # no fixture for it (cifar10, mnist): the table is checked where data exists
        assert info.input_shape == eval(literal.group(1)), f"{name}: documented {literal.group(1)}"
        checked.append(name)
    assert {"digits", "fashion-mnist", "breast-cancer", "sst2", "adding-problem", "reverse"} <= set(checked)


@pytest.mark.slow
def test_every_key_a_run_records_is_documented(tmp_path):
    from zoo import testing

    summary = testing.train("logistic", epochs=2, limit=64, options={"train": {"grad_clip": 1.0}}, out=tmp_path / "r")
    section = _section("What a run records")
    epoch_keys = {cell for row in _table(section, "key") for cell in re.findall(r"`([a-z_<>]+)`", row[0])}
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    for key in records[0]:
        assert key in epoch_keys or (key.startswith("val_") and "val_<metric>" in epoch_keys), key
    assert {"grad_norm", "grad_norm_max", "steps", "skipped_steps"} <= epoch_keys
    assert "grad_norm" in records[0] and "grad_norm_max" in records[0]
    saved = json.loads((tmp_path / "r" / "summary.json").read_text())
    for key in saved:
        assert f"`{key}`" in section, f"summary.json key {key!r} is not in docs/plugins.md"
    for key in ("export_error", "error", "phase", "learned", "last_resume"):
        assert f"`{key}`" in section


@pytest.mark.parametrize("name", ["train", "check_plugin", "plugin_problems", "check_parity"])
def test_the_test_api_is_documented(name):
    from zoo import testing

    assert name in testing.__all__
    assert f"testing.{name}(" in _section("Testing a plugin")
