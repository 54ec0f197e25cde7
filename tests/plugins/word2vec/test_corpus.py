"""Corpus pipeline: streaming reader, vocabulary, subsampling, dynamic window, co-occurrences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.core.contract.errors import ZooError
from zoo.plugins.word2vec.corpus import (
    CorpusOptions,
    WindowSplit,
    build_vocab,
    cooccurrence,
    encode,
    iter_documents,
    keep_probabilities,
    load_corpus,
)

TINY = "the cat sat on the mat\nthe dog sat\n\nthe end of the cat\n"


def test_vocabulary_counts_order_and_cuts(write_corpus):
    path = write_corpus(TINY)
    docs = list(iter_documents(path))
    assert len(docs) == 3  # the blank line is skipped
    vocab = build_vocab(docs, min_count=1)
    assert vocab.words[0] == "the" and vocab.counts[0] == 5
    assert vocab.total_tokens == 14
    assert list(vocab.counts) == sorted(vocab.counts, reverse=True)
    # ties keep the order of first appearance: cat (2), sat (2)
    assert vocab.words[1:3] == ["cat", "sat"]
    assert build_vocab(docs, min_count=2).words == ["the", "cat", "sat"]
    assert build_vocab(docs, min_count=1, max_vocab=2).words == ["the", "cat"]


def test_encode_drops_oov_and_tracks_documents(write_corpus):
    path = write_corpus(TINY)
    vocab = build_vocab(iter_documents(path), min_count=2)
    ids, docs = encode(iter_documents(path), vocab)
    # "the cat sat the" | "the sat" | "the the cat"
    assert [vocab.words[i] for i in ids] == ["the", "cat", "sat", "the", "the", "sat", "the", "the", "cat"]
    assert docs.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2]


def test_max_tokens_stops_the_stream(write_corpus):
    path = write_corpus(TINY)
    assert sum(len(d) for d in iter_documents(path, max_tokens=8)) == 8


def test_simple_tokenizer_lowercases_and_keeps_letters(write_corpus):
    path = write_corpus("Hello, World! It's 2024; héllo again.\n")
    assert next(iter_documents(path, "simple")) == ["hello", "world", "it", "s", "héllo", "again"]


def test_keep_probability_formula():
    counts = np.array([900, 90, 10])
    keep = keep_probabilities(counts, 1e-2)
    f = counts / counts.sum()
    expected = np.minimum(1.0, np.sqrt(1e-2 / f) + 1e-2 / f)
    assert np.allclose(keep.numpy(), expected, rtol=1e-5)
    assert keep[2] == 1.0 and keep[0] < 0.2
    assert torch.all(keep_probabilities(counts, 0.0) == 1)


def _split(ids, docs, window=2, keep=None, dynamic=True, stochastic=True):
    ids, docs = torch.tensor(ids, dtype=torch.int32), torch.tensor(docs, dtype=torch.int32)
    return WindowSplit(ids, docs, torch.arange(len(ids)), keep, window, dynamic, stochastic)


def test_windows_stay_inside_documents():
    split = _split([0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 1], window=2, stochastic=False)
    batch = split.batch(torch.tensor([2, 3]))
    # offsets -2, -1, +1, +2
    assert batch["centre"].tolist() == [2, 3]
    assert batch["mask"].tolist() == [[True, True, False, False], [False, False, True, True]]
    assert batch["context"][0, :2].tolist() == [0, 1] and batch["context"][1, 2:].tolist() == [4, 5]


def test_dynamic_window_is_uniform():
    torch.manual_seed(0)
    n = 200
    split = _split(list(range(n)), [0] * n, window=4)
    batch = split.batch(torch.arange(10, 190).repeat(20))
    reach = batch["mask"].sum(1) // 2          # contexts per side = the drawn window b
    freq = torch.bincount(reach, minlength=5)[1:].float() / reach.numel()
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.02), freq


def test_subsampling_keeps_the_expected_share():
    torch.manual_seed(0)
    keep = torch.tensor([0.3, 1.0])
    ids = [0, 1] * 500
    split = _split(ids, [0] * len(ids), window=1, keep=keep, dynamic=False)
    index = torch.arange(1, len(ids) - 1).repeat(10)
    batch = split.batch(index)
    centre_kept = batch["mask"].any(1).float()
    # a centre survives with its keep probability times P(its context survives)
    frequent = centre_kept[batch["centre"] == 0].mean()
    rare = centre_kept[batch["centre"] == 1].mean()
    assert abs(float(frequent) - 0.3 * 1.0) < 0.03            # contexts of word 0 are word 1 (kept)
    assert abs(float(rare) - (1 - 0.7 ** 2)) < 0.03            # kept if either neighbour (word 0) is


def test_cooccurrence_counts_with_distance_weighting():
    ids = torch.tensor([0, 1, 2, 0])
    docs = torch.tensor([0, 0, 0, 1])
    row, col, count = cooccurrence(ids, docs, 3, window=2)
    table = {(int(r), int(c)): float(x) for r, c, x in zip(row, col, count)}
    assert table == {(0, 1): 1.0, (1, 0): 1.0, (1, 2): 1.0, (2, 1): 1.0, (0, 2): 0.5, (2, 0): 0.5}


def test_load_corpus_splits_and_info(write_corpus):
    path = write_corpus(" ".join(["a b c d"] * 50) + "\n")
    data = load_corpus(path, CorpusOptions(min_count=1, window=2, test_fraction=0.1))
    assert len(data.train) + len(data.test) == 200
    assert data.info.extra["vocab"] == ["a", "b", "c", "d"]
    assert data.info.extra["onnx_vocab"] == ["a", "b", "c", "d"]
    glove = load_corpus(path, CorpusOptions(min_count=1, window=2, pairs="cooccurrence", test_fraction=0.0))
    assert set(glove.train.batch(torch.arange(len(glove.train)))) == {"row", "col", "count"}


# -- bad input ---------------------------------------------------------------------------------


def test_empty_corpus_is_a_clear_error(write_corpus):
    path = write_corpus("\n   \n\n")
    with pytest.raises(ZooError, match="is empty"):
        load_corpus(path, CorpusOptions())


def test_corpus_smaller_than_the_window(write_corpus):
    path = write_corpus("one two three\n")
    with pytest.raises(ZooError, match="not more than the window"):
        load_corpus(path, CorpusOptions(min_count=1, window=5))


def test_min_count_that_empties_the_vocabulary(write_corpus):
    path = write_corpus("a b c a\n")
    with pytest.raises(ZooError, match=r"min_count = 3 leaves an empty vocabulary.*'a', occurs 2"):
        load_corpus(path, CorpusOptions(min_count=3, window=1))


def test_non_utf8_bytes_name_the_line(write_corpus):
    path = write_corpus(b"fine line\ncaf\xe9 au lait\n")
    with pytest.raises(ZooError, match=r"line 2 is not valid UTF-8 \(byte 0xe9 at file offset 13\)"):
        load_corpus(path, CorpusOptions(min_count=1, window=1))


def test_missing_file_names_the_option(tmp_path):
    from zoo.plugins.word2vec.corpus import load_text_file

    with pytest.raises(ZooError, match="data.options.path"):
        load_text_file(None, None)
    with pytest.raises(ZooError, match="does not exist"):
        load_text_file(CorpusOptions(path=str(tmp_path / "nope.txt")), None)


def test_keep_probability_is_a_probability():
    keep = keep_probabilities(np.array([10**6, 10, 1]), 1e-3)
    assert float(keep.max()) <= 1.0 and math.isclose(float(keep[2]), 1.0)
    assert 0.0 < float(keep[0]) < 0.05


def test_epoch_batches_drop_subsampled_tokens_before_windowing():
    """An epoch (``batches`` with the trainer's order): the kept training positions, each once,
    in exactly ``num_batches`` batches; windows reach past dropped tokens, not across documents;
    the same order gives the same epoch (resume), ``start`` skips batches."""
    n = 60
    ids = list(range(n))                        # token id = position: contexts name positions
    docs = [0] * 30 + [1] * 30
    keep = torch.full((n,), 0.5)
    split = _split(ids, docs, window=1, keep=keep, dynamic=False)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    batches = list(split.batches(8, order))
    assert len(batches) == split.num_batches(8) == 8
    centres = torch.cat([b["centre"] for b in batches])
    kept = sorted(centres.tolist())
    assert len(set(kept)) == len(kept) and 15 < len(kept) < 45            # each kept position once
    ranks = {p: i for i, p in enumerate(order.tolist())}
    assert [ranks[c] for c in centres.tolist()] == sorted(ranks[c] for c in centres.tolist())  # trainer's order
    for batch in batches:
        for c, context, mask in zip(batch["centre"].tolist(), batch["context"].tolist(), batch["mask"].tolist()):
            i = kept.index(c)
            before = kept[i - 1] if i > 0 and docs[kept[i - 1]] == docs[c] else None
            after = kept[i + 1] if i + 1 < len(kept) and docs[kept[i + 1]] == docs[c] else None
            assert (context[0] if mask[0] else None) == before
            assert (context[1] if mask[1] else None) == after
    again = list(split.batches(8, order, start=3))
    assert len(again) == 5
    for a, b in zip(again, batches[3:]):
        assert torch.equal(a["centre"], b["centre"]) and torch.equal(a["mask"], b["mask"])


def test_epoch_batches_without_subsampling_and_for_evaluation():
    split = _split(list(range(10)), [0] * 10, window=2, keep=None, dynamic=False)
    order = torch.randperm(10)
    centres = torch.cat([b["centre"] for b in split.batches(3, order)])
    assert torch.equal(centres, order)          # nothing dropped: the trainer's order as it is
    test = _split(list(range(10)), [0] * 10, window=2, keep=torch.full((10,), 0.1), stochastic=False)
    batches = list(test.batches(4))
    assert torch.equal(torch.cat([b["centre"] for b in batches]), torch.arange(10))   # keeps all


def test_epoch_batches_draw_the_dynamic_window_per_centre():
    n = 400
    split = _split(list(range(n)), [0] * (n // 2) + [1] * (n // 2), window=4,
                   keep=None, dynamic=True)
    reaches = []
    for seed in range(10):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        for batch in split.batches(50, order):
            centre, context, mask = batch["centre"], batch["context"], batch["mask"]
            assert context.shape == (centre.shape[0], 8)
            offsets = torch.cat([torch.arange(-4, 0), torch.arange(1, 5)])
            # valid slots are the words at their offset, inside the centre's document
            assert (context - centre.unsqueeze(1))[mask].eq(offsets.expand_as(mask)[mask]).all()
            assert ((context[mask] < n // 2) == (centre.unsqueeze(1).expand_as(mask)[mask] < n // 2)).all()
            # away from the documents' edges, the slots within b of the centre: b per centre
            away = ((centre >= 4) & (centre < n // 2 - 4)) | ((centre >= n // 2 + 4) & (centre < n - 4))
            reach = mask[away].sum(1) // 2
            assert torch.equal(mask[away], offsets.abs() <= reach.unsqueeze(1))
            reaches.append(reach)
            if away.sum() > 10:
                assert len(set(reach.tolist())) > 1         # drawn per centre, not per batch
    freq = torch.bincount(torch.cat(reaches), minlength=5)[1:].float() / torch.cat(reaches).numel()
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.03), freq
    # a resumed epoch draws the same windows
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    again = list(split.batches(50, order, start=3))
    for a, b in zip(again, list(split.batches(50, order))[3:]):
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["context"], b["context"])
