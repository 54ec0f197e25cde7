"""Run directories as a person looks at them: plots, `zoo runs`, show and compare."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from zoo.core import api
from zoo.core.contract.errors import TrainingInterrupted

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    options = {"train": {"progress": False, "epochs": 3}, "export": {"enabled": False}}
    api.train("logistic", options=options, out=str(root / "a"), log=None)
    api.train("logistic", options={**options, "optim": {"lr": 0.001}}, out=str(root / "b"), log=None)
    return root


def test_plots_are_readable_pngs(root):
    plt = pytest.importorskip("matplotlib.pyplot")
    confusion = json.loads((root / "a" / "confusion.json").read_text())
    assert len(confusion["matrix"]) == 2 and sum(map(sum, confusion["matrix"])) == 114  # the test split
    for name in ("loss.png", "metrics.png", "lr.png", "confusion.png"):
        image = plt.imread(root / "a" / name)
        assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0


def test_runs_table_lists_metrics_and_status(root, tmp_path):
    interrupted = root / "c"
    from zoo import hookimpl
    from zoo.core.contract.plugins import get_zoo

    class Stop:
        @hookimpl
        def on_epoch_end(self, run, epoch, metrics):
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)

    zoo = get_zoo()
    plugin = Stop()
    zoo.pm.register(plugin)
    try:
        with pytest.raises(TrainingInterrupted):
            api.train("logistic", options={"train": {"progress": False, "epochs": 3}}, out=str(interrupted), log=None)
    finally:
        zoo.pm.unregister(plugin)
    result = run_cli("runs", "--root", str(root), "--json", "--sort", "accuracy")
    assert result.returncode == 0, result.stderr
    rows = {r["run"]: r for r in json.loads(result.stdout)}
    assert rows["a"]["status"] == "finished" and rows["c"]["status"] == "interrupted"
    summary = json.loads((root / "a" / "summary.json").read_text())
    assert rows["a"]["metrics"] == summary["metrics"] and rows["a"]["epochs"] == 3
    text = run_cli("runs", "--root", str(root), "--model", "logistic").stdout
    assert "finished" in text and "interrupted" in text and "accuracy" in text


def test_show_and_compare(root):
    shown = json.loads(run_cli("runs", "show", str(root / "a"), "--json").stdout)
    assert len(shown["history"]) == 3 and "config.toml" in shown["files"]
    compared = json.loads(run_cli("runs", "compare", str(root / "a"), str(root / "b"), "--json").stdout)
    assert compared["config"] == {"optim.lr": [0.01, 0.001]}
    assert set(compared["metrics"]) >= {"accuracy", "loss"}
    missing = run_cli("runs", "--root", str(root / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
