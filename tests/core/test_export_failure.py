"""A failed export after training and testing keeps the run (issue 20, point 6).

The model's ``forward`` branches on a data-dependent ``.item()``: it trains and tests in eager
mode, and ``torch.export`` cannot trace it (``GuardOnDataDependentSymNode``, after dumping 30
lines of FX graph on the console).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
import types

import pytest
from zoo.core import api
from zoo.core.contract.errors import ExportError
from zoo.core.contract.plugins import get_zoo
from zoo.core.train.runs import Run, describe

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow

QUICK = {"train": {"epochs": 1, "progress": False, "device": "cpu"}, "data": {"limit": 64}}


def _branching_forward(self, x):
    if x.sum().item() > 0:  # data-dependent control flow: torch.export cannot trace it
        return type(self).forward(self, x)
    return -type(self).forward(self, x)


def unexportable(builder):
    """``builder`` whose models branch on ``.item()`` (same weights, so the checkpoint still fits)."""
    def build(config, info):
        model = builder(config, info)
        model.forward = types.MethodType(_branching_forward, model)
        return model
    return build


@pytest.fixture
def unexportable_logistic(monkeypatch):
    models = get_zoo().registry.models
    spec = models["logistic"]
    monkeypatch.setitem(models, "logistic", dataclasses.replace(spec, builder=unexportable(spec.builder)))


def test_failed_export_keeps_summary_metrics_and_logs_the_dump(unexportable_logistic, tmp_path, capfd):
    out = tmp_path / "r"
    with pytest.raises(ExportError) as caught:
        api.train("logistic", options=QUICK, out=str(out), log=None)
    err = caught.value
    message = str(err)
    assert err.exit_code == 4 and "\n" not in message
    assert "GuardOnDataDependentSymNode" in message and "test_export_failure.py" in message
    assert "`export_model` hook" in message and "--set export.enabled=false" in message
    assert str(out / "export.log") in message and "Refer to the full stack trace" not in message

    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["export"] == "failed"
    assert "accuracy" in summary["metrics"] and summary["onnx"] is None and "phase" not in summary
    assert "\n" not in summary["export_error"] and "GuardOnDataDependentSymNode" in summary["export_error"]
    assert err.summary == summary
    assert not (out / "model.onnx").exists()

    log = (out / "export.log").read_text()
    assert "def forward" in log and "Traceback" in log and "GuardOnDataDependentSymNode" in log
    console = capfd.readouterr()
    assert "def forward" not in console.out + console.err  # the graph dump stayed in the log

    row = describe(Run(out))
    assert row["status"] == "finished" and row["export"] == "failed" and "accuracy" in row["metrics"]


def test_zoo_export_after_the_fix_records_success(unexportable_logistic, tmp_path, monkeypatch):
    out = tmp_path / "r"
    with pytest.raises(ExportError):
        api.train("logistic", options=QUICK, out=str(out), log=None)
    monkeypatch.undo()  # the model's code is fixed
    summary = api.reexport(str(out))
    assert summary["export"] == "ok" and "export_error" not in summary and (out / "model.onnx").exists()
    assert json.loads((out / "summary.json").read_text())["export"] == "ok"


def test_a_successful_run_says_export_ok_and_disabled_says_so(tmp_path):
    done = api.train("logistic", options=QUICK, out=str(tmp_path / "a"), log=None)
    assert done["export"] == "ok" and done["parity"] is not None
    off = api.train("logistic", options={**QUICK, "export": {"enabled": False}}, out=str(tmp_path / "b"), log=None)
    assert off["export"] == "disabled"


DRIVER = """
import dataclasses, sys
sys.path.insert(0, {tests!r})
from zoo.core.contract.plugins import get_zoo
from test_export_failure import unexportable
models = get_zoo().registry.models
models["logistic"] = dataclasses.replace(models["logistic"], builder=unexportable(models["logistic"].builder))
from zoo.cli import main
main(sys.argv[1:])
"""


def test_cli_exit_4_one_line_and_zoo_runs_shows_finished_with_failed_export(tmp_path, cli):
    import subprocess
    from pathlib import Path

    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER.format(tests=str(Path(__file__).parent))))
    run_dir = tmp_path / "runs" / "r"
    trained = subprocess.run([sys.executable, str(driver), "train", "logistic", "--out", str(run_dir),
                              "--epochs", "1", "--set", "data.limit=64", "-q"],
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 4, trained.stderr
    lines = [line for line in trained.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: logistic trained and tested"), trained.stderr
    assert [line for line in lines if line.startswith("error")] == lines[-1:], trained.stderr
    assert "def forward" not in trained.stdout + trained.stderr

    table = cli("runs", "--root", str(tmp_path / "runs"))
    assert table.returncode == 0, table.stderr
    row = table.stdout.splitlines()[1]
    assert "finished" in row and "export failed" in row and "accuracy" in table.stdout.splitlines()[0]
    shown = cli("runs", "show", str(run_dir))
    assert "export: failed: ONNX export failed: GuardOnDataDependentSymNode" in shown.stdout
