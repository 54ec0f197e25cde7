"""Graph datasets: splits that hold graphs, and loaders for Planetoid, TU and karate club.

Two kinds of split:

- :class:`NodeSplit` — one graph, node classification: ``len() == 1``; its only batch is the whole
  graph (``x``, ``edge_index``, ``y``) plus a boolean ``mask`` of the nodes this split scores.
  Train, validation and test share the graph and differ in their masks (transductive setting).
- :class:`GraphListSplit` — many small graphs, graph classification: ``batch(index)`` concatenates
  the chosen graphs into one disconnected graph (node indices offset) with a ``batch`` vector.

The public sets are found with :func:`zoo.core.train.data.locate` (``--data-dir``, ``$ZOO_DATA_DIR``, the
cache that ``zoo data fetch`` fills) in the data-root layout: ``planetoid/ind.NAME.*`` and
``tu/NAME/NAME_*.txt``. Their sources are declared in ``registry.toml``. The user's own graphs
(``graph``, ``graphs``) are read by :mod:`zoo.plugins.gnn.own`.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoo.core.train.data import DataInfo, Dataset, Split, locate, to_device
from zoo.core.contract.errors import DataNotFound, DataUnavailable, ZooError
from zoo.plugins.gnn.files import GraphFileError, at
from zoo.plugins.gnn.sampling import GraphNodesSplit, SamplingOptions, sampled
from zoo.plugins.gnn.tu import read_tu

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"   # ind.{name}.{x,y,...}
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"                     # {NAME}.zip


# -- splits ---------------------------------------------------------------------------------


class NodeSplit(GraphNodesSplit):
    """One graph with the nodes of this split marked in ``mask`` (length 1: the graph)."""

    def __init__(self, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
        self.x, self.edge_index, self.y, self.mask = x, edge_index, y, mask

    def __len__(self) -> int:
        return 1

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.x, "edge_index": self.edge_index, "y": self.y, "mask": self.mask}

    def to(self, device) -> NodeSplit:
        # to_device: within Dataset.to the splits of the graph keep sharing x, edge_index and y
        return NodeSplit(to_device(self.x, device), to_device(self.edge_index, device), to_device(self.y, device),
                         to_device(self.mask, device))

    def subset(self, index: torch.Tensor) -> NodeSplit:
        return self  # the only sample is the graph itself

    def with_mask(self, mask: torch.Tensor) -> NodeSplit:
        return NodeSplit(self.x, self.edge_index, self.y, mask.to(self.mask.device))

    def __repr__(self) -> str:
        return (f"NodeSplit(nodes={self.x.shape[0]}, edges={self.edge_index.shape[1]}, "
                f"features={self.x.shape[1]}, scored={int(self.mask.sum())})")


class GraphListSplit(Split):
    """Graphs stored back to back: ``x [ΣN, F]``, ``edge_index [2, ΣE]`` (indices local to each
    graph), ``node_ptr``/``edge_ptr`` (graph g owns rows ``ptr[g]:ptr[g+1]``), labels ``y [G]``.

    A batch is gathered with a fixed handful of tensor ops whatever its size (:meth:`_gather`):
    the graphs' first rows and sizes live on the device too, and the batch's total node and
    edge counts, which size the outputs, are summed on the host from a copy of the sizes. No
    device sync per batch in :meth:`batches`, one in :meth:`batch` (the index's host copy)."""

    def __init__(self, x: torch.Tensor, edge_index: torch.Tensor, node_ptr: list[int],
                 edge_ptr: list[int], y: torch.Tensor) -> None:
        if len(node_ptr) != len(edge_ptr) or len(node_ptr) != y.shape[0] + 1:
            raise ValueError("node_ptr and edge_ptr need one entry more than there are graphs")
        self.x, self.edge_index, self.y = x, edge_index, y
        self.node_ptr, self.edge_ptr = list(node_ptr), list(edge_ptr)
        ptr = np.array([self.node_ptr, self.edge_ptr], dtype=np.int64).reshape(2, -1)   # (2, G + 1)
        self._sizes = np.diff(ptr, axis=1)                                   # host: (2, G) nodes, edges
        self._starts = torch.as_tensor(ptr[:, :-1], device=y.device)         # device: (2, G) first rows
        self._counts = torch.as_tensor(self._sizes, device=y.device)         # device: (2, G)

    @classmethod
    def from_graphs(cls, graphs: list[tuple[torch.Tensor, torch.Tensor]], y: torch.Tensor) -> GraphListSplit:
        """From ``[(x_g, edge_index_g), ...]`` with indices local to each graph."""
        node_ptr, edge_ptr = [0], [0]
        for x, edge_index in graphs:
            node_ptr.append(node_ptr[-1] + x.shape[0])
            edge_ptr.append(edge_ptr[-1] + edge_index.shape[1])
        x = torch.cat([g[0] for g in graphs]) if graphs else torch.zeros(0, 0)
        ei = torch.cat([g[1] for g in graphs], dim=1) if graphs else torch.zeros(2, 0, dtype=torch.long)
        return cls(x, ei, node_ptr, edge_ptr, y)

    def __len__(self) -> int:
        return self.y.shape[0]

    def graph(self, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.x[self.node_ptr[g]:self.node_ptr[g + 1]],
                self.edge_index[:, self.edge_ptr[g]:self.edge_ptr[g + 1]])

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._gather(index, index.cpu().numpy())  # one device sync: the ids on the host

    def batches(self, batch_size: int, order: torch.Tensor | None = None, start: int = 0):
        """:meth:`Split.batches` with ``order`` copied to the host once per epoch (one device sync),
        so that no batch needs one."""
        if order is None:
            order = torch.arange(len(self), device=self.device)
        host = order.cpu().numpy()
        for begin in range(start * batch_size, order.shape[0], batch_size):
            yield self._gather(order[begin:begin + batch_size], host[begin:begin + batch_size])

    def _gather(self, index: torch.Tensor, host_index: np.ndarray) -> dict[str, torch.Tensor]:
        """Graphs ``index [B]`` (on the device; ``host_index`` the same ids) as one disconnected graph.

        With n_k, e_k the sizes of the k-th graph of the batch, s_k, t_k its first node and edge
        rows in the split, and o_k = Σ_{l<k} n_l (O_k likewise for edges) its first node in the batch:
        ``batch`` = k repeated n_k times; batch node o_k + r is split row s_k + r; batch edge O_k + r
        is split edge t_k + r with its local node ids shifted by o_k. Sizes: ``x [ΣN, F]``,
        ``edge_index [2, ΣE]``, ``batch [ΣN]``, ``y [B]``.
        """
        nodes, edges = (int(total) for total in self._sizes[:, host_index].sum(axis=1))
        starts, counts = self._starts.index_select(1, index), self._counts.index_select(1, index)  # (2, B)
        firsts = counts.cumsum(1) - counts                                       # (2, B): o_k, O_k
        # output_size: the size is known here, so repeat_interleave needs no sync to find it
        graph_of_node = torch.repeat_interleave(counts[0], output_size=nodes)    # (ΣN,) k per node
        graph_of_edge = torch.repeat_interleave(counts[1], output_size=edges)    # (ΣE,)
        shift = starts - firsts                                                  # (2, B): s_k − o_k
        node_rows = torch.arange(nodes, device=index.device) + shift[0].index_select(0, graph_of_node)
        edge_cols = torch.arange(edges, device=index.device) + shift[1].index_select(0, graph_of_edge)
        edge_index = self.edge_index.index_select(1, edge_cols) + firsts[0].index_select(0, graph_of_edge)
        # The number of graphs travels with the batch vector: the readout needs it as a Python int,
        # and max(batch) + 1 costs a device sync per step (and undercounts a trailing empty graph).
        graph_of_node.zoo_num_graphs = len(host_index)
        return {"x": self.x.index_select(0, node_rows), "edge_index": edge_index, "batch": graph_of_node,
                "y": self.y.index_select(0, index)}

    def to(self, device) -> GraphListSplit:
        return GraphListSplit(to_device(self.x, device), to_device(self.edge_index, device), self.node_ptr,
                              self.edge_ptr, to_device(self.y, device))

    def subset(self, index: torch.Tensor) -> GraphListSplit:
        graphs = [self.graph(g) for g in index.tolist()]
        return GraphListSplit.from_graphs(graphs, self.y.index_select(0, index.to(self.y.device)))

    @property
    def device(self) -> torch.device:
        return self.y.device

    def __repr__(self) -> str:
        return f"GraphListSplit(graphs={len(self)}, nodes={self.x.shape[0]}, edges={self.edge_index.shape[1]})"


# -- edge lists -------------------------------------------------------------------------------


def coalesce(edge_index: torch.Tensor, num_nodes: int, undirected: bool = True,
             self_loops: bool = False) -> torch.Tensor:
    """Sorted unique edges; both directions when ``undirected``; self-loops dropped unless kept."""
    if undirected:
        edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    if not self_loops:
        edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    key = torch.unique(edge_index[1] * num_nodes + edge_index[0])   # sorted by target, then source
    return torch.stack([key % num_nodes, key // num_nodes])


# -- Planetoid --------------------------------------------------------------------------------


class _NumpyScipyUnpickler(pickle.Unpickler):
    """Unpickles exactly what Planetoid files hold: numpy arrays, scipy CSR matrices and the
    graph's ``defaultdict(list)``. Nothing else can be named, so a crafted file cannot reach a
    function that runs code (``numpy.testing``'s helpers, ``os.system``, ...)."""

    # (module, name) as the files name them, written by Python 2 and old numpy/scipy, and as
    # newer writers would; the old private scipy paths are looked up in scipy.sparse.
    _ALLOWED = {
        ("collections", "defaultdict"), ("__builtin__", "list"), ("builtins", "list"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix"), ("scipy.sparse", "csr_matrix"),
        ("_codecs", "encode"),  # how Python 3's protocol 2 writes bytes (an array's buffer)
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: Planetoid files hold only "
                                         "numpy arrays, scipy CSR matrices and lists")
        if module.startswith("scipy.sparse"):
            module = "scipy.sparse"  # the old private module paths are deprecated aliases
        elif module.startswith("numpy") and module.endswith("multiarray"):
            import numpy

            module = "numpy._core.multiarray" if hasattr(numpy, "_core") else "numpy.core.multiarray"
        return super().find_class(module, name)


def _read_pickle(path: Path):
    """One Planetoid file; a crafted or damaged one is a one-line error naming it."""
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return _NumpyScipyUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        if str(err).startswith("refusing"):
            raise ZooError(f"{path}: {err}") from None
        raise _damaged(path, err) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, ImportError) as err:
        raise _damaged(path, err) from None


def _damaged(path: Path, err: Exception) -> ZooError:
    """A Planetoid file that does not unpickle, with the way to get it again: these files have no
    published checksum, so a download cut short without a Content-Length is only seen here."""
    name = path.name.split(".")[1] if path.name.count(".") >= 2 else "NAME"
    return ZooError(f"{path} is damaged or not a Planetoid file ({type(err).__name__}: {str(err)[:150]}); "
                    f"replace it, or if `zoo data fetch` put it there: `zoo data rm {name}`, then "
                    f"`zoo data fetch {name}`")


PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


def planetoid_files(name: str) -> list[str]:
    """The eight files of Planetoid set ``name``, as paths under a data root."""
    return [f"planetoid/ind.{name}.{part}" for part in PLANETOID_PARTS]


class PlanetoidOptions(SamplingOptions):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, pattern=r"^(cora|citeseer|pubmed)$",
                             description="Planetoid set: cora, citeseer or pubmed (default: the dataset chosen).")
    data_dir: str | None = Field(None, description="A data root holding planetoid/ind.NAME.* (overrides data.data_dir).")


def load_planetoid(options: PlanetoidOptions | None, data_dir: str | None, dataset: str = "cora") -> Dataset:
    """Planetoid split (Yang et al. 2016): 20 labelled nodes per class for training, 500 for
    validation, 1000 for test; features as given (binary bag of words for Cora and CiteSeer,
    TF-IDF for PubMed).

    CiteSeer has 15 isolated papers that are in the graph but in no split, so ``tx``/``ty`` skip
    them: as in Kipf's and PyG's loaders, they get zero features and labels (class 0, never scored)
    at their place in the test id range. Sizes: Cora 2,708 nodes / 10,556 directed edges, CiteSeer
    3,327 / 9,104, PubMed 19,717 / 88,648 (PyG's counts).
    """
    name = (options.name if options and options.name else None) or dataset
    root = locate(name, planetoid_files(name), (options.data_dir if options else None) or data_dir)
    folder = root / "planetoid"
    x, y, tx, ty, allx, ally, graph = (_read_pickle(folder / f"ind.{name}.{p}") for p in PLANETOID_PARTS[:-1])
    test_index = _read_test_index(folder / f"ind.{name}.test.index")
    test_sorted = np.sort(test_index)
    dense = lambda m: m.toarray() if hasattr(m, "toarray") else np.asarray(m)  # noqa: E731
    tx, ty = dense(tx), np.asarray(ty)
    span = int(test_sorted.max() - test_sorted.min()) + 1
    if span > len(test_sorted):  # isolated test-range nodes missing from tx/ty (CiteSeer): pad with zeros
        tx_full = np.zeros((span, tx.shape[1]), dtype=np.float32)
        ty_full = np.zeros((span, ty.shape[1]), dtype=ty.dtype)
        tx_full[test_sorted - test_sorted.min()], ty_full[test_sorted - test_sorted.min()] = tx, ty
        tx, ty = tx_full, ty_full
    features = np.vstack([dense(allx), tx]).astype(np.float32)
    labels = np.vstack([np.asarray(ally), ty])
    # tx row k sits at row test_sorted[k]; it belongs to node test_index[k] (the file's order)
    features[test_index] = features[test_sorted]
    labels[test_index] = labels[test_sorted]
    n = features.shape[0]
    pairs = [(src, dst) for src, nbrs in graph.items() for dst in nbrs if dst < n and src < n]
    edge_index = coalesce(torch.tensor(pairs, dtype=torch.long).t(), n)
    masks = {}
    val = np.arange(len(y), min(len(y) + 500, len(ally)))  # the 500 nodes after the training ones
    for split, nodes in (("train", np.arange(len(y))), ("val", val),
                         ("test", test_index)):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.from_numpy(nodes.astype(np.int64))] = True
        masks[split] = mask
    x_t = torch.from_numpy(features)
    y_t = torch.from_numpy(labels.argmax(1).astype(np.int64))
    base = NodeSplit(x_t, edge_index, y_t, masks["train"])
    info = DataInfo(input_shape=(x_t.shape[1],), num_classes=labels.shape[1],
                    extra={"level": "node", "num_nodes": n, "num_edges": int(edge_index.shape[1])})
    return sampled(Dataset(train=base, val=base.with_mask(masks["val"]), test=base.with_mask(masks["test"]),
                           info=info), options)


def _read_test_index(path: Path) -> np.ndarray:
    """``ind.NAME.test.index``: one node id per line."""
    from zoo.plugins.gnn.files import numeric_table

    return numeric_table(path, columns=1)[:, 0]


# -- TU graph kernel benchmarks ---------------------------------------------------------------

#: Catalogue name → (TU name, the optional tables it publishes). The loader asks `locate` for these
#: files, so a partial copy is passed over rather than read with different features.
TU_DATASETS = {
    "mutag": ("MUTAG", ("node_labels",)),
    "enzymes": ("ENZYMES", ("node_labels", "node_attributes")),
    "proteins": ("PROTEINS", ("node_labels", "node_attributes")),
    "nci1": ("NCI1", ("node_labels",)),
    "imdb-binary": ("IMDB-BINARY", ()),
}


def tu_files(name: str, optional: tuple[str, ...] = ()) -> list[str]:
    """The tables TU set ``name`` needs, as paths under a data root (``tu/NAME/NAME_A.txt``, ...)."""
    return [f"tu/{name}/{name}_{table}.txt" for table in ("A", "graph_indicator", "graph_labels", *optional)]


class FoldOptions(BaseModel):
    """Stratified k-fold cross-validation of a graph classification set (TU sets, ``graphs``)."""

    model_config = ConfigDict(extra="forbid")
    folds: int = Field(10, ge=2, le=100, description="k of the stratified k-fold cross-validation.")
    fold: int = Field(0, ge=0, description="Which fold is the test split (0 .. folds-1).")
    fold_seed: int = Field(0, ge=0, description="Seed of the fold assignment (independent of train.seed).")
    test_as_val: bool = Field(
        False, description="Xu et al. 2019 protocol: the test fold is also the validation split, so "
        "metrics.jsonl holds the per-epoch test-fold accuracy (select one epoch on the mean over folds; "
        "optimistic, for comparison with the paper only).")

    @model_validator(mode="after")
    def _fold_in_range(self):
        if self.fold >= self.folds:
            raise ValueError(f"fold must be < folds ({self.folds}), got {self.fold}")
        return self


class TUOptions(FoldOptions):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$",
                             description="TU dataset name as published (MUTAG, DD, COLLAB, ...; default: the "
                             "dataset chosen). Its files are looked for in tu/NAME/ under the data roots.")
    node_attributes: bool = Field(True, description="Append the published node attributes (NAME_node_attributes.txt) "
                                  "to the one-hot node labels.")
    data_dir: str | None = Field(None, description="A data root holding tu/NAME/NAME_A.txt ... (overrides data.data_dir).")


def stratified_folds(y: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """Fold id per sample: each class shuffled (seeded) and dealt round-robin over the folds."""
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty_like(y)
    position = 0
    for c in torch.unique(y).tolist():
        members = (y == c).nonzero().view(-1)
        members = members[torch.randperm(len(members), generator=generator)]
        fold[members] = (torch.arange(len(members)) + position) % folds
        position += len(members)
    return fold


def _find_tu(o: TUOptions, data_dir: str | None, dataset: str) -> tuple[Path, str]:
    """``(folder holding NAME_A.txt ..., NAME)`` for a declared TU set or any TU name."""
    declared = {tu.upper(): key for key, (tu, _) in TU_DATASETS.items()}
    name = o.name or TU_DATASETS[dataset][0]
    key = declared.get(name.upper())
    name = TU_DATASETS[key][0] if key else name
    optional = TU_DATASETS[key][1] if key else ()
    try:
        root = locate(key or name.lower(), tu_files(name, optional), o.data_dir or data_dir)
    except DataNotFound as err:
        if key is not None:
            raise
        # Not declared in the catalogue, so `zoo data fetch` cannot get it: say where it comes from.
        raise DataUnavailable(f"TU dataset {name!r}: tu/{name}/{name}_A.txt not found (looked in "
                              f"{', '.join(err.looked)}); download {TU_URL}/{name}.zip and unzip it "
                              f"into DIR/tu/, then pass --data-dir DIR or set ZOO_DATA_DIR=DIR") from None
    return root / "tu" / name, name


def load_tu(options: TUOptions | None, data_dir: str | None, dataset: str = "mutag") -> Dataset:
    """A TU dataset as k folds: fold ``options.fold`` is the test split, the rest is training
    (``data.val_fraction`` of it held out for validation)."""
    o = options or TUOptions()
    folder, name = _find_tu(o, data_dir, dataset)
    graphs, y, class_names, made_of = read_tu(folder, name, node_attributes=o.node_attributes)
    return folded(graphs, y, class_names, o, {"tu_name": name, "features": made_of},
                  where=f"{folder / (name + '_graph_labels.txt')}")


def folded(graphs: list[tuple[torch.Tensor, torch.Tensor]], y: torch.Tensor, class_names: list[str],
           o, extra: dict, where: str, lines: list[int] | None = None, column: str | int = 1) -> Dataset:
    """Graphs split into ``o.folds`` stratified folds, fold ``o.fold`` the test split. Every class
    needs a training graph: the error names the labels' file ``where``, the ``lines[g]`` of the
    class's first graph (default: line g + 1) and ``column``."""
    if len(class_names) < 2:
        raise GraphFileError(f"{at(where, None, column)}: {len(class_names)} class(es) "
                             f"({', '.join(class_names)}): classification needs at least two")
    fold = stratified_folds(y, o.folds, o.fold_seed)
    test_ids = (fold == o.fold).nonzero().view(-1)
    train_ids = (fold != o.fold).nonzero().view(-1)
    lacking = sorted(set(range(len(class_names))) - set(y[train_ids].tolist()))
    if lacking:
        first = int((y == lacking[0]).nonzero()[0])
        raise GraphFileError(f"{at(where, lines[first] if lines else first + 1, column)}: class "
                             f"{class_names[lacking[0]]!r} has no training graph with folds={o.folds}, fold={o.fold} "
                             f"(it has {int((y == lacking[0]).sum())} graph(s)); add graphs of that class or "
                             "choose another fold")
    pick = lambda ids: GraphListSplit.from_graphs([graphs[i] for i in ids.tolist()], y[ids])  # noqa: E731
    info = DataInfo(input_shape=(graphs[0][0].shape[1],), num_classes=len(class_names), class_names=class_names,
                    extra={"level": "graph", "num_graphs": len(graphs), "fold": o.fold, "folds": o.folds, **extra})
    test = pick(test_ids)
    return Dataset(train=pick(train_ids), test=test, info=info, val=test if o.test_as_val else None)


# -- karate club ------------------------------------------------------------------------------


class KarateOptions(SamplingOptions):
    """Options of ``karate``: only neighbour sampling."""


def load_karate(options: KarateOptions | None, data_dir: str | None) -> Dataset:
    """Zachary's karate club (networkx): 34 members, 78 friendships, 2 clubs after the split.
    Features are one-hot node ids; 4 labelled members per club train, 6 validate, the rest test."""
    try:
        import networkx as nx
    except ImportError:
        raise DataUnavailable("karate needs networkx: pip install networkx") from None
    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    edge_index = coalesce(torch.tensor(list(g.edges()), dtype=torch.long).t(), n)
    y = torch.tensor([0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(n)])
    generator = torch.Generator().manual_seed(0)
    masks = {k: torch.zeros(n, dtype=torch.bool) for k in ("train", "val", "test")}
    for c in (0, 1):
        members = (y == c).nonzero().view(-1)
        members = members[torch.randperm(len(members), generator=generator)]
        masks["train"][members[:4]] = True
        masks["val"][members[4:7]] = True
        masks["test"][members[7:]] = True
    base = NodeSplit(torch.eye(n), edge_index, y, masks["train"])
    info = DataInfo(input_shape=(n,), num_classes=2, class_names=["Mr. Hi", "Officer"],
                    extra={"level": "node", "num_nodes": n})
    return sampled(Dataset(train=base, val=base.with_mask(masks["val"]), test=base.with_mask(masks["test"]),
                           info=info), options)


__all__ = ["GraphListSplit", "KarateOptions", "NodeSplit", "PlanetoidOptions", "TU_DATASETS", "TUOptions", "coalesce", "folded",
           "load_karate", "load_planetoid", "load_tu", "planetoid_files", "read_tu", "stratified_folds", "tu_files",
           "FoldOptions", "ZooError"]
