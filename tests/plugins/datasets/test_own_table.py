"""The ``table`` own-data format: parsing, encoding, bad data (one line: file, line, column),
and train → ONNX → ``zoo predict`` on raw rows.

The tests that load a file run twice (the ``parser`` fixture): with pyarrow's reader
(``table_arrow``, where pyarrow is installed) and with the csv module (``table.FAST_CSV = False``);
``test_parsers_agree_*`` check that both give the same arrays, bit for bit.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import run_cli
from zoo.core.contract.errors import ZooError
from zoo.plugins.datasets.own import decode_inputs, table, table_arrow
from zoo.plugins.datasets.own.table import TableOptions, column_stats, load_table, load_table_dataset

CITIES = {"paris": 100_000, "lyon": 50_000, "nice": 70_000}
PARSERS = ["pyarrow", "csv module"]
both = pytest.mark.parametrize("parser", PARSERS, indirect=True)


@pytest.fixture
def parser(request, monkeypatch):
    """``"pyarrow"``: the fast path (skipped without pyarrow); ``"csv module"``: FAST_CSV off."""
    if request.param == "pyarrow":
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(table, "FAST_CSV", request.param == "pyarrow")
    return request.param


def houses(path, n=60):
    rng = np.random.default_rng(0)
    lines = ["area,rooms,city,price"]
    for i in range(n):
        area, rooms, city = rng.uniform(30, 200), int(rng.integers(1, 6)), list(CITIES)[i % 3]
        lines.append(f"{area:.1f},{rooms},{city},{3000 * area + 10_000 * rooms + CITIES[city]:.0f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@both
def test_numeric_and_categorical_columns(tmp_path, parser):
    t = load_table(houses(tmp_path / "h.csv"), "price")
    assert t.numeric_names == ["area", "rooms"] and t.categorical_names == ["city"]
    assert t.numbers().shape == (60, 2) and t.numbers().dtype == np.float32 and t.labels is None
    assert t.categories["city"] == ["paris", "lyon", "nice"] and t.lines[0] == 2 and t.parser == parser


@both
def test_dataset_standardises_numbers_and_one_hots_categories(tmp_path, parser):
    d = load_table_dataset(TableOptions(path=str(houses(tmp_path / "h.csv")), target="price"))
    assert d.info.extra["task"] == "regression" and d.info.output_dim == 1
    assert d.info.extra["feature_names"] == ["area", "rooms", "city=lyon", "city=nice", "city=paris"]
    x = d.train.tensors["x"]
    assert np.allclose(d.info.input_mean[:2].numpy(), x[:, :2].mean(0).numpy(), rtol=1e-5)
    assert d.info.input_mean[2:].tolist() == [0, 0, 0] and d.info.input_std[2:].tolist() == [1, 1, 1]
    assert (x[:, 2:].sum(1) == 1).all()  # one category per row
    assert len(d.train) + len(d.val) + len(d.test) == 60 and len(d.test) == 12


@both
def test_split_is_seeded_and_a_split_column_decides(tmp_path, parser):
    path = houses(tmp_path / "h.csv")
    a = load_table_dataset(TableOptions(path=str(path), target="price", seed=1)).test.tensors["y"]
    b = load_table_dataset(TableOptions(path=str(path), target="price", seed=1)).test.tensors["y"]
    assert a.tolist() == b.tolist()
    lines = path.read_text().splitlines()
    marked = [lines[0] + ",part"] + [f"{l},{'test' if i % 5 == 0 else 'train'}" for i, l in enumerate(lines[1:])]
    path.write_text("\n".join(marked))
    d = load_table_dataset(TableOptions(path=str(path), target="price", split_column="part"))
    assert len(d.test) == 12 and d.val is None and "part" not in d.info.extra["feature_names"]


@both
def test_classification_for_text_labels_and_unknown_category_is_zeros(tmp_path, parser):
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
    ("a,b,price\n1,2,3\n4,nan,6\n", "line 3, column 'b': nan is not a finite number"),
    ("a,b,price\n1,2\n", "line 2: 2 fields, the header has 3 (ragged row)"),
    ("a,b,price\n1,2,3\n\n4,x,6\n", "line 4, column 'b': 'x' is not a number"),
    ("a,b,price\r\n1,2,3\r\n4,5,inf\r\n", "line 3, column 'price': inf is not a finite number"),
    ("a,b,price\r1,2,3\r4,5,inf\r", "line 3, column 'price': inf is not a finite number"),
    ('a,b,price\n1,"2\n",3\n4,5,inf\n', "line 4, column 'price': inf is not a finite number"),
    ("a,b,price\n1,2,3\n4,5,1e999\n", "line 3, column 'price': inf is not a finite number"),
    ("a,b,price\n1,2,3\n4,-3.5e38,6\n", "line 3, column 'b': -inf is not a finite number"),  # float32 overflows
    ("a,b,price\n1,3.4028235e38,3\n4,5,3.41e38\n", "line 3, column 'price': inf is not a finite number"),
    ("\n\na,b,price\n1,2,3\n4,x,6\n", "line 5, column 'b': 'x' is not a number"),  # blank lines before the header
    ("\n\n\n", "empty file (no header)"),
    ('a,b,price\n1,2,3\n4,"5,6\n7,8,9\n', "line 3: a quoted field runs from here to line 4 (2 fields, the header "
                                         "has 3)"),
    ('a,b,price\n1,2,3\n4,"5,6\n', "line 3: a quoted field opens here and is never closed (2 fields"),
    ('{"a": 1, "price": 2}\n', "table reads CSV (.csv), TSV (.tsv, .tab, .txt) or Parquet (.parquet), not JSON"),
    ("a;b;price\n1;2;3\n", "line 1, column 'price': no such column (the header has: a;b;price; is the file "
                            "';'-separated? a .csv file is read with ',')"),
])
@both
def test_bad_data_names_file_line_and_column(tmp_path, parser, content, expected):
    path = tmp_path / ("bad.jsonl" if content.startswith("{") else "bad.csv")
    path.write_text(content)
    with pytest.raises(ZooError) as err:
        load_table_dataset(TableOptions(path=str(path), target="price"))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and expected in message


@both
def test_errors_after_blank_lines_and_quoted_line_breaks_name_the_right_line(tmp_path, parser):
    path = tmp_path / "q.csv"
    path.write_text('a,note,price\n1,"two\nlines",3\n\n2,ok,4\n4,ok,inf\n')
    with pytest.raises(ZooError, match=r"q.csv line 6, column 'price': inf is not a finite number"):
        load_table(path, "price", features=["a"])
    path.write_text("a,note,kind,part\n" + "".join(f"{i},n,{'xy'[i % 2]},train\n" for i in range(8))
                    + '8,"two\nlines",x,test\n\n9,n,z,test\n')
    with pytest.raises(ZooError, match=r"line 13, column 'kind': class 'z' has no sample in the training"):
        load_table_dataset(TableOptions(path=str(path), target="kind", features=["a"], split_column="part"))


@both
def test_bytes_that_are_not_utf8_in_a_column_not_used(tmp_path, parser):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"x,note,y\n1,ok,2\n3,caf\xe9,4\n")
    with pytest.raises(ZooError, match=r"latin1.csv line 3: not UTF-8 text"):
        load_table(path, "y", features=["x"])


@both
def test_a_class_with_no_training_sample_and_an_unknown_label(tmp_path, parser):
    path = tmp_path / "c.csv"
    rows = "".join(f"{i},{'a' if i % 2 else 'b'},{'test' if i % 4 == 0 else 'train'}\n" for i in range(20))
    path.write_text("x,y,part\n" + rows + "99,z,test\n")
    with pytest.raises(ZooError, match=r"line 22, column 'y': class 'z' has no sample in the training"):
        load_table_dataset(TableOptions(path=str(path), target="y", split_column="part"))
    with pytest.raises(ZooError, match=r"line 22, column 'y': unknown label 'z'"):
        load_table_dataset(TableOptions(path=str(path), target="y", classes=["a", "b"]))


@pytest.mark.slow
def test_parquet_without_pyarrow_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow → ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ZooError, match=r"t.parquet: reading Parquet needs pyarrow: pip install 'zoo-ml\[parquet\]'"):
        load_table(path, "y")


@both
def test_a_column_name_twice_in_the_header_is_an_error(tmp_path, parser):
    path = tmp_path / "dup.csv"
    path.write_text("a,a,b,price\n" + "".join(f"{i},{-i},{i % 3},{i}\n" for i in range(20)))
    with pytest.raises(ZooError, match=r"dup.csv line 1, column 'a': the header names this column twice"):
        load_table_dataset(TableOptions(path=str(path), target="price"))
    # a repeated column the data does not use is no error
    assert load_table(path, "price", features=["b"]).numeric_names == ["b"]


def test_a_column_name_twice_in_a_parquet_file_is_an_error(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(range(20)), pa.array(range(20)), pa.array([1.0] * 20)],
                                        names=["a", "a", "price"]), path)
    with pytest.raises(ZooError, match=r"dup.parquet line 1, column 'a': the header names this column twice"):
        load_table_dataset(TableOptions(path=str(path), target="price"))
    path.write_bytes(b"PAR1 not really PAR1")
    with pytest.raises(ZooError, match=r"dup.parquet: not a Parquet file pyarrow can read \(") as err:
        load_table_dataset(TableOptions(path=str(path), target="price"))
    assert "\n" not in str(err.value)


@both
def test_a_field_longer_than_128_kib_is_read(tmp_path, parser):
    path = tmp_path / "long.csv"
    path.write_text("a,c,y\n" + "".join(f"{i},{'xy'[i % 2]},{i}\n" for i in range(20)) + f"5,{'z' * 200_000},3\n")
    assert len(load_table(path, "y")) == 21


@pytest.mark.parametrize("value, expected", [(float("nan"), "nan"), (1e39, "inf")])
def test_parquet_non_finite_values_name_their_row(tmp_path, value, expected):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, value, 4.0] * 5, "price": [1.0] * 20}), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning printed above the one-line error
        with pytest.raises(ZooError, match=rf"h.parquet row 3, column 'a': {expected} is not a finite number"):
            load_table_dataset(TableOptions(path=str(path), target="price"))
    pq.write_table(pa.table({"a": [1.0] * 20, "price": [1.0, 2.0, value, 4.0] * 5}), path)  # the target
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ZooError, match=rf"h.parquet row 3, column 'price': {expected} is not a finite number"):
            load_table_dataset(TableOptions(path=str(path), target="price"))


@both
def test_a_feature_listed_twice_or_the_split_column_as_a_feature_is_an_error(tmp_path, parser):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"lists 'area' more than once"):
        TableOptions(path="h.csv", target="price", features=["area", "rooms", "area"])
    with pytest.raises(ValidationError, match=r"lists 'city' more than once"):
        TableOptions(path="h.csv", target="price", categorical=["city", "city"])
    path = tmp_path / "s.csv"
    path.write_text("a,split,price\n" + "".join(f"{i},{'test' if i % 4 == 0 else 'train'},{i}\n" for i in range(20)))
    with pytest.raises(ZooError, match=r"s.csv line 1, column 'split': the split column is also listed as a feature"):
        load_table_dataset(TableOptions(path=str(path), target="price", features=["a", "split"], split_column="split"))


@both
def test_a_missing_value_marker_on_the_first_row_does_not_make_numbers_categories(tmp_path, parser):
    """UCI files mark missing values with '?': on the first row it made 'age' categorical, silently."""
    path = tmp_path / "adult.csv"
    path.write_text("age,city,y\n?,paris,1\n" + "".join(f"{20 + i},{'paris' if i % 2 else 'lyon'},{i}\n" for i in range(30)))
    with pytest.raises(ZooError, match=r"adult.csv line 2, column 'age': '\?' made this column categorical, but "
                                       r"its other values are numbers"):
        load_table_dataset(TableOptions(path=str(path), target="y"))
    # listed as categorical, it is read as the user says; a column of words is no error
    d = load_table_dataset(TableOptions(path=str(path), target="y", categorical=["age"]))
    assert "age=?" in d.info.extra["feature_names"]
    assert load_table_dataset(TableOptions(path=str(path), target="y", features=["city"])).info.input_shape == (2,)


def test_parquet_label_and_category_errors_name_their_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    labels = ["a", "b"] * 10 + ["c"]
    pq.write_table(pa.table({"x": [float(i) for i in range(21)], "split": ["train"] * 20 + ["test"], "y": labels}), path)
    with pytest.raises(ZooError, match=r"c.parquet row 21, column 'y': class 'c' has no sample in the training split"):
        load_table_dataset(TableOptions(path=str(path), target="y", split_column="split"))
    # categories and labels are stripped, as the CSV parsers and zoo predict strip them
    pq.write_table(pa.table({"city": [" paris", "lyon "] * 10, "y": ["a ", "b"] * 10}), path)
    d = load_table_dataset(TableOptions(path=str(path), target="y"))
    assert d.info.class_names == ["a", "b"] and d.info.extra["feature_names"] == ["city=lyon", "city=paris"]
    assert decode_inputs(d.info.extra["raw_inputs"], [{"city": " paris "}])["x"].tolist() == [[0, 1]]
    pq.write_table(pa.table({"age": ["?"] + [str(20 + i) for i in range(20)], "y": [1.0] * 21}), path)
    with pytest.raises(ZooError, match=r"c.parquet row 1, column 'age': '\?' made this column categorical"):
        load_table_dataset(TableOptions(path=str(path), target="y"))


@both
def test_a_column_without_a_name_is_no_silent_feature(tmp_path, parser):
    """pandas' ``df.to_csv(path)`` writes its index as a first column named ''."""
    path = tmp_path / "p.csv"
    path.write_text(",area,price\n" + "".join(f"{i},{30 + i},{3000 * (30 + i)}\n" for i in range(20)))
    with pytest.raises(ZooError, match=r"p.csv line 1, column 1: a column without a name \(pandas writes its index "
                                       r"so: df.to_csv\(path, index=False\) leaves it out\)"):
        load_table_dataset(TableOptions(path=str(path), target="price"))
    assert load_table(path, "price", features=["area"]).numeric_names == ["area"]


def test_csv_without_pyarrow_is_read_by_the_csv_module(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert load_table(houses(tmp_path / "h.csv"), "price").parser == "csv module"


@both
def test_decode_rows_errors_name_row_and_column(tmp_path, parser):
    d = load_table_dataset(TableOptions(path=str(houses(tmp_path / "h.csv")), target="price"))
    meta = d.info.extra["raw_inputs"]
    rows = tmp_path / "rows.csv"
    rows.write_text("area,city\n100,paris\n")
    with pytest.raises(ZooError, match=r"rows.csv line 1, column 'rooms': no such column"):
        decode_inputs(meta, str(rows))
    with pytest.raises(ZooError, match=r"input row 2, column 'area': 'big' is not a number"):
        decode_inputs(meta, [{"area": 1, "rooms": 1, "city": "nice"}, {"area": "big", "rooms": 1, "city": "nice"}])


def test_a_json_boolean_names_a_true_false_category_of_a_csv(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("member,price\n" + "".join(f"{'true' if i % 2 else 'false'},{i}\n" for i in range(20)))
    meta = load_table_dataset(TableOptions(path=str(path), target="price")).info.extra["raw_inputs"]
    assert decode_inputs(meta, [{"member": True}, {"member": False}, {"member": "true"}])["x"].tolist() == [
        [0, 1], [1, 0], [0, 1]]


def test_decode_rows_wrong_types_and_bad_bytes_are_one_line_errors(tmp_path):
    path = tmp_path / "z.csv"
    path.write_text("area,zip,price\n" + "".join(f"{i},{75001 + i % 2},{i}\n" for i in range(20)))
    meta = load_table_dataset(TableOptions(path=str(path), target="price", categorical=["zip"])).info.extra["raw_inputs"]
    # A number float32 cannot hold would run as inf and answer NaN: refused, as in training.
    with pytest.raises(ZooError, match=r"^input row 1, column 'area': 1e\+39 is not a finite number"):
        decode_inputs(meta, [{"area": 1e39, "zip": 75001}])
    with pytest.raises(ZooError, match=r"^input row 1, column 'area': 1000\d* is not a finite number"):
        decode_inputs(meta, [{"area": 10 ** 400, "zip": 75001}])  # a JSON integer float() cannot hold
    # A list or an object is no category: an error, not a silent "unknown category".
    for value in (["75001"], {"a": 1}):
        with pytest.raises(ZooError, match=r"^input row 1, column 'zip': expected a string or a number"):
            decode_inputs(meta, [{"area": 1, "zip": value}])
    with pytest.raises(ZooError, match=r"^input row 1, column 'area': empty value$"):  # as in training
        decode_inputs(meta, [{"area": " ", "zip": 75001}])
    # An integral JSON float names the integer category (pandas writes 75001.0 for a column with nulls).
    assert decode_inputs(meta, [{"area": 1, "zip": 75001.0}])["x"].tolist() == [[1, 1, 0]]
    rows = tmp_path / "rows.json"
    rows.write_bytes(b'\xef\xbb\xbf[{"area": 1, "zip": 75001}]')  # Notepad's UTF-8 writes a BOM
    assert decode_inputs(meta, rows)["x"].tolist() == [[1, 1, 0]]
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"area": 1, "zip": 75001}\n{"area": 1' + "0" * 5000 + ', "zip": 75001}\n')
    with pytest.raises(ZooError, match=r"rows.jsonl line 2: not a JSON object: Exceeds the limit"):
        decode_inputs(meta, rows)
    with pytest.raises(ZooError, match=r"input: a row is not a JSON object: Exceeds the limit"):  # zoo serve's rows
        decode_inputs(meta, ['{"area": 1' + "0" * 5000 + ', "zip": 75001}'])
    rows = tmp_path / "rows.csv"
    rows.write_bytes(b"area,zip\n1,75001\n2,caf\xe9\n")
    with pytest.raises(ZooError, match=r"rows.csv line 3: not UTF-8 text") as err:
        decode_inputs(meta, str(rows))
    assert "\n" not in str(err.value)


def test_a_classifier_on_integer_labels_is_told_how_to_read_them_as_classes(tmp_path):
    """0/1 labels read as numbers make a regression table; the error says which option fixes it."""
    from zoo.core import api

    path = tmp_path / "b.csv"
    path.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    sets = ("data.name=table", f"data.options.path={path}", "data.options.target=label")
    entry, _, config = api.resolve_config("logistic", sets=sets)
    with pytest.raises(ZooError, match=r"is for regression \(--set data.options.task=classification makes "
                                       r"it classification data\)$"):
        api.load_data(config, entry)


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


@pytest.mark.slow
def test_bad_csv_exits_2_before_writing_the_run(tmp_path):
    (tmp_path / "bad.csv").write_text("a,price\n1,2\nx,3\n")
    result = run_cli("train", "mlp", "--dataset", "table", "--set", "data.options.path=bad.csv",
                     "--set", "data.options.target=price", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "bad.csv line 3, column 'a'" in result.stderr and not (tmp_path / "run").exists()


# -- the two parsers agree ----------------------------------------------------------------------

def _parse_both(monkeypatch, path, target, **options):
    """(pyarrow's table, the csv module's table) of one file."""
    pytest.importorskip("pyarrow")
    monkeypatch.setattr(table, "FAST_CSV", True)
    fast = load_table(path, target, **options)
    monkeypatch.setattr(table, "FAST_CSV", False)
    return fast, load_table(path, target, **options)


def _assert_same(fast, slow):
    for name in ["numbers", "target", "split"]:
        a, b = (getattr(fast, name), getattr(slow, name)) if name != "numbers" else (fast.numbers(), slow.numbers())
        assert (a is None and b is None) or (a.dtype == b.dtype and a.tobytes() == b.tobytes()), name
    assert fast.codes.keys() == slow.codes.keys()
    assert all(fast.codes[c].tobytes() == slow.codes[c].tobytes() for c in fast.codes)
    assert (fast.numeric_names, fast.categorical_names, fast.categories, fast.labels, fast.first_line) == \
        (slow.numeric_names, slow.categorical_names, slow.categories, slow.labels, slow.first_line)
    assert list(fast.lines) == list(slow.lines)


AGREE = {  # name: (file bytes, target, options, whether pyarrow reads it: else the csv module does)
    "spaces, quotes, signs, blank lines at the end": (
        b'x,city,kind\n 1.5 ," paris",a\n+.5,"lyon, fr", b\n1e5,paris ,a\n-0,"say ""hi""",b \n\n\n',
        "kind", {}, True),
    "CRLF and a byte order mark": ("\ufeffx,c,y\r\n1,a,2\r\n3,b,4\r\n5,a,6".encode(), "y", {}, True),
    "lone CR": (b"x,c,y\r1,a,2\r3,b,4\r", "y", {}, True),
    "rounding to float32 as numpy does": (
        b"x,y\n1.000000059604644775390625000000001,0.1\n3.4028235e38,1e-46\n0.30000001192092896,7\n", "y", {}, True),
    "UTF-8 and a repeated name in columns not used": (
        "x,junk,junk,y\n1,café,ü,2\n3,naïve,ß,4\n".encode(), "y", {"features": ["x"]}, True),
    "split names in any case, numbers as categories": (
        b"x,zip,part,y\n1,75001,Train,a\n2,69001, test ,b\n3,75001,dev,a\n4,06000,VALIDATION,b\n5,75001,train,b\n",
        "y", {"split_column": "part", "categorical": ["zip"]}, True),
    "numeric labels as classes": (b"x,y\n1,0\n2,1\n3,0\n", "y", {"task": "classification"}, True),
    "blank line between rows": (b"x,c,y\n1,a,2\n\n3,b,4\n", "y", {}, False),
    "quoted line break in a column not used": (b'x,n,y\n1,"a\nb",2\n3,c,4\n', "y", {"features": ["x"]}, False),
    "quoted line break in a category": (b'x,c,y\n1,"a\nb",2\n3,c,4\n', "y", {}, False),
    "a number Python reads but not pyarrow": (b"x,y\n1_000,2\n3,4\n", "y", {}, False),
    "a tab-separated file": (b"x\tc\ty\n1\ta b\t2\n3\tc\t4\n", "y", {}, True),
}


@pytest.mark.parametrize("name", AGREE)
def test_parsers_agree_on_odd_but_valid_files(tmp_path, monkeypatch, name):
    content, target, options, fast_path = AGREE[name]
    path = tmp_path / ("t.tsv" if b"\t" in content else "t.csv")
    path.write_bytes(content)
    fast, slow = _parse_both(monkeypatch, path, target, **options)
    assert fast.parser == ("pyarrow" if fast_path else "csv module") and slow.parser == "csv module"
    _assert_same(fast, slow)


@pytest.mark.slow
def test_parsers_agree_across_record_batches_and_give_the_same_dataset(tmp_path, monkeypatch):
    """Small batches; categories first seen late; rows that get shorter (the arrays grow)."""
    monkeypatch.setattr(table_arrow, "BLOCK", 1024)
    rng = np.random.default_rng(3)
    rows = [f"{rng.normal():.6f},{'x' * 300},{'ab'[i % 2]},{i % 3}" for i in range(40)]
    rows += [f"{rng.normal():.3f},-,{'abcdefg'[min(6, i // 450)]},{i % 3}" for i in range(3000)]
    path = tmp_path / "long.csv"
    path.write_text("v,pad,c,y\n" + "\n".join(rows) + "\n")
    fast, slow = _parse_both(monkeypatch, path, "y", features=["v", "c"], task="classification")
    assert fast.parser == "pyarrow" and fast.first_line["c"]["g"] == slow.first_line["c"]["g"] == 2 + 40 + 2700
    _assert_same(fast, slow)
    datasets = []
    for fast_csv in (True, False):
        monkeypatch.setattr(table, "FAST_CSV", fast_csv)
        datasets.append(load_table_dataset(TableOptions(path=str(path), target="y", features=["v", "c"])))
    a, b = datasets
    for split in ("train", "val", "test"):
        for key in ("x", "y"):
            assert torch.equal(getattr(a, split).tensors[key], getattr(b, split).tensors[key])
    assert torch.equal(a.info.input_mean, b.info.input_mean) and torch.equal(a.info.input_std, b.info.input_std)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.floats(allow_nan=False, allow_infinity=False, width=64),
                               st.sampled_from(["a", " a", "b ", "c", '"c"', '"d,e"']),
                               st.integers(-3, 3)), min_size=1, max_size=80),
       style=st.sampled_from(["repr", ".3e", ".17g", ".2f"]))
def test_parsers_agree_on_generated_tables(tmp_path, monkeypatch, rows, style):
    monkeypatch.setattr(table_arrow, "BLOCK", 256)
    lines = [f"{x!r}" if style == "repr" else f"{x:{style}}" for x, _, _ in rows]
    body = "".join(f"{v},{c},{y}\n" for v, (_, c, y) in zip(lines, rows))
    path = tmp_path / "g.csv"
    path.write_text("v,c,y\n" + body)
    outcomes = []
    for fast_csv in (True, False):  # a table each, or the same error (a float64 beyond float32: inf)
        monkeypatch.setattr(table, "FAST_CSV", fast_csv)
        try:
            outcomes.append(load_table(path, "y"))
        except ZooError as err:
            outcomes.append(str(err))
    if isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1]
    else:
        _assert_same(*outcomes)


@both
def test_matrix_written_by_blocks_on_threads_is_the_gathered_one(tmp_path, monkeypatch, parser):
    """Blocks of 7 rows (several per record batch and across batches) on 3 threads: each row of
    x is its file row's numbers then its one-hots, in split order."""
    monkeypatch.setattr(table_arrow, "BLOCK", 512)
    monkeypatch.setattr(table, "BLOCK_ROWS", 7)
    monkeypatch.setattr(table.torch, "get_num_threads", lambda: 3)
    rng = np.random.default_rng(5)
    path = tmp_path / "t.csv"
    path.write_text("a,c,b,d,y\n" + "".join(f"{rng.normal():.5f},{'pqr'[i % 3]},{rng.normal():.7g},"
                                            f"{'uv'[i % 7 == 0]},{i % 2}\n" for i in range(300)))
    t = load_table(path, "y")
    assert len(t.numeric) > 5 if parser == "pyarrow" else len(t.numeric) == 1  # record batches
    order = np.random.default_rng(0).permutation(len(t))
    categories = {"c": ["q", "r"], "d": ["u", "v"]}  # "p" unseen: zeros
    x = table.encode_matrix(t, categories, order)
    expected = np.zeros((300, 6), np.float32)
    expected[:, :2] = t.numbers()[order]
    for c, at in (("c", 2), ("d", 4)):
        for i, row in enumerate(order):
            value = t.categories[c][t.codes[c][row]]
            if value in categories[c]:
                expected[i, at + categories[c].index(value)] = 1
    assert x.tobytes() == expected.tobytes()


def test_column_stats_match_numpy():
    x = (np.random.default_rng(0).normal(size=(150_001, 3)) * [1, 0.1, 5] + [0, 1e4, -3]).astype(np.float32)
    mean, std = column_stats(x)
    assert np.allclose(mean, x.mean(0, dtype=np.float64), rtol=1e-12, atol=1e-9)
    assert np.allclose(std, x.std(0, dtype=np.float64), rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("target, task", [("price", "regression"), ("city", "classification")])
def test_zoo_serve_answers_raw_rows_once_per_output_name(tmp_path, target, task):
    """Raw rows to ``zoo serve``: every output name once (a regression's own ``prediction``
    tensor is its answer: no second ``prediction``), with ``zoo predict``'s values."""
    from starlette.testclient import TestClient

    from zoo.core import api
    from zoo.core.serve import build_app

    houses(tmp_path / "houses.csv", n=60)
    options = {"data": {"name": "table", "options": {"path": str(tmp_path / "houses.csv"), "target": target}},
               "train": {"epochs": 1, "progress": False, "device": "cpu"}}
    api.train("mlp", options=options, out=str(tmp_path / "run"), log=None)
    rows = [{"area": 100, "rooms": 3, "city": "paris", "price": 1}, {"area": 50, "rooms": 1, "city": "lyon", "price": 1}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    expected, _ = api.predict(str(tmp_path / "run"), str(tmp_path / "rows.json"))
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": [json.dumps(r) for r in rows]}]}
    with TestClient(build_app([str(tmp_path / "run")], log=lambda line: None)) as client:
        response = client.post("/v2/models/run/infer", json=body)
    assert response.status_code == 200, response.text
    names = [o["name"] for o in response.json()["outputs"]]
    assert len(names) == len(set(names)) and "prediction" in names, names
    answer = next(o for o in response.json()["outputs"] if o["name"] == "prediction")
    got = [json.loads(a) for a in answer["data"]] if answer["datatype"] == "BYTES" else answer["data"]
    if task == "regression":
        assert answer["datatype"] == "FP32" and np.allclose(got, np.ravel(expected), rtol=1e-5)
    else:
        assert got == json.loads(json.dumps(expected))


def test_a_folder_given_at_predict_time_names_no_training_option(tmp_path):
    (tmp_path / "inputs").mkdir()
    meta = {"kind": "table", "input": "x", "columns": [{"name": "area", "type": "numeric"}]}
    with pytest.raises(ZooError, match=r"inputs: not a file \(this model takes one file of input\)$"):
        decode_inputs(meta, tmp_path / "inputs")


def test_unknown_categories_from_a_file_are_counted_in_one_warning(tmp_path, capsys):
    meta = {"kind": "table", "input": "x", "columns": [
        {"name": "area", "type": "numeric"}, {"name": "city", "type": "categorical", "categories": ["lyon", "paris"]}]}
    (tmp_path / "rows.csv").write_text("area,city\n100,paris\n60,marseille\n80,berlin\n")
    x = decode_inputs(meta, tmp_path / "rows.csv")["x"]
    assert x.tolist() == [[100, 0, 1], [60, 0, 0], [80, 0, 0]]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: 2 value(s) of categorical columns not seen in training, encoded as none of the known "
                   f"categories (all zeros); the first: {tmp_path / 'rows.csv'} line 3, column 'city': 'marseille'"]
    decode_inputs(meta, [{"area": 1, "city": "nice"}])  # zoo serve's rows: no warning per request
    assert capsys.readouterr().err == ""
