"""The ``sequence`` plugin: registers the sequence tasks and the seq2seq datasets every sequence
family uses by name.

Tasks: ``sequence-classification``, ``sequence-tagging``, ``sequence-regression`` and
``seq2seq-autoencoder`` (:mod:`zoo.plugins.sequence.pipeline`), ``seq2seq`` and ``translation``
(:mod:`zoo.plugins.sequence.seq2seq_task`). Datasets: ``reverse``, ``sort``, ``addition`` and
``tatoeba-eng-fra``. Registered once here, so the RNN and transformer plugins (and third-party
sequence families) share them without importing each other.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.sequence.pipeline import (
    Seq2SeqAutoencoder,
    SequenceClassification,
    SequenceRegression,
    SequenceTagging,
)
from zoo.plugins.sequence.seq2seq_data import (
    AdditionOptions,
    SymbolOptions,
    load_addition,
    load_reverse,
    load_sort,
)
from zoo.plugins.sequence.seq2seq_task import Seq2Seq, Translation
from zoo.plugins.sequence.tatoeba import TatoebaOptions, load_tatoeba


@hookimpl
def register_tasks(register):
    register(SequenceClassification())
    register(SequenceTagging())
    register(SequenceRegression())
    register(Seq2SeqAutoencoder())
    register(Seq2Seq())
    register(Translation())


@hookimpl
def register_datasets(register):
    register("reverse", load_reverse, SymbolOptions)
    register("sort", load_sort, SymbolOptions)
    register("addition", load_addition, AdditionOptions)
    register("tatoeba-eng-fra", load_tatoeba, TatoebaOptions)


@hookimpl
def on_train_end(run, summary, ctx):
    """Every finished seq2seq/translation run gets ``match_by_length.json`` and ``.png``
    (:mod:`zoo.plugins.sequence.by_length`), whatever family its model is from."""
    if ctx.task not in ("seq2seq", "translation") or summary.get("status") != "finished":
        return
    from zoo.plugins.sequence.by_length import write_report

    write_report(ctx.path)
