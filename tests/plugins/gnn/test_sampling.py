"""Neighbour sampling: CSR, draws without replacement within the fan-out, seeds first, determinism,
the sampled training split, and graphsage-sampled learning on the fixture Cora."""

from __future__ import annotations

import pytest
import torch

from zoo.core.contract.errors import ZooError
from zoo.plugins.gnn.data import PlanetoidOptions, coalesce, load_planetoid
from zoo.plugins.gnn.sampling import NeighbourSampler, SampledNodeSplit, SamplingOptions, sample_neighbours, to_csr


def random_graph(n: int, edges: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, n, (2, edges), generator=g)
    return coalesce(pairs, n)            # both directions, no self-loops, no duplicates


def in_neighbours(edge_index: torch.Tensor) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for s, d in edge_index.t().tolist():
        out.setdefault(d, set()).add(s)
    return out


def test_csr_lists_the_in_neighbours_of_every_node():
    edge_index = torch.tensor([[0, 2, 3, 1, 0], [1, 1, 1, 2, 3]])
    rowptr, col = to_csr(edge_index, 5)
    assert rowptr.tolist() == [0, 0, 3, 4, 5, 5]
    assert sorted(col[0:3].tolist()) == [0, 2, 3] and col[3].item() == 1 and col[4].item() == 0


def test_draws_are_true_neighbours_distinct_and_within_the_fanout():
    n = 200
    edge_index = random_graph(n, 3000, seed=1)
    rowptr, col = to_csr(edge_index, n)
    truth = in_neighbours(edge_index)
    nodes = torch.arange(n)
    for fanout in (1, 3, 10, -1):
        neighbour, owner = sample_neighbours(rowptr, col, nodes, fanout, torch.Generator().manual_seed(0))
        assert owner.tolist() == sorted(owner.tolist())                     # grouped by owner
        drawn: dict[int, list[int]] = {}
        for nb, o in zip(neighbour.tolist(), owner.tolist()):
            drawn.setdefault(o, []).append(nb)
        for node in range(n):
            got, true = drawn.get(node, []), truth.get(node, set())
            assert set(got) <= true                                          # true neighbours only
            assert len(got) == len(set(got))                                 # without replacement
            assert len(got) == (len(true) if fanout < 0 else min(fanout, len(true)))


def test_draws_are_uniform_over_the_neighbours():
    # node 0 has 10 in-neighbours; 3 drawn 4000 times: each is picked 3/10 of the time
    edge_index = torch.stack([torch.arange(1, 11), torch.zeros(10, dtype=torch.long)])
    rowptr, col = to_csr(edge_index, 11)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(11)
    for _ in range(4000):
        neighbour, _ = sample_neighbours(rowptr, col, torch.tensor([0]), 3, g)
        counts[neighbour] += 1
    share = counts[1:] / 4000
    assert torch.allclose(share, torch.full((10,), 0.3), atol=0.035), share


def test_subgraph_has_seeds_first_and_only_sampled_true_edges():
    n = 300
    edge_index = random_graph(n, 2500, seed=2)
    truth = in_neighbours(edge_index)
    sampler = NeighbourSampler(edge_index, n, [4, 3], seed=0)
    seeds = torch.tensor([7, 3, 250, 41])
    nodes, sub = sampler.sample(seeds)
    assert nodes[:4].tolist() == seeds.tolist()
    assert len(set(nodes.tolist())) == nodes.shape[0]                        # every node once
    assert int(sub.max()) < nodes.shape[0]
    per_target: dict[int, int] = {}
    for s, d in sub.t().tolist():
        assert nodes[s].item() in truth[nodes[d].item()]                     # a true edge, local ids
        per_target[d] = per_target.get(d, 0) + 1
    hop1 = set(range(4))
    assert all(per_target.get(d, 0) == min(4, len(truth.get(nodes[d].item(), ()))) for d in hop1)
    assert all(count <= 3 for d, count in per_target.items() if d not in hop1)
    # the hop-2 targets are exactly the nodes hop 1 added
    hop1_sources = {s for s, d in sub.t().tolist() if d in hop1}
    assert {d for d in per_target if d not in hop1} <= hop1_sources - hop1


def test_sampling_is_deterministic_under_a_seed_and_resets_between_batches():
    n = 300
    edge_index = random_graph(n, 2500, seed=3)
    seeds = [torch.tensor([1, 2, 3]), torch.tensor([3, 9, 120, 5])]

    def run(seed):
        sampler = NeighbourSampler(edge_index, n, [5, 5], seed=seed)
        return [sampler.sample(s) for s in seeds]

    a, b, c = run(0), run(0), run(1)
    for (na, ea), (nb, eb) in zip(a, b):
        assert torch.equal(na, nb) and torch.equal(ea, eb)
    assert any(not torch.equal(ea, ec) for (_, ea), (_, ec) in zip(a, c))
    # a second batch reusing a node of the first gets it as a seed again (lookup table reset)
    assert a[1][0][:4].tolist() == [3, 9, 120, 5]


def test_sampled_split_scores_only_the_seeds():
    n = 50
    edge_index = random_graph(n, 300, seed=4)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[::5] = True
    split = SampledNodeSplit(torch.randn(n, 3), edge_index, torch.arange(n) % 2, mask, [3, 2])
    assert len(split) == 10
    batch = split.batch(torch.tensor([0, 4, 9]))
    assert batch["mask"].sum() == 3 and batch["mask"][:3].all()
    assert torch.equal(batch["y"][:3], (torch.tensor([0, 20, 45]) % 2))
    assert len(split.subset(torch.tensor([1, 2]))) == 2


def test_fanouts_are_checked():
    with pytest.raises(ValueError):
        SamplingOptions(fanouts=[10, 0])
    with pytest.raises(ValueError):
        SamplingOptions(fanouts=[])
    with pytest.raises(ValueError):
        SamplingOptions(fanout=[3])                                        # extra="forbid"


def test_graphsage_sampled_needs_one_fanout_per_layer():
    from zoo.core import api

    for options, needle in (({"data": {"options": {"fanouts": None}}}, "set data.options.fanouts"),
                            ({"data": {"options": {"fanouts": [5]}}}, "1 hop(s)")):
        entry, spec, run_config = api.resolve_config("graphsage-sampled", options=options)
        dataset, _ = api.load_data(run_config, entry)
        with pytest.raises(ZooError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            api.build_model(spec, run_config, dataset.info)


def test_graphsage_sampled_learns_on_the_fixture_cora(tmp_path):
    from zoo.core import api

    data = load_planetoid(PlanetoidOptions(fanouts=[10, 10]), None)
    assert isinstance(data.train, SampledNodeSplit) and len(data.train) == int(data.train.mask.sum())
    summary = api.train("graphsage-sampled", options={
        "data": {"options": {"fanouts": [10, 10]}},
        "train": {"epochs": 30, "batch_size": 8, "progress": False, "device": "cpu"}},
        out=str(tmp_path / "run"), log=None)
    classes = int(data.train.y.max()) + 1
    assert summary["status"] == "finished"
    assert summary["metrics"]["accuracy"] > 1.5 / classes, summary["metrics"]   # well above chance
    assert summary["parity"] is not None and summary["parity"] <= 1e-3           # exported on full graphs
