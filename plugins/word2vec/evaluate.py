"""Word vectors after training: the word2vec text format, nearest neighbours, analogies, and the
standard intrinsic evaluations.

* Similarity: Spearman's ρ between human scores and cosine similarities on WordSim353 and
  SimLex-999; pairs with an out-of-vocabulary word are skipped and counted (as gensim's
  ``evaluate_word_pairs`` does).
* Analogies (3CosAdd, Mikolov et al. 2013a): for "a is to b as c is to ?" answer
  argmax_{x ∉ {a,b,c}} cos(x, b − a + c) with unit vectors, over the ``restrict`` most frequent
  words; questions with a word outside them are skipped (gensim's ``evaluate_word_analogies``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.core.contract.errors import ZooError, did_you_mean

VECTORS_FILE = "vectors.txt"
EVAL_FILE = "embedding_eval.json"


@dataclass
class WordVectors:
    """Words sorted by decreasing frequency and their vectors ``[V, D]`` (float32)."""

    words: list[str]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit = (self.vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    # -- files -------------------------------------------------------------------------------
    def save_word2vec_format(self, path: str | Path) -> Path:
        """The word2vec text format: a header ``V D``, then ``word x1 ... xD`` per line."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as fh:
            fh.write(f"{len(self.words)} {self.vectors.shape[1]}\n")
            for word, row in zip(self.words, self.vectors):
                fh.write(word + " " + " ".join(f"{x:.6g}" for x in row) + "\n")
        return path

    @classmethod
    def load_word2vec_format(cls, path: str | Path) -> WordVectors:
        path = Path(path)
        with path.open("r", encoding="utf-8") as fh:
            header = fh.readline().split()
            if len(header) != 2:
                raise ZooError(f"{path}: not a word2vec text file (first line should be 'V D')")
            count, dim = int(header[0]), int(header[1])
            words, rows = [], np.empty((count, dim), dtype=np.float32)
            for i, line in enumerate(fh):
                parts = line.rstrip("\n").split(" ")
                words.append(parts[0])
                rows[i] = np.asarray(parts[1:dim + 1], dtype=np.float32)
        return cls(words, rows[:len(words)])

    @classmethod
    def from_run(cls, run_dir: str | Path) -> WordVectors:
        path = Path(run_dir) / VECTORS_FILE
        if not path.is_file():
            raise ZooError(f"{run_dir}: no {VECTORS_FILE} (is it a finished run of skipgram, cbow or glove?)")
        return cls.load_word2vec_format(path)

    # -- queries -----------------------------------------------------------------------------
    def id_of(self, word: str) -> int:
        if word in self.index:
            return self.index[word]
        if word.lower() in self.index:
            return self.index[word.lower()]
        hint = did_you_mean(word, self.words[:50_000], "word").split(" (valid:")[0]
        hint = hint.split("; ", 1)[1] if "; " in hint else "check the spelling (words are case-sensitive)"
        raise ZooError(f"word {word!r} is not in the vocabulary ({len(self.words)} words); {hint}")

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        i = self.id_of(word)
        return self._nearest(self.unit[i], exclude=[i], topn=topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 10) -> list[tuple[str, float]]:
        """3CosAdd: words closest to b − a + c (unit vectors), a, b and c excluded."""
        ia, ib, ic = self.id_of(a), self.id_of(b), self.id_of(c)
        target = self.unit[ib] - self.unit[ia] + self.unit[ic]
        return self._nearest(target / max(np.linalg.norm(target), 1e-12), exclude=[ia, ib, ic], topn=topn)

    def _nearest(self, target: np.ndarray, exclude: list[int], topn: int) -> list[tuple[str, float]]:
        scores = self.unit @ target
        scores[exclude] = -np.inf
        topn = min(topn, len(self.words) - len(set(exclude)))
        if topn <= 0:
            return []
        best = np.argpartition(-scores, topn - 1)[:topn]
        best = best[np.argsort(-scores[best])]
        return [(self.words[i], float(scores[i])) for i in best]


# -- evaluation ------------------------------------------------------------------------------


def spearman(x, y) -> float:
    """Spearman's ρ: Pearson's r of the ranks, tied values sharing their mean rank (as
    ``scipy.stats.spearmanr``, without importing scipy.stats: ~60 MiB at the end of a run for a
    few hundred pairs). NaN for fewer than two pairs or a constant side."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:  # undefined
        return float("nan")
    return float(np.corrcoef(_mean_ranks(x), _mean_ranks(y))[0, 1])


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; the values of a tie share the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)                        # rank of each distinct value's last copy
    return (last - (counts - 1) / 2.0)[inverse]


def read_pairs(path: str | Path) -> list[tuple[str, str, float]]:
    """Word-pair files: ``word1<TAB>word2<TAB>score``, ``#`` comments (gensim's test data)."""
    pairs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        a, b, score = line.split("\t")[:3]
        pairs.append((a, b, float(score)))
    return pairs


def evaluate_pairs(vectors: WordVectors, path: str | Path) -> dict[str, float]:
    """Spearman ρ on the in-vocabulary pairs, and how many pairs were out of vocabulary."""
    pairs = read_pairs(path)
    human, model, oov = [], [], 0
    for a, b, score in pairs:
        ia, ib = vectors.index.get(a.lower()), vectors.index.get(b.lower())
        if ia is None or ib is None:
            oov += 1
            continue
        human.append(score)
        model.append(float(vectors.unit[ia] @ vectors.unit[ib]))
    return {"spearman": spearman(human, model), "pairs": len(pairs), "oov": oov}


def evaluate_analogies(vectors: WordVectors, path: str | Path, restrict: int = 30_000,
                       chunk: int | None = None) -> dict[str, float]:
    """3CosAdd accuracy over questions whose four words are among the ``restrict`` most frequent.

    Questions are scored ``chunk`` at a time against every candidate word, a ``[chunk, V]``
    float32 matrix; by default ``chunk`` keeps it near 4 MiB whatever the vocabulary (1,024
    questions against 30,000 words would be 120 MiB, the run's peak memory for a small corpus;
    smaller chunks cost no time: each is still a matrix product of dozens of rows or more).
    """
    limit = min(restrict, len(vectors.words))
    chunk = chunk or max(32, (1 << 20) // max(limit, 1))
    index = {w: i for i, w in enumerate(vectors.words[:limit])}
    unit = vectors.unit[:limit]
    questions, total = [], 0
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(":"):
            continue
        total += 1
        ids = [index.get(w.lower()) for w in line.split()[:4]]
        if None not in ids:
            questions.append(ids)
    if not questions:
        return {"accuracy": float("nan"), "questions": total, "answered": 0, "skipped": total}
    q = np.asarray(questions)
    correct = 0
    for start in range(0, len(q), chunk):
        a, b, c, d = q[start:start + chunk].T
        target = unit[b] - unit[a] + unit[c]                       # (Q, D)
        scores = target @ unit.T                                   # (Q, V)
        rows = np.arange(len(a))
        scores[rows, a] = scores[rows, b] = scores[rows, c] = -np.inf
        correct += int((scores.argmax(1) == d).sum())
        del scores  # before the next chunk's scores are allocated, not after
    return {"accuracy": correct / len(q), "questions": total, "answered": len(q), "skipped": total - len(q)}


EVAL_FILES = {
    "wordsim353": "wordsim353.tsv",
    "simlex999": "simlex999.txt",
    "analogies": "questions-words.txt",
}


def evaluate_all(vectors: WordVectors, folder: Path | None, restrict: int = 30_000) -> dict[str, float]:
    """Every evaluation whose file is in ``folder``; flat keys for the run summary."""
    out: dict[str, float] = {}
    if folder is None:
        return out
    for name in ("wordsim353", "simlex999"):
        path = folder / EVAL_FILES[name]
        if path.is_file():
            result = evaluate_pairs(vectors, path)
            out[f"{name}_spearman"] = result["spearman"]
            out[f"{name}_oov_pairs"] = result["oov"]
            out[f"{name}_pairs"] = result["pairs"]
    path = folder / EVAL_FILES["analogies"]
    if path.is_file():
        result = evaluate_analogies(vectors, path, restrict)
        out["analogy_accuracy"] = result["accuracy"]
        out["analogy_answered"] = result["answered"]
        out["analogy_skipped"] = result["skipped"]
    return out


def json_safe(results: dict) -> dict:
    """NaN (no pair in vocabulary) becomes null, so the files are strict JSON."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in results.items()}


def write_eval(run_dir: Path, results: dict) -> None:
    (Path(run_dir) / EVAL_FILE).write_text(json.dumps(json_safe(results), indent=2), encoding="utf-8")
