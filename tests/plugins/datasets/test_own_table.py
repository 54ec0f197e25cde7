"""The ``table`` own-data format: parsing, encoding, bad data (one line: file, line, column),
and train → ONNX → ``zoo predict`` on raw rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli
from zoo.core.errors import ZooError
from zoo.plugins.datasets.own import decode_inputs
from zoo.plugins.datasets.own.table import TableOptions, load_table, load_table_dataset

CITIES = {"paris": 100_000, "lyon": 50_000, "nice": 70_000}


def houses(path, n=60):
    rng = np.random.default_rng(0)
    lines = ["area,rooms,city,price"]
    for i in range(n):
        area, rooms, city = rng.uniform(30, 200), int(rng.integers(1, 6)), list(CITIES)[i % 3]
        lines.append(f"{area:.1f},{rooms},{city},{3000 * area + 10_000 * rooms + CITIES[city]:.0f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_numeric_and_categorical_columns(tmp_path):
    t = load_table(houses(tmp_path / "h.csv"), "price")
    assert t.numeric_names == ["area", "rooms"] and t.categorical_names == ["city"]
    assert t.numeric.shape == (60, 2) and t.numeric.dtype == np.float32 and t.labels is None
    assert t.categories["city"] == ["paris", "lyon", "nice"] and t.lines[0] == 2


def test_dataset_standardises_numbers_and_one_hots_categories(tmp_path):
    d = load_table_dataset(TableOptions(path=str(houses(tmp_path / "h.csv")), target="price"))
    assert d.info.extra["task"] == "regression" and d.info.output_dim == 1
    assert d.info.extra["feature_names"] == ["area", "rooms", "city=lyon", "city=nice", "city=paris"]
    x = d.train.tensors["x"]
    assert np.allclose(d.info.input_mean[:2].numpy(), x[:, :2].mean(0).numpy(), rtol=1e-5)
    assert d.info.input_mean[2:].tolist() == [0, 0, 0] and d.info.input_std[2:].tolist() == [1, 1, 1]
    assert (x[:, 2:].sum(1) == 1).all()  # one category per row
    assert len(d.train) + len(d.val) + len(d.test) == 60 and len(d.test) == 12


def test_split_is_seeded_and_a_split_column_decides(tmp_path):
    path = houses(tmp_path / "h.csv")
    a = load_table_dataset(TableOptions(path=str(path), target="price", seed=1)).test.tensors["y"]
    b = load_table_dataset(TableOptions(path=str(path), target="price", seed=1)).test.tensors["y"]
    assert a.tolist() == b.tolist()
    lines = path.read_text().splitlines()
    marked = [lines[0] + ",part"] + [f"{l},{'test' if i % 5 == 0 else 'train'}" for i, l in enumerate(lines[1:])]
    path.write_text("\n".join(marked))
    d = load_table_dataset(TableOptions(path=str(path), target="price", split_column="part"))
    assert len(d.test) == 12 and d.val is None and "part" not in d.info.extra["feature_names"]


def test_classification_for_text_labels_and_unknown_category_is_zeros(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("size,colour,kind\n" + "".join(f"{i},{'red' if i % 2 else 'blue'},{'a' if i % 2 else 'b'}\n"
                                                   for i in range(30)))
    d = load_table_dataset(TableOptions(path=str(path), target="kind"))
    assert d.info.extra["task"] == "classification" and d.info.class_names == ["a", "b"]
    meta = d.info.extra["raw_inputs"]
    x = decode_inputs(meta, [{"size": 3, "colour": "red"}, {"size": "4", "colour": "green"}])["x"]
    assert x.tolist() == [[3, 0, 1], [4, 0, 0]]  # colour=blue, colour=red; green unknown → zeros
    path.write_text("size,colour\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    binary = load_table_dataset(TableOptions(path=str(path), target="colour", task="classification"))
    assert binary.info.class_names == ["0", "1"] and binary.info.extra["task"] == "classification"


@pytest.mark.parametrize("content, expected", [
    ("", "empty file"),
    ("a,b,price\n", "no data rows"),
    ("a,b\n1,2\n", "line 1, column 'price': no such column"),
    ("a,b,price\n1,2,3\n4,x,6\n", "line 3, column 'b': 'x' is not a number"),
    ("a,b,price\n1,2,3\n4,,6\n", "line 3, column 'b': empty value"),
    ("a,b,price\n1,2,3\n4,5\n", "line 3: 2 fields, the header has 3 (ragged row)"),
    ("a,b,price\n1,2,3\n4,5,\n", "line 3, column 'price': empty target value"),
    ("a,b,price\n1,2,3\n4,inf,6\n", "line 3, column 'b': inf is not a finite number"),
])
def test_bad_data_names_file_line_and_column(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ZooError) as err:
        load_table_dataset(TableOptions(path=str(path), target="price"))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and expected in message


def test_a_class_with_no_training_sample_and_an_unknown_label(tmp_path):
    path = tmp_path / "c.csv"
    rows = "".join(f"{i},{'a' if i % 2 else 'b'},{'test' if i % 4 == 0 else 'train'}\n" for i in range(20))
    path.write_text("x,y,part\n" + rows + "99,z,test\n")
    with pytest.raises(ZooError, match=r"line 22, column 'y': class 'z' has no sample in the training"):
        load_table_dataset(TableOptions(path=str(path), target="y", split_column="part"))
    with pytest.raises(ZooError, match=r"line 22, column 'y': unknown label 'z'"):
        load_table_dataset(TableOptions(path=str(path), target="y", classes=["a", "b"]))


def test_parquet_without_pyarrow_is_one_line(tmp_path):
    try:
        import pyarrow  # noqa: F401
        pytest.skip("pyarrow is installed")
    except ImportError:
        pass
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ZooError, match=r"t.parquet: reading Parquet needs pyarrow: pip install 'zoo-ml\[parquet\]'"):
        load_table(path, "y")


def test_decode_rows_errors_name_row_and_column(tmp_path):
    d = load_table_dataset(TableOptions(path=str(houses(tmp_path / "h.csv")), target="price"))
    meta = d.info.extra["raw_inputs"]
    rows = tmp_path / "rows.csv"
    rows.write_text("area,city\n100,paris\n")
    with pytest.raises(ZooError, match=r"rows.csv line 1, column 'rooms': no such column"):
        decode_inputs(meta, str(rows))
    with pytest.raises(ZooError, match=r"input row 2, column 'area': 'big' is not a number"):
        decode_inputs(meta, [{"area": 1, "rooms": 1, "city": "nice"}, {"area": "big", "rooms": 1, "city": "nice"}])


@pytest.mark.slow
def test_train_mlp_on_a_csv_then_predict_raw_rows(tmp_path):
    houses(tmp_path / "houses.csv", n=150)
    run = tmp_path / "run"
    result = run_cli("train", "mlp", "--dataset", "table", "--set", "data.options.path=houses.csv",
                     "--set", "data.options.target=price", "--set", "train.epochs=40",
                     "--set", "train.progress=false", "--out", str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "regression" and summary["metrics"]["r2"] > 0.8 and summary["parity"] is not None
    assert json.loads((run / "inputs.json").read_text())["kind"] == "table"
    (tmp_path / "rows.csv").write_text("area,rooms,city\n100,3,paris\n50,1,lyon\n80,2,berlin\n")
    predicted = run_cli("predict", str(run), "--input", "rows.csv", "--json", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    values = [v[0] if isinstance(v, list) else v for v in json.loads(predicted.stdout)]
    assert len(values) == 3 and values[0] > values[1]  # 100 m² in Paris costs more than 50 m² in Lyon
    bad = tmp_path / "bad.csv"
    bad.write_text("area,rooms,city\n100,three,paris\n")
    failed = run_cli("predict", str(run), "--input", "bad.csv", cwd=tmp_path)
    assert failed.returncode == 2 and "bad.csv line 2, column 'rooms'" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1


def test_bad_csv_exits_2_before_writing_the_run(tmp_path):
    (tmp_path / "bad.csv").write_text("a,price\n1,2\nx,3\n")
    result = run_cli("train", "mlp", "--dataset", "table", "--set", "data.options.path=bad.csv",
                     "--set", "data.options.target=price", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "bad.csv line 3, column 'a'" in result.stderr and not (tmp_path / "run").exists()
