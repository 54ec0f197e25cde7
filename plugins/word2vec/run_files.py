"""What a finished word2vec-family run leaves besides the core's files.

    RUN_DIR/vectors.txt           word2vec text format (gensim: KeyedVectors.load_word2vec_format)
    RUN_DIR/embedding_eval.json   WordSim353 / SimLex-999 Spearman with OOV counts, analogy accuracy

The evaluation is also merged into ``summary.json`` under ``embedding_eval``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from zoo.core.train.data import locate, unwrap
from zoo.core.contract.errors import DataNotFound
from zoo.plugins.word2vec.evaluate import VECTORS_FILE, WordVectors, evaluate_all, json_safe, write_eval


def word_vectors(model: torch.nn.Module) -> WordVectors:
    inner = unwrap(model)
    with torch.no_grad():
        matrix = inner.embedding_matrix().detach().float().cpu().numpy()
    return WordVectors(list(inner.vocab), np.ascontiguousarray(matrix))


def evaluation_folder(data_dir: str | None) -> Path | None:
    """The ``text/`` folder of the first data root holding ``text/wordsim353.tsv`` (the word
    similarity and analogy files sit beside it), or ``None``: the evaluation is optional."""
    try:
        return locate("word2vec-evaluation", ["text/wordsim353.tsv"], data_dir) / "text"
    except DataNotFound:
        return None


def finish_run(run, model: torch.nn.Module, summary: dict) -> dict:
    started = time.time()
    vectors = word_vectors(model)
    vectors.save_word2vec_format(run.file(VECTORS_FILE))
    config = run.read_config()
    results = evaluate_all(vectors, evaluation_folder(config.get("data", {}).get("data_dir")))
    results["vocab_size"] = len(vectors.words)
    results["eval_seconds"] = round(time.time() - started, 3)
    write_eval(run.path, results)
    summary["embedding_eval"] = json_safe(results)
    summary["vectors"] = str(run.file(VECTORS_FILE))
    run.write_summary(summary)
    return results
