"""The TU graph-kernel benchmark format (Morris et al. 2020, https://chrsmrrs.github.io/datasets/).

A dataset ``DS`` is a folder of comma-separated text tables over all its graphs at once:

- ``DS_A.txt`` (m lines): ``row, col`` edges, 1-based global node ids (both directions listed)
- ``DS_graph_indicator.txt`` (n lines): the graph (1-based) of each node; nodes grouped by graph
- ``DS_graph_labels.txt`` (N lines): the class of each graph
- optional ``DS_node_labels.txt`` (n lines) and ``DS_node_attributes.txt`` (n lines, d floats)

Node features are built the way PyG's ``TUDataset`` and the GIN paper do: one-hot node labels,
then the node attributes as published; a dataset with neither (IMDB-BINARY, COLLAB, ...) gets
one-hot node degrees (PyG's ``OneHotDegree`` up to the dataset's largest degree, as in Xu et al.
2019). Every malformed line is a one-line error naming the file, the line and the column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from zoo.plugins.gnn.files import GraphFileError, fail, numeric_table


def one_hot_degree(edge_index: torch.Tensor, num_nodes: int, max_degree: int | None = None) -> torch.Tensor:
    """``[N, D + 1]`` one-hot in-degrees (D the largest degree, or ``max_degree``, larger clipped)."""
    degree = torch.bincount(edge_index[1], minlength=num_nodes)
    top = int(degree.max()) if max_degree is None and num_nodes else (max_degree or 0)
    return torch.nn.functional.one_hot(degree.clamp(max=top), top + 1).float()


def read_tu(folder: Path, name: str, node_attributes: bool = True
            ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, list[str], dict]:
    """Graphs ``[(x_g [n_g, F], edge_index_g [2, e_g])]`` (indices local to each graph, undirected,
    no duplicates or self-loops), labels ``y [G]`` (class ids), class names (the labels as written)
    and what the features are made of (``{"node_labels": k, "node_attributes": d, "degree": D+1}``).
    """
    from zoo.plugins.gnn.data import coalesce

    file = lambda suffix: folder / f"{name}_{suffix}.txt"  # noqa: E731
    edges = numeric_table(file("A"), columns=2) - 1                       # (m, 2) 0-based global ids
    graph_of = numeric_table(file("graph_indicator"), columns=1)[:, 0]   # (n,) 1-based
    graph_labels = numeric_table(file("graph_labels"), columns=1)[:, 0]
    n, num_graphs = graph_of.shape[0], graph_labels.shape[0]
    _check_indicator(file("graph_indicator"), graph_of, num_graphs, file("graph_labels"))
    graph_of = graph_of - 1
    _check_edges(file("A"), edges, n, graph_of)

    parts, made_of = [], {}
    if file("node_labels").is_file():
        node_labels = numeric_table(file("node_labels"))[:, 0]
        _check_rows(file("node_labels"), node_labels.shape[0], n)
        node_labels = node_labels - node_labels.min()
        parts.append(np.eye(int(node_labels.max()) + 1, dtype=np.float32)[node_labels])
        made_of["node_labels"] = parts[-1].shape[1]
    if node_attributes and file("node_attributes").is_file():
        attributes = numeric_table(file("node_attributes"), np.float32)
        _check_rows(file("node_attributes"), attributes.shape[0], n)
        parts.append(attributes)
        made_of["node_attributes"] = attributes.shape[1]

    # One coalesce over all graphs: edges come out sorted by target, and the nodes of a graph are
    # consecutive, so each graph's edges are one contiguous run.
    edge_index = coalesce(torch.from_numpy(edges).t().contiguous(), n, undirected=True)
    if parts:
        x = torch.from_numpy(np.hstack(parts))
    else:
        x = one_hot_degree(edge_index, n)
        made_of["degree"] = x.shape[1]
    node_ptr = np.searchsorted(graph_of, np.arange(num_graphs + 1))
    edge_ptr = np.searchsorted(edge_index[1].numpy(), node_ptr)
    graphs = [(x[node_ptr[g]:node_ptr[g + 1]], edge_index[:, edge_ptr[g]:edge_ptr[g + 1]] - int(node_ptr[g]))
              for g in range(num_graphs)]
    classes, y = np.unique(graph_labels, return_inverse=True)
    return graphs, torch.from_numpy(y.astype(np.int64)), [str(int(c)) for c in classes], made_of


def _check_rows(path: Path, rows: int, n: int) -> None:
    if rows != n:
        raise fail(path, min(rows, n) + 1, None, f"{rows} lines, but the graph indicator lists {n} nodes")


def _check_indicator(path: Path, graph_of: np.ndarray, num_graphs: int, labels: Path) -> None:
    """Graph ids 1..N, nondecreasing (the nodes of a graph are consecutive), every graph non-empty."""
    bad = np.flatnonzero((graph_of < 1) | (graph_of > num_graphs))
    if bad.size:
        raise fail(path, int(bad[0]) + 1, 1, f"graph {graph_of[bad[0]]}, but {labels} lists "
                   f"{num_graphs} graphs (valid: 1..{num_graphs})")
    down = np.flatnonzero(np.diff(graph_of) < 0)
    if down.size:
        raise fail(path, int(down[0]) + 2, 1, "graph ids must not decrease (the nodes of each graph "
                   "are listed together)")
    missing = np.setdiff1d(np.arange(1, num_graphs + 1), graph_of)
    if missing.size:
        raise GraphFileError(f"{path}: graph {missing[0]} has no nodes ({labels} lists {num_graphs} graphs)")


def _check_edges(path: Path, edges: np.ndarray, n: int, graph_of: np.ndarray) -> None:
    """Every edge names two nodes of the same graph."""
    bad = np.argwhere((edges < 0) | (edges >= n))
    if bad.size:
        row, column = (int(v) for v in bad[0])
        raise fail(path, row + 1, column + 1, f"edge to unknown node {edges[row, column] + 1} "
                   f"(the graph indicator lists nodes 1..{n})")
    across = np.flatnonzero(graph_of[edges[:, 0]] != graph_of[edges[:, 1]])
    if across.size:
        row = int(across[0])
        raise fail(path, row + 1, None, f"edge {edges[row, 0] + 1},{edges[row, 1] + 1} joins two graphs "
                   f"({graph_of[edges[row, 0]] + 1} and {graph_of[edges[row, 1]] + 1})")


def find_tu_name(folder: Path) -> str:
    """The ``DS`` of the only ``DS_A.txt`` in ``folder``."""
    names = sorted(p.name[:-len("_A.txt")] for p in folder.glob("*_A.txt"))
    if not names:
        below = sorted(str(p.parent) for p in folder.glob("*/*_A.txt"))
        hint = (f"found one in the sub-folder {below[0]}: set data.options.path={below[0]}" if below
                else "a TU folder holds NAME_A.txt, NAME_graph_indicator.txt and NAME_graph_labels.txt")
        raise GraphFileError(f"{folder}: no NAME_A.txt here; {hint}")
    if len(names) != 1:
        found = ", ".join(names) if names else "none"
        raise GraphFileError(f"{folder}: expected one NAME_A.txt in TU format (found {found}); "
                             "set data.options.name to choose")
    return names[0]


__all__ = ["find_tu_name", "one_hot_degree", "read_tu"]
