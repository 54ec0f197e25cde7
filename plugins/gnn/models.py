"""The eight architectures, their configs and builders.

Every model works at both levels, chosen by the dataset (``DataInfo.extra["level"]``):

- node level: ``forward(x, edge_index) → logits [N, C]``; the last layer outputs the classes.
- graph level: ``forward(x, edge_index, batch) → logits [G, C]``; the node states of every layer
  (the input included) are read out per graph (sum / mean / max), concatenated and classified by
  a linear layer after dropout (Xu et al. 2019, eq. 4.2).

Inputs are checked at the boundary (:func:`~zoo.plugins.gnn.graph.check_graph`) in eager mode.
Features can be row-normalised inside the model (``row_normalize``), as Kipf & Welling
pre-process Cora, so the exported graph takes raw features.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.gnn.csr import Adjacency, EdgeGraph
from zoo.plugins.gnn.graph import (
    SameInputs,
    check_graph,
    dropout,
    exporting,
    gcn_norm,
    sparse_dropout,
    sparse_features,
)
from zoo.plugins.gnn.layers import ChebConv, Diffusion, GATConv, GCNConv, GINConv, GMMConv, NN4GLayer, SAGEConv
from zoo.plugins.gnn.layers import num_graphs, readout

# -- configs ----------------------------------------------------------------------------------


class GNNConfig(ModelConfig):
    """Options every GNN of the family takes; each model's config adds its own or changes a default."""

    hidden: int = Field(16, ge=1, le=4096, description="Width of the hidden node states.")
    layers: int = Field(2, ge=1, le=16, description="Graph layers (node level: the last one outputs the classes).")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout on the input of every layer.")
    row_normalize: bool = Field(True, description="Divide each node's features by their sum (in the model).")
    readout: Literal["sum", "mean", "max"] = Field("sum", description="Graph level: pooling of node states.")


class GCNConfig(GNNConfig):
    pass


class ChebNetConfig(GNNConfig):
    k: int = Field(3, ge=1, le=10, description="Chebyshev order K: filters are polynomials of degree K−1.")


class GraphSAGEConfig(GNNConfig):
    aggregator: Literal["mean", "max"] = Field("mean", description="mean, or max (pooling aggregator).")
    normalize: bool = Field(False, description="ℓ2-normalise hidden states (paper, Alg. 1).")


class GATConfig(GNNConfig):
    hidden: int = Field(8, ge=1, le=4096, description="Features per attention head.")
    heads: int = Field(8, ge=1, le=64, description="Attention heads of the hidden layers (concatenated).")
    out_heads: int = Field(1, ge=1, le=64, description="Heads of the output layer (averaged).")
    attention_dropout: float = Field(0.6, ge=0.0, lt=1.0, description="Dropout on attention coefficients.")
    negative_slope: float = Field(0.2, ge=0.0, lt=1.0, description="LeakyReLU slope of the scores.")


class GINConfig(GNNConfig):
    hidden: int = Field(32, ge=1, le=4096, description="Width of the MLPs.")
    layers: int = Field(4, ge=1, le=16, description="GIN layers (the input counts as a 5th readout).")
    mlp_layers: int = Field(2, ge=1, le=4, description="Linear layers per MLP.")
    learn_eps: bool = Field(True, description="GIN-ε (learnable ε) instead of GIN-0.")
    batch_norm: bool = Field(True, description="BatchNorm after every MLP layer.")
    aggregator: Literal["sum", "mean", "max"] = Field("sum", description="sum = GIN; mean/max for ablations.")


class NN4GConfig(GNNConfig):
    hidden: int = Field(32, ge=1, le=4096, description="Width of each constructive layer.")
    layers: int = Field(3, ge=1, le=16, description="Constructive layers.")


class DCNNConfig(GNNConfig):
    hops: int = Field(2, ge=0, le=10, description="Diffusion hops K (powers P^0 .. P^K).")


class MoNetConfig(GNNConfig):
    kernels: int = Field(3, ge=1, le=32, description="Gaussian kernels per layer.")
    dim: int = Field(2, ge=1, le=8, description="Dimension of the pseudo-coordinates.")


# -- the shared frame -------------------------------------------------------------------------


class GraphModel(nn.Module):
    """Input checks, optional row normalisation, node- or graph-level output.

    Subclasses implement ``encode(x, edge_index) -> list of node states``; at node level the last
    entry is the logits, at graph level every entry is read out.
    Shapes: ``x [N, F]``, ``edge_index [2, E]`` (``batch [N]``) → ``[N, C]`` (``[G, C]``).
    """

    def __init__(self, config: GNNConfig, info: DataInfo) -> None:
        super().__init__()
        self.in_features = info.input_size
        self.num_classes = info.num_classes or 1
        self.graph_level = info.extra.get("level") == "graph"
        self.row_normalize = config.row_normalize
        self.dropout = config.dropout
        self.pool = config.readout
        self.head: nn.Module | None = None
        self._features = SameInputs()

    def make_head(self, widths: list[int]) -> None:
        """Graph level: linear classifier over the concatenated readouts of every state."""
        if self.graph_level:
            self.head = nn.Linear(self.in_features + sum(widths), self.num_classes)

    #: Non-linearity between layers (and after the last one at graph level).
    activation = staticmethod(torch.relu)
    #: The first layer's first operation is ``x W`` (GCN, GAT): at node level, from the second
    #: call with the same ``x`` on (full-batch training), it gets sparse features as a sparse
    #: matrix (:func:`~zoo.plugins.gnn.graph.sparse_features`), found once; a one-off input (a
    #: served request) stays dense, where finding its non-zeros would cost more than it saves.
    sparse_input = False

    def encode(self, x: torch.Tensor, edge_index: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def stack(self, x: torch.Tensor, edge_index: torch.Tensor, *extra: torch.Tensor) -> list[torch.Tensor]:
        """The usual layer loop: dropout (sparse on the raw input), conv, activation except after
        the node-level output layer. ``extra`` (a normalised adjacency, say) goes to every conv."""
        states, h = [], x
        for i, conv in enumerate(self.convs):
            h = conv(self.drop_input(h) if i == 0 else self.drop(h), edge_index, *extra)
            if i < len(self.convs) - 1 or self.graph_level:
                h = self.activation(h)
            states.append(h)
        return states

    def drop(self, h: torch.Tensor) -> torch.Tensor:
        return dropout(h, self.dropout, self.training)

    def drop_input(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout on the raw (often sparse) features: :func:`~zoo.plugins.gnn.graph.sparse_dropout`."""
        return sparse_dropout(x, self.dropout, self.training)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                batch: torch.Tensor | None = None) -> torch.Tensor:
        check_graph(x, edge_index, batch)
        sparse = None
        if self.sparse_input and not self.graph_level and not exporting() and not x.requires_grad:
            sparse = self._features.on_repeat(lambda t: sparse_features(t, self.row_normalize), x)
        if sparse is not None:
            x = sparse
        elif self.row_normalize:
            x = x / x.abs().sum(-1, keepdim=True).clamp_min(1e-12)
        states = self.encode(x, edge_index)
        if not self.graph_level:
            return states[-1]
        if batch is None:
            raise ZooError("a graph-level model needs the batch vector (graph id of every node)")
        graphs = num_graphs(batch)
        pooled = torch.cat([readout(h, batch, self.pool, graphs) for h in [x, *states]], dim=-1)
        return self.head(self.drop(pooled))


def _convs(config: GNNConfig, model: GraphModel, make: Callable[[int, int, bool], nn.Module]) -> None:
    """``model.convs``, one ``make(in_width, out_width, last)`` a layer, then ``model``'s head.

    The output width is ``config.hidden`` for every layer but the last at node level, which
    outputs the classes (``last`` is true for that layer only).
    """
    widths = [config.hidden] * config.layers
    if not model.graph_level:
        widths[-1] = model.num_classes
    model.convs = nn.ModuleList()
    width = model.in_features
    for i, out in enumerate(widths):
        model.convs.append(make(width, out, i == len(widths) - 1 and not model.graph_level))
        width = out
    model.make_head(widths)


class GCN(GraphModel):
    """Kipf & Welling 2017 (https://arxiv.org/abs/1609.02907): H' = σ(D̃^-1/2 Ã D̃^-1/2 H W),
    ReLU between layers, dropout before each. The normalised adjacency is computed once per call."""

    sparse_input = True

    def __init__(self, config: GCNConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        _convs(config, self, lambda width, out, last: GCNConv(width, out))
        self._norm, self._norm_nodes = SameInputs(), -1

    def encode(self, x, edge_index):
        return self.stack(x, edge_index, self.normalized(edge_index, x.shape[0]))

    def normalized(self, edge_index: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor] | Adjacency:
        """D̃^-1/2 Ã D̃^-1/2, reused while the same ``edge_index`` (unchanged) comes back with the
        same node count: full-batch training feeds one graph every epoch, and the normalisation
        has no parameters (as PyG's ``GCNConv(cached=True)``). Eager mode only. At node level on
        the CPU it is a CSR :class:`~zoo.plugins.gnn.csr.Adjacency` (one sparse product per layer;
        built as :func:`_reused` says), elsewhere the edges and their weights."""
        if exporting():
            return gcn_norm(edge_index, n)
        if n != self._norm_nodes:
            self._norm, self._norm_nodes = SameInputs(), n
        if edge_index.device.type != "cpu" or self.graph_level:      # graph level: a new graph a batch
            return self._norm(lambda e: gcn_norm(e, n), edge_index)
        adjacency = _reused(self._norm, self.training, lambda e: Adjacency(*gcn_norm(e, n), n), edge_index)
        return gcn_norm(edge_index, n) if adjacency is None else adjacency


def _reused(memo: SameInputs, training: bool, build: Callable, edge_index: torch.Tensor):
    """A CSR structure of ``edge_index`` from ``memo``: in training at once (full-batch training
    feeds the same graph every epoch, and the first epoch then needs no ``[E, F]`` tensors
    either), in eval mode from the second call with the same graph on (a one-off graph, a
    served request, skips the build); None until then."""
    return memo(build, edge_index) if training else memo.on_repeat(build, edge_index)


class ChebNet(GraphModel):
    """Defferrard et al. 2016 (https://arxiv.org/abs/1606.09375): stacked Chebyshev filters of
    order K−1 on L̃ (λ_max = 2), ReLU between layers."""

    def __init__(self, config: ChebNetConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        _convs(config, self, lambda width, out, last: ChebConv(width, out, config.k))

    def encode(self, x, edge_index):
        lap = self.convs[0].scaled_laplacian_weights(edge_index, x.shape[0])
        return self.stack(x, edge_index, lap)


class GraphSAGE(GraphModel):
    """Hamilton et al. 2017 (https://arxiv.org/abs/1706.02216): full-batch GraphSAGE (no neighbour
    sampling), mean or max-pooling aggregator, ReLU between layers."""

    def __init__(self, config: GraphSAGEConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        _convs(config, self, lambda width, out, last: SAGEConv(width, out, config.aggregator,
                                                               normalize=config.normalize and not last))

    def encode(self, x, edge_index):
        return self.stack(x, edge_index)


class GAT(GraphModel):
    """Veličković et al. 2018 (https://arxiv.org/abs/1710.10903): multi-head attention layers with
    ELU, heads concatenated; the node-level output layer averages ``out_heads`` heads."""

    activation = staticmethod(F.elu)
    sparse_input = True

    def __init__(self, config: GATConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.convs = nn.ModuleList()
        width = self.in_features
        widths = []
        for i in range(config.layers):
            last = i == config.layers - 1 and not self.graph_level
            if last:
                conv = GATConv(width, self.num_classes, config.out_heads, concat=False,
                               negative_slope=config.negative_slope, dropout=config.attention_dropout)
                width = self.num_classes
            else:
                conv = GATConv(width, config.hidden, config.heads, concat=True,
                               negative_slope=config.negative_slope, dropout=config.attention_dropout)
                width = config.hidden * config.heads
            self.convs.append(conv)
            widths.append(width)
        self.make_head(widths)
        self._sorted, self._sorted_nodes = SameInputs(), -1

    def encode(self, x, edge_index):
        return self.stack(x, edge_index, self.sorted_edges(edge_index, x.shape[0]))

    def sorted_edges(self, edge_index: torch.Tensor, n: int) -> EdgeGraph | None:
        """The edges sorted by receiver for the layers' CSR form (CPU, eager, node level, no
        duplicate edges), built as :func:`_reused` says and reused while the same unchanged
        ``edge_index`` comes back with the same node count; None otherwise (the message-passing
        form)."""
        if exporting() or self.graph_level or edge_index.device.type != "cpu" or n == 0:
            return None
        if n != self._sorted_nodes:
            self._sorted, self._sorted_nodes = SameInputs(), n
        graph = _reused(self._sorted, self.training, lambda e: EdgeGraph(e, n), edge_index)
        return None if graph is None or graph.duplicates else graph


class GIN(GraphModel):
    """Xu et al. 2019 (https://arxiv.org/abs/1810.00826): h' = MLP((1 + ε) h + Σ_j h_j) with
    BatchNorm and ReLU inside the MLPs; at graph level the readouts of all layers are combined."""

    def __init__(self, config: GINConfig, info: DataInfo) -> None:
        super().__init__(config, info)

        def conv(width: int, out: int, last: bool) -> GINConv:  # the layer's MLP, then GIN's sum
            layers: list[nn.Module] = []
            w = width
            for j in range(config.mlp_layers):
                final = j == config.mlp_layers - 1
                size = out if final else config.hidden
                layers.append(nn.Linear(w, size))
                if not (final and last):
                    if config.batch_norm:
                        layers.append(nn.BatchNorm1d(size))
                    layers.append(nn.ReLU())
                w = size
            return GINConv(nn.Sequential(*layers), config.learn_eps, config.aggregator)

        _convs(config, self, conv)

    def encode(self, x, edge_index):
        states, h = [], x
        for i, conv in enumerate(self.convs):
            h = conv(h if i == 0 else self.drop(h), edge_index)
            states.append(h)
        return states


class NN4G(GraphModel):
    """Micheli 2009 (https://doi.org/10.1109/TNN.2008.2010350): constructive layers, layer k sees
    the node's features and the summed neighbour states of all earlier layers; node level
    classifies the concatenation of every layer's state (the paper's readout over layers)."""

    def __init__(self, config: NN4GConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.layers = nn.ModuleList(NN4GLayer(self.in_features, config.hidden, previous=k)
                                    for k in range(config.layers))
        widths = [config.hidden] * config.layers
        self.out = None if self.graph_level else nn.Linear(sum(widths), self.num_classes)
        self.make_head(widths)

    def encode(self, x, edge_index):
        x = self.drop_input(x)
        states: list[torch.Tensor] = []
        for layer in self.layers:
            states.append(torch.tanh(layer(x, states, edge_index)))
        if self.out is not None:
            states.append(self.out(self.drop(torch.cat(states, dim=-1))))
        return states


class DCNN(GraphModel):
    """Atwood & Towsley 2016 (https://arxiv.org/abs/1511.02136): Z = tanh(W ⊙ P* X) with P* the
    stacked powers P^0..P^K of the transition matrix, then a dense layer to the classes (node
    level) or a readout (graph level)."""

    def __init__(self, config: DCNNConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        self.diffusion = Diffusion(config.hops)
        self.weight = nn.Parameter(torch.ones(config.hops + 1, self.in_features))   # one per hop and feature
        self.bias = nn.Parameter(torch.zeros(config.hops + 1, self.in_features))
        width = (config.hops + 1) * self.in_features
        self.out = None if self.graph_level else nn.Linear(width, self.num_classes)
        self.make_head([width])
        self._diffused = SameInputs()

    def encode(self, x, edge_index):
        z = torch.tanh(self.diffuse(x, edge_index) * self.weight + self.bias)       # (N, K+1, F)
        z = z.flatten(1)                                                              # (N, (K+1)·F)
        return [z] if self.out is None else [z, self.out(self.drop(z))]

    def diffuse(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """P* X, reused while the same input tensors come back unchanged (full-batch training
        feeds the same graph every epoch; the diffusion has no parameters). Eager mode only; with
        ``row_normalize`` the normalised input is a new tensor every call, so nothing is reused."""
        if exporting() or x.requires_grad:
            return self.diffusion(x, edge_index)
        return self._diffused(self.diffusion, x, edge_index)


class MoNet(GraphModel):
    """Monti et al. 2017 (https://arxiv.org/abs/1611.08402): Gaussian mixture convolutions on degree
    pseudo-coordinates, ELU between layers."""

    activation = staticmethod(F.elu)

    def __init__(self, config: MoNetConfig, info: DataInfo) -> None:
        super().__init__(config, info)
        _convs(config, self, lambda width, out, last: GMMConv(width, out, config.kernels, config.dim))

    def encode(self, x, edge_index):
        return self.stack(x, edge_index)


# -- builders ---------------------------------------------------------------------------------

MODELS: dict[str, tuple[type[GraphModel], type[GNNConfig]]] = {
    "gcn": (GCN, GCNConfig),
    "chebnet": (ChebNet, ChebNetConfig),
    "graphsage": (GraphSAGE, GraphSAGEConfig),
    "gat": (GAT, GATConfig),
    "gin": (GIN, GINConfig),
    "nn4g": (NN4G, NN4GConfig),
    "dcnn": (DCNN, DCNNConfig),
    "monet": (MoNet, MoNetConfig),
}


def build_sampled_graphsage(config: GraphSAGEConfig, info: DataInfo) -> nn.Module:
    """GraphSAGE for neighbour-sampled training (the data's ``fanouts``, one per layer): the
    same network as ``graphsage``, so it evaluates and exports on whole graphs."""
    fanouts = info.extra.get("fanouts")
    if not fanouts:
        raise ZooError(f"{config.name} trains on neighbour-sampled mini-batches: set data.options.fanouts "
                       "(one fan-out per layer, e.g. [25, 10]), or train graphsage full-batch")
    if len(fanouts) != config.layers:
        raise ZooError(f"{config.name}: data.options.fanouts has {len(fanouts)} hop(s) {fanouts}, but the "
                       f"model has {config.layers} layer(s): give one fan-out per layer")
    return make_builder(GraphSAGE)(config, info)


def make_builder(cls: type[GraphModel]):
    def build(config: GNNConfig, info: DataInfo) -> nn.Module:
        if not info.num_classes or info.num_classes < 2:
            raise ZooError(f"{config.name} classifies nodes or graphs: the dataset needs ≥ 2 classes")
        if info.extra.get("level") not in ("node", "graph"):
            raise ZooError(f"{config.name} needs a graph dataset (node- or graph-level), got "
                           f"input shape {info.input_shape}")
        return cls(config, info)

    build.__name__ = f"build_{cls.__name__.lower()}"
    build.__doc__ = cls.__doc__
    return build
