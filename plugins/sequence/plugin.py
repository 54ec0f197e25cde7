"""The ``sequence`` plugin: registers the sequence tasks every sequence family uses by name.

``sequence-classification``, ``sequence-tagging``, ``sequence-regression`` and
``seq2seq-autoencoder`` (:mod:`zoo.plugins.sequence.pipeline`). Registered once here, so the RNN
and transformer plugins (and third-party sequence families) share them without importing each other.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.sequence.pipeline import (
    Seq2SeqAutoencoder,
    SequenceClassification,
    SequenceRegression,
    SequenceTagging,
)


@hookimpl
def register_tasks(register):
    register(SequenceClassification())
    register(SequenceTagging())
    register(SequenceRegression())
    register(Seq2SeqAutoencoder())
