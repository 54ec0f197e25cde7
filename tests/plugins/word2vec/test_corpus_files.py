"""Where word2vec's corpora come from: the data roots (core.data.locate), text8's one long line,
and the optional evaluation files."""

from __future__ import annotations

import pytest

from zoo.core.contract.errors import DataNotFound, ZooError
from zoo.plugins.word2vec import corpus
from zoo.plugins.word2vec.corpus import CorpusOptions, iter_documents, load_text8, load_wiki_sample
from zoo.plugins.word2vec.run_files import evaluation_folder

WORDS = "anarchism originated as a term of abuse first used against early working class radicals".split()


@pytest.fixture
def roots(tmp_path, monkeypatch):
    made = {name: tmp_path / name for name in ("data_dir", "env", "cache")}
    for folder in made.values():
        folder.mkdir()
    monkeypatch.setenv("ZOO_DATA_DIR", str(made["env"]))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(made["cache"]))
    return made


def text8_file(root, repeats: int = 40):
    """text8's format: one line of lower-case words separated by single spaces, no newline."""
    path = root / "text" / "text8"
    path.parent.mkdir(parents=True)
    path.write_text(" " + " ".join(WORDS * repeats), encoding="utf-8")
    return path


def test_text8_loads_from_the_cache(roots):
    path = text8_file(roots["cache"])
    data = load_text8(CorpusOptions(min_count=1, sample=0.0), None)
    assert data.info.extra["corpus"] == str(path)
    assert data.info.extra["corpus_tokens"] == len(WORDS) * 40 and len(data.info.extra["vocab"]) == len(set(WORDS))


def test_a_long_line_is_cut_at_spaces_into_documents(roots, monkeypatch):
    path = text8_file(roots["cache"])
    monkeypatch.setattr(corpus, "MAX_LINE_BYTES", 64)
    docs = list(iter_documents(path))
    assert len(docs) > 10 and all(len(d) >= 1 for d in docs)
    assert [w for d in docs for w in d] == WORDS * 40  # no word split or lost at a cut
    path.write_text("x" * 200 + " tail", encoding="utf-8")  # a token longer than the limit
    assert [w for d in iter_documents(path) for w in d] == ["x" * 200, "tail"]


def test_a_bad_byte_in_a_long_line_names_line_and_offset(roots, monkeypatch):
    path = roots["cache"] / "bad.txt"
    path.write_bytes(b"good words here\n" + b"more words " * 20 + b"caf\xe9 end")
    monkeypatch.setattr(corpus, "MAX_LINE_BYTES", 64)
    with pytest.raises(ZooError, match=r"line 2 is not valid UTF-8 \(byte 0xe9 at file offset 239\)"):
        list(iter_documents(path))


def test_wiki_sample_search_order_and_missing(roots):
    for name in ("cache", "env", "data_dir"):
        (roots[name] / "text").mkdir()
        (roots[name] / "text" / "wiki-sample.txt").write_text(f"{name} " * 20 + "\n")
    options = CorpusOptions(min_count=1, window=2)
    assert load_wiki_sample(options, str(roots["data_dir"])).info.extra["vocab"] == ["data_dir"]
    assert load_wiki_sample(options, None).info.extra["vocab"] == ["env"]
    (roots["env"] / "text" / "wiki-sample.txt").unlink()
    assert load_wiki_sample(options, None).info.extra["vocab"] == ["cache"]
    (roots["cache"] / "text" / "wiki-sample.txt").unlink()
    with pytest.raises(DataNotFound) as err:
        load_wiki_sample(options, None)
    assert err.value.dataset == "wiki-sample" and err.value.files == ["text/wiki-sample.txt"]


def test_text8_missing_asks_for_a_fetch(roots):
    with pytest.raises(DataNotFound, match="zoo data fetch text8"):
        load_text8(None, None)


def test_evaluation_folder_is_optional(roots):
    assert evaluation_folder(None) is None
    (roots["cache"] / "text").mkdir()
    (roots["cache"] / "text" / "wordsim353.tsv").write_text("Word 1\tWord 2\tHuman (mean)\n")
    assert evaluation_folder(None) == roots["cache"] / "text"


@pytest.mark.parametrize("name", ["text8", "lee"])
def test_declared_files_provide_the_corpus(roots, name):
    import tomllib
    from pathlib import Path

    from zoo.core.contract.plugins import get_zoo

    registry = Path(corpus.__file__).resolve().parents[2] / "registry.toml"
    entry = tomllib.loads(registry.read_text(encoding="utf-8"))["datasets"][name]
    provided = {p for f in entry["files"] for p in (f.get("provides") or [f["path"]])}
    with pytest.raises(DataNotFound) as err:
        get_zoo().registry.dataset(name).loader(None, None)
    assert set(err.value.files) <= provided
