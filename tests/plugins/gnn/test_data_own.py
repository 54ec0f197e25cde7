"""The user's own graphs: `graph` (node table + edge list CSV) and `graphs` (TU folder or JSONL),
their one-line errors (file, line, column), and `zoo train` on them (nothing written on bad data)."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.plugins.gnn.files import GraphFileError
from zoo.plugins.gnn.own import GraphOptions, GraphsOptions, load_graph, load_graphs

NODES = """id,f1,f2,label,split
a,1.0,0.0,cat,train
b,0.0,1.0,dog,train
c,1.0,1.0,cat,val
d,0.5,0.5,dog,test
e,0.2,0.1,cat,test
u,0.0,0.0,,
"""
EDGES = """source,target,weight
a,b,1.0
b,c,0.5
c,d,2
d,e,1
e,u,1
"""


def write_graph(tmp_path, nodes: str = NODES, edges: str = EDGES):
    (tmp_path / "nodes.csv").write_text(nodes)
    (tmp_path / "edges.csv").write_text(edges)
    return tmp_path


def test_graph_with_split_column(tmp_path):
    data = load_graph(GraphOptions(path=str(write_graph(tmp_path))))
    assert data.info.class_names == ["cat", "dog"] and data.info.input_shape == (2,)
    assert data.train.x.shape == (6, 2) and data.train.edge_index.shape == (2, 10)     # both ways
    assert [s.mask.nonzero().view(-1).tolist() for s in (data.train, data.val, data.test)] == [[0, 1], [2], [3, 4]]
    assert data.train.y.tolist()[:5] == [0, 1, 0, 1, 0]                                # u: unlabelled, unscored


def test_graph_fractions_without_split_column_are_seeded_and_stratified(tmp_path):
    rows = ["id,x,label"] + [f"n{i},{i},{'ab'[i % 2]}" for i in range(20)]
    edges = ["source,target"] + [f"n{i},n{i + 1}" for i in range(19)]
    write_graph(tmp_path, "\n".join(rows) + "\n", "\n".join(edges) + "\n")
    options = GraphOptions(path=str(tmp_path / "nodes.csv"), train_fraction=0.5, val_fraction=0.2, directed=True)
    one, two = load_graph(options), load_graph(options)
    assert torch.equal(one.train.mask, two.train.mask)
    for split, count in ((one.train, 5), (one.val, 2), (one.test, 3)):               # per class of 10
        assert [int((split.mask & (split.y == c)).sum()) for c in (0, 1)] == [count, count]
    assert one.train.edge_index.shape == (2, 19)                                        # directed: one way
    other = load_graph(options.model_copy(update={"split_seed": 1}))
    assert not torch.equal(one.train.mask, other.train.mask)


def test_graph_without_features_gets_node_ids(tmp_path):
    write_graph(tmp_path, "id,label\na,x\nb,y\nc,x\nd,y\n", "source,target\na,b\n")
    data = load_graph(GraphOptions(path=str(tmp_path), train_fraction=0.5, val_fraction=0.0))
    assert torch.equal(data.train.x, torch.eye(4)) and data.val is None


@pytest.mark.parametrize(("nodes", "edges", "message"), [
    (NODES, EDGES.replace("e,u", "e,zz"), r"edges\.csv, line 6, column 'target': edge to unknown node 'zz'"),
    (NODES.replace("a,1.0", "a,abc"), EDGES, r"nodes\.csv, line 2, column 'f1': 'abc' is not a number"),
    (NODES.replace("dog,test", ",test"), EDGES, r"nodes\.csv, line 5, column 'label': empty label"),
    (NODES.replace("c,1.0,1.0,cat,val", "c,1.0,1.0,cat,dev"), EDGES, r"nodes\.csv, line 4, column 'split': 'dev' is not"),
    (NODES.replace("dog,train", "dog,test"), EDGES, r"nodes\.csv, line 3, column 'label': class 'dog' has no training node"),
    ("", EDGES, r"nodes\.csv: the file is empty"),
    (NODES, "", r"edges\.csv: the file is empty"),
    (NODES.replace("b,0.0,1.0", "b,0.0"), EDGES, r"nodes\.csv, line 3: 4 fields, the header has 5"),
    (NODES.replace("label", "class"), EDGES, r"nodes\.csv, line 1, column 'label': missing column"),
    (NODES.replace("b,0.0", "a,0.0"), EDGES, r"nodes\.csv, line 3, column 'id': node 'a' again"),
    (NODES.replace("dog", "cat"), EDGES, r"nodes\.csv, column 'label': 1 class\(es\) \(cat\): classification needs"),
    (NODES, EDGES.replace("1.0", "heavy"), r"edges\.csv, line 2, column 'weight': 'heavy' is not a number"),
])
def test_graph_bad_data_is_one_line(tmp_path, nodes, edges, message):
    write_graph(tmp_path, nodes, edges)
    with pytest.raises(GraphFileError, match=message) as err:
        load_graph(GraphOptions(path=str(tmp_path)))
    assert "\n" not in str(err.value)


def write_jsonl(path, graphs: int = 8, x: bool = True) -> None:
    lines = []
    for g in range(graphs):
        edges = [[0, 1], [1, 2]] + ([[2, 0]] if g % 2 else [])
        record = {"edges": edges, "y": "ring" if g % 2 else "path"}
        if x:
            record["x"] = [[1.0, 0.0], [0.0, 1.0], [float(g), 1.0]]
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


def test_graphs_jsonl(tmp_path):
    write_jsonl(tmp_path / "g.jsonl")
    data = load_graphs(GraphsOptions(path=str(tmp_path / "g.jsonl"), folds=4))
    assert data.info.class_names == ["path", "ring"] and data.info.input_shape == (2,)
    assert len(data.train) == 6 and len(data.test) == 2 and sorted(data.test.y.tolist()) == [0, 1]
    x, edge_index = data.train.graph(0)
    assert x.shape == (3, 2) and edge_index.shape[1] in (4, 6)


def test_graphs_jsonl_without_x_gets_degrees(tmp_path):
    write_jsonl(tmp_path / "g.jsonl", x=False)
    data = load_graphs(GraphsOptions(path=str(tmp_path / "g.jsonl"), folds=2))
    assert data.info.input_shape == (3,) and data.info.extra["features"] == {"degree": 3}


def test_graphs_tu_folder(tmp_path, write_tu):
    write_tu(tmp_path / "mine", "MINE")
    data = load_graphs(GraphsOptions(path=str(tmp_path / "mine"), folds=3))
    assert len(data.train) + len(data.test) == 6 and data.info.input_shape == (4,)
    (tmp_path / "mine" / "OTHER_A.txt").write_text("1, 2\n")
    with pytest.raises(GraphFileError, match="expected one NAME_A.txt"):
        load_graphs(GraphsOptions(path=str(tmp_path / "mine")))


def test_graphs_folder_without_tu_files_says_what_to_point_at(tmp_path, write_tu):
    write_tu(tmp_path / "sets" / "MINE", "MINE")
    with pytest.raises(GraphFileError, match=r"sets: no NAME_A\.txt here; .*data\.options\.path=.*sets/MINE"):
        load_graphs(GraphsOptions(path=str(tmp_path / "sets")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraphFileError, match=r"empty: no NAME_A\.txt here; a TU folder holds NAME_A\.txt, "
                                             r"NAME_graph_indicator\.txt and NAME_graph_labels\.txt"):
        load_graphs(GraphsOptions(path=str(tmp_path / "empty")))


@pytest.mark.parametrize(("line", "message"), [
    ('{"edges": [[0, 5]], "x": [[1], [2]], "y": 1}', r"line 3, column 'edges': edge \[0, 5\] to unknown node"),
    ('{"edges": [[0, 1]], "x": [[1], ["a"]], "y": 1}', r"line 3, column 'x': node 1: 'a' is not a finite number"),
    ('{"edges": [[0, 1]], "x": [[1], [2]], "y": ""}', r"line 3, column 'y': '' is not a label"),
    ('{"edges": [[0, 1]], "x": [[1], [2]]}', r"line 3, column 'y': missing"),
    ('{"edges": [[0, 1]], "x": [[1], [2, 3]], "y": 1}', r"line 3, column 'x': node 1 has 2 features"),
    ('{"edges": [[0, 1]], "x": [[1, 0], [2, 0]], "y": 1}', r"line 3, column 'x': 2 features per node, line 1 has 1"),
    ('{"edges": [[0, 1]', r"line 3, column \d+: not JSON"),
])
def test_graphs_jsonl_bad_lines(tmp_path, line, message):
    good = '{"edges": [[0, 1]], "x": [[1], [2]], "y": 0}'
    (tmp_path / "g.jsonl").write_text(f"{good}\n{good}\n{line}\n{good}\n")
    with pytest.raises(GraphFileError, match=r"g\.jsonl, " + message):
        load_graphs(GraphsOptions(path=str(tmp_path / "g.jsonl"), folds=2))


def test_graph_files_not_utf8_name_their_line(tmp_path):
    write_graph(tmp_path)
    nodes = tmp_path / "nodes.csv"
    nodes.write_bytes(NODES.encode().replace(b"e,0.2", b"\xe9,0.2"))
    with pytest.raises(GraphFileError, match=r"nodes\.csv, line 6: not UTF-8 text") as err:
        load_graph(GraphOptions(path=str(tmp_path)))
    assert "\n" not in str(err.value)
    good = '{"edges": [[0, 1]], "x": [[1], [2]], "y": 0}'
    (tmp_path / "g.jsonl").write_bytes(f"{good}\n{good}\n".encode() + b'{"edges": [], "x": [[1]], "y": "caf\xe9"}\n')
    with pytest.raises(GraphFileError, match=r"g\.jsonl, line 3: not UTF-8 text"):
        load_graphs(GraphsOptions(path=str(tmp_path / "g.jsonl"), folds=2))


def test_graphs_jsonl_with_a_bom_and_a_node_number_past_int64(tmp_path):
    write_jsonl(tmp_path / "g.jsonl")
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (tmp_path / "g.jsonl").read_bytes())
    assert load_graphs(GraphsOptions(path=str(bom), folds=2)).info.class_names == ["path", "ring"]
    good = '{"edges": [[0, 1]], "y": 0}'
    (tmp_path / "big.jsonl").write_text(f"{good}\n{good}\n" + '{"edges": [[0, 99999999999999999999999]], "y": 1}\n')
    with pytest.raises(GraphFileError, match=r"big\.jsonl, line 3, column 'edges': edge \[0, 99999999999999999999999\]: "
                                             r"a node number past 2\*\*63 - 1"):
        load_graphs(GraphsOptions(path=str(tmp_path / "big.jsonl"), folds=2))


def test_graphs_class_without_training_graph(tmp_path):
    good = '{"edges": [[0, 1]], "x": [[1], [2]], "y": "a"}'
    (tmp_path / "g.jsonl").write_text(f"{good}\n{good}\n" + good.replace('"a"', '"lonely"') + "\n")
    with pytest.raises(GraphFileError, match=r"g\.jsonl, line 3, column 'y': class 'lonely' has no training graph"):
        load_graphs(GraphsOptions(path=str(tmp_path / "g.jsonl"), folds=2, fold=0))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(GraphFileError, match=r"empty\.jsonl: the file is empty"):
        load_graphs(GraphsOptions(path=str(tmp_path / "empty.jsonl")))


# -- through `zoo train` -------------------------------------------------------------------------


@pytest.mark.slow
def test_zoo_train_gcn_on_own_graph(cli, tmp_path):
    write_graph(tmp_path)
    out = tmp_path / "run"
    result = cli("train", "gcn", "--dataset", "graph", "--set", f'data.options.path="{tmp_path}"',
                 "--set", "train.epochs=2", "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and "accuracy" in json.dumps(summary)
    assert (out / "model.onnx").is_file()
    # zoo predict takes the graph as arrays (node rows of the table, in its order) and answers with
    # the node table's class names; zoo serve answers a tensor request with the same `prediction`.
    graph = {"x": [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], "edge_index": [[0, 1, 1, 2], [1, 0, 2, 1]]}
    (tmp_path / "g.json").write_text(json.dumps(graph))
    result = cli("predict", str(out), "--input", str(tmp_path / "g.json"), "--json")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert len(answers) == 3 and {a["label"] for a in answers} <= {"cat", "dog"}
    # A graph without edges is a graph: JSON's empty lists hold no integers, but no floats either.
    (tmp_path / "lone.json").write_text(json.dumps({"x": [[1.0, 0.0]], "edge_index": [[], []]}))
    result = cli("predict", str(out), "--input", str(tmp_path / "lone.json"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["label"] in {"cat", "dog"}
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from zoo.core.serve import build_app

    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 2], "data": sum(graph["x"], [])},
                       {"name": "edge_index", "datatype": "INT64", "shape": [2, 4], "data": sum(graph["edge_index"], [])}]}
    with TestClient(build_app([str(out)], log=lambda line: None)) as client:
        response = client.post("/v2/models/run/infer", json=body)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert [json.loads(p) for p in outputs["prediction"]["data"]] == answers
        body["inputs"][1].update(shape=[2, 2], data=[0, 3, 1, 0])
        response = client.post("/v2/models/run/infer", json=body)
        assert response.status_code == 400 and "edge_index holds node 3" in response.json()["error"]


@pytest.mark.slow
def test_zoo_train_bad_graph_exits_2_and_writes_nothing(cli, tmp_path):
    write_graph(tmp_path, NODES, EDGES.replace("e,u", "e,zz"))
    out = tmp_path / "run"
    result = cli("train", "gcn", "--dataset", "graph", "--set", f'data.options.path="{tmp_path}"',
                 "--out", str(out), "--device", "cpu")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "edges.csv, line 6, column 'target': edge to unknown node 'zz'" in lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_zoo_train_gin_on_own_jsonl(cli, tmp_path):
    write_jsonl(tmp_path / "g.jsonl", graphs=10)
    out = tmp_path / "run"
    result = cli("train", "gin", "--dataset", "graphs", "--set", f'data.options.path="{tmp_path / "g.jsonl"}"',
                 "--set", "data.options.folds=5", "--set", "train.epochs=1", "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert (out / "model.onnx").is_file()
