"""The task contract: what is being learned, independent of the architecture.

A :class:`Task` owns the loss, the metrics, and the ONNX signature (input/output names and
dynamic axes) of a kind of problem. The trainer and the exporter only talk to models through a
task, which is why one generic trainer serves every family.

Metrics are accumulated as *sums* of tensors on the device (``metric_sums``), added up over
batches without host synchronisation, and turned into numbers once per evaluation
(``finalize``). Sums are also what distributed training all-reduces.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from zoo.core.train.data import DataInfo, Split


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
    :cvar answers_tensors: ``zoo serve`` adds the ``prediction`` output (``postprocess``'s answer)
        to tensor requests too, not only to raw-text ones: for tasks whose outputs mean little
        until decoded (per-frame probabilities decoded into strings)
    """

    name: ClassVar[str] = ""
    input_names: ClassVar[tuple[str, ...]] = ("x",)
    output_names: ClassVar[tuple[str, ...]] = ("output",)
    main_metric: ClassVar[str] = "loss"
    higher_is_better: ClassVar[bool] = False
    higher_is_better_metrics: ClassVar[frozenset[str]] = frozenset()
    losses: ClassVar[tuple[str, ...]] = ()
    answers_tensors: ClassVar[bool] = False

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

        The default writes nothing; the built-in ``regression`` and ``classification`` tasks
        record a :class:`~zoo.core.contract.protocols.ReportsParameters` model's values, and
        classification writes the test confusion matrix (:mod:`zoo.core.train.tasks`).

        :param ctx: the run context (:class:`zoo.core.contract.context.RunContext`; ``ctx.run.file(name)``
            is a path in the run directory, ``ctx.config`` the resolved config)
        :param model: the trained model with the best weights, on the training device
        :param test: the test split, on the same device
        :param info: what the data is (:class:`~zoo.core.train.data.DataInfo`)
        :param summary: the run summary about to be written; a task may add entries
        :returns: the files written (listed in the summary's ``plots``)
        """
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

    def export_examples(self, model: torch.nn.Module, split: Split) -> list[tuple[torch.Tensor, ...]]:
        """The example inputs the export of ``model`` traces and checks: :meth:`export_inputs`,
        unless a task's inputs take their shape from the model (a recurrent step's state)."""
        return self.export_inputs(split)

    # -- evaluation beyond batches ------------------------------------------------------------
    def evaluate_model(self, model: torch.nn.Module, dataset: Any) -> dict[str, float]:
        """Test metrics that need the model itself rather than per-batch outputs (samples of a
        generative model compared with the test split), merged into the test metrics after
        training. ``model`` holds the best weights; ``dataset`` is the run's
        :class:`~zoo.core.train.data.Dataset`. Default: none."""
        return {}

    # -- serving ----------------------------------------------------------------------------
    def raw_inputs(self, data: Any, metadata: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """Model inputs from raw user input (e.g. text, for tasks whose models take token ids),
        or ``None`` when ``data`` is plain arrays for :func:`zoo.core.deploy.runtime.load_inputs`.

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
