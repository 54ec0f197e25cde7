"""Graph generation: BFS ordering, the sequence encoding, the datasets' batches, the MMD and
validity/uniqueness/novelty metrics, the sampling loop, and a tiny GraphRNN run end to end
(train, test metrics, ONNX step networks, `zoo sample`)."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.stats import wasserstein_distance

from zoo.plugins.gnn import graphgen_data as data
from zoo.plugins.gnn import graphgen_metrics as metrics
from zoo.plugins.gnn.graphgen_sample import Steps, sample_sequences, to_graphs

DATASETS = sorted(data.GENERATORS)


def graphs_of(name: str, count: int = 30, seed: int = 0) -> list[nx.Graph]:
    return data.GENERATORS[name](count, np.random.default_rng(seed))


# -- BFS ordering -------------------------------------------------------------------------------


def test_bfs_order_visits_by_distance_and_index():
    #   0 — 1 — 3       BFS from 0: 0, then its neighbours 1, 2 (index order), then 3 (via 1), 4 (via 2)
    #   |       |
    #   2 — — — 4
    adj = data.adjacency(nx.Graph([(0, 1), (0, 2), (1, 3), (2, 4), (3, 4)]))
    assert data.bfs_order(adj, 0) == [0, 1, 2, 3, 4]
    assert data.bfs_order(adj, 3) == [3, 1, 4, 0, 2]


@pytest.mark.parametrize("name", DATASETS)
def test_random_bfs_orderings_are_breadth_first(name):
    rng = np.random.default_rng(0)
    for graph in graphs_of(name, 10):
        adj = data.bfs_adjacency(data.adjacency(graph), rng)
        g = nx.from_numpy_array(adj)
        assert nx.is_isomorphic(g, graph)
        depth = nx.single_source_shortest_path_length(g, 0)
        assert [depth[i] for i in range(len(adj))] == sorted(depth.values())   # distance never decreases
        assert all(adj[i, :i].any() for i in range(1, len(adj)))               # each node has an earlier neighbour


def test_disconnected_graph_is_refused():
    with pytest.raises(Exception, match="connected"):
        data.bfs_adjacency(data.adjacency(nx.Graph([(0, 1), (2, 3)])))


# -- the sequence encoding ----------------------------------------------------------------------


def test_encoding_of_a_hand_graph():
    # triangle 0-1-2 plus 3 hanging on 1: rows are nodes 1..3, most recent previous node first
    adj = data.adjacency(nx.Graph([(0, 1), (1, 2), (0, 2), (1, 3)]))
    seq = data.encode_adjacency(adj, 3)
    np.testing.assert_array_equal(seq, [[1, 0, 0],      # node 1: node 0
                                        [1, 1, 0],      # node 2: nodes 1, 0
                                        [0, 1, 0]])     # node 3: node 1 (two back), not 2
    np.testing.assert_array_equal(data.decode_adjacency(seq), adj)


@pytest.mark.parametrize("name", DATASETS)
def test_round_trip_adjacency_sequence_adjacency(name):
    train = graphs_of(name, 20)
    window = data.max_prev_node(train)
    rng = np.random.default_rng(1)
    for graph in train:
        adj = data.bfs_adjacency(data.adjacency(graph), rng)
        seq = data.encode_adjacency(adj, window)
        assert seq.shape == (len(adj) - 1, window)
        np.testing.assert_array_equal(data.decode_adjacency(seq), adj)   # no edge outside the window
        padded = np.vstack([seq, np.zeros((4, window))])                  # EOS, then padding
        assert nx.is_isomorphic(data.sequence_to_graph(padded), graph)


def test_a_window_too_small_drops_edges():
    adj = data.adjacency(nx.cycle_graph(6))
    adj = data.bfs_adjacency(adj)
    assert data.decode_adjacency(data.encode_adjacency(adj, 1)).sum() < adj.sum()


# -- datasets and batches -----------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_have_the_papers_sizes(name):
    dataset = data.load_generation(None, None, name)
    sizes = [g.number_of_nodes() for g in dataset.train.graphs + dataset.test.graphs]
    assert (len(dataset.train), len(dataset.test)) == (80, 20)
    assert 10 <= min(sizes) and max(sizes) <= 20 and dataset.info.input_shape[0] == max(sizes)
    assert all(nx.is_connected(g) for g in dataset.train.graphs)
    if name == "community-small":
        assert min(sizes) >= 12


def test_batch_layout_sos_eos_and_mask():
    dataset = data.load_generation(data.GenerationOptions(graphs=10), None, "community-small")
    split, m = dataset.test, dataset.info.extra["max_prev_node"]
    batch = split.batch(torch.arange(2))
    for b in range(2):
        steps = int(batch["lengths"][b])
        n = split.graphs[b].number_of_nodes()
        assert steps == n                                                # n − 1 rows + EOS
        assert batch["x"][b, 0].eq(1).all()                              # SOS
        torch.testing.assert_close(batch["x"][b, 1:steps], batch["y"][b, :steps - 1])
        assert batch["y"][b, steps - 1:].eq(0).all()                     # EOS and padding
        assert int(batch["mask"][b].sum()) == sum(min(t, m) for t in range(1, steps + 1))
        assert nx.is_isomorphic(data.sequence_to_graph(batch["y"][b].numpy()), split.graphs[b])
    again = split.batch(torch.arange(2))
    assert torch.equal(again["y"], batch["y"])                           # test orderings are fixed


def test_training_batches_draw_new_orderings_and_repeat():
    options = data.GenerationOptions(graphs=10, repeat=3)
    train = data.load_generation(options, None, "grid-small").train
    assert len(train) == 3 * len(train.graphs)
    torch.manual_seed(0)
    first = [train.batch(torch.arange(8))["y"] for _ in range(4)]
    assert any(not torch.equal(first[0], other) for other in first[1:])


# -- metrics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("graph, node, expected", [
    (nx.complete_graph(4), 0, {0: 3, 3: 3, 14: 1}),
    (nx.star_graph(3), 0, {0: 3, 2: 3, 7: 1}),                  # centre of the star
    (nx.star_graph(3), 1, {0: 1, 1: 2, 6: 1}),                  # a leaf
    (nx.path_graph(4), 1, {0: 2, 1: 1, 2: 1, 5: 1}),            # inner node of the 4-path
    (nx.cycle_graph(4), 0, {0: 2, 1: 2, 2: 1, 8: 1}),               # 3-paths: a node ends two, sits inside one
    (nx.Graph([(0, 1), (1, 2), (0, 2), (2, 3)]), 3, {0: 1, 1: 2, 9: 1}),   # the paw's pendant
    (nx.Graph([(0, 1), (1, 2), (0, 2), (2, 3)]), 2, {0: 3, 2: 2, 3: 1, 11: 1}),
    (nx.Graph([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]), 1, {0: 2, 1: 2, 3: 1, 12: 1}),  # diamond
])
def test_orbit_counts_of_hand_graphs(graph, node, expected):
    counts = metrics.orbit_counts(graph)[node]
    assert {k: int(v) for k, v in enumerate(counts) if v} == expected


def test_orbit_counts_agree_with_networkx_on_triangles_and_degrees():
    graph = graphs_of("community-small", 1)[0]
    counts = metrics.orbit_counts(graph)
    tri = nx.triangles(graph)
    assert [counts[v, 3] for v in graph] == [tri[v] for v in graph]
    assert [counts[v, 0] for v in graph] == [d for _, d in graph.degree()]


def test_emd_is_the_1d_wasserstein_distance():
    p, q = np.array([[1.0, 2.0, 3.0, 0.0]]) / 6, np.array([[0.0, 1.0, 5.0, 2.0]]) / 8
    k = metrics.histogram_kernel(p, q, sigma=1.0, scale=1.0, kernel="emd")
    emd = wasserstein_distance(np.arange(4), np.arange(4), p[0], q[0])
    assert k[0, 0] == pytest.approx(np.exp(-emd ** 2 / 2))


@pytest.mark.parametrize("kernel", ["emd", "tv"])
def test_mmd_is_zero_for_identical_sets_and_large_for_different_ones(kernel):
    community, grid = graphs_of("community-small", 20), graphs_of("grid-small", 20)
    other_community = graphs_of("community-small", 20, seed=5)
    same = metrics.generation_metrics(community, community, community, kernel)
    for key in ("degree_mmd", "clustering_mmd", "orbit_mmd"):
        assert same[key] == pytest.approx(0.0, abs=1e-12)
    close = metrics.generation_metrics(other_community, community, community, kernel)
    far = metrics.generation_metrics(grid, community, community, kernel)
    for key in ("degree_mmd", "clustering_mmd", "orbit_mmd"):
        assert 0 < close[key] < far[key], (key, close[key], far[key])
    assert far["clustering_mmd"] > 0.5                           # grids have no triangles at all


def test_validity_uniqueness_novelty():
    train = [nx.path_graph(4), nx.cycle_graph(5)]
    generated = [nx.path_graph(4), nx.path_graph(4), nx.star_graph(3), nx.Graph([(0, 1), (2, 3)])]
    result = metrics.vun(generated, train)
    assert result == {"validity": 0.75, "uniqueness": 0.75, "novelty": 0.5}


# -- the sampling loop --------------------------------------------------------------------------


def scripted_steps(nodes: int, window: int, edge_level: bool) -> Steps:
    """Steps whose logits say "connect to every earlier node" until ``nodes`` nodes exist."""
    count = {"i": 0}
    big = 50.0

    def graph_step(row, h):
        count["i"] += 1
        sign = big if count["i"] < nodes else -big
        out = np.full((row.shape[0], window if not edge_level else 2), sign, np.float32)
        return h, out

    def edge_step(e, g):
        return np.full((e.shape[0], 1), g[0, :, :1].mean() * 1.0, np.float32).reshape(-1, 1), g

    return Steps(window, 12, (1, 2), graph_step, edge_step if edge_level else None, 1)


@pytest.mark.parametrize("edge_level", [False, True])
def test_sampling_stops_at_eos_and_respects_the_window(edge_level):
    seqs = sample_sequences(scripted_steps(5, 3, edge_level), 2, np.random.default_rng(0))
    graph = to_graphs(seqs)[0]
    assert graph.number_of_nodes() == 5                          # 4 rows of edges, then EOS
    expected = {(i, j) for i in range(5) for j in range(max(0, i - 3), i)}
    assert {tuple(sorted(e))[::-1] for e in graph.edges()} == expected


# -- a tiny model end to end --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from zoo import testing

    out = tmp_path_factory.mktemp("graphrnn") / "run"
    summary = testing.train("graphrnn", epochs=2, options={"data": {"options": {"graphs": 20}}}, out=out)
    return out, summary


@pytest.mark.slow
def test_tiny_graphrnn_trains_samples_and_exports(tiny_run):
    out, summary = tiny_run
    m = summary["metrics"]
    for key in ("loss", "edge_accuracy", "degree_mmd", "clustering_mmd", "orbit_mmd", "validity",
                "uniqueness", "novelty"):
        assert np.isfinite(m[key]), key
    assert m["validity"] == 1.0                                  # BFS generation only adds connected nodes
    assert (out / "model.onnx").is_file() and (out / "edge_step.onnx").is_file()
    assert summary["parity"] <= 1e-4 and len(summary["parity_shapes"]) == 3


@pytest.mark.slow
def test_onnx_and_torch_sample_the_same_graphs(tiny_run):
    from zoo.core import api
    from zoo.core.deploy.runtime import make_session
    from zoo.plugins.gnn.graphgen_export import edge_examples
    from zoo.plugins.gnn.graphgen_sample import sample_onnx, sample_torch

    out, _ = tiny_run
    net = api.load_run(str(out))[3]
    by_torch, by_onnx = sample_torch(net, 24, seed=7), sample_onnx(out, 24, seed=7)
    assert all(nx.utils.graphs_equal(a, b) for a, b in zip(by_torch, by_onnx))
    # the edge step at a batch size it was not traced or checked at
    edge, state = edge_examples(net, sizes=(5,))[0]
    got = make_session(out / "edge_step.onnx").run(None, {"edge": edge.numpy(), "edge_hidden": state.numpy()})
    with torch.no_grad():
        want = net.edge_step(edge, state)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)


@pytest.mark.slow
def test_zoo_sample_writes_jsonl_and_png(tiny_run, tmp_path):
    from zoo.cli import main

    out, _ = tiny_run
    result = CliRunner().invoke(main, ["sample", str(out), "-n", "5", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    lines = (tmp_path / "graphs.jsonl").read_text().splitlines()
    assert len(lines) == 5 and report["png"] and (tmp_path / "graphs.png").stat().st_size > 1000
    for line, nodes in zip(lines, report["nodes"]):
        graph = json.loads(line)
        assert graph["num_nodes"] == nodes
        assert all(0 <= u < nodes and 0 <= v < nodes for u, v in graph["edges"])


def test_zoo_sample_refuses_what_is_not_a_generation_run(tmp_path):
    from zoo.cli import main

    missing = CliRunner().invoke(main, ["sample", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such run directory" in missing.stderr
    empty = CliRunner().invoke(main, ["sample", str(tmp_path)])
    assert empty.exit_code == 2 and "no model.onnx" in empty.stderr
    assert "Traceback" not in missing.stderr + empty.stderr


def test_loss_counts_only_the_masked_entries():
    from zoo.plugins.gnn.graphgen_task import GraphGeneration

    dataset = data.load_generation(data.GenerationOptions(graphs=10), None, "grid-small")
    batch = dataset.test.batch(torch.arange(3))
    logits = torch.randn(batch["y"].shape)
    task = GraphGeneration()
    changed = torch.where(batch["mask"].bool(), logits, torch.full_like(logits, 99.0))
    assert task.loss(changed, batch) == pytest.approx(float(task.loss(logits, batch)))
    sums = task.metric_sums(logits, batch)
    assert float(sums["count"]) == float(batch["mask"].sum())


def test_help_lists_sample():
    from zoo.cli import main

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "sample" in result.stdout
