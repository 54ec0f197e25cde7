"""Transformer encoder models: sequence classifier, tagger, local-attention classifier, ViT.

Sequences (``sst2``, ``atis``; any dataset of the shared sequence pipeline)::

    tokens [B, T] ─ embedding·√D ─ + positions ─ dropout ─┐
    lengths [B] ─ padding_mask [B, 1, 1, T] (& local_mask) ┴─ Encoder ─ h [B, T, D]
    pooled    (sequence-classification): masked mean / max over real tokens → [B, D] → logits [B, C]
    per_token (sequence-tagging):       h → logits [B, T, C]

Images (ViT, Dosovitskiy et al. 2021, https://arxiv.org/abs/2010.11929)::

    x [B, C, H, W] ─ conv k=s=P ─ [B, D, H/P, W/P] ─ flatten ─ patches [B, N, D]
    ─ ([CLS] prepended) ─ + learned positions ─ Encoder ─ [CLS] or mean ─ LayerNorm ─ logits [B, C]

Masks and positions are built from the runtime shapes (``x.shape[1]``, ``lengths``), so an ONNX
export keeps batch and length dynamic.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import length_mask
from zoo.plugins.transformer.layers import (
    Encoder,
    LearnedPositions,
    SinusoidalPositions,
    local_mask,
    padding_mask,
)


def check_tokens(tokens: Tensor, lengths: Tensor, vocab_size: int) -> None:
    """ZooError for token ids a model cannot embed: not ``[B, T]`` with ``lengths [B]``, an empty
    sequence, ids outside ``[0, vocab_size)``.

    Only on CPU tensors (where it costs no device sync) and not while exporting; on an
    accelerator the ids come from the dataset's own vocabulary, and ``zoo predict`` checks raw
    text and id arrays against the vocabulary and the length limit before the model runs.
    """
    if torch.compiler.is_compiling() or tokens.device.type != "cpu":
        return
    if tokens.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != tokens.shape[0]:
        raise ZooError(f"tokens must be [batch, time] ids and lengths [batch]; got "
                       f"{list(tokens.shape)} and {list(lengths.shape)}")
    if tokens.shape[1] == 0 or (lengths.numel() and int(lengths.min()) < 1):
        raise ZooError("empty sequence: every input needs at least one token")
    if tokens.numel():
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab_size:
            raise ZooError(f"token ids must be in [0, {vocab_size}) (the model's vocabulary); got ids "
                           f"from {low} to {high}")


class AttentionConfig(ModelConfig):
    """Options of every attention stack here (encoders and the encoder–decoder)."""

    dim: int = Field(64, ge=1, le=4096, description="Model width D (embedding size).")
    heads: int = Field(4, ge=1, le=64, description="Attention heads; D must be divisible by it.")
    ff_dim: int = Field(128, ge=1, le=16384, description="Hidden width of the feed-forward layers.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on embeddings, attention weights, "
                           "sub-layer outputs and before the head.")
    norm_first: bool = Field(False, description="Pre-LN blocks (LayerNorm before each sub-layer, final "
                             "LayerNorm) instead of the original post-LN.")

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self


class EncoderConfig(AttentionConfig):
    """Options shared by the encoder models."""

    layers: int = Field(2, ge=1, le=48, description="Encoder blocks.")
    activation: Literal["relu", "gelu"] = Field("relu", description="Feed-forward non-linearity.")
    use_sdpa: bool = Field(True, description="Attention via F.scaled_dot_product_attention (fused "
                           "kernels); false = the written-out matmul version (same numbers).")


class TransformerConfig(EncoderConfig):
    positions: Literal["sinusoidal", "learned"] = Field(
        "sinusoidal", description="Positional encoding: the fixed sin/cos formula or a learned table.")
    max_length: int | None = Field(None, ge=1, le=100_000, description="Longest input the position table "
                                   "covers; default: the dataset's max_length.")
    pooling: Literal["mean", "max"] = Field("mean", description="Summary of the real tokens for "
                                            "one-label-per-sequence tasks.")


class LocalTransformerConfig(TransformerConfig):
    window: int = Field(4, ge=0, le=100_000, description="Each token attends to tokens at most this "
                        "many positions away (local_mask); L layers see 2·L·window + 1 tokens.")


class SequenceTransformer(nn.Module):
    """Token embedding + positions → encoder → pooled or per-token head (module docstring).

    ``window`` = None: full self-attention over the real tokens; an int: local attention.
    """

    def __init__(self, config: TransformerConfig, info: DataInfo, window: int | None = None) -> None:
        super().__init__()
        extra = info.extra
        if not extra.get("vocab_size"):
            raise ZooError("transformer sequence models need token inputs (DataInfo.extra vocab_size); "
                           f"the dataset gives {list(info.input_shape)} samples without a vocabulary")
        if not info.num_classes:
            raise ZooError("transformer sequence models classify sequences or tokens; the dataset has no classes")
        self.vocab_size = int(extra["vocab_size"])
        self.head_kind = extra.get("sequence_head", "pooled")
        if self.head_kind not in ("pooled", "per_token"):
            raise ZooError(f"transformer sequence models have no {self.head_kind!r} head "
                           "(pooled or per_token)")
        max_length = config.max_length or extra.get("max_length")
        if not max_length:
            raise ZooError("set model.max_length: the dataset does not say how long its sequences get")
        self.max_length = int(max_length)
        self.window = window
        self.pooling = config.pooling
        self.scale = math.sqrt(config.dim)
        self.embedding = nn.Embedding(self.vocab_size, config.dim, padding_idx=extra.get("pad_id", 0))
        nn.init.normal_(self.embedding.weight, std=config.dim ** -0.5)
        positions = SinusoidalPositions if config.positions == "sinusoidal" else LearnedPositions
        self.positions = positions(config.dim, self.max_length)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = Encoder(config.dim, config.heads, config.ff_dim, config.layers, config.dropout,
                               config.norm_first, config.use_sdpa, config.activation)
        self.head = nn.Linear(config.dim, info.num_classes)

    def encode(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``tokens [B, T], lengths [B] → h [B, T, D]``."""
        check_tokens(tokens, lengths, self.vocab_size)
        h = self.positions(self.embedding(tokens) * self.scale)              # (B, T, D)
        h = self.drop(h)
        t = tokens.shape[1]
        keys = padding_mask(lengths, t)                                       # (B, 1, 1, T) real keys
        if self.window is None:
            mask = keys
        else:
            # A padded query whose window holds only padding would have no key at all; let
            # padded queries see their whole window (their outputs are never used) so no row
            # of the mask is empty — ONNX runtimes disagree on what an empty row gives.
            queries = keys.transpose(-1, -2)                                  # (B, 1, T, 1)
            mask = local_mask(t, self.window, tokens.device) & (keys | ~queries)   # (B, 1, T, T)
        return self.encoder(h, mask)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        h = self.encode(tokens, lengths)                                      # (B, T, D)
        if self.head_kind == "per_token":
            return self.head(self.drop(h))                                    # (B, T, C)
        real = length_mask(lengths, tokens.shape[1]).unsqueeze(-1)            # (B, T, 1)
        if self.pooling == "max":
            s = h.masked_fill(~real, -1e4).max(dim=1).values                  # (B, D)
        else:
            s = (h * real).sum(1) / lengths.clamp(min=1).unsqueeze(-1).to(h.dtype)
        return self.head(self.drop(s))                                        # (B, C)


def build_transformer(config: TransformerConfig, info: DataInfo) -> nn.Module:
    """Encoder classifier (pooled head) or tagger (per-token head), chosen by the dataset."""
    return SequenceTransformer(config, info)


def build_local_transformer(config: LocalTransformerConfig, info: DataInfo) -> nn.Module:
    """The same encoder with attention truncated to ``window`` positions either side."""
    return SequenceTransformer(config, info, window=config.window)


# -- ViT --------------------------------------------------------------------------------------


class ViTConfig(EncoderConfig):
    patch: int = Field(4, ge=1, le=256, description="Patch side P; image sides must be divisible by it.")
    pooling: Literal["cls", "mean"] = Field("cls", description="Image summary: a learned [CLS] token "
                                            "prepended to the patches, or the mean over patches.")
    norm_first: bool = Field(True, description="Pre-LN blocks, as in ViT (final LayerNorm).")
    activation: Literal["relu", "gelu"] = Field("gelu", description="Feed-forward non-linearity (ViT: GELU).")


class ViT(nn.Module):
    """Vision transformer: patches as tokens (module docstring).

    A strided conv with kernel = stride = P is exactly "cut into P×P patches, flatten each, apply
    one shared linear map": ``[B, C, H, W] → [B, N = HW/P², D]``.
    """

    def __init__(self, config: ViTConfig, info: DataInfo) -> None:
        super().__init__()
        if len(info.input_shape) != 3 or not info.num_classes:
            raise ZooError("vit needs image inputs [C, H, W] with classes; the dataset gives samples of "
                           f"shape {list(info.input_shape)} (for fashion-mnist, do not set data.options.flatten)")
        c, h, w = info.input_shape
        p = config.patch
        if h % p or w % p:
            raise ZooError(f"vit: image sides {h}×{w} are not divisible by the patch size {p}")
        self.shape = (c, h, w)
        self.patches = nn.Conv2d(c, config.dim, kernel_size=p, stride=p)
        self.cls = nn.Parameter(torch.zeros(1, 1, config.dim)) if config.pooling == "cls" else None
        n = (h // p) * (w // p) + (1 if self.cls is not None else 0)
        self.positions = LearnedPositions(config.dim, n)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = Encoder(config.dim, config.heads, config.ff_dim, config.layers, config.dropout,
                               config.norm_first, config.use_sdpa, config.activation)
        self.norm = nn.LayerNorm(config.dim) if not config.norm_first else nn.Identity()
        self.head = nn.Linear(config.dim, info.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ZooError(f"vit expects images [B, {', '.join(map(str, self.shape))}]; got {list(x.shape)}")
        z = self.patches(x).flatten(2).transpose(1, 2)                        # (B, N, D)
        if self.cls is not None:
            z = torch.cat([self.cls.expand(z.shape[0], -1, -1), z], dim=1)    # (B, 1 + N, D)
        z = self.encoder(self.drop(self.positions(z)))                        # (B, 1 + N, D)
        s = z[:, 0] if self.cls is not None else z.mean(dim=1)                # (B, D)
        return self.head(self.norm(s))                                        # (B, C)


def build_vit(config: ViTConfig, info: DataInfo) -> nn.Module:
    """ViT for small images: patch embedding by a strided conv, learned positions, encoder."""
    return ViT(config, info)
