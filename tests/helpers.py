"""Helpers shared by the tests (imported as `from helpers import ...`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_options(entry, **extra) -> dict:
    """Config overrides that make any catalogue model train in about a second."""
    from zoo.core.contract.config import deep_merge

    options = {
        "train": {"epochs": 1, "batch_size": 16, "progress": False, "device": "cpu"},
        "data": {"limit": 64},
    }
    options = deep_merge(options, entry.smoke)
    return deep_merge(options, extra)


def predict_raw_text(run_dir, tmp_path) -> tuple[list, dict]:
    """``zoo predict`` on two raw sentences of an sst2 text classifier: checks the two labels and
    returns ``(predictions, metadata)`` for the caller's own checks."""
    import json

    from zoo.core import api

    path = tmp_path / "in.json"
    path.write_text(json.dumps({"text": ["a wonderful , moving film", "dull"]}))
    predictions, metadata = api.predict(str(run_dir), str(path))
    assert len(predictions) == 2 and predictions[0]["label"] in ("negative", "positive")
    return predictions, metadata


def run_cli(*args: str, env: dict | None = None, cwd: str | Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m zoo ARGS`` in a fresh interpreter (as a user would)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def with_plugin(plugin, fn):
    """``fn()`` with ``plugin`` registered on the process's zoo, unregistered afterwards."""
    from zoo.core.contract.plugins import get_zoo

    zoo = get_zoo()
    zoo.pm.register(plugin)
    try:
        return fn()
    finally:
        zoo.pm.unregister(plugin)


def assert_predict_error(run_dir, tmp_path, content, message) -> None:
    """``api.predict`` on the JSON ``content`` raises a ZooError matching ``message``."""
    import json

    import pytest

    from zoo.core import api
    from zoo.core.contract.errors import ZooError

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ZooError, match=message):
        api.predict(str(run_dir), str(path))


def cli_in_fresh_interpreter(*args: str, timeout: float = 60) -> tuple[str, set[str]]:
    """``zoo ARGS`` run by ``zoo.cli.main`` in a fresh interpreter: (what it printed, the modules
    imported by then), to check what a command imports (torch, plugins)."""
    import json

    code = ("import json, sys\nfrom zoo.cli import main\n"
            f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
            "print('\\nMODULES', json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    printed, _, modules = result.stdout.rpartition("\nMODULES ")
    return printed, set(json.loads(modules))
