"""Tasks say which metrics are better when higher, and write their own files after the test."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from zoo.core.train.data import DataInfo, TensorSplit
from zoo.core.contract.plugins import get_zoo
from zoo.core.train.runs import Run
from zoo.core.train.tasks import Classification, Regression, Task


@pytest.mark.parametrize("name", sorted(get_zoo().registry.tasks))
def test_every_registered_task_says_its_main_metric_direction(name):
    task = get_zoo().registry.tasks[name]
    assert task.prefers_higher(task.main_metric) is task.higher_is_better
    assert task.prefers_higher("loss") is (task.main_metric == "loss" and task.higher_is_better)
    assert task.main_metric not in task.higher_is_better_metrics  # the main metric says it with higher_is_better


@pytest.mark.parametrize(("task", "metric", "higher"), [
    (Classification(), "accuracy", True), (Classification(), "loss", False),
    (Regression(), "r2", True), (Regression(), "mse", False), (Regression(), "mae", False),
    (Task(), "anything", False),
])
def test_prefers_higher(task, metric, higher):
    assert task.prefers_higher(metric) is higher


def _ctx(tmp_path):
    run = Run.create(str(tmp_path / "r"), "m")
    return SimpleNamespace(run=run, config={"train": {"eval_batch_size": 2}})


class _Fixed(torch.nn.Module):
    """Logits that predict class ``x[:, 0]``."""

    def forward(self, x):
        return torch.nn.functional.one_hot(x[:, 0].long(), 3).float()


def test_classification_writes_the_test_confusion_matrix(tmp_path):
    ctx = _ctx(tmp_path)
    x = torch.tensor([[0.0], [1.0], [2.0], [2.0], [1.0]])
    y = torch.tensor([0, 1, 1, 2, 0])
    info = DataInfo(input_shape=(1,), num_classes=3, class_names=["a", "b", "c"])
    summary: dict = {}
    files = Classification().write_artifacts(ctx, _Fixed(), TensorSplit(x=x, y=y), info, summary)
    assert ctx.run.file("confusion.json") in files
    saved = json.loads(ctx.run.file("confusion.json").read_text())
    # rows: true class, columns: predicted
    assert saved == {"matrix": [[1, 1, 0], [0, 1, 1], [0, 0, 1]], "classes": ["a", "b", "c"]}
    assert summary == {}


class _Linear(torch.nn.Linear):
    def learned_parameters(self):
        return {"w": self.weight.reshape(-1).tolist(), "b": float(self.bias.detach())}


def test_a_model_reporting_its_parameters_gets_them_into_the_summary(tmp_path):
    model = _Linear(2, 1)
    info = DataInfo(input_shape=(2,), output_dim=1)
    split = TensorSplit(x=torch.zeros(3, 2), y=torch.zeros(3))
    summary: dict = {}
    assert Regression().write_artifacts(_ctx(tmp_path), model, split, info, summary) == []
    assert summary["learned"]["b"] == float(model.bias.detach())
    summary = {}
    Regression().write_artifacts(_ctx(tmp_path / "plain"), torch.nn.Linear(2, 1), split, info, summary)
    assert "learned" not in summary
