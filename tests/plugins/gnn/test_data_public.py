"""Public graph sets through `locate`: Planetoid (CiteSeer's isolated test nodes) and TU (node
labels, attributes, degree features, any TU name), on tiny fixtures written in the real formats."""

from __future__ import annotations

import pickle
from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from zoo.core.contract.errors import DataNotFound, DataUnavailable
from zoo.plugins.gnn.data import PlanetoidOptions, TUOptions, load_planetoid, load_tu
from zoo.plugins.gnn.files import GraphFileError


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """An empty ZOO_DATA_DIR and cache, so no test sees the machine's data."""
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def write_planetoid(root, name: str) -> dict:
    """A 12-node CiteSeer-like set: 3 train nodes, 5 val (allx rows 3..7), test ids 8, 9, 11 listed
    out of order; node 10 is isolated and in no split (missing from tx/ty, as in CiteSeer)."""
    rng = np.random.default_rng(0)
    allx = rng.integers(0, 2, (8, 4)).astype(np.float32)
    tx = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=np.float32)   # ids 11, 8, 9
    ally = np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]]
    ty = np.eye(3)[[2, 1, 0]]
    graph = defaultdict(list, {0: [1, 1], 1: [2], 2: [8], 8: [11], 3: [9], 4: [5], 6: [7, 6]})
    objects = {"x": sp.csr_matrix(allx[:3]), "y": ally[:3], "allx": sp.csr_matrix(allx), "ally": ally,
               "tx": sp.csr_matrix(tx), "ty": ty, "graph": graph}
    folder = root / "planetoid"
    folder.mkdir(parents=True, exist_ok=True)
    for part, obj in objects.items():
        (folder / f"ind.{name}.{part}").write_bytes(pickle.dumps(obj, protocol=2))
    (folder / f"ind.{name}.test.index").write_text("11\n8\n9\n")
    return {"allx": allx, "tx": tx, "ty": ty}


def test_citeseer_pads_isolated_test_nodes(roots):
    arrays = write_planetoid(roots, "citeseer")
    data = load_planetoid(None, None, dataset="citeseer")
    x, y = data.train.x, data.train.y
    assert x.shape == (12, 4) and data.info.num_classes == 3
    assert torch.equal(x[10], torch.zeros(4))                            # isolated: zero row
    # tx row i is node test.index[i] (file order 11, 8, 9), as in Kipf's and PyG's loaders
    assert torch.equal(x[11], torch.from_numpy(arrays["tx"][0])) and int(y[11]) == 2
    assert torch.equal(x[8], torch.from_numpy(arrays["tx"][1])) and int(y[8]) == 1
    assert [int(s.mask.sum()) for s in (data.train, data.val, data.test)] == [3, 5, 3]
    assert data.test.mask.nonzero().view(-1).tolist() == [8, 9, 11]
    # undirected, no duplicates or self-loops: 0-1 1-2 2-8 8-11 3-9 4-5 6-7 both ways
    assert data.train.edge_index.shape == (2, 14)


def test_planetoid_name_option_and_search_order(roots, tmp_path):
    write_planetoid(roots, "pubmed")
    other = tmp_path / "other"
    write_planetoid(other, "pubmed")
    (other / "planetoid" / "ind.pubmed.test.index").write_text("8\n9\n11\n")
    data = load_planetoid(PlanetoidOptions(name="pubmed"), str(other))    # --data-dir beats ZOO_DATA_DIR
    assert data.test.mask.nonzero().view(-1).tolist() == [8, 9, 11]
    with pytest.raises(DataNotFound, match="zoo data fetch citeseer") as err:
        load_planetoid(None, None, dataset="citeseer")
    assert err.value.dataset == "citeseer" and len(err.value.files) == 8


def test_planetoid_damaged_file_is_one_line(roots):
    write_planetoid(roots, "citeseer")
    (roots / "planetoid" / "ind.citeseer.test.index").write_text("11\neight\n")
    with pytest.raises(GraphFileError, match=r"ind\.citeseer\.test\.index, line 2, column 1: 'eight' is not an integer"):
        load_planetoid(None, None, dataset="citeseer")


@pytest.mark.parametrize("damage", [lambda raw: raw[: len(raw) // 2], lambda raw: b""], ids=["cut short", "empty"])
def test_planetoid_pickle_cut_short_names_the_file_and_the_fix(roots, damage):
    """Planetoid files have no published checksum: a download cut short without a Content-Length
    lands in the cache, and the loader is where it shows. The line says how to get it again."""
    from zoo.core.contract.errors import ZooError

    write_planetoid(roots, "cora")
    path = roots / "planetoid" / "ind.cora.x"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ZooError, match=r"ind\.cora\.x is damaged.*`zoo data rm cora`, then `zoo data fetch cora`") as err:
        load_planetoid(None, None, dataset="cora")
    assert "\n" not in str(err.value)


def test_tu_declared_name_with_labels(roots, write_tu):
    write_tu(roots / "tu" / "MUTAG", "MUTAG")
    data = load_tu(TUOptions(folds=3), None)                              # mutag is the default
    assert len(data.train) + len(data.test) == 6 and len(data.test) == 2
    assert data.info.input_shape == (4,)                                  # labels 2..5 → one-hot of 0..3
    assert data.info.class_names == ["-1", "1"] and data.info.num_classes == 2
    x, edge_index = data.train.graph(0)
    assert x.shape == (3, 4) and x.sum(1).tolist() == [1.0, 1.0, 1.0]
    assert edge_index.max() < 3                                          # local ids


def test_tu_attributes_appended_and_optional(roots, write_tu):
    write_tu(roots / "tu" / "ENZYMES", "ENZYMES", attributes=True)
    data = load_tu(TUOptions(folds=3), None, dataset="enzymes")
    assert data.info.input_shape == (4 + 2,)
    assert data.info.extra["features"] == {"node_labels": 4, "node_attributes": 2}
    plain = load_tu(TUOptions(folds=3, node_attributes=False), None, dataset="enzymes")
    assert plain.info.input_shape == (4,)


def test_tu_without_node_labels_gets_degree_features(roots, write_tu):
    write_tu(roots / "tu" / "IMDB-BINARY", "IMDB-BINARY", labels=False)
    data = load_tu(TUOptions(folds=3), None, dataset="imdb-binary")
    assert data.info.input_shape == (3,)                                  # degrees 0..2 (max 2)
    for split in (data.train, data.test):
        for g in range(len(split)):
            x, edge_index = split.graph(g)
            degree = torch.bincount(edge_index[1], minlength=3)
            assert torch.equal(x.argmax(1), degree)


def test_any_tu_name_and_its_missing_message(roots, write_tu):
    write_tu(roots / "tu" / "TOY", "TOY")
    data = load_tu(TUOptions(name="TOY", folds=2), None, dataset="mutag")
    assert data.info.extra["tu_name"] == "TOY"
    with pytest.raises(DataUnavailable, match=r"graphkerneldatasets/DD\.zip") as err:
        load_tu(TUOptions(name="DD"), None)
    assert not isinstance(err.value, DataNotFound)                       # not declared: nothing to fetch
    with pytest.raises(DataNotFound, match="zoo data fetch proteins"):
        load_tu(TUOptions(name="proteins"), None)                        # declared: any case


@pytest.mark.parametrize(("table", "content", "message"), [
    ("A", "1, 2\n2, x\n", r"TOY_A\.txt, line 2, column 2: 'x' is not an integer"),
    ("A", "1, 2\n2, 99\n", r"TOY_A\.txt, line 2, column 2: edge to unknown node 99"),
    ("A", "1, 2\n3, 4\n", r"TOY_A\.txt, line 2: edge 3,4 joins two graphs"),
    ("graph_indicator", "1\n1\n1\n2\n2\n2\n3\n3\n3\n4\n4\n4\n5\n5\n5\n6\n6\n1\n",
     r"TOY_graph_indicator\.txt, line 18, column 1: graph ids must not decrease"),
    ("node_labels", "1\n2\n", r"TOY_node_labels\.txt, line 3: 2 lines, but the graph indicator lists 18 nodes"),
    ("graph_labels", "", r"TOY_graph_labels\.txt: the file is empty"),
])
def test_tu_bad_files_are_one_line(roots, write_tu, table, content, message):
    folder = roots / "tu" / "TOY"
    write_tu(folder, "TOY")
    (folder / f"TOY_{table}.txt").write_text(content)
    with pytest.raises(GraphFileError, match=message) as err:
        load_tu(TUOptions(name="TOY", folds=2), None)
    assert "\n" not in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["citeseer", "pubmed"])
def test_zoo_train_gcn_on_planetoid_files_under_zoo_data_dir(cli, tmp_path, name):
    write_planetoid(tmp_path / "data", name)
    out = tmp_path / "run"
    result = cli("train", "gcn", "--dataset", name, "--set", "train.epochs=2", "--out", str(out), "--device", "cpu",
                 env={"ZOO_DATA_DIR": str(tmp_path / "data"), "ZOO_CACHE_DIR": str(tmp_path / "cache"),
                      "ZOO_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert f"gcn on {name}" in result.stdout and (out / "model.onnx").is_file()
