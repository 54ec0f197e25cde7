"""word2vec family: prediction-based (skip-gram, CBOW) and count-based (GloVe) word embeddings.

One-hot vectors are huge and say nothing about meaning; a word is known by the company it keeps.
Count-based methods make the inner product of two word vectors track how often the words occur
together (GloVe: w_i · w̃_j + b_i + b̃_j ≈ log X_ij); prediction-based methods train a shallow
network to predict the centre word from its context (CBOW) or the context from the centre word
(skip-gram), with the same weights at every position, so every occurrence of a word shares one
embedding.

Hooks implemented here:

* ``register_tasks``: the ``embedding`` task;
* ``register_datasets``: ``wiki-sample``, ``lee``, ``text8`` and ``text-file`` (any text file by path);
* ``register_models``: ``skipgram``, ``cbow``, ``glove``;
* ``export_model``: the deployable form is the lookup ids → L2-normalised vectors, not ``forward``;
* ``on_train_start`` / ``on_train_end``: after a run, write ``vectors.txt`` (word2vec text format)
  and ``embedding_eval.json`` (WordSim353, SimLex-999, analogies) into the run directory, and add
  the evaluation to the run summary.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.word2vec.corpus import CorpusOptions, load_lee, load_text8, load_text_file, load_wiki_sample
from zoo.plugins.word2vec.models import (
    CBOWConfig,
    GloVeConfig,
    SkipGramConfig,
    build_cbow,
    build_glove,
    build_skipgram,
)
from zoo.plugins.word2vec.task import EmbeddingTask

#: name → (builder, config class): what ``register_models`` registers and the hooks below handle.
MODELS = {
    "skipgram": (build_skipgram, SkipGramConfig),
    "cbow": (build_cbow, CBOWConfig),
    "glove": (build_glove, GloVeConfig),
}
#: name → loader; every corpus takes the same options (:class:`CorpusOptions`).
CORPORA = {"wiki-sample": load_wiki_sample, "lee": load_lee, "text8": load_text8, "text-file": load_text_file}
NAME = "word2vec"


@hookimpl
def register_tasks(register):
    register(EmbeddingTask())


@hookimpl
def register_datasets(register):
    for name, load in CORPORA.items():
        register(name, load, CorpusOptions)


@hookimpl
def register_models(register):
    for name, (build, config_class) in MODELS.items():
        register(name, build, config_class)


@hookimpl
def export_model(model, task, model_name, path, opset):
    """Export :class:`EmbeddingLookup` (``ids [N]`` → ``vectors [N, D]``) instead of ``forward``."""
    if model_name not in MODELS:
        return None
    import torch

    from zoo.core.train.data import unwrap
    from zoo.core.deploy.export import export_module

    lookup = unwrap(model).lookup().eval()
    ids = torch.tensor([0, 2, 1], dtype=torch.int64) % lookup.weight.shape[0]
    axes = {"ids": {0: "words"}, "vectors": {0: "words"}}
    export_module(lookup, (ids,), path, ("ids",), ("vectors",), axes, opset)
    return path


@hookimpl
def on_train_start(ctx, model):
    if ctx.model_name not in MODELS:
        return
    # on_train_end gets the run but not the model, which then holds the best weights (the
    # trainer reloads them before testing): keep it for this run. (Skip-gram and CBOW apply
    # word2vec's SGD themselves through the SelfUpdating protocol: models.attach_optimizer.)
    ctx.state[NAME] = model


@hookimpl
def on_train_end(ctx, run, summary):
    model = ctx.state.pop(NAME, None)
    if ctx.model_name not in MODELS or summary.get("status") != "finished" or model is None:
        return
    from zoo.plugins.word2vec.run_files import finish_run

    finish_run(run, model, summary)


@hookimpl
def register_commands(cli):
    from zoo.plugins.word2vec.commands import add_commands

    add_commands(cli)
