"""Graph-generation data: the GraphRNN benchmark sets and the BFS sequence encoding.

You et al. 2018 (https://arxiv.org/abs/1802.08773) turn a graph into a sequence: order the nodes
by a breadth-first search from a random node of a randomly permuted graph, then write node ``i``'s
connections to the ``M`` nodes just before it as a vector ``S_i ∈ {0,1}^M`` (most recent first).
BFS keeps every edge within that window of ``M`` previous nodes (its "max previous node"):

.. math::
    S_i = (A_{i,i-1}, A_{i,i-2}, \\dots, A_{i,i-M}), \\quad i = 1, \\dots, n-1

A training sample is the input ``x = (SOS, S_1, …, S_{n-1})`` (SOS = all ones) and the target
``y = (S_1, …, S_{n-1}, EOS)`` (EOS = all zeros: generation stops at the first empty row), padded
to the largest graph. ``mask`` marks the entries a model predicts: row ``t`` (0-based) of ``y``
concerns node ``t + 1``, which has ``min(t + 1, M)`` possible earlier neighbours in the window.

Datasets (generated with networkx, seeded, as in the paper's code ``create_graphs.py``):

- ``community-small``: two communities of ``k`` = 6..10 nodes (12–20 nodes), each edge of
  ``nx.caveman_graph(2, k)`` kept with probability 0.8, one edge between the communities, the
  largest connected component kept (the paper's ``caveman_small``); 100 graphs.
- ``grid-small``: 2-D grids ``nx.grid_2d_graph(a, b)`` with 10–20 nodes (every ``a ≤ b``), each
  grid repeated so the set has ``graphs`` entries.

The split is the paper's: a seeded shuffle, the first 80 % train, the last 20 % test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from zoo.core.train.data import DataInfo, Dataset, Split
from zoo.core.contract.errors import DataUnavailable, ZooError

if TYPE_CHECKING:
    import networkx as nx

# -- the BFS sequence encoding ----------------------------------------------------------------


def bfs_order(adj: np.ndarray, start: int) -> list[int]:
    """Nodes of the component of ``start`` in breadth-first order, neighbours in index order.

    The order is a function of the node labelling: permuting the graph first gives the paper's
    random BFS orderings (:func:`bfs_adjacency`).
    """
    seen = np.zeros(adj.shape[0], dtype=bool)
    seen[start] = True
    order, head = [start], 0
    while head < len(order):
        for other in np.flatnonzero(adj[order[head]]):
            if not seen[other]:
                seen[other] = True
                order.append(int(other))
        head += 1
    return order


def bfs_adjacency(adj: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """The adjacency matrix ``[n, n]`` with its nodes in a BFS order.

    With ``rng``: the nodes randomly permuted, then BFS from a random node (the paper's random
    orderings, which train the model on many sequences of one graph); without: BFS from node 0.
    """
    n = adj.shape[0]
    if n == 0:
        return adj
    if rng is not None:
        perm = rng.permutation(n)
        adj = adj[perm][:, perm]
    order = bfs_order(adj, int(rng.integers(n)) if rng is not None else 0)
    if len(order) != n:
        raise ZooError(f"graph generation needs connected graphs: a graph has {n} nodes but "
                       f"{len(order)} in the component of its first node")
    return adj[order][:, order]


def adjacency(graph: nx.Graph) -> np.ndarray:
    """``graph``'s 0/1 adjacency matrix (float32, no self-loops)."""
    import networkx as nx

    adj = nx.to_numpy_array(graph, dtype=np.float32)
    np.fill_diagonal(adj, 0.0)
    return (adj != 0).astype(np.float32)


def encode_adjacency(adj: np.ndarray, max_prev: int) -> np.ndarray:
    """``S [n − 1, M]``: row ``i − 1`` holds node ``i``'s edges to nodes ``i−1, …, i−M``.

    Edges farther back than ``M`` are dropped (BFS orderings keep them within the window when
    ``M`` is the data's bandwidth; :func:`max_prev_node` finds it)."""
    n = adj.shape[0]
    out = np.zeros((max(n - 1, 0), max_prev), dtype=np.float32)
    for i in range(1, n):
        back = adj[i, max(0, i - max_prev):i][::-1]          # nodes i−1, i−2, … (most recent first)
        out[i - 1, :back.shape[0]] = back
    return out


def decode_adjacency(seq: np.ndarray) -> np.ndarray:
    """The symmetric adjacency ``[n, n]`` of a sequence ``S [n − 1, M]`` (inverse of
    :func:`encode_adjacency` for edges within the window)."""
    rows, max_prev = seq.shape
    adj = np.zeros((rows + 1, rows + 1), dtype=np.float32)
    for i in range(1, rows + 1):
        width = min(i, max_prev)
        adj[i, i - width:i] = seq[i - 1, :width][::-1]
    return adj + adj.T


def sequence_to_graph(seq: np.ndarray) -> nx.Graph:
    """A generated sequence as a graph: rows up to the first all-zero row (EOS), decoded."""
    import networkx as nx

    seq = np.asarray(seq)
    empty = np.flatnonzero(~seq.any(axis=1)) if seq.size else np.array([0])
    rows = int(empty[0]) if empty.size else seq.shape[0]
    return nx.from_numpy_array(decode_adjacency(seq[:rows]))


def max_prev_node(graphs: list[nx.Graph], orderings: int = 20, seed: int = 0) -> int:
    """The largest BFS bandwidth seen: max over graphs and random BFS orderings of how far back
    a node's earliest neighbour is (at least 1)."""
    rng = np.random.default_rng(seed)
    best = 1
    for graph in graphs:
        adj0 = adjacency(graph)
        for _ in range(orderings):
            adj = bfs_adjacency(adj0, rng)
            rows, cols = np.nonzero(np.tril(adj, -1))
            if rows.size:
                best = max(best, int((rows - cols).max()))
    return best


# -- datasets -------------------------------------------------------------------------------


def community_small(count: int, rng: np.random.Generator, p_edge: float = 0.8) -> list[nx.Graph]:
    """Two-community graphs of 12–20 nodes (the paper's ``caveman_small``): ``count`` graphs, the
    community size ``k`` cycling through 6..10."""
    import networkx as nx

    graphs = []
    for i in range(count):
        k = 6 + i % 5
        graph = nx.caveman_graph(2, k)
        for u, v in list(graph.edges()):
            if rng.random() > p_edge and (u < k) == (v < k):
                graph.remove_edge(u, v)
        graph.add_edge(int(rng.integers(0, k)), int(rng.integers(k, 2 * k)))
        graph = graph.subgraph(max(nx.connected_components(graph), key=len)).copy()
        graphs.append(nx.convert_node_labels_to_integers(graph))
    return graphs


def grid_small(count: int, rng: np.random.Generator, low: int = 10, high: int = 20) -> list[nx.Graph]:
    """2-D grids ``a × b`` (``a ≤ b``, ``low ≤ ab ≤ high``), cycled to ``count`` graphs."""
    import networkx as nx

    shapes = [(a, b) for a in range(2, high + 1) for b in range(a, high + 1) if low <= a * b <= high]
    return [nx.convert_node_labels_to_integers(nx.grid_2d_graph(*shapes[i % len(shapes)]))
            for i in range(count)]


GENERATORS = {"community-small": community_small, "grid-small": grid_small}


class GenerationOptions(BaseModel):
    """Options of the generated graph sets (``data.options.*``)."""

    model_config = ConfigDict(extra="forbid")
    graphs: int = Field(100, ge=5, le=100_000, description="Number of graphs generated (80 % train, 20 % test).")
    seed: int = Field(0, ge=0, description="Seed of the generator and of the train/test shuffle.")
    max_prev_node: int | None = Field(None, ge=1, le=10_000, description="The BFS window M (default: the "
                                      "largest bandwidth found over 20 random BFS orderings of every graph).")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of the graphs held out for testing.")
    repeat: int = Field(1, ge=1, le=10_000, description="Times each training graph appears per epoch, each "
                        "time in a fresh random BFS order (the paper's epoch is 32 batches of 32).")


class SequenceSplit(Split):
    """Graphs batched as padded BFS sequences ``x, y, mask [B, N, M]`` and ``lengths [B]``.

    With ``augment`` (the training split) every batch draws fresh random BFS orderings from
    torch's generator (seeded by the run); otherwise each graph's ordering is fixed by its index,
    so validation and test losses are deterministic. ``graphs`` stay networkx objects on the host;
    the tensors of a batch are built there and moved to ``device``.
    """

    def __init__(self, graphs: list[nx.Graph], max_prev: int, max_nodes: int, augment: bool,
                 device: torch.device | str = "cpu", repeat: int = 1) -> None:
        self.graphs, self.max_prev, self.max_nodes = graphs, max_prev, max_nodes
        self.augment, self._device, self.repeat = augment, torch.device(device), repeat
        self.adjacency = [adjacency(g) for g in graphs]

    def __len__(self) -> int:
        return len(self.graphs) * self.repeat

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        ids = index.tolist()
        b, n, m = len(ids), self.max_nodes, self.max_prev
        x, y, mask = np.zeros((b, n, m), np.float32), np.zeros((b, n, m), np.float32), np.zeros((b, n, m), np.float32)
        lengths = np.zeros(b, np.int64)
        for row, gid in enumerate(ids):
            gid %= len(self.graphs)                                    # (repeat)
            seed = int(torch.randint(0, 2**31 - 1, ())) if self.augment else gid
            seq = encode_adjacency(bfs_adjacency(self.adjacency[gid], np.random.default_rng(seed)), m)
            steps = seq.shape[0] + 1                                   # n − 1 rows + EOS
            x[row, 0] = 1.0                                            # SOS
            x[row, 1:steps] = seq
            y[row, :steps - 1] = seq                                   # EOS row stays zero
            width = np.minimum(np.arange(1, steps + 1), m)             # valid entries per row
            mask[row, :steps] = np.arange(m)[None, :] < width[:, None]
            lengths[row] = steps
        return {name: torch.from_numpy(a).to(self._device) for name, a in
                (("x", x), ("y", y), ("mask", mask), ("lengths", lengths))}

    def to(self, device) -> SequenceSplit:
        return SequenceSplit(self.graphs, self.max_prev, self.max_nodes, self.augment, device, self.repeat)

    def subset(self, index: torch.Tensor) -> SequenceSplit:
        graphs = list(dict.fromkeys(i % len(self.graphs) for i in index.tolist()))
        return SequenceSplit([self.graphs[i] for i in graphs], self.max_prev, self.max_nodes,
                             self.augment, self._device, self.repeat)

    @property
    def device(self) -> torch.device:
        return self._device


def load_generation(options: GenerationOptions | None, data_dir, dataset: Literal["community-small", "grid-small"]) -> Dataset:
    """A generated graph set as train/test :class:`SequenceSplit` s (see the module docstring)."""
    try:
        import networkx  # noqa: F401
    except ImportError:
        raise DataUnavailable(f"{dataset} needs networkx: pip install 'zoo-ml[gnn]'") from None
    options = options or GenerationOptions()
    rng = np.random.default_rng(options.seed)
    graphs = GENERATORS[dataset](options.graphs, rng)
    order = rng.permutation(len(graphs))
    graphs = [graphs[i] for i in order]
    n_train = int(round(len(graphs) * (1 - options.test_fraction)))
    if not 1 <= n_train < len(graphs):
        raise ZooError(f"{len(graphs)} graphs leave no train or test split at test_fraction "
                       f"{options.test_fraction}")
    train, test = graphs[:n_train], graphs[n_train:]
    max_nodes = max(g.number_of_nodes() for g in graphs)
    m = options.max_prev_node or max_prev_node(train, seed=options.seed)
    info = DataInfo(input_shape=(max_nodes, m), extra={
        "level": "generation", "max_prev_node": m, "max_nodes": max_nodes,
        "onnx_max_prev_node": m, "onnx_max_nodes": max_nodes,
    })
    return Dataset(train=SequenceSplit(train, m, max_nodes, augment=True, repeat=options.repeat),
                   test=SequenceSplit(test, m, max_nodes, augment=False), info=info)


__all__ = ["GenerationOptions", "SequenceSplit", "adjacency", "bfs_adjacency", "bfs_order", "decode_adjacency",
           "encode_adjacency", "load_generation", "max_prev_node", "sequence_to_graph"]
