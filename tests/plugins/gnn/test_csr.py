"""CSR propagation (plugins/gnn/csr.py): the same sums and gradients as the message-passing form.

Full-batch GCN and GAT switch to the CSR form when the same graph comes back a second time; a
fresh copy of the tensors every call keeps the message-passing form, so the two are compared on
one model (deep-copied) with the same weights.
"""

from __future__ import annotations

import copy

import pytest
import torch

from zoo.core.train.data import DataInfo
from zoo.plugins.gnn.csr import Adjacency, EdgeGraph, edge_softmax, edge_weighted_sum
from zoo.plugins.gnn.graph import dropout, gcn_norm
from zoo.plugins.gnn.message_passing import scatter_softmax, scatter_sum
from zoo.plugins.gnn.models import MODELS


def directed_graph(n: int = 30, edges: int = 150, seed: int = 0) -> torch.Tensor:
    """Random directed edges without duplicates, two input self-loops; some nodes isolated."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, n - 3, (2, edges), generator=g)                 # the last 3 nodes isolated
    key = torch.unique(pairs[0] * n + pairs[1])
    edge_index = torch.stack([key // n, key % n])
    return torch.cat([edge_index, torch.tensor([[4, 9], [4, 9]])], dim=1)


def build(name: str, features: int = 5, classes: int = 3, **overrides):
    cls, config_class = MODELS[name]
    info = DataInfo(input_shape=(features,), num_classes=classes, extra={"level": "node"})
    return cls(config_class(name=name, row_normalize=False, **overrides), info)


def _outputs_and_grads(model, x, edge_index, weights):
    model.zero_grad()
    out = model(x, edge_index)
    (out * weights).sum().backward()
    return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("name,overrides", [("gcn", {}), ("gat", {}), ("gat", {"heads": 3, "out_heads": 2})])
def test_the_csr_form_equals_the_message_passing_form(name, overrides):
    torch.manual_seed(0)
    n = 30
    model = build(name, **overrides).eval()                                # eval: no dropout draws
    reference = copy.deepcopy(model)
    x, edge_index = torch.randn(n, 5), directed_graph(n)
    weights = torch.randn(n, 3)
    model(x, edge_index)                                                   # first sight: message passing
    out, grads = _outputs_and_grads(model, x, edge_index, weights)         # second: CSR
    memo = model._norm if name == "gcn" else model._sorted
    assert isinstance(memo._entry[2], Adjacency if name == "gcn" else EdgeGraph)
    want, want_grads = _outputs_and_grads(reference, x.clone(), edge_index.clone(), weights)
    assert not isinstance(reference._norm._entry[2] if name == "gcn" else reference._sorted._entry[2],
                          (Adjacency, EdgeGraph))                          # fresh tensors: never built
    assert torch.allclose(out, want, atol=1e-5)
    for key, grad in want_grads.items():
        assert torch.allclose(grads[key], grad, atol=1e-5), key
        assert grad.abs().sum() > 0, key


def test_adjacency_of_a_directed_graph_keeps_its_transpose_and_an_undirected_one_shares_it():
    n = 30
    directed = Adjacency(*gcn_norm(directed_graph(n), n), n)
    h = torch.randn(n, 4, requires_grad=True)
    dense = torch.zeros(n, n)
    edge_index, weight = gcn_norm(directed_graph(n), n)
    dense.index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)
    out = directed @ h
    assert torch.allclose(out, dense @ h, atol=1e-6)
    g = torch.randn(n, 4)
    (grad,) = torch.autograd.grad(out, h, g)
    assert torch.allclose(grad, dense.t() @ g, atol=1e-6)                  # Aᵀ grad
    assert directed.transposed is not directed.matrix
    both = torch.cat([directed_graph(n), directed_graph(n).flip(0)], dim=1)
    both = torch.unique(both[0] * n + both[1])
    undirected = Adjacency(*gcn_norm(torch.stack([both // n, both % n]), n), n)
    assert undirected.transposed is undirected.matrix


def test_duplicate_edges_add_up_in_gcn_and_keep_gat_on_message_passing():
    torch.manual_seed(1)
    n = 30
    edge_index = directed_graph(n)
    doubled = torch.cat([edge_index, edge_index[:, :10]], dim=1)           # a multigraph
    for name in ("gcn", "gat"):
        model = build(name).eval()
        reference = copy.deepcopy(model)
        x = torch.randn(n, 5)
        model(x, doubled)
        out = model(x, doubled)
        assert torch.allclose(out, reference(x.clone(), doubled.clone()), atol=1e-5)
    assert model.sorted_edges(doubled, n) is None                          # GAT: CSR wants distinct columns


def test_edge_softmax_and_weighted_sum_gradients():
    torch.manual_seed(2)
    n, heads, width = 12, 2, 3
    graph = EdgeGraph(directed_graph(n, 40, seed=3), n)
    scores = torch.randn(graph.src.numel(), heads, dtype=torch.float64, requires_grad=True)
    h = torch.randn(n, heads, width, dtype=torch.float64, requires_grad=True)
    alpha = edge_softmax(scores, graph)
    assert torch.allclose(alpha, scatter_softmax(scores, graph.dst, n))
    assert torch.allclose(scatter_sum(alpha, graph.dst, n), torch.ones(n, heads, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda s: edge_softmax(s, graph), (scores,))
    assert torch.autograd.gradcheck(lambda a, x: edge_weighted_sum(graph, a, x), (alpha.detach().requires_grad_(), h))
    want = scatter_sum(h.index_select(0, graph.src) * alpha.unsqueeze(-1), graph.dst, n)
    assert torch.allclose(edge_weighted_sum(graph, alpha, h), want)


def test_edge_graph_drops_input_loops_and_adds_one_per_node():
    n = 6
    graph = EdgeGraph(torch.tensor([[0, 2, 2, 5], [1, 2, 0, 4]]), n)
    pairs = list(zip(graph.src.tolist(), graph.dst.tolist()))
    assert pairs == sorted(pairs, key=lambda p: (p[1], p[0]))               # by receiver, then sender
    assert sorted(pairs) == sorted([(0, 1), (2, 0), (5, 4)] + [(i, i) for i in range(n)])
    assert graph.crow.tolist() == [0, 2, 4, 5, 6, 8, 9] and not graph.duplicates


def test_dropout_has_f_dropouts_distribution():
    torch.manual_seed(3)
    x = torch.rand(200, 100) + 0.5
    torch.manual_seed(4)
    small = dropout(x, 0.3)                                                # < min_size: F.dropout's draws
    torch.manual_seed(4)
    assert torch.equal(small, torch.nn.functional.dropout(x, 0.3))
    out = dropout(x, 0.3, min_size=0)
    assert not torch.equal(out, small)
    kept = out != 0
    assert 0.67 < kept.float().mean() < 0.73
    assert torch.allclose(out[kept], x[kept] / 0.7)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0, min_size=0), torch.zeros_like(x))
    x.requires_grad_(True)
    out = dropout(x, 0.5, min_size=0)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, (out != 0).float() * 2.0)


@pytest.mark.parametrize("size", [0, 2**16])
def test_gat_training_draws_the_same_attention_dropout_in_both_forms(size, monkeypatch):
    """Attention dropout in training: the CSR form draws its mask in the message-passing order,
    so a seeded step drops the same edges (F.dropout below ``min_size`` entries, the vectorised
    mask at or above it: both draw from the shape alone)."""
    from zoo.plugins.gnn import graph as graph_module

    drop, mask = graph_module.dropout, graph_module.dropout_mask
    monkeypatch.setattr("zoo.plugins.gnn.layers.dropout", lambda x, p, training=True: drop(x, p, training, size))
    monkeypatch.setattr("zoo.plugins.gnn.layers.dropout_mask", lambda *a: mask(*a, min_size=size))
    torch.manual_seed(5)
    n = 30
    model = build("gat", attention_dropout=0.5, dropout=0.0).train()
    reference = copy.deepcopy(model)
    reference.sorted_edges = lambda edge_index, n: None                   # the message-passing form
    x, edge_index = torch.randn(n, 5), directed_graph(n)
    weights = torch.randn(n, 3)
    torch.manual_seed(6)
    out, grads = _outputs_and_grads(model, x, edge_index, weights)
    assert isinstance(model._sorted._entry[2], EdgeGraph)
    torch.manual_seed(6)
    want, want_grads = _outputs_and_grads(reference, x, edge_index, weights)
    assert torch.allclose(out, want, atol=1e-5)
    assert all(torch.allclose(grads[k], g, atol=1e-5) for k, g in want_grads.items())


def test_training_builds_the_csr_form_at_once_and_eval_from_the_second_call():
    n = 30
    x, edge_index = torch.randn(n, 5), directed_graph(n)
    for name in ("gcn", "gat"):
        model = build(name)
        memo = lambda: model._norm if name == "gcn" else model._sorted             # noqa: E731
        model.eval()(x, edge_index)                         # eval, first sight: a one-off graph
        assert not isinstance(memo()._entry[2], (Adjacency, EdgeGraph))
        model.train()(x.clone(), edge_index.clone())        # training: built at the first call
        assert isinstance(memo()._entry[2], Adjacency if name == "gcn" else EdgeGraph)


def test_graph_level_batches_keep_the_message_passing_form():
    """A new batch of graphs every step: no CSR structure is built for any of them."""
    n = 30
    x, edge_index = torch.randn(n, 5), directed_graph(n)
    batch = torch.arange(n) // 10
    for name in ("gcn", "gat"):
        cls, config_class = MODELS[name]
        info = DataInfo(input_shape=(5,), num_classes=3, extra={"level": "graph"})
        model = cls(config_class(name=name), info).train()
        for _ in range(2):
            assert model(x, edge_index, batch).shape == (3, 3)
        entry = (model._norm if name == "gcn" else model._sorted)._entry
        assert entry is None or not isinstance(entry[2], (Adjacency, EdgeGraph))
