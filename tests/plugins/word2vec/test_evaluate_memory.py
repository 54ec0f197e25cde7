"""The analogy evaluation scores questions in chunks whose size bounds its memory, not its answer."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from zoo.plugins.word2vec import evaluate
from zoo.plugins.word2vec.evaluate import WordVectors, evaluate_analogies


def _vectors(vocab: int = 300, dim: int = 8) -> WordVectors:
    rng = np.random.default_rng(0)
    return WordVectors([f"w{i}" for i in range(vocab)], rng.standard_normal((vocab, dim)).astype(np.float32))


def _questions(path, vocab: int = 300, count: int = 200):
    rng = np.random.default_rng(1)
    lines = [": section"] + [" ".join(f"w{i}" for i in rng.integers(0, vocab, 4)) for _ in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_chunk_size_gives_the_same_accuracy(tmp_path):
    vectors, path = _vectors(), _questions(tmp_path / "q.txt")
    results = [evaluate_analogies(vectors, path, chunk=chunk) for chunk in (1, 7, 64, None, 10_000)]
    assert results[0]["answered"] == 200
    assert all(r == results[0] for r in results)


def test_the_default_chunk_keeps_the_score_matrix_near_4_mib(tmp_path):
    """[chunk, V] float32 scores: about 4 MiB by default however large the vocabulary (1,024
    questions at a time against 30,000 words would hold 117 MiB)."""
    vocab = 30_000  # the default `restrict`
    vectors = _vectors(vocab, dim=4)
    path = _questions(tmp_path / "q.txt", vocab=vocab, count=3_000)
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        result = evaluate_analogies(vectors, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["answered"] == 3_000
    assert peak < 10 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MiB"


def test_spearman_matches_scipy_with_ties_and_is_nan_when_undefined():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        x, y = rng.integers(0, 6, n).astype(float), rng.standard_normal(n).round(1)  # many ties
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert evaluate.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert evaluate.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(evaluate.spearman([1.0], [2.0])) and np.isnan(evaluate.spearman([1, 1, 1], [1, 2, 3]))


def test_the_word_pair_evaluation_does_not_import_scipy_stats(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "pairs.tsv"
    path.write_text("# c\nw1\tw2\t3.0\nw3\tw4\t1.0\nw5\tw6\t2.5\n", encoding="utf-8")
    code = ("import sys, numpy as np; from zoo.plugins.word2vec.evaluate import WordVectors, evaluate_pairs; "
            "v = WordVectors([f'w{i}' for i in range(8)], np.random.default_rng(0).standard_normal((8, 3)).astype('float32')); "
            f"r = evaluate_pairs(v, {str(path)!r}); print(r['pairs'], 'scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["3", "False"]
