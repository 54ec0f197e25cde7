"""Attention family: self-attention written out, the transformer encoder and decoder, and
attention for images.

``layers`` holds the building blocks (attention in matrix form, masks, positions, encoder and
decoder blocks); ``models`` the encoder models (classifier, tagger, local-attention classifier,
ViT). The text pipeline and the sequence tasks are shared with the RNN family
(:mod:`zoo.plugins.sequence.pipeline`); ``sst2`` and ``atis`` come from the ``datasets`` plugin and
``fashion-mnist`` from the same. ``seq2seq`` is the encoder–decoder with greedy decoding; its
``seq2seq`` task and the generated ``reverse``, ``sort`` and ``addition`` datasets come from the
``sequence`` plugin (:mod:`zoo.plugins.sequence`, shared with the RNN encoder–decoder).
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


@hookimpl
def register_models(register):
    register("transformer-classifier", build_transformer, TransformerConfig)
    register("transformer-tagger", build_transformer, TransformerConfig)
    register("local-transformer", build_local_transformer, LocalTransformerConfig)
    register("vit", build_vit, ViTConfig)
    register("transformer-seq2seq", build_seq2seq, Seq2SeqConfig)

