"""How close generated graphs are to a reference set: MMD of graph statistics, and validity,
uniqueness and novelty.

You et al. 2018 (GraphRNN, §4.2) compare the distributions of three per-graph statistics between
generated graphs and the test graphs with the squared maximum mean discrepancy

.. math::
    \\mathrm{MMD}^2(P, Q) = \\mathbb{E}_{x,x' \\sim P}[k(x,x')] + \\mathbb{E}_{y,y' \\sim Q}[k(y,y')]
                         - 2\\,\\mathbb{E}_{x \\sim P, y \\sim Q}[k(x,y)]

(the biased estimator over all pairs, as the paper's ``eval/mmd.py``), with these statistics and
kernels:

- **degree**: each graph's normalised degree histogram; Gaussian kernel of the earth mover's
  distance, :math:`k = \\exp(-\\mathrm{EMD}^2 / 2\\sigma^2)`, σ = 1, ground distance |i − j|;
- **clustering**: each graph's histogram of node clustering coefficients in 100 bins on [0, 1];
  Gaussian EMD kernel with σ = 0.1 and ground distance |i − j| / 100;
- **orbit**: each graph's mean count per node of the 15 orbits of the 2-, 3- and 4-node graphlets
  (what the ORCA program counts, Hočevar & Demšar 2014; counted here by enumerating node
  subsets, :func:`orbit_counts`); Gaussian kernel of the Euclidean distance, σ = 30.

On a line the EMD between two histograms of equal mass is the L1 distance between their
cumulative sums, so no optimal-transport solver is needed. ``kernel="tv"`` swaps EMD for the
total variation distance ½‖p − q‖₁ (the GRAN code's faster choice).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from itertools import combinations
from typing import Literal

import networkx as nx
import numpy as np
from scipy.spatial.distance import cdist

Kernel = Literal["emd", "tv"]

# -- statistics -----------------------------------------------------------------------------


def degree_histogram(graph: nx.Graph) -> np.ndarray:
    """Counts of nodes per degree 0, 1, … (``nx.degree_histogram``)."""
    return np.asarray(nx.degree_histogram(graph), dtype=np.float64)


def clustering_histogram(graph: nx.Graph, bins: int = 100) -> np.ndarray:
    """Counts of nodes per clustering-coefficient bin on [0, 1]."""
    values = list(nx.clustering(graph).values())
    return np.histogram(values, bins=bins, range=(0.0, 1.0))[0].astype(np.float64)


# Orbit of a node in a connected 4-node graphlet, from the graphlet's sorted degree sequence and
# the node's degree in it (Pržulj 2007 numbering, as ORCA's): path P4, star, cycle C4, paw
# (triangle + pendant), diamond, K4.
_ORBITS4 = {
    (1, 1, 2, 2): {1: 4, 2: 5},
    (1, 1, 1, 3): {1: 6, 3: 7},
    (2, 2, 2, 2): {2: 8},
    (1, 2, 2, 3): {1: 9, 2: 10, 3: 11},
    (2, 2, 3, 3): {2: 12, 3: 13},
    (3, 3, 3, 3): {3: 14},
}


def _orbit_table() -> np.ndarray:
    """``table[code, position] → orbit`` (−1: not a connected graphlet) for the 64 graphs on four
    labelled nodes, ``code`` = the six edge bits of pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)."""
    pairs = list(combinations(range(4), 2))
    table = np.full((64, 4), -1, dtype=np.int64)
    for code in range(64):
        degree = [0, 0, 0, 0]
        for bit, (u, v) in enumerate(pairs):
            if code >> bit & 1:
                degree[u] += 1
                degree[v] += 1
        orbits = _ORBITS4.get(tuple(sorted(degree)))
        if orbits is not None:
            table[code] = [orbits[d] for d in degree]
    return table


_TABLE4 = _orbit_table()


@lru_cache(maxsize=64)
def _subsets(n: int, k: int) -> np.ndarray:
    """All ``k``-subsets of ``range(n)`` as rows ``[C(n, k), k]`` (cached per graph size)."""
    return np.array(list(combinations(range(n), k)), dtype=np.int64).reshape(-1, k)


def orbit_counts(graph: nx.Graph) -> np.ndarray:
    """``[n, 15]``: for each node, in how many induced connected graphlets of 2–4 nodes it sits at
    each orbit (0: degree; 1, 2: end and middle of a 3-path; 3: triangle; 4–14: the 4-node
    orbits). Enumerates all node triples and quadruples: for the small graphs of the benchmarks
    (C(20, 4) = 4,845 quadruples), not for large ones."""
    adj = nx.to_numpy_array(graph, dtype=np.int64) != 0
    np.fill_diagonal(adj, False)
    n = adj.shape[0]
    counts = np.zeros((n, 15), dtype=np.int64)
    counts[:, 0] = adj.sum(1)
    if n >= 3:
        t = _subsets(n, 3)                     # (T, 3)
        e = np.stack([adj[t[:, 0], t[:, 1]], adj[t[:, 0], t[:, 2]], adj[t[:, 1], t[:, 2]]], 1).astype(np.int64)
        deg = np.stack([e[:, 0] + e[:, 1], e[:, 0] + e[:, 2], e[:, 1] + e[:, 2]], 1)  # (T, 3)
        edges = e.sum(1)
        for pos in range(3):
            path = edges == 2
            np.add.at(counts[:, 1], t[path & (deg[:, pos] == 1), pos], 1)
            np.add.at(counts[:, 2], t[path & (deg[:, pos] == 2), pos], 1)
            np.add.at(counts[:, 3], t[edges == 3, pos], 1)
    if n >= 4:
        q = _subsets(n, 4)                     # (Q, 4)
        code = np.zeros(q.shape[0], dtype=np.int64)
        for bit, (u, v) in enumerate(combinations(range(4), 2)):
            code |= adj[q[:, u], q[:, v]].astype(np.int64) << bit
        orbit = _TABLE4[code]                                               # (Q, 4)
        keep = orbit >= 0
        np.add.at(counts, (q[keep], orbit[keep]), 1)
    return counts


def orbit_vector(graph: nx.Graph) -> np.ndarray:
    """The mean orbit counts per node ``[15]`` (the paper's orbit statistic)."""
    n = graph.number_of_nodes()
    return orbit_counts(graph).sum(0) / max(n, 1)


# -- MMD -------------------------------------------------------------------------------------


def _pad(rows: list[np.ndarray]) -> np.ndarray:
    width = max((len(r) for r in rows), default=1) or 1
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _normalise(h: np.ndarray) -> np.ndarray:
    total = h.sum(1, keepdims=True)
    return np.divide(h, total, out=np.zeros_like(h), where=total > 0)


def histogram_kernel(a: np.ndarray, b: np.ndarray, sigma: float, scale: float, kernel: Kernel) -> np.ndarray:
    """``[len(a), len(b)]`` Gaussian kernel between normalised histograms (rows).

    ``emd``: EMD = Σ |cumsum(p) − cumsum(q)| / ``scale`` (1-D, ground distance |i − j| / scale);
    ``tv``: ½ Σ |p − q|. Then k = exp(−d² / 2σ²).
    """
    if kernel == "emd":
        d = cdist(np.cumsum(a, 1), np.cumsum(b, 1), "cityblock") / scale
    else:
        d = cdist(a, b, "cityblock") / 2.0
    return np.exp(-d * d / (2 * sigma * sigma))


def mmd(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Biased MMD² from the three kernel matrices (every pair, the diagonals included)."""
    return float(k_xx.mean() + k_yy.mean() - 2 * k_xy.mean())


def histogram_mmd(ref: list[np.ndarray], gen: list[np.ndarray], sigma: float, scale: float = 1.0,
                  kernel: Kernel = "emd") -> float:
    """MMD² between two sets of histograms (each normalised to sum 1, padded to one length)."""
    both = _normalise(_pad([*ref, *gen]))
    x, y = both[:len(ref)], both[len(ref):]
    return mmd(*(histogram_kernel(p, q, sigma, scale, kernel) for p, q in ((x, x), (y, y), (x, y))))


def vector_mmd(ref: np.ndarray, gen: np.ndarray, sigma: float) -> float:
    """MMD² with the Gaussian kernel of the Euclidean distance between vectors (rows)."""
    def k(p, q):
        d = cdist(p, q, "euclidean")
        return np.exp(-d * d / (2 * sigma * sigma))
    return mmd(k(ref, ref), k(gen, gen), k(ref, gen))


def degree_mmd(ref: list[nx.Graph], gen: list[nx.Graph], kernel: Kernel = "emd") -> float:
    return histogram_mmd([degree_histogram(g) for g in ref], [degree_histogram(g) for g in gen],
                         sigma=1.0, kernel=kernel)


def clustering_mmd(ref: list[nx.Graph], gen: list[nx.Graph], kernel: Kernel = "emd", bins: int = 100) -> float:
    return histogram_mmd([clustering_histogram(g, bins) for g in ref], [clustering_histogram(g, bins) for g in gen],
                         sigma=0.1, scale=float(bins), kernel=kernel)


def orbit_mmd(ref: list[nx.Graph], gen: list[nx.Graph]) -> float:
    return vector_mmd(np.stack([orbit_vector(g) for g in ref]), np.stack([orbit_vector(g) for g in gen]),
                      sigma=30.0)


# -- validity, uniqueness, novelty -------------------------------------------------------------


class IsomorphismIndex:
    """Graphs grouped by their Weisfeiler–Lehman hash; membership is an exact isomorphism test
    within the hash's group (equal hashes do not prove isomorphism)."""

    def __init__(self, graphs: list[nx.Graph] = ()) -> None:
        self.groups: dict[str, list[nx.Graph]] = {}
        for g in graphs:
            self.add(g)

    @staticmethod
    def key(graph: nx.Graph) -> str:
        with warnings.catch_warnings():  # networkx 3.5 warns that its hashes changed: only equality matters here
            warnings.simplefilter("ignore")
            return nx.weisfeiler_lehman_graph_hash(graph)

    def __contains__(self, graph: nx.Graph) -> bool:
        return any(nx.is_isomorphic(graph, other) for other in self.groups.get(self.key(graph), ()))

    def add(self, graph: nx.Graph) -> None:
        self.groups.setdefault(self.key(graph), []).append(graph)


def valid(graph: nx.Graph) -> bool:
    """A generated graph is valid when it has a node and is connected (every benchmark graph is)."""
    return graph.number_of_nodes() > 0 and nx.is_connected(graph)


def vun(generated: list[nx.Graph], train: list[nx.Graph]) -> dict[str, float]:
    """``validity`` (share connected), ``uniqueness`` (share of distinct isomorphism classes among
    the generated graphs) and ``novelty`` (share isomorphic to no training graph)."""
    if not generated:
        return {"validity": 0.0, "uniqueness": 0.0, "novelty": 0.0}
    seen, distinct = IsomorphismIndex(), 0
    for g in generated:
        if g not in seen:
            distinct += 1
            seen.add(g)
    known = IsomorphismIndex(train)
    total = len(generated)
    return {"validity": sum(valid(g) for g in generated) / total, "uniqueness": distinct / total,
            "novelty": sum(g not in known for g in generated) / total}


def generation_metrics(generated: list[nx.Graph], test: list[nx.Graph], train: list[nx.Graph],
                       kernel: Kernel = "emd") -> dict[str, float]:
    """Every metric of a generated set: ``degree_mmd``, ``clustering_mmd``, ``orbit_mmd`` against
    ``test`` (empty generated graphs are left out of the MMDs, as in the paper's code), mean
    ``nodes`` and ``edges``, and :func:`vun` against ``train``."""
    nonempty = [g for g in generated if g.number_of_nodes() > 0] or [nx.empty_graph(1)]
    out = {"degree_mmd": degree_mmd(test, nonempty, kernel), "clustering_mmd": clustering_mmd(test, nonempty, kernel),
           "orbit_mmd": orbit_mmd(test, nonempty),
           "nodes": float(np.mean([g.number_of_nodes() for g in generated])) if generated else 0.0,
           "edges": float(np.mean([g.number_of_edges() for g in generated])) if generated else 0.0}
    out.update(vun(generated, train))
    return out
