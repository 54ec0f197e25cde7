"""The MLflow logger plugin: a local file store run holds params, metrics per epoch and the ONNX file."""

from __future__ import annotations

import json

import pytest

from zoo.core import api

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow


def test_params_metrics_and_onnx_artifact(tmp_path, monkeypatch):
    tracking = pytest.importorskip("mlflow.tracking")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    api.train("logistic", options={"train": {"epochs": 3, "progress": False, "log": ["mlflow"]}},
              out=str(tmp_path / "r"), log=None)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = tracking.MlflowClient((tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("zoo").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "logistic"
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([r["val_accuracy"] for r in records])
    assert "test_accuracy" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"model.onnx", "summary.json"}
