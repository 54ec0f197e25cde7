"""The ``text``, ``tagged-text`` and ``pairs`` own-data formats: loading, bad data (one line:
file, line, column), raw-input decoding, and a CoNLL file training ``lstm`` as a tagger."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli
from zoo.core.contract.errors import ZooError
from zoo.plugins.datasets.own import decode_inputs
from zoo.plugins.datasets.own.pairs import PairsOptions, load_pairs
from zoo.plugins.datasets.own.text import OwnTextOptions, TaggedTextOptions, load_tagged_text, load_text

GOOD, BAD = ["great", "lovely", "fine"], ["awful", "dull", "poor"]


def reviews(path, n=30):
    rows = [f'"a {GOOD[i % 3] if i % 2 else BAD[i % 3]} film, truly",{"pos" if i % 2 else "neg"}' for i in range(n)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def conll(path, n=20):
    sentence = [("fly", "O"), ("to", "O"), ("new", "B-city"), ("york", "I-city"), ("with", "O"), ("ann", "B-person")]
    path.write_text("-DOCSTART-\tO\n\n" + "".join("".join(f"{w}\t{t}\n" for w, t in sentence) + "\n" for _ in range(n)))
    return path


def test_text_csv_and_jsonl(tmp_path):
    d = load_text(OwnTextOptions(path=str(reviews(tmp_path / "r.csv"))))
    assert d.info.class_names == ["neg", "pos"] and len(d.train) + len(d.val) + len(d.test) == 30
    assert d.train.tensors["tokens"].shape[1] == 5  # a, word, ",", film, truly
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": f"{w} day", "y": k}) for k, w in list(zip("abab", ["x", "y", "x", "y"])) * 3))
    d = load_text(OwnTextOptions(path=str(jsonl), text_field="body", label_field="y", test_fraction=0.25))
    assert d.info.num_classes == 2 and d.info.extra["raw_inputs"]["kind"] == "text"
    arrays = decode_inputs(d.info.extra["raw_inputs"], ["x day", "y"])
    assert arrays["tokens"].shape == (2, 2) and arrays["lengths"].tolist() == [2, 1]


#: A file of each format, read with the options of a two-class text classifier or a tagger.
_LOADERS = {"csv": lambda path: load_text(OwnTextOptions(path=path, classes=["a", "b"])),
            "conll": lambda path: load_tagged_text(TaggedTextOptions(path=path))}


@pytest.mark.parametrize("suffix, content, expected", [
    ("csv", "text,label\n", "no data rows"),
    ("csv", "\r\ntext,label\nhi,a\n,b\n", "line 4, column 'text': empty text"),  # a blank line before the header
    ("csv", 'text,label\n"hi,a\nho,b\nhey,a\n', "line 2: a quoted field runs from here to line 4 (1 fields, "
                                               "the header has 2)"),  # a quote that is text, never closed
    ("csv", "words,label\nhi,a\n", "line 1, column 'text': no such column"),
    ("csv", "text,label\nhi,a\n,b\n", "line 3, column 'text': empty text"),
    ("csv", "text,label\nhi,a\nho,\n", "line 3, column 'label': empty label"),
    ("csv", "text,label\nhi,a\nho,b,c\n", "line 3: 3 fields, the header has 2 (ragged row)"),
    ("csv", "text,label\nhi,a\nho,c\n", "line 3, column 'label': unknown label 'c'"),
    ("csv", "text,text,label\nhi,ho,a\n", "line 1, column 'text': the header names this column twice"),
    ("conll", "fly\tO\nto\n", "line 2, column 2: no tag"),
    ("conll", "fly\tO\nto\tO\tx\n", "line 2, column 3: 3 columns, earlier lines have 2 (ragged)"),
    ("conll", "fly\tO\nto\tCITY\n", "line 2, column 2: tag 'CITY' is not BIO"),
    ("conll", "fly\tO\n\tO\n", "line 2, column 1: empty token"),
    ("conll", "fly\tO\nnew york\tB-city\n", "line 2, column 1: 'new york' holds a space"),  # one token a line
    ("conll", "\n\n", "no sentences"),
])
def test_bad_text_and_tagged_text_are_one_line_errors_naming_the_file(tmp_path, suffix, content, expected):
    path = tmp_path / f"bad.{suffix}"
    path.write_text(content)
    with pytest.raises(ZooError) as err:
        _LOADERS[suffix](str(path))
    assert str(err.value).startswith(str(path)) and expected in str(err.value) and "\n" not in str(err.value)


def test_text_empty_file_and_class_without_training_sample(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ZooError, match="empty.csv: empty file"):
        load_text(OwnTextOptions(path=str(empty)))
    path = tmp_path / "t.csv"
    path.write_text("text,label,split\n" + "hi there,a,train\nho,b,train\n" * 3 + "odd one,c,test\n")
    with pytest.raises(ZooError, match=r"t.csv line 8, column 'label': class 'c' has no sample in the training"):
        load_text(OwnTextOptions(path=str(path), split_column="split"))


@pytest.mark.parametrize("name, content, load", [
    ("t.csv", b"text,label\nhi,a\nho,b\ncaf\xe9,a\n", lambda p: load_text(OwnTextOptions(path=p))),
    ("t.conll", b"fly\tO\n\nto\tO\ncaf\xe9\tO\n", lambda p: load_tagged_text(TaggedTextOptions(path=p))),
    ("p.tsv", b"a\tb\nb\ta\nb\tb\ncaf\xe9\ta\n", lambda p: load_pairs(PairsOptions(path=p))),
    ("p.csv", b"source,target\na,b\nb,a\ncaf\xe9,a\n", lambda p: load_pairs(PairsOptions(path=p))),
    ("t.jsonl", b'{"text": "a", "label": "a"}\n' * 3 + b'{"text": "caf\xe9", "label": "b"}\n',
     lambda p: load_text(OwnTextOptions(path=p))),
])
def test_bytes_that_are_not_utf8_name_their_line(tmp_path, name, content, load):
    """A Windows-1252 file (café as 0xE9): the decoder reads ahead, so the line comes from the bytes."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ZooError, match=rf"^{path} line 4: not UTF-8 text \(invalid continuation byte\)$"):
        load(str(path))


def test_a_relative_path_not_found_says_where_it_was_looked_for(tmp_path, monkeypatch):
    """A TOML config's relative data.options.path is read from the current folder, not the config's."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ZooError, match=rf"^data/r.csv: no such file \(data.options.path; a relative path is "
                                       rf"read from the current folder, {tmp_path}\)$"):
        load_text(OwnTextOptions(path="data/r.csv"))


def test_jsonl_with_a_bom_and_crlf_is_read(tmp_path):
    """Notepad's UTF-8 writes a BOM before the first object."""
    path = tmp_path / "r.jsonl"
    rows = [json.dumps({"text": f"{w} day", "label": w}) for w in ["good", "bad"] * 10]
    path.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n\r\n").encode())
    d = load_text(OwnTextOptions(path=str(path)))
    assert d.info.class_names == ["bad", "good"] and len(d.train) + len(d.val) + len(d.test) == 20


def test_a_field_longer_than_128_kib_is_read(tmp_path):
    """A long document in one CSV field (the csv module refuses fields over 131,072 characters by default)."""
    path = reviews(tmp_path / "r.csv")
    with path.open("a") as f:
        f.write('"' + "great " * 40_000 + '",pos\n')
    d = load_text(OwnTextOptions(path=str(path), max_length=16))
    assert len(d.train) + len(d.val) + len(d.test) == 31


def test_tagged_text_reads_conll_with_bio_tags(tmp_path):
    d = load_tagged_text(TaggedTextOptions(path=str(conll(tmp_path / "t.conll"))))
    assert d.info.class_names == ["O", "B-city", "I-city", "B-person", "I-person"]
    assert d.train.tensors["tags"][0].tolist() == [0, 0, 1, 2, 0, 3]
    arrays = decode_inputs(d.info.extra["raw_inputs"], ["fly to new york", "with ann"])
    assert arrays["lengths"].tolist() == [4, 2]


def test_a_tag_type_with_no_training_sample_is_an_error(tmp_path):
    """As a class with no training row in ``text``/``table``: the model would have outputs it never trained."""
    train, test = tmp_path / "train.conll", tmp_path / "test.conll"
    train.write_text("fly\tO\nto\tO\nparis\tB-city\n\n" * 10)
    test.write_text("fly\tO\nparis\tB-city\n\nmeet\tO\nann\tB-person\nlee\tI-person\n")
    with pytest.raises(ZooError, match=r"test.conll line 5, column 2: tag type 'person' has no sample in the "
                                       r"training split"):
        load_tagged_text(TaggedTextOptions(path=str(train), test_path=str(test)))
    one = tmp_path / "one.conll"  # in one file, the seeded split may leave a rare type out of training
    one.write_text("fly\tO\nparis\tB-city\n\n" * 10 + "meet\tO\nann\tB-person\n")
    with pytest.raises(ZooError, match=r"one.conll line 32, column 2: tag type 'person' has no sample"):
        load_tagged_text(TaggedTextOptions(path=str(one), test_fraction=0.5, seed=1))


def test_pairs_tsv_and_bad_line(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{s[::-1]}\n" for s in ["a b c", "b c", "c a", "a"] * 5))
    d = load_pairs(PairsOptions(path=str(path)))
    assert d.info.extra["max_target_length"] == 3 and d.info.extra["vocab_size"] == 7  # 4 specials + a b c
    target = d.train.tensors["target"][0]
    assert 3 in target.tolist()  # <eos>
    arrays = decode_inputs(d.info.extra["raw_inputs"], ["a b", "c"])
    assert arrays["lengths"].tolist() == [2, 1]
    path.write_text("a b\tb a\nc\n")
    with pytest.raises(ZooError, match=r"p.tsv line 2: 1 tab-separated fields"):
        load_pairs(PairsOptions(path=str(path)))
    path.write_text("a b\tb a\nc\t \n")
    with pytest.raises(ZooError, match=r"p.tsv line 2, column 'target': empty sequence"):
        load_pairs(PairsOptions(path=str(path)))


def test_raw_sentence_files_at_predict(tmp_path):
    """What a user passes to ``zoo predict``: a BOM, a Path without a suffix, a pairs TSV with its header."""
    meta = load_text(OwnTextOptions(path=str(reviews(tmp_path / "r.csv")))).info.extra["raw_inputs"]
    expected = decode_inputs(meta, ["a great film", "an awful film"])
    bom = tmp_path / "s.txt"
    bom.write_bytes("\ufeffa great film\r\nan awful film\r\n\r\n".encode())
    plain = tmp_path / "sentences"
    plain.write_text("a great film\nan awful film\n")
    for source in (bom, plain):
        got = decode_inputs(meta, source)
        assert got["tokens"].tolist() == expected["tokens"].tolist(), source
    bom.write_bytes(b"fine\ncaf\xe9 film\n")
    with pytest.raises(ZooError, match=r"s.txt line 2: not UTF-8 text"):
        decode_inputs(meta, bom)
    path = tmp_path / "p.tsv"
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{s[::-1]}\n" for s in ["a b c", "b c", "c a", "a"] * 5))
    pairs = load_pairs(PairsOptions(path=str(path))).info.extra["raw_inputs"]
    assert decode_inputs(pairs, path)["lengths"].tolist() == [3, 2, 2, 1] * 5  # the header line is skipped
    path.write_bytes(b"source\ttarget\na b\tb a\nb\xe9\ta\n")
    with pytest.raises(ZooError, match=r"p.tsv line 3: not UTF-8 text"):
        decode_inputs(pairs, path)


@pytest.mark.slow
def test_conll_trains_lstm_as_a_tagger_and_predicts_raw_sentences(tmp_path):
    conll(tmp_path / "ner.conll", n=40)
    run = tmp_path / "run"
    result = run_cli("train", "lstm", "--dataset", "tagged-text", "--set", "data.options.path=ner.conll",
                     "--set", "train.epochs=15", "--set", "train.progress=false", "--out", str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "sequence-tagging" and summary["metrics"]["slot_f1"] > 0.5
    (tmp_path / "s.txt").write_text("fly to new york with ann\n")
    predicted = run_cli("predict", str(run), "--input", "s.txt", "--json", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert len(json.loads(predicted.stdout)[0]) == 6
    # a file without a suffix is read as sentences (its name was tokenised as the sentence), and
    # a CoNLL file of tokens without tags (what one predicts on) is read as sentences too
    (tmp_path / "sentences").write_text("fly to new york with ann\nfly to ann\n")
    (tmp_path / "q.conll").write_text("fly\nto\nnew\nyork\n\nwith\nann\n")
    for name, lengths in (("sentences", [6, 3]), ("q.conll", [4, 2])):
        predicted = run_cli("predict", str(run), "--input", name, "--json", cwd=tmp_path)
        assert predicted.returncode == 0, predicted.stderr
        assert [len(tags) for tags in json.loads(predicted.stdout)] == lengths
    (tmp_path / "cp1252.txt").write_bytes(b"fly to ann\nfly to caf\xe9\n")  # Windows-1252
    failed = run_cli("predict", str(run), "--input", "cp1252.txt", cwd=tmp_path)
    assert failed.returncode == 2 and failed.stderr.strip().count("\n") == 0
    assert "cp1252.txt line 2: not UTF-8 text" in failed.stderr, failed.stderr


@pytest.mark.slow
def test_bad_conll_exits_2_before_writing_the_run(tmp_path):
    (tmp_path / "bad.conll").write_text("fly\tO\nto\tB-city\nnew\n")
    result = run_cli("train", "lstm", "--dataset", "tagged-text", "--set", "data.options.path=bad.conll",
                     "--out", "run", cwd=tmp_path)
    assert result.returncode == 2 and "bad.conll line 3, column 2: no tag" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and not (tmp_path / "run").exists()


def test_numeric_labels_are_ordered_by_value_as_table_orders_them(tmp_path):
    from zoo.plugins.datasets.own.common import sorted_labels

    path = tmp_path / "stars.csv"
    path.write_text("text,label\n" + "".join(f"review {i},{(2, 10, 1)[i % 3]}\n" for i in range(30)))
    assert load_text(OwnTextOptions(path=str(path))).info.class_names == ["1", "2", "10"]
    assert sorted_labels(["b", "10", "a"]) == ["10", "a", "b"]  # not all numbers: as text

