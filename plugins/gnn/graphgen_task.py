"""The ``graph-generation`` task: learn a distribution over graphs from BFS sequences.

Training batches are ``x, y, mask [B, N, M]`` and ``lengths [B]``
(:class:`~zoo.plugins.gnn.graphgen_data.SequenceSplit`); the model returns edge logits
``[B, N, M]`` and the loss is the binary cross-entropy over the valid entries (``mask``):

.. math::
    \\mathcal{L} = -\\frac{1}{|\\mathrm{mask}|} \\sum_{\\mathrm{mask}} y \\log \\sigma(z) + (1 - y) \\log(1 - \\sigma(z))

Per-batch metrics: ``loss`` and ``edge_accuracy`` (thresholded at ½). After training,
:meth:`GraphGeneration.evaluate_model` samples ``model.samples`` graphs and adds the paper's
test metrics (MMD of degree, clustering and orbit statistics against the test graphs, validity,
uniqueness and novelty; :mod:`~zoo.plugins.gnn.graphgen_metrics`).

The ONNX signature is the graph-level step: ``row [B, M]``, ``hidden [L, B, H]`` →
``hidden_out [L, B, H]``, ``output [B, K]``, dynamic in the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.core.train.data import DataInfo, Dataset, Split, unwrap
from zoo.core.contract.errors import ZooError
from zoo.core.train.tasks import Task


class GraphGeneration(Task):
    name = "graph-generation"
    input_names = ("row", "hidden")
    output_names = ("hidden_out", "output")
    main_metric = "loss"
    higher_is_better = False
    losses = ("bce",)

    def inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if "y" in batch:                                    # a training/evaluation batch
            return batch["x"], batch["y"], batch["lengths"]
        return batch["row"], batch["hidden"]                # one graph-level step

    def check_info(self, info: DataInfo) -> None:
        if info.extra.get("level") != "generation":
            raise ZooError("graph-generation needs a generated graph set (community-small, grid-small)")

    @staticmethod
    def _bce(output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(output.float(), batch["y"], weight=batch["mask"], reduction="sum")

    def loss(self, output, batch, loss_name=None):
        return self._bce(output, batch) / batch["mask"].sum().clamp(min=1.0)

    def metric_sums(self, output, batch, loss_name=None):
        mask = batch["mask"]
        correct = ((output > 0).float() == batch["y"]).float() * mask
        return {"loss_sum": self._bce(output, batch).detach(), "count": mask.sum(), "correct": correct.sum()}

    def finalize(self, sums, loss_name=None):
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums.get("loss_sum", 0.0) / n, "edge_accuracy": sums.get("correct", 0.0) / n}

    def evaluate_model(self, model: torch.nn.Module, dataset: Dataset) -> dict[str, float]:
        """Sample ``model.samples`` graphs (the config's) and compare them with the test graphs."""
        from zoo.plugins.gnn.graphgen_metrics import generation_metrics
        from zoo.plugins.gnn.graphgen_sample import sample_torch

        inner = unwrap(model)
        config = getattr(inner, "config", None)
        count = getattr(config, "samples", 1024)
        generated = sample_torch(inner, count, seed=0)
        return generation_metrics(generated, dataset.test.graphs, dataset.train.graphs,
                                  kernel=getattr(config, "kernel", "emd"))

    # -- export: one graph-level step -------------------------------------------------------
    def dynamic_axes(self, info: DataInfo) -> dict[str, dict[int, str]]:
        return {"row": {0: "batch"}, "hidden": {1: "batch"}, "hidden_out": {1: "batch"}, "output": {0: "batch"}}

    def export_examples(self, model: torch.nn.Module, split: Split) -> list[tuple[torch.Tensor, ...]]:
        """Random 0/1 rows and random states ``[L, B, H]`` (the model's L and H) at batch 3
        (traced), 1 and 17."""
        inner = unwrap(model)
        generator = torch.Generator().manual_seed(0)
        return [((torch.rand(b, inner.max_prev, generator=generator) < 0.5).float(),
                 torch.randn(inner.layers, b, inner.hidden, generator=generator) * 0.5) for b in (3, 1, 17)]
