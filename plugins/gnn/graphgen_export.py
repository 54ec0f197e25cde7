"""ONNX export of the generators' step networks (the gnn plugin's ``export_model`` hook).

``model.onnx`` is the graph-level step (``row [B, M]``, ``hidden [L, B, H]`` → ``hidden_out``,
``output``); zoo checks it as every export (checker, symbolic batch axis, parity at batch 1 and
17 after tracing at 3). GraphRNN's edge-level step (``edge [B, 1]``, ``edge_hidden [Le, B, He]``
→ ``logit [B, 1]``, ``edge_hidden_out``) goes beside it as ``edge_step.onnx``, verified here the
same way before the hook returns. The sampling loop itself stays in Python
(:mod:`~zoo.plugins.gnn.graphgen_sample`): it draws random numbers and stops graphs at EOS.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from zoo.core.train.data import unwrap
from zoo.core.train.tasks import Task
from zoo.plugins.gnn.graphgen_sample import EDGE_FILE

GENERATORS = ("graphrnn", "graphrnn-s")


class _Step(nn.Module):
    """One step network of a generator (``step``: graph level, ``edge_step``: edge level) as a
    module of its own, so the exporter traces that method alone."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model, self.method = model, method

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor):
        return getattr(self.model, self.method)(inputs, hidden)


class EdgeStepSignature(Task):
    """The edge step's ONNX signature (for :func:`zoo.core.deploy.export.export_onnx`)."""

    name = "graph-generation-edge-step"
    input_names = ("edge", "edge_hidden")
    output_names = ("logit", "edge_hidden_out")
    axes = {"edge": {0: "batch"}, "edge_hidden": {1: "batch"}, "logit": {0: "batch"},
            "edge_hidden_out": {1: "batch"}}


def edge_examples(model: nn.Module, sizes: tuple[int, ...] = (3, 1, 17)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [((torch.rand(b, 1, generator=generator) < 0.5).float(),
             torch.randn(model.edge_layers, b, model.edge_hidden, generator=generator) * 0.5) for b in sizes]


def export_edge_step(model: nn.Module, path: Path, opset: int, atol: float = 1e-4, rtol: float = 1e-3):
    """Export and verify GraphRNN's edge step into ``path`` (an :class:`ExportResult`)."""
    from zoo.core.deploy.export import export_module, export_onnx

    signature = EdgeStepSignature()
    module = _Step(model, "edge_step").eval()

    def override(module, tmp):
        export_module(module, edge_examples(model)[0], tmp, signature.input_names, signature.output_names,
                      signature.axes, opset)
        return tmp

    return export_onnx(module, signature, edge_examples(model), signature.axes, path, opset=opset,
                       atol=atol, rtol=rtol, override=override)


def export_generator(model: nn.Module, task: Task, path: Path, opset: int) -> Path:
    """The hook's work: the graph step into ``path``, GraphRNN's edge step beside it."""
    from zoo.core.deploy.export import export_module

    inner = unwrap(model).eval()
    path = Path(path)
    if hasattr(inner, "edge_step"):
        export_edge_step(inner, path.parent / EDGE_FILE, opset)
    examples = task.export_examples(inner, None)
    export_module(_Step(inner, "step").eval(), examples[0], path, task.input_names, task.output_names,
                  task.dynamic_axes(None), opset)
    return path
