"""Tasks: what is being learned, independent of the architecture.

A :class:`Task` owns the loss, the metrics, and the ONNX signature (input/output names and
dynamic axes) of a kind of problem. The trainer and the exporter only talk to models through a
task, which is why one generic trainer serves every family.

Metrics are accumulated as *sums* of tensors on the device (``metric_sums``), added up over
batches without host synchronisation, and turned into numbers once per evaluation
(``finalize``). Sums are also what distributed training all-reduces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from zoo.core.data import DataInfo, Split
from zoo.core.errors import ZooError


class Task:
    """Base class of every task. Subclasses set the class attributes and implement the methods.

    :cvar name: the key manifests use (``task = "classification"``)
    :cvar input_names: batch keys fed to ``model.forward`` in order; also the ONNX input names
    :cvar output_names: ONNX output names (the model returns one tensor or a tuple in this order)
    :cvar main_metric: validation metric used for the best checkpoint and early stopping
    :cvar higher_is_better: direction of ``main_metric``
    :cvar higher_is_better_metrics: the other metrics that are better when higher (``train.monitor``
        may name any metric; every one not listed here is better when lower, as a loss is)
    :cvar losses: loss names accepted by ``train.loss`` (the first is the default)
    """

    name: ClassVar[str] = ""
    input_names: ClassVar[tuple[str, ...]] = ("x",)
    output_names: ClassVar[tuple[str, ...]] = ("output",)
    main_metric: ClassVar[str] = "loss"
    higher_is_better: ClassVar[bool] = False
    higher_is_better_metrics: ClassVar[frozenset[str]] = frozenset()
    losses: ClassVar[tuple[str, ...]] = ()

    def prefers_higher(self, metric: str) -> bool:
        """Whether a larger ``metric`` is better: picks the best checkpoint and drives early stopping."""
        if metric == self.main_metric:
            return self.higher_is_better
        return metric in self.higher_is_better_metrics

    # -- training ---------------------------------------------------------------------------
    def inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The model's positional inputs taken from a batch."""
        return tuple(batch[name] for name in self.input_names)

    def loss(self, output: Any, batch: dict[str, torch.Tensor], loss_name: str | None = None) -> torch.Tensor:
        """Scalar mean loss of one batch."""
        raise NotImplementedError

    def metric_sums(self, output: Any, batch: dict[str, torch.Tensor],
                    loss_name: str | None = None) -> dict[str, torch.Tensor]:
        """Per-batch sums (0-d tensors, left on the device) that ``finalize`` turns into metrics."""
        raise NotImplementedError

    def finalize(self, sums: dict[str, float], loss_name: str | None = None) -> dict[str, float]:
        """Metrics from the summed statistics of a whole split."""
        raise NotImplementedError

    def check_info(self, info: DataInfo) -> None:
        """Raise ZooError when a dataset does not fit this task (e.g. no ``num_classes``)."""

    # -- after the test ---------------------------------------------------------------------
    def write_artifacts(self, ctx: Any, model: torch.nn.Module, test: Split, info: DataInfo,
                        summary: dict[str, Any]) -> list[Path]:
        """Write this task's own files into the run once the test is done (rank 0 only).

        The default records a :class:`~zoo.core.protocols.ReportsParameters` model's
        ``learned_parameters()`` as the summary's ``learned``; :class:`Classification` adds the
        test confusion matrix.

        :param ctx: the run context (:class:`zoo.core.context.RunContext`; ``ctx.run.file(name)``
            is a path in the run directory, ``ctx.config`` the resolved config)
        :param model: the trained model with the best weights, on the training device
        :param test: the test split, on the same device
        :param info: what the data is (:class:`~zoo.core.data.DataInfo`)
        :param summary: the run summary about to be written; a task may add entries
        :returns: the files written (listed in the summary's ``plots``)
        """
        from zoo.core.data import unwrap
        from zoo.core.protocols import ReportsParameters

        inner = unwrap(model)
        if isinstance(inner, ReportsParameters):
            summary["learned"] = inner.learned_parameters()
        return []

    # -- export -----------------------------------------------------------------------------
    def dynamic_axes(self, info: DataInfo) -> dict[str, dict[int, str]]:
        """Axes of each ONNX input and output that vary between calls, with symbolic names."""
        axes = {name: {0: "batch"} for name in self.input_names}
        axes.update({name: {0: "batch"} for name in self.output_names})
        return axes

    def export_inputs(self, split: Split, sizes: tuple[int, ...] = (3, 1, 17)) -> list[tuple[torch.Tensor, ...]]:
        """Example inputs for export: the first set is traced, the others check parity.

        The traced size is ≥ 2 and unusual on purpose: torch.export specialises an axis whose
        example size is 0 or 1, and the dynamo exporter then writes a static graph silently.
        """
        n = len(split)
        out = []
        for size in sizes:
            index = torch.arange(min(size, n), device=split.device)
            out.append(self.inputs(split.batch(index)))
        return out

    # -- serving ----------------------------------------------------------------------------
    def raw_inputs(self, data: Any, metadata: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """Model inputs from raw user input (e.g. text, for tasks whose models take token ids),
        or ``None`` when ``data`` is plain arrays for :func:`zoo.core.runtime.load_inputs`.

        :param data: the parsed JSON of ``zoo predict --input``, or a ``.txt`` file's lines
        :param metadata: the ONNX metadata (``onnx_*`` keys of ``DataInfo.extra`` are there)
        """
        return None

    def postprocess(self, outputs: dict[str, np.ndarray], metadata: dict[str, Any]) -> list[Any]:
        """Human-readable predictions from the ONNX outputs (one entry per sample).

        ``metadata["_inputs"]`` holds the arrays that were fed (e.g. ``lengths`` to trim padding).
        """
        first = outputs[self.output_names[0]]
        return first.tolist()


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
        """The test confusion matrix: ``confusion.json`` and, with matplotlib, ``confusion.png``."""
        from zoo.core.runs import write_confusion

        written = super().write_artifacts(ctx, model, test, info, summary)
        if not info.num_classes:
            return written
        batch_size = ctx.config["train"]["eval_batch_size"]
        matrix = self.confusion_matrix(model, test, info.num_classes, batch_size)
        return written + write_confusion(ctx.run, matrix, info.class_names)

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
