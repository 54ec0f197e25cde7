"""The user's own graphs: ``graph`` (one graph, node classification) and ``graphs`` (many graphs,
graph classification), chosen with ``data.name`` and read from ``data.options.path``.

``graph`` — a node table plus an edge list, both CSV::

    nodes.csv                        edges.csv
    id,f1,f2,label,split             source,target,weight
    a,0.5,1.0,cat,train              a,b,1.0
    b,0.1,0.0,dog,test               b,c,0.5

Node ids are any text; feature columns (default: every column but ``id``, ``label``, ``split``) are
numbers; an empty label marks an unlabelled node when the ``split`` column is empty too (it passes
messages, no split scores it). Without a ``split`` column the labelled nodes are split per class
by seeded fractions. The graph is undirected unless ``directed``. A weight column is checked but
not used: the zoo's GNNs take unweighted graphs.

``graphs`` — a folder in TU format (:mod:`zoo.plugins.gnn.tu`) or a JSONL file, one graph a line::

    {"edges": [[0, 1], [1, 2]], "x": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "y": "active"}

(``x`` may be left out on every line: one-hot degrees are used, as for TU sets without labels, and
the node count is ``num_nodes`` or the largest node number in ``edges`` plus one).
Graphs are split into stratified folds like the TU benchmarks.

Every malformed input is one line naming the file, the line and the column (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoo.core.train.data import DataInfo, Dataset
from zoo.plugins.gnn.data import FoldOptions, NodeSplit, coalesce, folded
from zoo.plugins.gnn.files import GraphFileError, csv_rows, fail, number
from zoo.plugins.gnn.sampling import SamplingOptions, sampled
from zoo.plugins.gnn.tu import find_tu_name, one_hot_degree, read_tu

#: Without feature columns a graph gets one-hot node ids, up to this many nodes (N × N floats).
MAX_IDENTITY_NODES = 20_000
SPLITS = ("train", "val", "test")


class GraphOptions(SamplingOptions):
    """Options of the ``graph`` dataset (``data.options.*``)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., min_length=1, description="The node table (CSV), or a folder holding nodes.csv and edges.csv.")
    edges: str | None = Field(None, description="The edge list (CSV); default: edges.csv beside the node table.")
    id_column: str = Field("id", min_length=1, description="Node table column holding the node ids.")
    label_column: str = Field("label", min_length=1, description="Node table column holding the class.")
    split_column: str = Field("split", min_length=1, description="Optional node table column: train, val, "
                              "test, or empty (unlabelled); when absent, seeded fractions split the nodes.")
    features: list[str] | None = Field(None, description="Feature columns (default: every other column; "
                                       "none at all: one-hot node ids).")
    source_column: str = Field("source", min_length=1, description="Edge list column of the source node id.")
    target_column: str = Field("target", min_length=1, description="Edge list column of the target node id.")
    weight_column: str = Field("weight", min_length=1, description="Optional edge list column of numeric weights "
                               "(checked, not used).")
    directed: bool = Field(False, description="Keep edges one-way (default: each edge both ways).")
    train_fraction: float = Field(0.6, gt=0, lt=1, description="Without a split column: training share per class.")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="Without a split column: validation share per class.")
    split_seed: int = Field(0, ge=0, description="Seed of the fraction split (independent of train.seed).")

    @model_validator(mode="after")
    def _fractions(self):
        if self.train_fraction + self.val_fraction >= 1:
            raise ValueError("train_fraction + val_fraction must be < 1 (the rest is the test split)")
        return self


class GraphsOptions(FoldOptions):
    """Options of the ``graphs`` dataset: where the graphs are, plus the folds (as for TU sets)."""

    path: str = Field(..., min_length=1, description="A folder in TU format (NAME_A.txt, ...) or a JSONL file "
                      "with one graph per line ({\"edges\": [[0, 1], ...], \"x\": [[...], ...], \"y\": label}).")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", description="TU format: the NAME of NAME_A.txt "
                             "(default: the only one in the folder).")
    node_attributes: bool = Field(True, description="TU format: append NAME_node_attributes.txt when present.")
    directed: bool = Field(False, description="JSONL: keep edges one-way (default: each edge both ways).")


# -- graph: node table + edge list ------------------------------------------------------------


def load_graph(options: GraphOptions, data_dir: str | None = None) -> Dataset:
    """One graph of the user's for node classification: ``x [N, F]``, ``edge_index [2, E]``,
    ``y [N]`` and train/val/test node masks (see the module docstring for the files)."""
    nodes_path, edges_path = _graph_paths(options)
    nodes = _read_nodes(nodes_path, options)
    edge_index = _read_edges(edges_path, nodes["index"], options)
    n = len(nodes["index"])
    edge_index = coalesce(edge_index, n, undirected=not options.directed)
    masks = _node_masks(nodes, nodes_path, options)
    nodes["y"][nodes["y"] < 0] = 0  # unlabelled nodes: in no mask, never scored
    x = nodes["x"] if nodes["x"] is not None else _identity(n, nodes_path)
    base = NodeSplit(x, edge_index, nodes["y"], masks["train"])
    info = DataInfo(input_shape=(x.shape[1],), num_classes=len(nodes["classes"]), class_names=nodes["classes"],
                    extra={"level": "node", "num_nodes": n, "num_edges": int(edge_index.shape[1]),
                           "features": nodes["features"]})
    val = base.with_mask(masks["val"]) if bool(masks["val"].any()) else None
    return sampled(Dataset(train=base, val=val, test=base.with_mask(masks["test"]), info=info), options)


def _graph_paths(o: GraphOptions) -> tuple[Path, Path]:
    path = Path(o.path).expanduser()
    if path.is_dir():
        path = path / "nodes.csv"
    edges = Path(o.edges).expanduser() if o.edges else path.parent / "edges.csv"
    for file, what in ((path, "node table"), (edges, "edge list")):
        if not file.is_file():
            raise GraphFileError(f"{file}: no such file (the {what}; see data.options.path and data.options.edges)")
    return path, edges


def _read_nodes(path: Path, o: GraphOptions) -> dict:
    """Ids, features, labels and splits of the node table, checked line by line."""
    header, rows = csv_rows(path, (o.id_column, o.label_column))
    has_split = o.split_column in header
    reserved = {o.id_column, o.label_column, o.split_column}
    features = o.features if o.features is not None else [c for c in header if c not in reserved]
    for column in features:
        if column not in header:
            raise fail(path, 1, column, f"missing feature column (the header has {', '.join(header)})")
    index: dict[str, int] = {}
    first_line: dict[str, int] = {}
    x, labels, splits = [], [], []
    for line, row in rows:
        node = row[o.id_column]
        if not node:
            raise fail(path, line, o.id_column, "empty node id")
        if node in index:
            raise fail(path, line, o.id_column, f"node {node!r} again (first on line {first_line[node]})")
        index[node], first_line[node] = len(index), line
        x.append([number(row[c], path, line, c) for c in features])
        split = row[o.split_column].lower() if has_split else None
        if split not in (None, "", *SPLITS):
            raise fail(path, line, o.split_column, f"{row[o.split_column]!r} is not one of train, val, test "
                       "(or empty: unlabelled)")
        label = row[o.label_column]
        if not label and split != "":
            raise fail(path, line, o.label_column, "empty label" + (" (leave the split empty too for an "
                                                                     "unlabelled node)" if has_split else ""))
        labels.append((label, line))
        splits.append(split)
    if not index:
        raise GraphFileError(f"{path}: no nodes (only a header)")
    classes = _sorted_labels({label for label, _ in labels if label})
    if len(classes) < 2:
        raise fail(path, None, o.label_column, f"{len(classes)} class(es) ({', '.join(classes)}): "
                   "classification needs at least two")
    class_of = {label: i for i, label in enumerate(classes)}
    y = torch.tensor([class_of.get(label, -1) for label, _ in labels], dtype=torch.long)
    return {"index": index, "x": torch.tensor(x, dtype=torch.float32) if features else None, "y": y,
            "classes": classes, "lines": [line for _, line in labels], "splits": splits,
            "has_split": has_split, "features": features}


def _sorted_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order, others as text."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _read_edges(path: Path, index: dict[str, int], o: GraphOptions) -> torch.Tensor:
    """``[2, E]`` node indices of the edge list; an edge to an unknown node names its line."""
    header, rows = csv_rows(path, (o.source_column, o.target_column))
    weighted = o.weight_column in header
    pairs = []
    for line, row in rows:
        pair = []
        for column in (o.source_column, o.target_column):
            node = row[column]
            if node not in index:
                raise fail(path, line, column, f"edge to unknown node {node!r} (not an id of the node table)")
            pair.append(index[node])
        if weighted:
            number(row[o.weight_column], path, line, o.weight_column)
        pairs.append(pair)
    return torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)


def _node_masks(nodes: dict, path: Path, o: GraphOptions) -> dict[str, torch.Tensor]:
    """Train/val/test masks from the split column, or seeded per-class fractions of the labelled
    nodes; every class needs a training node and the test split a node."""
    y, n = nodes["y"], len(nodes["y"])
    masks = {s: torch.zeros(n, dtype=torch.bool) for s in SPLITS}
    if nodes["has_split"]:
        for i, split in enumerate(nodes["splits"]):
            if split:
                masks[split][i] = True
    else:
        generator = torch.Generator().manual_seed(o.split_seed)
        for c in range(len(nodes["classes"])):
            members = (y == c).nonzero().view(-1)
            members = members[torch.randperm(len(members), generator=generator)]
            n_train = max(1, round(o.train_fraction * len(members)))
            n_val = min(round(o.val_fraction * len(members)), len(members) - n_train)
            masks["train"][members[:n_train]] = True
            masks["val"][members[n_train:n_train + n_val]] = True
            masks["test"][members[n_train + n_val:]] = True
    trained = set(y[masks["train"]].tolist())
    for c, name in enumerate(nodes["classes"]):
        if c not in trained:
            line = nodes["lines"][int((y == c).nonzero()[0])]
            raise fail(path, line, o.label_column, f"class {name!r} has no training node (give one of its nodes "
                       "split=train, or more nodes of that class)")
    if not masks["test"].any():
        raise fail(path, None, o.split_column if nodes["has_split"] else o.label_column,
                   "no test node (mark some nodes split=test, or add labelled nodes)")
    return masks


def _identity(n: int, path: Path) -> torch.Tensor:
    if n > MAX_IDENTITY_NODES:
        raise GraphFileError(f"{path}: no feature columns, and one-hot node ids for {n} nodes would take "
                             f"{n * n * 4 / 1e9:.1f} GB; add feature columns")
    return torch.eye(n)


# -- graphs: TU folder or JSONL ---------------------------------------------------------------


def load_graphs(options: GraphsOptions, data_dir: str | None = None) -> Dataset:
    """Many graphs of the user's for graph classification, split into stratified folds."""
    path = Path(options.path).expanduser()
    if path.is_dir():
        name = options.name or find_tu_name(path)
        graphs, y, classes, made_of = read_tu(path, name, node_attributes=options.node_attributes)
        where = path / f"{name}_graph_labels.txt"
        lines, column = None, 1
    elif path.is_file():
        graphs, y, classes, made_of, lines = read_jsonl(path, directed=options.directed)
        where, column = path, "y"
    else:
        raise GraphFileError(f"{path}: no such file or folder (data.options.path: a TU folder or a JSONL file)")
    return folded(graphs, y, classes, options, {"features": made_of}, where=str(where), lines=lines, column=column)


def read_jsonl(path: Path, directed: bool = False
               ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, list[str], dict, list[int]]:
    """Graphs of a JSONL file (one ``{"edges", "x", "y"}`` object a line) as :func:`read_tu` returns
    them, plus the line of each graph."""
    raw = []  # (line, edges [2, e], x [n, F] or None, n, label)
    with open(path, "rb") as handle:
        for line, data in enumerate(handle, start=1):
            try:
                text = data.decode("utf-8-sig")  # a BOM, as Windows tools write, is dropped
            except UnicodeDecodeError as err:
                raise fail(path, line, None, f"not UTF-8 text ({err.reason})") from None
            if text.strip():
                raw.append(_jsonl_graph(path, line, text))
    if not raw:
        raise GraphFileError(f"{path}: the file is empty (expected one JSON graph per line)")
    with_x = [r for r in raw if r[2] is not None]
    if with_x and len(with_x) != len(raw):
        line = next(r[0] for r in raw if r[2] is None)
        raise fail(path, line, "x", "no node features, but other lines have them (give x on every line or none)")
    if with_x:
        width = with_x[0][2].shape[1]
        for line, _, x, _, _ in with_x:
            if x.shape[1] != width:
                raise fail(path, line, "x", f"{x.shape[1]} features per node, line {with_x[0][0]} has {width}")
    graphs = []
    for line, edges, x, n, _ in raw:
        edge_index = coalesce(edges, n, undirected=not directed)
        graphs.append((x, edge_index))
    made_of = {"node_features": with_x[0][2].shape[1]} if with_x else {}
    if not with_x:  # one-hot degrees up to the largest degree over all graphs
        top = max((int(torch.bincount(e[1], minlength=x_n).max()) if x_n else 0)
                  for (_, e), (_, _, _, x_n, _) in zip(graphs, raw))
        graphs = [(one_hot_degree(e, r[3], top), e) for (_, e), r in zip(graphs, raw)]
        made_of["degree"] = top + 1
    classes = _sorted_labels({r[4] for r in raw})
    class_of = {c: i for i, c in enumerate(classes)}
    return graphs, torch.tensor([class_of[r[4]] for r in raw]), classes, made_of, [r[0] for r in raw]


def _jsonl_graph(path: Path, line: int, text: str):
    """One JSONL line checked: ``(line, edges [2, e], x [n, F] or None, n, label as text)``."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise fail(path, line, err.colno, f"not JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise fail(path, line, None, "expected a JSON object {\"edges\": ..., \"x\": ..., \"y\": ...}")
    for key in ("edges", "y"):
        if key not in record:
            raise fail(path, line, key, "missing")
    label = record["y"]
    if isinstance(label, bool) or not isinstance(label, (int, str)) or str(label).strip() == "":
        raise fail(path, line, "y", f"{label!r} is not a label (a non-empty string or an integer)")
    x = None
    if record.get("x") is not None:
        x = _jsonl_matrix(path, line, record["x"])
        n = x.shape[0]
    edges = record["edges"]
    if not isinstance(edges, list) or not all(isinstance(e, list) and len(e) == 2 and
                                              all(isinstance(v, int) and not isinstance(v, bool) for v in e)
                                              for e in edges):
        raise fail(path, line, "edges", "expected a list of [source, target] pairs of node numbers")
    big = next((pair for pair in edges if max(pair) >= 2**63), None)  # past torch.long
    if big is not None:
        raise fail(path, line, "edges", f"edge {big}: a node number past 2**63 - 1")
    if x is None:
        n = record.get("num_nodes", max(max(e) for e in edges) + 1 if edges else 0)
        if isinstance(n, bool) or not isinstance(n, int):
            raise fail(path, line, "num_nodes", f"{n!r} is not a number of nodes")
    if n == 0:
        raise fail(path, line, "x", "a graph needs at least one node")
    bad = next((pair for pair in edges if not (0 <= pair[0] < n and 0 <= pair[1] < n)), None)
    if bad is not None:
        raise fail(path, line, "edges", f"edge {bad} to unknown node: the graph has {n} nodes (0..{n - 1})")
    edge_index = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
    return line, edge_index, x, n, str(label).strip()


def _jsonl_matrix(path: Path, line: int, rows) -> torch.Tensor:
    """``x`` of a JSONL graph: a non-empty list of equally long lists of numbers."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise fail(path, line, "x", "expected a non-empty list of feature lists, one per node")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise fail(path, line, "x", f"node {i} has {len(row)} features, node 0 has {width}")
        for value in row:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise fail(path, line, "x", f"node {i}: {value!r} is not a finite number")
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), width)


__all__ = ["GraphOptions", "GraphsOptions", "load_graph", "load_graphs", "read_jsonl"]
