"""GraphRNN and GraphRNN-S (You et al. 2018, https://arxiv.org/abs/1802.08773): graphs generated
node by node, each new node's edges to the ``M`` previous nodes (BFS order) predicted in turn.

A graph-level GRU reads the adjacency vector of the previous node and summarises the graph so far:

.. math::
    h_i = \\mathrm{GRU}_{graph}(h_{i-1}, \\mathrm{ReLU}(W S_{i-1})), \\qquad S_0 = \\mathbf{1}\\ (SOS)

- **GraphRNN**: an edge-level GRU, its first layer started from an MLP of :math:`h_i` (the other
  layers from zero), emits the edges one at a time, each conditioned on the ones before:
  :math:`p(S_{i,j} \\mid S_{i,<j}, h_i) = \\sigma(\\mathrm{MLP}(g_{i,j}))`, with
  :math:`g_{i,j} = \\mathrm{GRU}_{edge}(g_{i,j-1}, \\mathrm{ReLU}(w S_{i,j-1}))`, :math:`S_{i,0} = 1`.
- **GraphRNN-S**: an MLP of :math:`h_i` gives all ``M`` edge probabilities at once (independent
  given :math:`h_i`).

Training is teacher-forced on random BFS orderings (:mod:`~zoo.plugins.gnn.graphgen_data`):
binary cross-entropy over the valid entries of ``y``. Generation stops at the first node with no
edge (EOS) or at the largest training graph's size.

``forward`` has two modes:

- training: ``forward(x [B, N, M], y [B, N, M], lengths [B]) → logits [B, N, M]``;
- one graph-level step, the deployable form (``model.onnx``):
  ``forward(row [B, M], hidden [L, B, H]) → (hidden_out [L, B, H], output [B, K])``, where
  ``output`` is the edge GRU's first-layer start state ``[B, He]`` (GraphRNN) or the ``M`` edge
  logits (GraphRNN-S). GraphRNN's edge step (:meth:`GraphRNN.edge_step`) is exported beside it as
  ``edge_step.onnx``; :mod:`~zoo.plugins.gnn.graphgen_sample` runs the loop around both.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError


class GraphRNNSConfig(ModelConfig):
    hidden: int = Field(64, ge=1, le=4096, description="Graph-level GRU state width H (the paper: 128, 64 for small graphs).")
    embedding: int = Field(32, ge=1, le=4096, description="Width of the embedded adjacency vector fed to the graph GRU.")
    layers: int = Field(4, ge=1, le=16, description="Layers of the graph-level GRU.")
    output_hidden: int = Field(64, ge=1, le=4096, description="Hidden width of the MLP that reads the graph state.")
    samples: int = Field(1024, ge=1, le=100_000, description="Graphs generated for the test metrics (MMD against the test split).")
    kernel: Literal["emd", "tv"] = Field("emd", description="Histogram distance of the degree and clustering "
                        "MMD kernels: emd (the paper's) or tv (total variation).")


class GraphRNNConfig(GraphRNNSConfig):
    edge_hidden: int = Field(16, ge=1, le=4096, description="Edge-level GRU state width He.")
    edge_embedding: int = Field(8, ge=1, le=4096, description="Width of the embedded previous edge fed to the edge GRU.")
    edge_layers: int = Field(4, ge=1, le=16, description="Layers of the edge-level GRU.")


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class GraphRNNS(nn.Module):
    """GraphRNN-S: graph-level GRU + MLP over the ``M`` edges of the next node."""

    def __init__(self, config: GraphRNNSConfig, max_prev: int, max_nodes: int, out_width: int | None = None) -> None:
        super().__init__()
        self.config = config                                   # samples and kernel of the test metrics
        self.max_prev, self.max_nodes = max_prev, max_nodes
        self.layers, self.hidden = config.layers, config.hidden
        self.embed = nn.Linear(max_prev, config.embedding)
        self.gru = nn.GRU(config.embedding, config.hidden, config.layers, batch_first=True)
        self.head = mlp(config.hidden, config.output_hidden, out_width or max_prev)

    def initial_hidden(self, batch: int, device=None) -> Tensor:
        """The graph GRU's start state ``[L, B, H]`` (zeros)."""
        return torch.zeros(self.layers, batch, self.hidden, device=device)

    def graph_states(self, x: Tensor) -> Tensor:
        """``[B, N, H]``: the top layer's state after each input row of ``x [B, N, M]``."""
        out, _ = self.gru(torch.relu(self.embed(x)))                       # (B, N, H)
        return out

    def step(self, row: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """One graph-level step: ``(hidden_out [L, B, H], head output [B, K])``."""
        out, hidden = self.gru(torch.relu(self.embed(row))[:, None, :], hidden)  # (B, 1, H)
        return hidden, self.head(out[:, 0])

    def teacher_forced(self, x: Tensor, y: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.graph_states(x))                            # (B, N, M) logits

    def forward(self, x: Tensor, state: Tensor, lengths: Tensor | None = None):
        if lengths is None:
            return self.step(x, state)
        if x.dim() != 3 or x.shape[-1] != self.max_prev:
            raise ZooError(f"expected sequences [B, N, {self.max_prev}], got {tuple(x.shape)}")
        return self.teacher_forced(x, state, lengths)


class GraphRNN(GraphRNNS):
    """GraphRNN: graph-level GRU whose state starts an edge-level GRU over the ``M`` edges."""

    def __init__(self, config: GraphRNNConfig, max_prev: int, max_nodes: int) -> None:
        super().__init__(config, max_prev, max_nodes, out_width=config.edge_hidden)
        self.edge_layers, self.edge_hidden = config.edge_layers, config.edge_hidden
        self.edge_embed = nn.Linear(1, config.edge_embedding)
        self.edge_gru = nn.GRU(config.edge_embedding, config.edge_hidden, config.edge_layers, batch_first=True)
        self.edge_head = mlp(config.edge_hidden, config.edge_embedding, 1)

    def edge_start(self, output: Tensor) -> Tensor:
        """The edge GRU's start state ``[Le, B, He]`` from the graph step's output ``[B, He]``:
        the first layer gets it, the others zeros (as the paper's code)."""
        zeros = output.new_zeros(self.edge_layers - 1, output.shape[0], output.shape[1])
        return torch.cat([output[None], zeros], dim=0)

    def edge_step(self, edge: Tensor, edge_hidden: Tensor) -> tuple[Tensor, Tensor]:
        """One edge-level step: previous edge ``[B, 1]`` and state ``[Le, B, He]`` →
        ``(logit [B, 1], edge_hidden_out [Le, B, He])``."""
        out, edge_hidden = self.edge_gru(torch.relu(self.edge_embed(edge))[:, None, :], edge_hidden)
        return self.edge_head(out[:, 0]), edge_hidden

    def teacher_forced(self, x: Tensor, y: Tensor, lengths: Tensor) -> Tensor:
        b, n, m = y.shape
        start = self.edge_start(self.head(self.graph_states(x)).reshape(b * n, -1))   # (Le, BN, He)
        prev = torch.cat([y.new_ones(b * n, 1), y.reshape(b * n, m)[:, :-1]], dim=1)  # (BN, M): SOS + y shifted
        out, _ = self.edge_gru(torch.relu(self.edge_embed(prev[..., None])), start)   # (BN, M, He)
        return self.edge_head(out).reshape(b, n, m)                                    # (B, N, M) logits


def _build(cls):
    def build(config, info: DataInfo) -> nn.Module:
        if info.extra.get("level") != "generation":
            raise ZooError(f"{config.name} generates graphs: it needs a graph-generation dataset "
                           f"(community-small, grid-small)")
        return cls(config, info.extra["max_prev_node"], info.extra["max_nodes"])
    return build


build_graphrnn = _build(GraphRNN)
build_graphrnn_s = _build(GraphRNNS)
