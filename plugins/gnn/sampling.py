"""Neighbour sampling (Hamilton et al. 2017, Alg. 2): mini-batches of seed nodes with their
sampled multi-hop neighbourhoods, for node classification on graphs too large for full-batch
training.

For seeds ``B`` and fan-outs ``[k_1, ..., k_L]``: hop 1 draws, for every seed, ``k_1`` of its
in-neighbours uniformly *without replacement* (all of them when it has ≤ ``k_1``); hop 2 does
the same with ``k_2`` for the nodes that hop 1 added, and so on. The batch is the subgraph of
every node reached, **seeds first** (local ids ``0..|B|-1``), with exactly the sampled edges
(neighbour → node), so an ``L``-layer GNN run on it computes each seed's output from its sampled
computation tree; only the seeds are scored (``mask``). This is the layout of PyG's
``NeighborLoader`` (non-disjoint: a node reached twice is one node).

Everything is a fixed handful of tensor ops per hop (no Python loop over nodes):

- the graph is kept as CSR over targets (``rowptr [N+1]``, ``col [E]``: the sources of node
  ``i``'s incoming edges are ``col[rowptr[i]:rowptr[i+1]]``);
- for the frontier's candidate edges, one uniform key each; sorting by ``segment + key`` orders
  every node's candidates by a random permutation, and the first ``k`` of each node (rank < k)
  are a uniform draw of ``min(k, d)`` without replacement;
- global → local ids go through a node-sized lookup table that is reset after each batch, so a
  batch costs O(sampled edges), not O(N).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from zoo.core.train.data import Split, to_device


class SamplingOptions(BaseModel):
    """Data options of node-level graphs that turn on neighbour-sampled training batches."""

    model_config = ConfigDict(extra="forbid")
    fanouts: list[int] | None = Field(
        None, min_length=1, max_length=16,
        description="Neighbour-sampled training: neighbours drawn per node at each hop, first hop first "
        "(e.g. [25, 10]; -1 takes all); train.batch_size seed nodes per step. Default: full-batch training.")
    sample_seed: int = Field(0, ge=0, description="Seed of the neighbour sampler (independent of train.seed).")

    @field_validator("fanouts")
    @classmethod
    def _positive(cls, value):
        if value is not None and any(k == 0 or k < -1 for k in value):
            raise ValueError(f"every fan-out must be ≥ 1 (or -1 for all neighbours), got {value}")
        return value


def to_csr(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rowptr [N+1], col [E])``: the sources of the edges into node ``i`` are
    ``col[rowptr[i]:rowptr[i+1]]`` (edges sorted by target, stably)."""
    dst = edge_index[1]
    order = torch.sort(dst, stable=True).indices
    col = edge_index[0].index_select(0, order)
    counts = torch.bincount(dst, minlength=num_nodes)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    torch.cumsum(counts, 0, out=rowptr[1:])
    return rowptr, col


def sample_neighbours(rowptr: torch.Tensor, col: torch.Tensor, nodes: torch.Tensor, fanout: int,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``nodes [M]``, ``min(fanout, degree)`` of its in-neighbours drawn uniformly
    without replacement (``fanout < 0``: all of them).

    Returns ``(neighbour [S], owner [S])``: global id of each drawn neighbour and the position in
    ``nodes`` of the node it was drawn for (grouped by owner, ascending).
    """
    start = rowptr.index_select(0, nodes)
    degree = rowptr.index_select(0, nodes + 1) - start
    owner = torch.repeat_interleave(torch.arange(nodes.shape[0], device=nodes.device), degree)
    first = torch.cumsum(degree, 0) - degree                           # each owner's first candidate
    offset = torch.arange(owner.shape[0], device=nodes.device) - first.index_select(0, owner)
    edge = start.index_select(0, owner) + offset                       # candidate edges, by owner
    if fanout >= 0:
        needs = (degree > fanout).index_select(0, owner)               # owners with more than k
        if bool(needs.any()):
            key = torch.rand(owner.shape[0], generator=generator, device=nodes.device, dtype=torch.float64)
            key = torch.where(needs, key, 0.0) + owner.to(torch.float64)
            order = torch.sort(key, stable=True).indices               # random order inside each owner
            keep = offset < fanout                                     # rank inside the owner, sorted
            edge, owner = edge.index_select(0, order)[keep], owner[keep]
    return col.index_select(0, edge), owner


class NeighbourSampler:
    """Seeds → sampled subgraph (seeds first) on one graph; see the module docstring.

    Shapes: ``edge_index [2, E]`` of an ``N``-node graph; ``sample(seeds [B])`` →
    ``(nodes [M], edge_index [2, S])`` with ``nodes[:B] == seeds`` and local edge ids.
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int, fanouts: list[int], seed: int = 0) -> None:
        self.num_nodes, self.fanouts = num_nodes, list(fanouts)
        self.rowptr, self.col = to_csr(edge_index, num_nodes)
        self.generator = torch.Generator(device=edge_index.device).manual_seed(seed)
        self._local = torch.full((num_nodes,), -1, dtype=torch.long, device=edge_index.device)

    def sample(self, seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``seeds`` must be distinct node ids. Deterministic given the sampler's seed and the
        sequence of calls."""
        local = self._local
        device = seeds.device
        local[seeds] = torch.arange(seeds.shape[0], device=device)
        parts, sources, targets = [seeds], [], []
        count, frontier = seeds.shape[0], seeds
        try:
            for fanout in self.fanouts:
                if frontier.shape[0] == 0:
                    break
                neighbour, owner = sample_neighbours(self.rowptr, self.col, frontier, fanout, self.generator)
                fresh = torch.unique(neighbour[local.index_select(0, neighbour) < 0])
                local[fresh] = torch.arange(count, count + fresh.shape[0], device=device)
                count += fresh.shape[0]
                sources.append(local.index_select(0, neighbour))
                targets.append(local.index_select(0, frontier.index_select(0, owner)))
                parts.append(fresh)
                frontier = fresh                                   # only new nodes are expanded
            nodes = torch.cat(parts)
        finally:
            local[torch.cat(parts)] = -1                           # ready for the next batch
        if sources:
            edge_index = torch.stack([torch.cat(sources), torch.cat(targets)])
        else:
            edge_index = torch.zeros(2, 0, dtype=torch.long, device=device)
        return nodes, edge_index


class GraphNodesSplit(Split):
    """A split over the nodes of one graph held whole in ``x`` ``[N, F]`` and ``edge_index``
    ``[2, E]``: the device and node count are the graph's (full-batch :class:`NodeSplit` in
    ``data.py`` and :class:`SampledNodeSplit` below)."""

    x: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]


class SampledNodeSplit(GraphNodesSplit):
    """Training split of neighbour-sampled mini-batches: one sample per seed node (a node of
    ``mask``); ``batch(index)`` is the sampled subgraph of those seeds with ``x``, ``y``,
    ``edge_index`` (local ids) and ``mask`` true on the seeds only. The full graph stays in
    ``x``/``edge_index`` (export traces on it, as for a full-batch :class:`NodeSplit`)."""

    def __init__(self, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                 fanouts: list[int], seed: int = 0, seeds: torch.Tensor | None = None) -> None:
        self.x, self.edge_index, self.y, self.mask = x, edge_index, y, mask
        self.fanouts, self.seed = list(fanouts), seed
        self.seeds = mask.nonzero().view(-1) if seeds is None else seeds
        self.sampler = NeighbourSampler(edge_index, x.shape[0], fanouts, seed)

    def __len__(self) -> int:
        return self.seeds.shape[0]

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        seeds = self.seeds.index_select(0, index)
        nodes, edge_index = self.sampler.sample(seeds)
        mask = torch.arange(nodes.shape[0], device=nodes.device) < seeds.shape[0]
        return {"x": self.x.index_select(0, nodes), "edge_index": edge_index,
                "y": self.y.index_select(0, nodes), "mask": mask}

    def to(self, device) -> SampledNodeSplit:
        return SampledNodeSplit(to_device(self.x, device), to_device(self.edge_index, device),
                                to_device(self.y, device), to_device(self.mask, device), self.fanouts,
                                self.seed, to_device(self.seeds, device))

    def subset(self, index: torch.Tensor) -> SampledNodeSplit:
        return SampledNodeSplit(self.x, self.edge_index, self.y, self.mask, self.fanouts, self.seed,
                                self.seeds.index_select(0, index.to(self.seeds.device)))

    def __repr__(self) -> str:
        return (f"SampledNodeSplit(nodes={self.x.shape[0]}, edges={self.edge_index.shape[1]}, "
                f"seeds={len(self)}, fanouts={self.fanouts})")





def sampled(dataset, options: SamplingOptions | None):
    """``dataset`` with its training split neighbour-sampled when ``options.fanouts`` is set
    (validation and test stay full-batch); ``info.extra["fanouts"]`` records the fan-outs."""
    from dataclasses import replace

    fanouts = options.fanouts if options is not None else None
    if not fanouts:
        return dataset
    train = dataset.train
    split = SampledNodeSplit(train.x, train.edge_index, train.y, train.mask, fanouts, options.sample_seed)
    info = replace(dataset.info, extra={**dataset.info.extra, "fanouts": list(fanouts)})
    return replace(dataset, train=split, info=info)

__all__ = ["NeighbourSampler", "SampledNodeSplit", "SamplingOptions", "sample_neighbours", "sampled", "to_csr"]
