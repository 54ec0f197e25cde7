"""Sequence-to-sequence data and tasks shared by the families that model them (RNN
encoder–decoder, transformer encoder–decoder): families never import each other, so what both
need lives here.

``seq2seq_data`` holds the generated ``reverse``, ``sort`` and ``addition`` datasets and the
vocabulary and batches they share; ``tatoeba`` the English–French sentence pairs of the PyTorch
translation tutorial (``tatoeba-eng-fra``); ``seq2seq_task`` the ``seq2seq`` task (teacher-forced
loss, exact match of the greedy decode) and the ``translation`` task (the same plus corpus BLEU); ``by_length`` the exact match by source length
written into every finished seq2seq run directory (``match_by_length.json`` and ``.png``).
"""

from __future__ import annotations

from zoo import hookimpl
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
