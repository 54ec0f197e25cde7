"""An ``export_model`` hook that declines (returns None) must not switch off the core's checks.

The word2vec plugin is the first to implement the hook, so every other model's export now goes
through ``override`` → ``None`` → default exporter; the frozen-axes check must still run.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.core.contract.errors import ExportError
from zoo.core.deploy.export import export_onnx
from zoo.core.train.tasks import Regression

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow


class FreezesTheBatch(nn.Module):
    """reshape(3, -1) makes torch.export specialise the batch axis to 3."""

    def forward(self, x):
        return x.reshape(3, -1).sum(-1)


def test_declining_override_keeps_the_frozen_axes_check(tmp_path):
    task = Regression()
    examples = [(torch.randn(3, 4),)]
    axes = task.dynamic_axes(None)
    with pytest.raises(ExportError, match="froze dynamic axes"):
        export_onnx(FreezesTheBatch(), task, examples, axes, tmp_path / "m.onnx",
                    override=lambda model, path: None)
    assert not (tmp_path / "m.onnx").exists()
