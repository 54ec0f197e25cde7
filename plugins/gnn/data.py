"""Graph datasets: splits that hold graphs, and loaders for Planetoid, TU and karate club.

Two kinds of split:

- :class:`NodeSplit` — one graph, node classification: ``len() == 1``; its only batch is the whole
  graph (``x``, ``edge_index``, ``y``) plus a boolean ``mask`` of the nodes this split scores.
  Train, validation and test share the graph and differ in their masks (transductive setting).
- :class:`GraphListSplit` — many small graphs, graph classification: ``batch(index)`` concatenates
  the chosen graphs into one disconnected graph (node indices offset) with a ``batch`` vector.

Loaders read local copies (``--data-dir`` / ``$ZOO_DATA_DIR`` / ``../shared/data``); the canonical
download addresses are kept here (``PLANETOID_URL``, ``TU_URL``) with :func:`download` for
machines that can reach them.
"""

from __future__ import annotations

import pickle
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoo.core.data import DataInfo, Dataset, Split, to_device
from zoo.core.data import data_dir as resolve_data_dir
from zoo.core.errors import DataUnavailable, ZooError

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"   # ind.{name}.{x,y,...}
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"                     # {NAME}.zip


# -- splits ---------------------------------------------------------------------------------


class NodeSplit(Split):
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

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

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


def _where(options_dir: str | None, configured: str | None, sub: str) -> Path | None:
    """``data.options.data_dir`` or ``data.data_dir``, ``$ZOO_DATA_DIR``, then ``../shared/data/SUB``
    relative to the current directory and to the project checkout."""
    found = resolve_data_dir(options_dir or configured, sub, Path("..") / "shared" / "data" / sub)
    if found is None and not (options_dir or configured):
        beside_checkout = Path(__file__).resolve().parents[3] / "shared" / "data" / sub
        found = beside_checkout if beside_checkout.is_dir() else None
    return found


def download(url: str, target: Path) -> Path:
    """Fetch ``url`` to ``target`` (machines with internet only; loaders never call it implicitly)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    urllib.request.urlretrieve(url, target)  # noqa: S310 - fixed https addresses above
    return target


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
        raise ZooError(f"{path}: {err}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, ImportError) as err:
        raise ZooError(f"{path} is damaged or not a Planetoid file ({type(err).__name__}: "
                       f"{str(err)[:150]})") from None


class PlanetoidOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("cora", pattern=r"^[a-z]+$", description="Planetoid dataset: cora, citeseer, pubmed.")
    data_dir: str | None = Field(None, description="Folder with ind.NAME.* (overrides data.data_dir).")


def load_planetoid(options: PlanetoidOptions | None, data_dir: str | None) -> Dataset:
    """Planetoid split (Yang et al. 2016): 20 labelled nodes per class for training, 500 for
    validation, 1000 for test; features as given (binary bag of words for Cora)."""
    o = options or PlanetoidOptions()
    folder = _where(o.data_dir, data_dir, "planetoid")
    parts = ["x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"]
    if folder is None or not all((folder / f"ind.{o.name}.{p}").is_file() for p in parts):
        raise DataUnavailable(
            f"Planetoid files ind.{o.name}.{{{','.join(parts)}}} not found (looked in --data-dir, "
            f"$ZOO_DATA_DIR/planetoid, ../shared/data/planetoid); get them from {PLANETOID_URL}")
    x, y, tx, ty, allx, ally, graph = (_read_pickle(folder / f"ind.{o.name}.{p}") for p in parts[:-1])
    test_index = np.loadtxt(folder / f"ind.{o.name}.test.index", dtype=np.int64).reshape(-1)
    test_sorted = np.sort(test_index)
    if o.name == "citeseer":  # isolated test nodes missing from tx/ty: pad with zeros
        full = np.arange(test_sorted.min(), test_sorted.max() + 1)
        tx_ext = np.zeros((len(full), tx.shape[1]), dtype=np.float32)
        tx_ext[test_sorted - test_sorted.min()] = tx.toarray()
        ty_ext = np.zeros((len(full), ty.shape[1]), dtype=ty.dtype)
        ty_ext[test_sorted - test_sorted.min()] = ty
        tx, ty = tx_ext, ty_ext
    dense = lambda m: m.toarray() if hasattr(m, "toarray") else np.asarray(m)  # noqa: E731
    features = np.vstack([dense(allx), dense(tx)]).astype(np.float32)
    labels = np.vstack([ally, ty])
    features[test_index] = features[test_sorted]      # tx rows are in sorted order: restore ids
    labels[test_index] = labels[test_sorted]
    n = features.shape[0]
    pairs = [(src, dst) for src, nbrs in graph.items() for dst in nbrs if dst < n and src < n]
    edge_index = coalesce(torch.tensor(pairs, dtype=torch.long).t(), n)
    masks = {}
    for name, nodes in (("train", range(len(y))), ("val", range(len(y), len(y) + 500)),
                        ("test", test_index)):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.as_tensor(np.asarray(list(nodes)), dtype=torch.long)] = True
        masks[name] = mask
    x_t = torch.from_numpy(features)
    y_t = torch.from_numpy(labels.argmax(1).astype(np.int64))
    base = NodeSplit(x_t, edge_index, y_t, masks["train"])
    info = DataInfo(input_shape=(x_t.shape[1],), num_classes=labels.shape[1],
                    extra={"level": "node", "num_nodes": n, "num_edges": int(edge_index.shape[1])})
    return Dataset(train=base, val=base.with_mask(masks["val"]), test=base.with_mask(masks["test"]), info=info)


# -- TU graph kernel benchmarks ---------------------------------------------------------------


class TUOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("MUTAG", pattern=r"^[A-Za-z0-9_-]+$", description="TU dataset name (folder and file prefix).")
    folds: int = Field(10, ge=2, le=100, description="k of the stratified k-fold cross-validation.")
    fold: int = Field(0, ge=0, description="Which fold is the test split (0 .. folds-1).")
    fold_seed: int = Field(0, ge=0, description="Seed of the fold assignment (independent of train.seed).")
    data_dir: str | None = Field(None, description="Folder holding NAME/NAME_A.txt ... (overrides data.data_dir).")
    test_as_val: bool = Field(
        False, description="Xu et al. 2019 protocol: the test fold is also the validation split, so "
        "metrics.jsonl holds the per-epoch test-fold accuracy (select one epoch on the mean over folds; "
        "optimistic, for comparison with the paper only).")

    @model_validator(mode="after")
    def _fold_in_range(self):
        if self.fold >= self.folds:
            raise ValueError(f"fold must be < folds ({self.folds}), got {self.fold}")
        return self


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


def read_tu(folder: Path, name: str) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, int]:
    """Graphs ``[(x, edge_index)]`` (local indices), labels ``[G]`` and the number of classes.

    Node features: one-hot node labels, plus ``_node_attributes`` when present; a dataset with
    neither gets a constant feature.
    """
    def table(suffix: str, dtype=np.int64, required: bool = True) -> np.ndarray | None:
        path = folder / f"{name}_{suffix}.txt"
        if not path.is_file():
            if required:
                raise DataUnavailable(f"{path} not found; TU datasets are at {TU_URL}/{name}.zip")
            return None
        return np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)

    edges = table("A") - 1                                     # 1-based global node ids
    graph_of = table("graph_indicator").reshape(-1) - 1
    graph_labels = table("graph_labels").reshape(-1)
    node_labels = table("node_labels", required=False)
    attributes = table("node_attributes", np.float32, required=False)
    n = graph_of.shape[0]
    features = []
    if node_labels is not None:
        labels = node_labels[:, 0]
        labels = labels - labels.min()
        features.append(np.eye(int(labels.max()) + 1, dtype=np.float32)[labels])
    if attributes is not None:
        features.append(attributes)
    x_all = torch.from_numpy(np.hstack(features)) if features else torch.ones(n, 1)
    classes, y = np.unique(graph_labels, return_inverse=True)
    num_graphs = len(graph_labels)
    starts = np.searchsorted(graph_of, np.arange(num_graphs + 1))       # nodes are grouped by graph
    edge_graph = graph_of[edges[:, 0]]
    graphs = []
    for g in range(num_graphs):
        lo, hi = int(starts[g]), int(starts[g + 1])
        local = torch.from_numpy(edges[edge_graph == g] - lo).t().contiguous()
        graphs.append((x_all[lo:hi], coalesce(local, hi - lo, undirected=True)))
    return graphs, torch.from_numpy(y.astype(np.int64)), len(classes)


def load_tu(options: TUOptions | None, data_dir: str | None) -> Dataset:
    """A TU dataset as k folds: fold ``options.fold`` is the test split, the rest is training
    (``data.val_fraction`` of it held out for validation)."""
    o = options or TUOptions()
    base = _where(o.data_dir, data_dir, "tu")
    folder = None
    for candidate in ([base / o.name, base] if base is not None else []):
        if (candidate / f"{o.name}_A.txt").is_file():
            folder = candidate
    if folder is None:
        raise DataUnavailable(f"TU dataset {o.name} not found (looked for {o.name}/{o.name}_A.txt under "
                              f"--data-dir, $ZOO_DATA_DIR/tu, ../shared/data/tu); download "
                              f"{TU_URL}/{o.name}.zip and unzip it there")
    graphs, y, num_classes = read_tu(folder, o.name)
    fold = stratified_folds(y, o.folds, o.fold_seed)
    test_ids = (fold == o.fold).nonzero().view(-1)
    train_ids = (fold != o.fold).nonzero().view(-1)
    pick = lambda ids: GraphListSplit.from_graphs([graphs[i] for i in ids.tolist()], y[ids])  # noqa: E731
    info = DataInfo(input_shape=(graphs[0][0].shape[1],), num_classes=num_classes,
                    class_names=None, extra={"level": "graph", "num_graphs": len(graphs), "fold": o.fold,
                                             "folds": o.folds})
    test = pick(test_ids)
    return Dataset(train=pick(train_ids), test=test, info=info, val=test if o.test_as_val else None)


def extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        z.extractall(target)


# -- karate club ------------------------------------------------------------------------------


def load_karate(options: None, data_dir: str | None) -> Dataset:
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
    return Dataset(train=base, val=base.with_mask(masks["val"]), test=base.with_mask(masks["test"]), info=info)


__all__ = ["GraphListSplit", "NodeSplit", "PlanetoidOptions", "TUOptions", "coalesce", "download",
           "extract_zip", "load_karate", "load_planetoid", "load_tu", "read_tu", "stratified_folds",
           "ZooError"]
