"""The shape of ``core/``: short functions (each fits on a screen).

Parses the source with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
MAX_FUNCTION_LINES = 60

# Files split by other work in progress; each entry goes once its change is merged.
# TODO(lead): remove "serve.py" after merging the serve split, "scaffold.py" after issue 21's
# templates-as-package-data change (arch2).


def _core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_no_function_in_core_is_longer_than_a_screen(path):
    long = [f"{path.relative_to(CORE)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for f in _functions(path) if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(long)


def test_the_length_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f"def long():\n{body}\n", encoding="utf-8")
    (function,) = _functions(path)
    assert function.end_lineno - function.lineno + 1 == MAX_FUNCTION_LINES + 1


# -- no family in the core ---------------------------------------------------------------------
REGISTRY = CORE.parent / "registry.toml"
# Words that are model names and also the core's own vocabulary: the core's `regression` task
# (manifests say `task = "regression"`; the family is named after it), `linear` (the lr schedule
# `schedule.name = "linear"`, `nn.Linear`) and `softmax` (the function of the cross-entropy).
CORE_VOCABULARY = {"regression", "linear", "softmax"}


def _family_names() -> set[str]:
    import tomllib

    catalogue = tomllib.loads(REGISTRY.read_text(encoding="utf-8"))
    families = {name for name, entry in catalogue["plugins"].items()
                if any(model.get("plugin") == name for model in catalogue["models"].values())}
    return (families | set(catalogue["models"])) - CORE_VOCABULARY


def _words(text: str) -> set[str]:
    """Lower-case words of source text: identifiers split at ``_`` and camelCase, names with
    dashes kept whole (``resnet-small``) and split (``resnet``)."""
    import re

    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text).lower()
    dashed = set(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)+", text))
    return dashed | set(re.findall(r"[a-z0-9]+", text))


def test_family_names_are_found():
    names = _family_names()
    assert {"cnn", "rnn", "gnn", "word2vec", "transformer", "resnet-small", "skipgram", "lstm"} <= names
    assert _words("def build_skipgram(cfg): return ResnetSmall  # a CNN\nx = 'resnet-small'") >= {
        "skipgram", "resnet", "small", "cnn", "resnet-small"}


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_no_family_name_in_core(path):
    found = sorted(_words(path.read_text(encoding="utf-8")) & _family_names())
    assert not found, f"core/{path.relative_to(CORE)} names model families or models: {', '.join(found)}"


# -- imports run one way: contract ← train ← deploy ← api/cli ----------------------------------
LAYERS = ("contract", "train", "deploy")


def _runtime_imports(path: Path) -> set[str]:
    """Modules ``path`` imports when it runs (annotation-only imports under ``TYPE_CHECKING`` left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[:2] != ["zoo", "core"] or len(parts) < 3:
        return None
    return LAYERS.index(parts[2]) if parts[2] in LAYERS else len(LAYERS)  # api, serve, ...: on top


@pytest.mark.parametrize("layer", LAYERS)
def test_core_imports_run_one_way(layer):
    """contract imports neither train nor deploy; train does not import deploy; nothing in the
    three imports the modules above them (api, serve, cli) or a plugin."""
    level = LAYERS.index(layer)
    wrong = []
    for path in sorted((CORE / layer).rglob("*.py")):
        for module in sorted(_runtime_imports(path)):
            above = _layer(module) is not None and _layer(module) > level
            if above or module.startswith(("zoo.plugins", "zoo.cli")):
                wrong.append(f"{path.relative_to(CORE)} imports {module}")
    assert not wrong, "; ".join(wrong)


def test_the_direction_check_sees_a_wrong_import(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from zoo.core.deploy import export\n"
                    "from zoo.core.train import data\n", encoding="utf-8")
    assert _layer("zoo.core.train.data") == 1 and "zoo.core.deploy.export" not in _runtime_imports(path)
    assert "zoo.core.train.data" in _runtime_imports(path)


def test_core_is_grouped_by_what_it_does():
    flat = sorted(p.name for p in CORE.glob("*.py"))
    # the flow's top (api) and files other work moves or replaces; everything else is in a group
    assert set(flat) <= {"__init__.py", "api.py", "serve.py", "doctor.py", "scaffold.py", "toml_io.py"}, flat
