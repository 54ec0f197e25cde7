"""The TensorBoard logger plugin: event files hold the logged metrics (read back with TensorBoard)."""

from __future__ import annotations

import pytest

from zoo.core import api

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow


def test_scalars_and_hparams_are_written(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    summary = api.train("logistic", options={"train": {"epochs": 3, "progress": False, "log": ["tensorboard"]},
                                             "export": {"enabled": False}}, out=str(tmp_path / "r"), log=None)
    acc = event_accumulator.EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/accuracy", "val/loss", "lr"} <= set(tags)
    steps = [e.step for e in acc.Scalars("val/accuracy")]
    assert steps == [1, 2, 3]
    records = [line for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    import json

    assert [e.value for e in acc.Scalars("val/accuracy")] == pytest.approx(
        [json.loads(r)["val_accuracy"] for r in records])
    assert summary["status"] == "finished"


def test_not_enabled_writes_nothing(tmp_path):
    api.train("logistic", options={"train": {"epochs": 1, "progress": False}, "export": {"enabled": False}},
              out=str(tmp_path / "r"), log=None)
    assert not (tmp_path / "r" / "tensorboard").exists()
