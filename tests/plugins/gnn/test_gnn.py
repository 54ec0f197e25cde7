"""GNN family: message passing, spectral maths, layers, bad inputs, loaders, ONNX graph inputs.

Graphs are built by hand (a few nodes); the loaders read the tiny Cora and MUTAG stand-ins in
tests/fixtures/data (``$ZOO_DATA_DIR`` in the tests).
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from zoo.core.train.data import DataInfo
from zoo.plugins.gnn.data import (
    GraphListSplit,
    _NumpyScipyUnpickler,
    coalesce,
    load_karate,
    load_planetoid,
    load_tu,
    stratified_folds,
)
from zoo.plugins.gnn.graph import (
    GraphInputError,
    SameInputs,
    check_graph,
    fourier_basis,
    gcn_norm,
    graph_fourier,
    laplacian,
    sparse_dropout,
    sparse_features,
    spectral_filter,
)
from zoo.plugins.gnn.layers import ChebConv, GATConv, GCNConv, GINConv, GMMConv, SAGEConv, readout
from zoo.plugins.gnn.message_passing import scatter_max, scatter_mean, scatter_softmax, scatter_sum
from zoo.plugins.gnn.models import MODELS
from zoo.plugins.gnn.tasks import NodeClassification

# A 5-node graph: a triangle 0-1-2 with a tail 2-3, and node 4 isolated (both directions stored).
EDGES = torch.tensor([[0, 1, 0, 2, 1, 2, 2, 3],
                      [1, 0, 2, 0, 2, 1, 3, 2]])


def undirected(pairs, n):
    return coalesce(torch.tensor(pairs, dtype=torch.long).t(), n)


def random_graph(n: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    upper = torch.triu(torch.rand(n, n, generator=g) < p, diagonal=1)
    return coalesce(upper.nonzero().t(), n)


def build(name: str, level: str = "node", features: int = 6, classes: int = 3, **overrides):
    cls, config_class = MODELS[name]
    config = config_class(name=name, **overrides)
    info = DataInfo(input_shape=(features,), num_classes=classes, extra={"level": level})
    return cls(config, info).eval()


# -- message passing ----------------------------------------------------------------------------


def test_scatter_reductions_by_hand():
    src = torch.tensor([[1.0], [2.0], [4.0], [-3.0]])
    index = torch.tensor([0, 0, 2, 2])
    assert scatter_sum(src, index, 4).view(-1).tolist() == [3.0, 0.0, 1.0, 0.0]
    assert scatter_mean(src, index, 4).view(-1).tolist() == [1.5, 0.0, 0.5, 0.0]
    assert scatter_max(src, index, 4).view(-1).tolist() == [2.0, 0.0, 4.0, 0.0]   # empty → 0
    alpha = scatter_softmax(torch.tensor([[0.0], [0.0], [1.0], [1.0]]), index, 4)
    assert torch.allclose(alpha.view(-1), torch.tensor([0.5, 0.5, 0.5, 0.5]))


def test_duplicate_edges_are_a_multigraph_for_sum_not_for_max():
    x = torch.tensor([[1.0], [5.0]])
    once, twice = torch.tensor([[1], [0]]), torch.tensor([[1, 1], [0, 0]])
    msg = lambda e: x.index_select(0, e[0])  # noqa: E731
    assert scatter_sum(msg(twice), twice[1], 2)[0].item() == 2 * scatter_sum(msg(once), once[1], 2)[0].item()
    assert scatter_max(msg(twice), twice[1], 2)[0].item() == scatter_max(msg(once), once[1], 2)[0].item()
    assert scatter_mean(msg(twice), twice[1], 2)[0].item() == scatter_mean(msg(once), once[1], 2)[0].item()


def test_gcn_norm_matches_dense_renormalised_adjacency():
    n = 5
    a = torch.zeros(n, n)
    a[EDGES[1], EDGES[0]] = 1.0
    a_tilde = a + torch.eye(n)
    d = a_tilde.sum(1).rsqrt()
    dense = d[:, None] * a_tilde * d[None, :]
    edge_index, w = gcn_norm(EDGES, n)
    sparse = torch.zeros(n, n).index_put_((edge_index[1], edge_index[0]), w, accumulate=True)
    assert torch.allclose(sparse, dense, atol=1e-6)


def test_existing_self_loops_are_not_counted_twice():
    torch.manual_seed(0)
    x = torch.randn(5, 4)
    loops = torch.cat([EDGES, torch.tensor([[0, 3], [0, 3]])], dim=1)
    for conv in (GCNConv(4, 3), GATConv(4, 3, heads=2)):
        conv.eval()
        assert torch.allclose(conv(x, EDGES), conv(x, loops), atol=1e-6), type(conv).__name__


# -- spectral ------------------------------------------------------------------------------------


def test_laplacians():
    lap = laplacian(EDGES, 5)
    assert torch.allclose(lap.sum(1), torch.zeros(5))                     # L = D − A: rows sum to 0
    lam, _ = fourier_basis(laplacian(EDGES, 5, "normalized"))
    assert lam.min() > -1e-5 and lam.max() < 2 + 1e-5                    # spectrum in [0, 2]
    # components = multiplicity of eigenvalue 0: {0,1,2,3} and {4}
    assert int((fourier_basis(lap)[0].abs() < 1e-5).sum()) == 2
    scaled = laplacian(EDGES, 5, "scaled")
    lam = torch.linalg.eigvalsh(scaled)
    assert lam.min() >= -1 - 1e-5 and lam.max() <= 1 + 1e-5


def test_graph_fourier_transform_and_spectral_filter():
    torch.manual_seed(0)
    lap = laplacian(EDGES, 5)
    lam, u = fourier_basis(lap)
    x = torch.randn(5, 2)
    assert torch.allclose(u @ graph_fourier(x, u), x, atol=1e-5)                 # x = U Uᵀ x
    assert torch.allclose(spectral_filter(x, lap, lambda l: torch.ones_like(l)), x, atol=1e-5)
    assert torch.allclose(spectral_filter(x, lap, lambda l: l), lap @ x, atol=1e-4)  # g(λ) = λ is L
    # the constant signal on a connected component has frequency 0: L 1 = 0
    assert torch.allclose(lap @ torch.ones(5), torch.zeros(5))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("widths", [(3, 2), (2, 4)])   # Clenshaw (narrowing) and forward recursion
def test_chebyshev_filter_equals_the_same_polynomial_through_the_eigendecomposition(k, widths):
    torch.manual_seed(k)
    n = 9
    edge_index = random_graph(n, 0.4, seed=k)
    lam_max = float(torch.linalg.eigvalsh(laplacian(edge_index, n, "normalized")).max())
    conv = ChebConv(*widths, k, lambda_max=lam_max).eval()
    x = torch.randn(n, widths[0])
    # spectral side: y = Σ_k U T_k(λ̃) Uᵀ x Θ_k with λ̃ = 2λ/λ_max − 1
    lam, u = fourier_basis(laplacian(edge_index, n, "normalized"))
    lam_s = 2 * lam / lam_max - 1
    t = [torch.ones_like(lam_s), lam_s]
    while len(t) < k:
        t.append(2 * lam_s * t[-1] - t[-2])
    x_hat = u.T @ x
    expected = sum(u @ (t[j][:, None] * x_hat) @ conv.lins[j].weight.T for j in range(k)) + conv.bias
    assert torch.allclose(conv(x, edge_index), expected, atol=1e-5)


def test_gin_sum_separates_graphs_that_mean_and_max_cannot():
    # Star centres with 2 and 3 leaves, identical features: mean/max see {1, 1} and {1, 1, 1} alike.
    x = torch.ones(4, 1)
    star2 = torch.tensor([[1, 2], [0, 0]])
    star3 = torch.tensor([[1, 2, 3], [0, 0, 0]])
    centre = {}
    for aggr in ("sum", "mean", "max"):
        conv = GINConv(torch.nn.Identity(), learn_eps=False, aggr=aggr)
        centre[aggr] = (conv(x[:3], star2)[0].item(), conv(x, star3)[0].item())
    assert centre["sum"][0] != centre["sum"][1]
    assert centre["mean"][0] == centre["mean"][1]
    assert centre["max"][0] == centre["max"][1]
    # and the sum readout separates the graphs themselves where the mean readout does not
    h2, h3 = torch.ones(3, 1), torch.ones(4, 1)
    assert readout(h2, torch.zeros(3, dtype=torch.long), "sum", 1) != readout(h3, torch.zeros(4, dtype=torch.long), "sum", 1)
    assert readout(h2, torch.zeros(3, dtype=torch.long), "mean", 1) == readout(h3, torch.zeros(4, dtype=torch.long), "mean", 1)


def test_graphsage_max_is_a_max_over_neighbours():
    torch.manual_seed(0)
    conv = SAGEConv(2, 3, aggr="max").eval()
    x = torch.randn(5, 2)
    pooled = torch.relu(conv.pool(x))
    expected0 = torch.maximum(pooled[1], pooled[2])                      # node 0 hears 1 and 2
    out = conv(x, EDGES)
    assert torch.allclose(out[0], conv.lin_self(x[0]) + conv.lin_neigh(expected0), atol=1e-6)


def _monet_conv(seed: int, features: int = 6, out: int = 4) -> GMMConv:
    """A GMMConv with kernels spread as training leaves them (narrow and wide σ, μ in [-1, 1])."""
    torch.manual_seed(seed)
    conv = GMMConv(features, out, kernels=3).eval()
    with torch.no_grad():
        conv.mu.uniform_(-1.0, 1.0)
        conv.log_sigma.uniform_(-2.0, 0.5)
    return conv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monet_onnx_form_computes_the_eager_maths(seed):
    """GMMConv's export-only layout (Gaussians over [D, K, E], 0/1 products, one projection of
    x) gives the eager layer's numbers, on graphs with isolated nodes, loops, duplicate edges
    and no edges at all."""
    conv = _monet_conv(seed)
    x = torch.rand(5, 6)
    looped = torch.cat([EDGES, torch.tensor([[4, 0, 0], [4, 1, 1]])], dim=1)
    for edges in (EDGES, looped, torch.zeros(2, 0, dtype=torch.long), random_graph(40, 0.2, seed)):
        xs = x if edges.numel() == 0 or int(edges.max()) < 5 else torch.rand(40, 6)
        with torch.no_grad():
            torch.testing.assert_close(conv._forward_onnx(xs, edges), conv(xs, edges), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_monet_export_has_edges_on_the_last_axis_and_parity(tmp_path):
    """The exported MoNet has no ``[E, K, D]`` tensor (onnxruntime broadcasts it D = 2 floats at
    a time) and answers as torch on graphs of other sizes than the traced one."""
    import onnx

    from zoo.core.deploy.export import export_module
    from zoo.core.deploy.runtime import make_session

    model = build("monet")
    torch.manual_seed(0)
    for conv in model.convs:
        with torch.no_grad():
            conv.mu.uniform_(-1.0, 1.0)
            conv.log_sigma.uniform_(-2.0, 0.5)
    path = tmp_path / "monet.onnx"
    export_module(model, (torch.rand(30, 6), random_graph(30, 0.2, 0)), path, ("x", "edge_index"), ("logits",),
                  {"x": {0: "nodes"}, "edge_index": {1: "edges"}}, 18)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = [[d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in graph.value_info]
    assert not [s for s in shapes if len(s) == 3 and s[1:] in ([3, 2], [1, 2])], shapes
    session = make_session(path)
    for n, p, seed in ((12, 0.3, 1), (80, 0.05, 2), (5, 0.0, 3)):
        x, edges = torch.rand(n, 6), random_graph(n, p, seed)
        got = session.run(None, {"x": x.numpy(), "edge_index": edges.numpy()})[0]
        with torch.no_grad():
            expected = model(x, edges).numpy()
        assert abs(got - expected).max() < 1e-4, n


# -- every model, both levels, and bad inputs ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_node_and_graph_level_shapes_and_edge_cases(name):
    torch.manual_seed(0)
    x = torch.rand(5, 6)
    node = build(name, "node")
    assert node(x, EDGES).shape == (5, 3)
    assert torch.isfinite(node(x, EDGES)).all()
    # isolated nodes only (no edges), and the empty graph
    assert torch.isfinite(node(x, torch.zeros(2, 0, dtype=torch.long))).all()
    assert node(torch.zeros(0, 6), torch.zeros(2, 0, dtype=torch.long)).shape == (0, 3)
    # self-loops and duplicate edges are accepted
    extra = torch.cat([EDGES, torch.tensor([[4, 0], [4, 1]])], dim=1)
    assert torch.isfinite(node(x, extra)).all()
    graph = build(name, "graph")
    batch = torch.tensor([0, 0, 0, 2, 2])                               # graph 1 is empty
    out = graph(x, EDGES.clamp(max=2), batch)
    assert out.shape == (3, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("bad, message", [
    (lambda x, e: (x, torch.tensor([[0, 5], [1, 0]])), "refers to node 5"),
    (lambda x, e: (x, torch.tensor([[0, -1], [1, 0]])), "refers to node -1"),
    (lambda x, e: (x, e.float()), "must be int64"),
    (lambda x, e: (x, e.int()), "must be int64"),
    (lambda x, e: (x, e.t()), "shape [2, num_edges]"),
    (lambda x, e: (x.long(), e), "floating point"),
    (lambda x, e: (x[0], e), "[num_nodes, num_features]"),
])
def test_bad_inputs_raise_clear_errors(bad, message):
    model = build("gcn")
    x, e = bad(torch.rand(5, 6), EDGES)
    with pytest.raises(GraphInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        model(x, e)


def test_bad_batch_vector():
    with pytest.raises(GraphInputError, match="batch"):
        check_graph(torch.rand(3, 2), torch.zeros(2, 0, dtype=torch.long), torch.tensor([0, 1]))
    with pytest.raises(Exception, match="batch vector"):
        build("gin", "graph")(torch.rand(3, 6), torch.zeros(2, 0, dtype=torch.long))


# -- data -----------------------------------------------------------------------------------------


def test_graph_list_split_offsets_indices():
    graphs = [(torch.ones(2, 1), torch.tensor([[0], [1]])), (torch.ones(3, 1), torch.tensor([[2, 0], [1, 1]]))]
    split = GraphListSplit.from_graphs(graphs, torch.tensor([0, 1]))
    batch = split.batch(torch.tensor([1, 0]))
    assert batch["edge_index"].tolist() == [[2, 0, 3], [1, 1, 4]]
    assert batch["batch"].tolist() == [0, 0, 0, 1, 1]
    assert batch["y"].tolist() == [1, 0]
    assert len(split.subset(torch.tensor([1]))) == 1


def test_stratified_folds_partition_and_balance():
    y = torch.tensor([0] * 30 + [1] * 10)
    fold = stratified_folds(y, 5, seed=0)
    for f in range(5):
        members = y[fold == f]
        assert len(members) == 8 and int((members == 1).sum()) == 2


def test_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    import io
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyScipyUnpickler(io.BytesIO(pickle.dumps(Evil(), protocol=2)), encoding="latin1").load()
    array = _NumpyScipyUnpickler(io.BytesIO(pickle.dumps(np.arange(3), protocol=2)), encoding="latin1").load()
    assert array.tolist() == [0, 1, 2]


def test_cora_planetoid_split(data_root):
    # the fixture: 710 nodes, 70 words, 7 classes; 10 per class train, 500 val, 140 test
    data = load_planetoid(None, str(data_root))
    assert data.train.x.shape == (710, 70) and data.info.num_classes == 7
    assert data.train.edge_index.shape == (2, 2786)                      # no loops, no duplicates
    assert [int(s.mask.sum()) for s in (data.train, data.val, data.test)] == [70, 500, 140]
    assert not (data.train.mask & data.test.mask).any() and not (data.val.mask & data.test.mask).any()
    # tx/ty rows follow test.index (shuffled): restored, the test nodes keep their neighbours'
    # classes (the fixture's homophily, 0.86; rows left in file order give about 0.6)
    src, dst = data.train.edge_index
    assert (data.train.y[src] == data.train.y[dst]).float().mean() > 0.8
    assert data.train.y[data.test.mask].bincount().tolist() == [20] * 7


def test_mutag_folds(data_root):
    tests = [load_tu(load_tu.__globals__["TUOptions"](fold=f), str(data_root)) for f in (0, 9)]
    assert len(tests[0].train) + len(tests[0].test) == 40                # the fixture's 40 molecules
    assert tests[0].info.input_shape == (7,) and tests[0].info.num_classes == 2
    assert [len(t.test) for t in tests] == [4, 4]                        # stratified: 2 + 2 per fold
    assert not set(tests[0].test.y.tolist()) ^ {0, 1}
    with pytest.raises(Exception, match="fold must be"):
        load_tu.__globals__["TUOptions"](fold=10)


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    from zoo.core.contract.errors import DataUnavailable
    from zoo.plugins.gnn.data import PlanetoidOptions, TUOptions

    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataUnavailable, match="zoo data fetch cora"):
        load_planetoid(PlanetoidOptions(data_dir=str(tmp_path)), None)
    with pytest.raises(DataUnavailable, match="zoo data fetch mutag"):
        load_tu(TUOptions(data_dir=str(tmp_path)), None)


def test_node_export_inputs_differ_in_size():
    data = load_karate(None, None)
    inputs = NodeClassification().export_inputs(data.test)
    nodes = [x.shape[0] for x, _ in inputs]
    edges = [e.shape[1] for _, e in inputs]
    assert len(set(nodes)) == 3 and len(set(edges)) == 3 and min(nodes + edges) >= 2


# -- ONNX: export, predict from JSON, bad input at runtime ---------------------------------------


@pytest.fixture(scope="module")
def karate_run(tmp_path_factory):
    from zoo.core import api

    out = tmp_path_factory.mktemp("gcn-karate") / "run"
    summary = api.train("gcn", options={"data": {"name": "karate"}, "train": {
        "epochs": 3, "progress": False, "device": "cpu"}}, out=str(out), log=None)
    return out, summary


@pytest.mark.slow
def test_predict_accepts_graph_json(karate_run, tmp_path):
    from zoo.core import api

    out, summary = karate_run
    assert summary["parity"] <= 1e-4
    graph = {"x": torch.eye(34)[:5].tolist(), "edge_index": [[0, 1, 1, 2, 3], [1, 0, 2, 1, 4]]}
    (tmp_path / "graph.json").write_text(json.dumps(graph))
    predictions, metadata = api.predict(str(out), str(tmp_path / "graph.json"))
    assert metadata["task"] == "node-classification" and len(predictions) == 5
    assert predictions[0]["label"] in ("Mr. Hi", "Officer")


@pytest.mark.slow
def test_onnxruntime_rejects_out_of_range_edges(karate_run):
    from zoo.core.deploy.runtime import make_session

    out, _ = karate_run
    session = make_session(out / "model.onnx")
    x = np.eye(34, dtype=np.float32)[:3]
    with pytest.raises(Exception):
        session.run(None, {"x": x, "edge_index": np.array([[0, 7], [1, 0]], dtype=np.int64)})


@pytest.mark.slow
@pytest.mark.parametrize("edges, needle", [
    ([[0, 7], [1, 0]], "edge_index holds node 7, but the graph has 3 nodes: valid values are 0..2"),
    ([[0, -1], [1, 0]], "edge_index holds node -1"),
])
def test_predict_refuses_out_of_range_edges_in_one_line(karate_run, tmp_path, edges, needle):
    """What onnxruntime would report as a gather failure (a traceback in zoo predict, issue 18)."""
    import re

    from zoo.core import api
    from zoo.plugins.gnn.graph import GraphInputError

    out, _ = karate_run
    (tmp_path / "graph.json").write_text(json.dumps({"x": torch.eye(34)[:3].tolist(), "edge_index": edges}))
    with pytest.raises(GraphInputError, match=re.escape(needle)):
        api.predict(str(out), str(tmp_path / "graph.json"))


def test_graph_arrays_check_edges_and_graph_ids():
    from zoo.plugins.gnn.graph import GraphInputError
    from zoo.plugins.gnn.tasks import check_graph_arrays

    x = np.zeros((4, 2), np.float32)
    check_graph_arrays({"x": x, "edge_index": np.array([[0, 3], [3, 0]]), "batch": np.array([0, 0, 1, 1])})
    check_graph_arrays({"x": x, "edge_index": [[0, 1], [2]]})  # ragged: left to the shape checks
    with pytest.raises(GraphInputError, match="batch holds graph id 10"):  # would size the pooled output
        check_graph_arrays({"x": x, "edge_index": np.zeros((2, 0), np.int64), "batch": np.array([0, 0, 1, 10])})


@pytest.mark.slow
def test_without_validation_split_the_best_checkpoint_has_the_lowest_training_loss(tmp_path):
    # gin trains with data.val_fraction = 0: the trainer then monitors the training loss, which must
    # be minimised even though the task's main metric (accuracy) is maximised.
    from zoo.core import api

    summary = api.train("gin", options={"data": {"limit": 32}, "export": {"enabled": False}, "train": {
        "epochs": 4, "batch_size": 16, "progress": False, "device": "cpu"}}, out=str(tmp_path / "run"), log=None)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in rows]
    assert summary["best_epoch"] == losses.index(min(losses)) + 1


def test_dcnn_reuses_the_diffusion_only_for_the_same_unchanged_input():
    model = build("dcnn", row_normalize=False)
    x = torch.rand(5, 6)
    first = model(x, EDGES)
    assert torch.equal(model(x, EDGES), first)
    x.mul_(2.0)                                                   # in-place change: recomputed
    assert not torch.allclose(model(x, EDGES), first)
    assert torch.allclose(model(x.clone(), EDGES), model(x, EDGES))


# -- sparse input features ----------------------------------------------------------------------


def _bag_of_words(nodes: int = 40, features: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(nodes, features, generator=g) < 0.03).float() * torch.rand(nodes, features, generator=g)
    x[3] = 0.0                                                    # a node without features
    return x


def test_sparse_features_are_the_row_normalised_non_zeros():
    x = _bag_of_words()
    for normalize in (False, True):
        sparse = sparse_features(x, normalize)
        expected = x / x.abs().sum(-1, keepdim=True).clamp_min(1e-12) if normalize else x
        assert sparse.is_sparse and sparse.is_coalesced()
        assert torch.allclose(sparse.to_dense(), expected)
    assert sparse_features(torch.rand(5, 6) + 0.1, True) is None          # dense input stays dense


def test_sparse_dropout_of_a_sparse_matrix_keeps_its_pattern_and_mean():
    x = sparse_features(torch.ones(200, 50) * (torch.rand(200, 50) < 0.05), False)
    torch.manual_seed(0)
    dropped = sparse_dropout(x, 0.5)
    assert torch.equal(dropped.indices(), x.indices())
    kept = dropped.values() != 0
    assert set(dropped.values()[kept].tolist()) == {2.0}                  # 1 / (1 − p)
    assert 0.4 < kept.float().mean() < 0.6
    assert sparse_dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize("name", ["gcn", "gat"])
def test_sparse_first_layer_equals_the_dense_one(name):
    """GCN and GAT take sparse features as a sparse matrix: same outputs and gradients."""
    from zoo.plugins.gnn import models

    calls = []
    real = models.sparse_features
    torch.manual_seed(0)
    model = build(name, features=200)
    x, edges = _bag_of_words(), torch.randint(40, (2, 120))
    results = []
    for sparse in (True, False):
        model.sparse_input = sparse
        model(x, edges)                      # the first sight of x is dense; the next ones sparse
        model.zero_grad()
        out = model(x, edges)
        out.square().sum().backward()
        results.append((out, model.convs[0].lin.weight.grad.clone()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)
    assert results[0][1].abs().sum() > 0
    # found once, only once x came back; a fresh tensor takes the dense path
    models.sparse_features = lambda *a: calls.append(1) or real(*a)
    try:
        model.sparse_input = True
        again = x.clone()
        for _ in range(3):
            model(again, edges)
        model(x.clone(), edges)
    finally:
        models.sparse_features = real
    assert len(calls) == 1
    # gradients with respect to the features (attribution): the dense path, never memoised
    x.requires_grad_(True)
    for _ in range(2):
        model(x, edges).sum().backward()
    assert x.grad is not None and len(calls) == 1


def test_same_inputs_memoises_only_the_same_unchanged_tensors():
    calls = []
    memo = SameInputs()
    f = lambda a, b: calls.append(1) or a + b                             # noqa: E731
    a, b = torch.ones(3), torch.ones(3)
    first = memo(f, a, b)
    assert memo(f, a, b) is first and len(calls) == 1
    a.add_(1.0)                                                            # in place: recomputed
    assert memo(f, a, b).tolist() == [3.0] * 3 and len(calls) == 2
    assert memo(f, a.clone(), b).tolist() == [3.0] * 3 and len(calls) == 3  # another tensor
    # on_repeat: nothing the first time, computed and kept from the second on
    assert memo.on_repeat(f, b, b) is None and len(calls) == 3
    second = memo.on_repeat(f, b, b)
    assert second.tolist() == [2.0] * 3 and len(calls) == 4
    assert memo.on_repeat(f, b, b) is second and len(calls) == 4
