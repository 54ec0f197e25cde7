"""RNN family: Elman, Jordan, LSTM (and peephole LSTM) and GRU, uni- or bidirectional, for
many-to-one (sentiment), many-to-many (slot filling) and sequence-autoencoder tasks.

The text pipeline and the sequence tasks live in :mod:`zoo.plugins.sequence.pipeline` (shared with the
transformer family); the text datasets (``sst2``, ``atis``) come from the ``datasets`` plugin.
This plugin adds the models and the generated ``adding-problem`` and ``copy-sequences``.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.rnn.datasets import AddingOptions, CopyOptions, load_adding_problem, load_copy_sequences
from zoo.plugins.rnn.models import RNNConfig, builder

MODELS = ("elman", "jordan", "lstm", "lstm-peephole", "gru")


@hookimpl
def register_models(register):
    for name in MODELS:
        register(name, builder(name), RNNConfig)


@hookimpl
def register_datasets(register):
    register("adding-problem", load_adding_problem, AddingOptions)
    register("copy-sequences", load_copy_sequences, CopyOptions)
