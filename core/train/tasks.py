"""The built-in generic tasks, ``regression`` and ``classification`` (registered by the core's own
plugin, :mod:`zoo.core.train.builtins`). The :class:`Task` base class is the contract (:mod:`zoo.core.contract.task`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from zoo.core.train.data import Split, unwrap
from zoo.core.contract.errors import ZooError
from zoo.core.contract.protocols import ReportsParameters
from zoo.core.contract.task import Task

__all__ = ["Classification", "Regression", "Task"]


def _record_learned(model: torch.nn.Module, summary: dict[str, Any]) -> None:
    """A :class:`ReportsParameters` model's values into the summary as ``learned``."""
    inner = unwrap(model)
    if isinstance(inner, ReportsParameters):
        summary["learned"] = inner.learned_parameters()


def _sum(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float().sum()


class Regression(Task):
    """Real-valued targets ``y`` of shape ``[B]`` or ``[B, T]``.

    Losses: ``mse`` = mean (ŷ − y)², ``mae`` = mean |ŷ − y|. Metrics: both, and
    R² = 1 − Σ(ŷ − y)² / Σ(y − ȳ)² over all targets.
    """

    name = "regression"
    output_names = ("prediction",)
    main_metric = "mse"
    higher_is_better = False
    higher_is_better_metrics = frozenset({"r2"})
    losses = ("mse", "mae")

    @staticmethod
    def _align(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if output.dim() == y.dim() + 1 and output.shape[-1] == 1:
            output = output.squeeze(-1)
        if output.shape != y.shape:
            raise ZooError(f"regression: model output {tuple(output.shape)} does not match "
                           f"targets {tuple(y.shape)}")
        return output

    def check_info(self, info: DataInfo) -> None:
        if not info.output_dim:
            raise ZooError("regression needs a dataset with real-valued targets (output_dim)")

    def loss(self, output, batch, loss_name=None):
        y = batch["y"]
        pred = self._align(output, y)
        if (loss_name or "mse") == "mae":
            return F.l1_loss(pred, y)
        return F.mse_loss(pred, y)

    def metric_sums(self, output, batch, loss_name=None):
        y = batch["y"].float()
        pred = self._align(output, y).float()
        err = pred - y
        return {
            "count": torch.tensor(float(y.numel()), device=y.device),
            "sse": _sum(err * err),
            "sae": _sum(err.abs()),
            "sum_y": _sum(y),
            "sum_y2": _sum(y * y),
        }

    def finalize(self, sums, loss_name=None):
        n = max(sums["count"], 1.0)
        mse, mae = sums["sse"] / n, sums["sae"] / n
        total = sums["sum_y2"] - sums["sum_y"] ** 2 / n
        r2 = 1.0 - sums["sse"] / total if total > 0 else float("nan")
        return {"loss": mae if loss_name == "mae" else mse, "mse": mse, "mae": mae, "r2": r2}

    def write_artifacts(self, ctx, model, test, info, summary):
        """A :class:`ReportsParameters` model's values (``learned`` in the summary); no files."""
        _record_learned(model, summary)
        return []


class Classification(Task):
    """Class labels ``y`` (int64 ``[B]``) from logits.

    Multi-class: logits ``[B, C]``, loss = cross-entropy = −log softmax(z)_y.
    Binary: one logit ``[B]`` or ``[B, 1]``, loss = binary cross-entropy of σ(z).
    Metrics: loss and accuracy.
    """

    name = "classification"
    output_names = ("logits",)
    main_metric = "accuracy"
    higher_is_better = True
    losses = ("cross_entropy",)

    def check_info(self, info: DataInfo) -> None:
        if not info.num_classes or info.num_classes < 2:
            raise ZooError("classification needs a dataset with num_classes ≥ 2")

    @staticmethod
    def _binary(output: torch.Tensor) -> bool:
        return output.dim() == 1 or output.shape[-1] == 1

    def loss(self, output, batch, loss_name=None):
        y = batch["y"]
        if self._binary(output):
            return F.binary_cross_entropy_with_logits(output.reshape(-1), y.float())
        return F.cross_entropy(output, y)

    def predictions(self, output: torch.Tensor) -> torch.Tensor:
        if self._binary(output):
            return (output.reshape(-1) > 0).long()
        return output.argmax(dim=-1)

    def metric_sums(self, output, batch, loss_name=None):
        y = batch["y"]
        if self._binary(output):
            losses = F.binary_cross_entropy_with_logits(output.reshape(-1).float(), y.float(), reduction="sum")
        else:
            losses = F.cross_entropy(output.float(), y, reduction="sum")
        return {
            "count": torch.tensor(float(y.shape[0]), device=y.device),
            "loss_sum": losses.detach(),
            "correct": _sum(self.predictions(output) == y),
        }

    def finalize(self, sums, loss_name=None):
        n = max(sums["count"], 1.0)
        return {"loss": sums["loss_sum"] / n, "accuracy": sums["correct"] / n}

    def write_artifacts(self, ctx, model, test, info, summary):
        """The test confusion matrix (``confusion.json`` and, with matplotlib, ``confusion.png``) and a
        :class:`ReportsParameters` model's values."""
        from zoo.core.train.runs import write_confusion

        _record_learned(model, summary)
        if not info.num_classes:
            return []
        batch_size = ctx.config["train"]["eval_batch_size"]
        matrix = self.confusion_matrix(model, test, info.num_classes, batch_size)
        return write_confusion(ctx.run, matrix, info.class_names)

    @torch.no_grad()
    def confusion_matrix(self, model: torch.nn.Module, split: Split, num_classes: int,
                         batch_size: int) -> list[list[int]]:
        """Counts of (true class, predicted class) over ``split``: ``[num_classes, num_classes]``."""
        model.eval()
        counts = None
        for batch in split.batches(batch_size):
            predicted = self.predictions(model(*self.inputs(batch))).reshape(-1)
            pairs = batch["y"].reshape(-1) * num_classes + predicted
            binned = torch.bincount(pairs, minlength=num_classes * num_classes)
            counts = binned if counts is None else counts + binned
        return counts.reshape(num_classes, num_classes).tolist() if counts is not None else []

    def postprocess(self, outputs, metadata):
        logits = outputs[self.output_names[0]].astype(np.float64)
        names = metadata.get("class_names")
        if logits.ndim == 1 or logits.shape[-1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-logits.reshape(-1)))
            probs = np.stack([1 - p1, p1], axis=-1)
        else:
            shifted = logits - logits.max(axis=-1, keepdims=True)
            probs = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
        out = []
        for row in probs:
            k = int(row.argmax())
            out.append({"label": names[k] if names and k < len(names) else k,
                        "class": k, "probability": round(float(row[k]), 6)})
        return out
