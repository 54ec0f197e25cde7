"""ONNX export: parity at untraced shapes, frozen axes caught, failures leave no file."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from torch import nn
from zoo.core.train.data import DataInfo, TensorSplit
from zoo.core.contract.errors import ExportError
from zoo.core.deploy.export import export_onnx
from zoo.core.train.tasks import Classification

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow

TASK = Classification()
INFO = DataInfo(input_shape=(4,), num_classes=3)


def _examples():
    split = TensorSplit(x=torch.randn(20, 4), y=torch.zeros(20, dtype=torch.long))
    return TASK.export_inputs(split)


def test_export_writes_metadata_and_checks_three_shapes(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    result = export_onnx(model, TASK, _examples(), TASK.dynamic_axes(INFO), tmp_path / "m.onnx",
                         metadata={"model": "t", "class_names": ["a", "b", "c"]})
    assert result.parity < 1e-5
    assert [s[0][0] for s in result.checked_shapes] == [3, 1, 17]
    loaded = onnx.load(str(tmp_path / "m.onnx"))
    meta = {p.key: p.value for p in loaded.metadata_props}
    assert json.loads(meta["class_names"]) == ["a", "b", "c"]
    assert loaded.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert not list(tmp_path.glob(".export-*"))


class _BatchDependent(nn.Module):
    """Specialises on the batch size: torch.export freezes it, and parity at other sizes fails."""

    def forward(self, x):
        if x.shape[0] == 3:  # a Python branch on the batch size: the exporter specialises to 3
            return x[:, :3] * 2
        return x[:, :3]


def test_a_frozen_or_wrong_export_fails_and_leaves_no_file(tmp_path):
    target = tmp_path / "m.onnx"
    with pytest.raises(ExportError):
        export_onnx(_BatchDependent(), TASK, _examples(), TASK.dynamic_axes(INFO), target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_override_that_computes_something_else_fails_parity(tmp_path):
    model = nn.Linear(4, 3)
    other = nn.Linear(4, 3)

    def override(m, path):
        torch.onnx.export(other, (torch.randn(3, 4),), str(path), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=True,
                          external_data=False)
        return path

    with pytest.raises(ExportError, match="parity check failed"):
        export_onnx(model, TASK, _examples(), TASK.dynamic_axes(INFO), tmp_path / "m.onnx", override=override)
    assert not (tmp_path / "m.onnx").exists()
