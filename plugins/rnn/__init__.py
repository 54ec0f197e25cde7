"""RNN family: Elman, Jordan, LSTM (and peephole LSTM) and GRU, uni- or bidirectional, for
many-to-one (sentiment), many-to-many (slot filling) and sequence-autoencoder tasks.

The text pipeline and the sequence tasks live in :mod:`zoo.plugins.sequence.pipeline` (shared with the
transformer family); the text datasets (``sst2``, ``atis``) come from the ``datasets`` plugin.
This plugin adds the models and the generated ``adding-problem`` and ``copy-sequences``.

``seq2seq`` is the encoder–decoder (``rnn-seq2seq`` with attention, ``rnn-seq2seq-noattn``
without); its data and tasks (``reverse``, ``sort``, ``addition``, ``tatoeba-eng-fra``; ``seq2seq``,
``translation``) come from the ``sequence`` plugin. ``zoo explain`` draws its attention matrix for
one test pair (``seq2seq_explain``).
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.rnn.datasets import AddingOptions, CopyOptions, load_adding_problem, load_copy_sequences
from zoo.plugins.rnn.models import RNNConfig, builder
from zoo.plugins.rnn.seq2seq import RNNSeq2SeqConfig, build_rnn_seq2seq

MODELS = ("elman", "jordan", "lstm", "lstm-peephole", "gru")
SEQ2SEQ_MODELS = ("rnn-seq2seq", "rnn-seq2seq-noattn")


@hookimpl
def register_models(register):
    for name in MODELS:
        register(name, builder(name), RNNConfig)
    for name in SEQ2SEQ_MODELS:
        register(name, build_rnn_seq2seq, RNNSeq2SeqConfig)


@hookimpl
def register_datasets(register):
    register("adding-problem", load_adding_problem, AddingOptions)
    register("copy-sequences", load_copy_sequences, CopyOptions)


@hookimpl
def explain_model(model, model_name, task, sample, info, out_dir):
    if model_name not in SEQ2SEQ_MODELS:
        return None
    from zoo.plugins.rnn.seq2seq_explain import explain

    return explain(model, sample, info, out_dir)
