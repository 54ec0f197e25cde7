"""The ``embedding`` task: models that learn word vectors from a corpus.

Training batches come in two kinds (see :mod:`zoo.plugins.word2vec.corpus`): windows
(``centre, context, mask``) and co-occurrence entries (``row, col, count``). The model returns
``(loss_sum, count)`` summed over the batch. The training loss (``train.loss``) is either
``"mean"`` (the default): Σ loss_sum / Σ count, the mean over centre/context pairs (skip-gram),
centre words (CBOW) or co-occurrence entries (GloVe); or ``"sum"``: Σ loss_sum, the objective
word2vec's SGD descends, so that the learning rate is the step per word (gensim's ``alpha``)
whatever the batch size. The evaluation metric ``loss`` is always the mean.

The ONNX signature is the lookup: ``ids [N]`` → ``vectors [N, D]`` (unit norm), with the
vocabulary in the file's metadata (``onnx_vocab``) and in ``RUN_DIR/vectors.txt``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo.core.train.data import DataInfo, Split
from zoo.core.contract.errors import ZooError
from zoo.core.contract.task import Task


class EmbeddingTask(Task):
    name = "embedding"
    input_names = ("ids",)
    output_names = ("vectors",)
    main_metric = "loss"
    higher_is_better = False
    losses = ("mean", "sum")

    def inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if "centre" in batch:
            return batch["centre"], batch["context"], batch["mask"]
        if "row" in batch:
            return batch["row"], batch["col"], batch["count"]
        return (batch["ids"],)

    def check_info(self, info: DataInfo) -> None:
        if not info.extra.get("vocab"):
            raise ZooError("the embedding task needs a text corpus dataset with a vocabulary")

    def loss(self, output: Any, batch, loss_name=None) -> torch.Tensor:
        loss_sum, count = output
        if loss_name == "sum":
            return loss_sum.sum()
        return loss_sum.sum() / count.sum().clamp(min=1.0)

    def metric_sums(self, output, batch, loss_name=None):
        loss_sum, count = output
        return {"loss_sum": loss_sum.detach().float().sum(), "count": count.detach().float().sum()}

    def finalize(self, sums, loss_name=None):
        return {"loss": sums["loss_sum"] / max(sums["count"], 1.0)}

    def dynamic_axes(self, info: DataInfo) -> dict[str, dict[int, str]]:
        return {"ids": {0: "words"}, "vectors": {0: "words"}}

    def export_inputs(self, split: Split, sizes: tuple[int, ...] = (3, 1, 17)) -> list[tuple[torch.Tensor, ...]]:
        """Word ids taken from the split's items (repeated when the split is smaller than ``size``)."""
        batch = split.batch(torch.arange(min(max(sizes), len(split)), device=split.device))
        ids = batch.get("centre", batch.get("row")).cpu().long()
        if ids.numel() == 0:
            ids = torch.zeros(1, dtype=torch.int64)
        while ids.shape[0] < max(sizes):
            ids = torch.cat([ids, ids])
        return [(ids[:size].clone(),) for size in sizes]

    def postprocess(self, outputs: dict[str, np.ndarray], metadata: dict[str, Any]) -> list[Any]:
        return outputs["vectors"].tolist()
