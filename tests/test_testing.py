"""``zoo.testing``, the test API for plugin authors (issue 20, point 12)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import tomllib
from pathlib import Path

import pytest
from zoo import testing
from zoo.core.contract.errors import ExportError
from zoo.core.contract.plugins import get_zoo


@pytest.mark.slow
def test_train_runs_quickly_into_a_temporary_folder_and_returns_the_summary():
    summary = testing.train("logistic", limit=64)
    run_dir = Path(summary["run_dir"])
    assert run_dir.is_relative_to(tempfile.gettempdir()) and (run_dir / "model.onnx").exists()
    assert summary["status"] == "finished" and summary["epochs"] == 1 and "accuracy" in summary["metrics"]
    assert summary["device"] == "cpu" and summary["parity"] < 1e-4
    assert json.loads((run_dir / "summary.json").read_text())["metrics"] == summary["metrics"]


@pytest.mark.slow
def test_train_takes_epochs_options_sets_and_out(tmp_path):
    summary = testing.train("mlp", epochs=2, limit=64, options={"optim": {"lr": 0.05}},
                            sets=("model.hidden=[4]",), out=tmp_path / "r", export=False)
    assert summary["epochs"] == 2 and summary["onnx"] is None and summary["run_dir"] == str(tmp_path / "r")
    config = tomllib.loads((tmp_path / "r" / "config.toml").read_text())
    assert config["optim"]["lr"] == 0.05 and config["model"]["hidden"] == [4]


@pytest.mark.slow
def test_check_plugin_passes_for_a_sound_plugin_and_lists_problems(monkeypatch):
    testing.check_plugin("regression")
    assert testing.plugin_problems("regression") == []
    assert "not installed" in testing.plugin_problems("no-such-plugin")[0]
    zoo = get_zoo()
    broken = dataclasses.replace(zoo.status["regression"], problems=["registers model 'x' that its manifest "
                                                                     "does not declare"])
    monkeypatch.setitem(zoo.status, "regression", broken)
    with pytest.raises(AssertionError, match="regression: declarations: registers model 'x'"):
        testing.check_plugin("regression")
    failed = dataclasses.replace(zoo.status["regression"], status="failed", error="ImportError: no numpy")
    monkeypatch.setitem(zoo.status, "regression", failed)
    assert "regression: load: ImportError: no numpy" in testing.plugin_problems("regression")


@pytest.mark.slow
def test_check_parity_of_a_fresh_and_of_a_given_model(tmp_path):
    result = testing.check_parity("logistic", out=tmp_path)
    assert result["parity"] < 1e-4 and Path(result["path"]) == tmp_path / "model.onnx"
    assert len(result["checked_shapes"]) >= 3 and result["provider"] == "CPUExecutionProvider"
    import torch

    class Branching(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(30, 1)

        def forward(self, x):
            return self.linear(x) if x.sum().item() > 0 else -self.linear(x)  # not exportable

    with pytest.raises(ExportError, match="GuardOnDataDependentSymNode"):
        testing.check_parity("logistic", Branching(), out=tmp_path / "b")
    assert "Traceback" in (tmp_path / "b" / "export.log").read_text()


@pytest.mark.slow
def test_the_scaffold_tests_use_zoo_testing_only(tmp_path):
    from zoo.core.scaffold import new_plugin

    text = (new_plugin("shapes", tmp_path) / "tests" / "test_plugin.py").read_text()
    assert "from zoo import testing" in text and "zoo.core" not in text
    assert 'testing.check_plugin("shapes")' in text and "testing.train(" in text and "testing.check_parity(" in text


@pytest.mark.slow
def test_the_scaffold_tests_pass_from_an_installed_plugin(tmp_path):
    """The generated tests, run by pytest as the plugin's author would, against the plugin
    installed with `pip install --target` (found through its entry point, not zoo's tree)."""
    import os
    import subprocess
    import sys

    import zoo
    from zoo.core.scaffold import new_plugin

    root = new_plugin("shapes", tmp_path)
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                                "--target", str(site), str(root)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    # The zoo under test stays importable (a checkout's `zoo` folder, or an installed zoo-ml).
    path = os.pathsep.join([str(site), str(Path(zoo.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                             "tests"], cwd=root, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": path})
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "3 passed" in tested.stdout
