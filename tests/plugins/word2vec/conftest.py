"""Tiny corpora and a trained planted run shared by the word2vec tests."""

from __future__ import annotations

import random
from pathlib import Path

ANIMALS = ["cat", "dog", "cow", "horse", "sheep"]
COLOURS = ["red", "blue", "green", "yellow", "purple"]


def planted_corpus(path: Path, lines: int = 120, length: int = 30, seed: int = 0) -> Path:
    """Each line is drawn from one group only, so words of a group share all their contexts."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            group = ANIMALS if i % 2 == 0 else COLOURS
            fh.write(" ".join(rng.choice(group) for _ in range(length)) + "\n")
    return path


def planted_options(path: Path, model: str = "skipgram", **extra) -> dict:
    from zoo.core.contract.config import deep_merge

    options = {
        "data": {"name": "text-file", "options": {"path": str(path), "min_count": 1, "window": 3,
                                                  "sample": 0.0}},
        "model": {"dim": 16},
        # word2vec's SGD on the summed loss (the defaults), with a step small enough for a
        # 10-word vocabulary, where every row is hit dozens of times per batch.
        "optim": {"lr": 0.005},
        "train": {"epochs": 3, "batch_size": 256, "progress": False, "device": "cpu", "seed": 0},
    }
    if model == "glove":
        options["data"]["options"]["pairs"] = "cooccurrence"
        options["train"].update(epochs=30, batch_size=64)
        options["optim"] = {"lr": 0.1}
    return deep_merge(options, extra)


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These tests run many tiny ops; on a shared 2-core machine a second intra-op thread that
    is starved by other processes makes every parallel region wait (measured 100× slower).
    Module scope: restored after each of these modules, so other tests keep their setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory):
    """A skip-gram run on the planted corpus: (run directory, summary)."""
    from zoo.core import api

    folder = tmp_path_factory.mktemp("planted")
    corpus = planted_corpus(folder / "planted.txt")
    summary = api.train("skipgram", options=planted_options(corpus), out=str(folder / "run"), log=None)
    return folder / "run", summary


@pytest.fixture
def write_corpus(tmp_path):
    def write(content: str | bytes, name: str = "corpus.txt") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def planted():
    """(planted_corpus, planted_options) for tests that train their own run."""
    return planted_corpus, planted_options
