"""A small message-passing base on plain torch ops that export to ONNX.

In the spirit of PyG's ``MessagePassing``: a layer computes, for every edge ``j → i``, a message
``m_ji = message(...)``, reduces the messages arriving at each node ``i`` with ``aggregate`` and
combines the result with the node's own state in ``update``::

    h_i' = update(h_i, ⨁_{j ∈ N(i)} message(h_i, h_j, e_ji))

Subclasses override one or two of the three. The reductions are :func:`scatter_sum` (and its
relatives below), all written with ``Tensor.index_add_`` / ``Tensor.scatter_reduce``.

Why ``index_add_``: the dynamo exporter writes it as ``ScatterND(reduction="add")``, while
``scatter_add_`` becomes ``ScatterElements(reduction="add")``, which onnxruntime runs several
times slower on large graphs (``benchmarks/gnn_scatter_formulations.py``; the table is in
docs/results.md, "Notes moved from docstrings"). A sorted-segment formulation (cumsum + gather)
would need ``sort``, which the exporter does not translate.
"""

from __future__ import annotations

import torch
from torch import nn


def scatter_sum(src: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``out[i] = Σ_{e: index[e] = i} src[e]``; ``src [E, *]`` → ``[num_nodes, *]`` (0 where empty)."""
    out = torch.zeros((num_nodes, *src.shape[1:]), dtype=src.dtype, device=src.device)
    return out.index_add_(0, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Mean of the entries per node (0 for nodes that receive nothing)."""
    total = scatter_sum(src, index, num_nodes)
    count = torch.zeros(num_nodes, dtype=src.dtype, device=src.device).index_add_(
        0, index, torch.ones_like(index, dtype=src.dtype))
    return total / count.clamp_min(1.0).view(-1, *([1] * (src.dim() - 1)))


def scatter_max(src: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Elementwise max of the entries per node (0 for nodes that receive nothing)."""
    out = torch.zeros((num_nodes, *src.shape[1:]), dtype=src.dtype, device=src.device)
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return out.scatter_reduce(0, expanded, src, reduce="amax", include_self=False)


def scatter_softmax(scores: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of ``scores [E, H]`` over the edges sharing a target: α_ji = exp(e_ji) / Σ_k exp(e_ki).

    The per-target maximum is subtracted first for stability (a constant per group, so the result
    is unchanged).
    """
    peak = scatter_max(scores.detach(), index, num_nodes).index_select(0, index)
    exp = (scores - peak).exp()
    denom = scatter_sum(exp, index, num_nodes).index_select(0, index)
    return exp / denom.clamp_min(1e-16)


AGGREGATORS = {"sum": scatter_sum, "add": scatter_sum, "mean": scatter_mean, "max": scatter_max}


class MessagePassing(nn.Module):
    """Base class: ``propagate`` = gather → ``message`` → ``aggregate`` → ``update``.

    :param aggr: ``sum``, ``mean`` or ``max`` (how the messages arriving at a node are reduced)

    Shapes: ``x [N, F]``, ``edge_index [2, E]`` (row 0 source j, row 1 target i) → ``[N, F']``.
    """

    needs_x_i: bool = False  # gather receiver states for ``message`` (costs an [E, F] gather)

    def __init__(self, aggr: str = "sum") -> None:
        super().__init__()
        if aggr not in AGGREGATORS:
            raise ValueError(f"unknown aggregation {aggr!r}; choose one of {sorted(AGGREGATORS)}")
        self.aggr = aggr

    def propagate(self, x: torch.Tensor, edge_index: torch.Tensor, **edge_kwargs) -> torch.Tensor:
        src, dst = edge_index[0], edge_index[1]
        x_j = x.index_select(0, src)                                    # (E, F) sender states
        x_i = x.index_select(0, dst) if self.needs_x_i else None        # (E, F) receiver states
        messages = self.message(x_j=x_j, x_i=x_i, **edge_kwargs)
        out = self.aggregate(messages, dst, x.shape[0])
        return self.update(out, x)

    def message(self, x_j: torch.Tensor, x_i: torch.Tensor | None, **edge_kwargs) -> torch.Tensor:
        """``m_ji``; by default the sender's state, scaled by ``edge_weight`` when given."""
        weight = edge_kwargs.get("edge_weight")
        return x_j if weight is None else x_j * weight.view(-1, *([1] * (x_j.dim() - 1)))

    def aggregate(self, messages: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
        return AGGREGATORS[self.aggr](messages, index, num_nodes)

    def update(self, aggregated: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return aggregated
