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


def reverse_run_fixture(model: str, n: int, n_test: int, lr: float):
    """A module-scoped fixture ``reverse_run``: a tiny trained run of a seq2seq ``model`` on
    ``reverse`` (length 2–5 over 6 symbols, 3 epochs); its decodes vary with the input, which is
    all the comparisons of the tests need. It gives ``(out, summary)``."""
    import pytest

    @pytest.fixture(scope="module")
    def reverse_run(tmp_path_factory) -> tuple[Path, dict]:
        from zoo.core import api
        from zoo.core.contract.catalogue import load_catalogue

        out = tmp_path_factory.mktemp(f"{model}-reverse") / "run"
        entry = load_catalogue().models[model]
        options = quick_options(entry, data={"limit": None, "options": {
            "symbols": 6, "min_length": 2, "max_length": 5, "n": n, "n_test": n_test}},
            optim={"lr": lr}, train={"epochs": 3, "batch_size": 32})
        summary = api.train(model, options=options, out=str(out), log=None)
        assert summary["status"] == "finished" and summary["parity"] == 0.0
        return out, summary

    return reverse_run


def check_onnx_greedy_decoding(out: Path) -> None:
    """The run's ``model.onnx`` decodes 50 random ``reverse`` inputs (in batches of varied size)
    exactly as the torch model does, and the decodes vary (not one constant row)."""
    import numpy as np
    import torch

    from zoo.core import api
    from zoo.core.deploy.runtime import make_session

    _, _, _, net, _, _, _ = api.load_run(str(out))
    session = make_session(out / "model.onnx")
    generator = torch.Generator().manual_seed(0)
    seen, decoded = 0, set()
    for batch in (1, 7, 2, 13, 4, 23):
        length = int(torch.randint(2, 6, (1,), generator=generator))
        tokens = torch.randint(4, 10, (batch, length), generator=generator)
        lengths = torch.randint(2, length + 1, (batch,), generator=generator)
        tokens = tokens.masked_fill(torch.arange(length)[None] >= lengths[:, None], 0)
        with torch.no_grad():
            expected = net(tokens, lengths).numpy()
        got = session.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})[0]
        assert got.dtype == np.int64 and got.shape == expected.shape == (batch, 6)
        np.testing.assert_array_equal(got, expected)
        seen += batch
        decoded |= {tuple(row) for row in got.tolist()}
    assert seen == 50 and len(decoded) >= 8


def declare_system_roots(monkeypatch, dataset: str, roots) -> None:
    """Patch the catalogue's ``system`` folders of ``dataset`` (``registry.toml``: Debian's
    ``/usr/share/datasets`` for fashion-mnist), which :func:`zoo.core.train.data.locate` searches last."""
    import dataclasses

    from zoo.core.contract.catalogue import load_catalogue

    datasets = load_catalogue().datasets
    monkeypatch.setitem(datasets, dataset, dataclasses.replace(datasets[dataset], system=tuple(map(str, roots))))
