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
PENDING = {"serve.py": "core/serve.py is being split (protocol / batcher / app)",
           "scaffold.py": "the scaffold's templates move to package data"}


def _core_files() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if p.name not in PENDING)


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
