"""Node and graph classification tasks: losses, metrics and the ONNX signature of graph inputs.

Both reuse :class:`zoo.core.train.tasks.Classification` (cross-entropy, accuracy, softmax
post-processing) and change what a batch is:

- ``node-classification``: inputs ``x [N, F]``, ``edge_index [2, E]`` → ``logits [N, C]``; the
  loss and metrics only count the nodes in the split's ``mask``.
- ``graph-classification``: inputs ``x``, ``edge_index``, ``batch [N]`` → ``logits [G, C]``.

Exported graphs have dynamic node, edge (and graph) counts; parity is checked on graphs of other
sizes than the traced one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo.core.train.data import DataInfo, Split
from zoo.core.contract.errors import ZooError
from zoo.core.train.tasks import Classification
from zoo.plugins.gnn.graph import GraphInputError


def check_graph_arrays(data: Any) -> None:
    """A graph given as arrays to ``zoo predict`` or ``zoo serve``: every edge must name a node of
    ``x`` and every graph id in ``batch`` one of ``[0, N)``. The exported graph does not check
    (onnxruntime would fail in a gather with an opaque message, and a huge graph id would size
    the pooled output). Rank and dtype are left to the signature checks that follow."""
    if not (isinstance(data, dict) and "x" in data and "edge_index" in data):
        return
    try:
        x, edges = np.asarray(data["x"]), np.asarray(data["edge_index"])
        batch = np.asarray(data["batch"]) if "batch" in data else None
    except ValueError:
        return  # not rectangular: reported with the input's name when the arrays are built
    if x.ndim != 2:
        return
    n = x.shape[0]
    for name, ids, what in (("edge_index", edges, "node"), ("batch", batch, "graph id")):
        if ids is None or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            continue
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= n:
            raise GraphInputError(f"{name} holds {what} {low if low < 0 else high}, but the graph has {n} "
                                  f"nodes: valid values are {f'0..{n - 1}' if n else 'none'}")


def induced_subgraph(x: torch.Tensor, edge_index: torch.Tensor, nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``nodes`` nodes and the edges among them."""
    keep = (edge_index[0] < nodes) & (edge_index[1] < nodes)
    return x[:nodes], edge_index[:, keep]


class NodeClassification(Classification):
    """Classify the nodes of one graph (transductive: all splits share the graph, masks differ).

    Loss = mean cross-entropy over the masked nodes; metrics ``loss`` and ``accuracy`` over them.
    """

    name = "node-classification"
    input_names = ("x", "edge_index")
    output_names = ("logits",)
    answers_tensors = True  # a graph has no raw input: zoo serve names the classes for tensors

    def check_info(self, info: DataInfo) -> None:
        super().check_info(info)
        if info.extra.get("level") != "node":
            raise ZooError("node-classification needs a node-level graph dataset (e.g. cora, karate)")

    @staticmethod
    def _masked(output: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        mask = batch["mask"]
        return output[mask], {"y": batch["y"][mask]}

    def loss(self, output, batch, loss_name=None):
        out, masked = self._masked(output, batch)
        return super().loss(out, masked, loss_name)

    def metric_sums(self, output, batch, loss_name=None):
        out, masked = self._masked(output, batch)
        return super().metric_sums(out, masked, loss_name)

    def raw_inputs(self, data, metadata):
        check_graph_arrays(data)
        return None  # arrays: the usual shape and dtype checks follow

    def dynamic_axes(self, info: DataInfo) -> dict[str, dict[int, str]]:
        return {"x": {0: "nodes"}, "edge_index": {1: "edges"}, "logits": {0: "nodes"}}

    def export_inputs(self, split: Split, sizes: tuple[float, ...] = (0.37, 0.11, 1.0)) -> list[tuple[torch.Tensor, ...]]:
        """Induced subgraphs on the first 37 %, 11 % and all of the nodes: the traced one has ≥ 2
        nodes and edges and node, edge and feature counts that differ (torch.export would merge
        equal sizes into one symbol)."""
        x, edge_index = split.x, split.edge_index
        n = x.shape[0]
        out = []
        for i, share in enumerate(sizes):
            nodes = max(3, min(n, int(round(share * n))))
            if i == 0 and nodes == x.shape[1] and nodes > 3:
                nodes -= 1                                   # keep the node count apart from F
            sub_x, sub_e = induced_subgraph(x, edge_index, nodes)
            if i == 0:
                if sub_e.shape[1] < 2:                       # too sparse a prefix: add a path
                    path = torch.arange(nodes - 1)
                    sub_e = torch.cat([sub_e, torch.stack([path, path + 1])], dim=1)
                while sub_e.shape[1] in (nodes, x.shape[1]):
                    sub_e = sub_e[:, :-1]
            out.append((sub_x, sub_e))
        return out


class GraphClassification(Classification):
    """Classify whole graphs of a batch (``batch [N]`` assigns nodes to graphs 0..G−1).

    For small datasets (MUTAG) the dataset option ``fold`` picks the test fold of a stratified
    k-fold split; ``benchmarks/gnn_results.py --folds 10`` reports mean ± std over the folds.
    """

    name = "graph-classification"
    input_names = ("x", "edge_index", "batch")
    output_names = ("logits",)
    answers_tensors = True  # as NodeClassification: the class names of each graph

    def check_info(self, info: DataInfo) -> None:
        super().check_info(info)
        if info.extra.get("level") != "graph":
            raise ZooError("graph-classification needs a dataset of many graphs (e.g. mutag)")

    def raw_inputs(self, data, metadata):
        check_graph_arrays(data)
        return None  # arrays: the usual shape and dtype checks follow

    def dynamic_axes(self, info: DataInfo) -> dict[str, dict[int, str]]:
        return {"x": {0: "nodes"}, "edge_index": {1: "edges"}, "batch": {0: "nodes"},
                "logits": {0: "graphs"}}

    def export_inputs(self, split: Split, sizes: tuple[int, ...] = (3, 1, 7)) -> list[tuple[torch.Tensor, ...]]:
        """Batches of 3 (traced), 1 and 7 graphs."""
        out = []
        for size in sizes:
            index = torch.arange(min(size, len(split)), device=split.device)
            out.append(self.inputs(split.batch(index)))
        return out
