"""Attention family: self-attention written out, the transformer encoder and decoder, and
attention for images.

``layers`` holds the building blocks (attention in matrix form, masks, positions, encoder and
decoder blocks); ``models`` the encoder models (classifier, tagger, local-attention classifier,
ViT). The text pipeline and the sequence tasks are shared with the RNN family
(:mod:`zoo.plugins.sequence.pipeline`); ``sst2`` and ``atis`` come from the ``datasets`` plugin and
``fashion-mnist`` from the same. ``seq2seq`` is the encoder–decoder with greedy decoding,
``seq2seq_task`` its ``seq2seq`` task (teacher-forced loss, exact match of the greedy decode) and
``seq2seq_data`` the generated ``reverse``, ``sort`` and ``addition`` datasets.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.transformer.models import (
    LocalTransformerConfig,
    TransformerConfig,
    ViTConfig,
    build_local_transformer,
    build_transformer,
    build_vit,
)
from zoo.plugins.transformer.seq2seq import Seq2SeqConfig, build_seq2seq
from zoo.plugins.transformer.seq2seq_data import (
    AdditionOptions,
    SymbolOptions,
    load_addition,
    load_reverse,
    load_sort,
)
from zoo.plugins.transformer.seq2seq_task import Seq2Seq


@hookimpl
def register_models(register):
    register("transformer-classifier", build_transformer, TransformerConfig)
    register("transformer-tagger", build_transformer, TransformerConfig)
    register("local-transformer", build_local_transformer, LocalTransformerConfig)
    register("vit", build_vit, ViTConfig)
    register("transformer-seq2seq", build_seq2seq, Seq2SeqConfig)


@hookimpl
def register_tasks(register):
    register(Seq2Seq())


@hookimpl
def register_datasets(register):
    # seq2seq datasets, generated on the fly (plugins/transformer/seq2seq_data.py)
    register("reverse", load_reverse, SymbolOptions)
    register("sort", load_sort, SymbolOptions)
    register("addition", load_addition, AdditionOptions)
