"""The CRNN (Shi, Bai & Yao 2016, https://arxiv.org/abs/1507.05717) trained with CTC.

Shapes::

    x [B, H, W] ─ unsqueeze ─ conv blocks ─ [B, C, H', W'] ─ frames ─ [B, W', C·H']
        (each block: 3×3 conv, BatchNorm, ReLU, max-pool 2 in height; the first
         ``width_pools`` blocks also pool 2 in width: W' = ⌊W / 2^width_pools⌋; after each
         block the columns past a sample's own (pooled) length are set to 0)
    lengths [B] ─ ⌊lengths / 2^width_pools⌋ ─ frame_lengths [B]
    [B, W', C·H'] ─ bidirectional LSTM/GRU × layers ─ [B, W', 2·hidden]
                  ─ linear ─ log_softmax ─ log_probs [B, W', K]   (K = symbols + blank, blank = 0)

The backward direction of each recurrent layer runs over each sequence reversed *within its
length* (:func:`zoo.plugins.sequence.pipeline.reverse_padded`), so it starts at the last real frame and a
sample's output does not depend on how much padding its batch adds. Images are padded with 0 (the
background) and every block's output is zeroed past each sample's pooled length, so the
convolutions near a sample's end see what they would see alone: a sample's log-probabilities do
not depend on its batch.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn
from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import length_mask, reverse_padded


class CRNNConfig(ModelConfig):
    channels: list[int] = Field([32, 64], min_length=1, max_length=8,
                                description="Output channels of each conv block (each halves the height).")
    width_pools: int = Field(1, ge=0, le=4, description="How many of the first conv blocks also halve "
                             "the width (frames per output step = 2^width_pools).")
    rnn: Literal["lstm", "gru"] = Field("lstm", description="Recurrent cell of the sequence layers.")
    hidden_size: int = Field(64, ge=1, le=4096, description="Hidden units per direction and layer.")
    layers: int = Field(1, ge=1, le=8, description="Stacked bidirectional recurrent layers.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout between recurrent layers and before the head.")
    beam_width: int = Field(1, ge=1, le=256, description="Decoding in zoo predict / zoo serve: 1 = greedy "
                            "(best path), more = prefix beam search with that many prefixes.")

    @field_validator("channels")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(c < 1 or c > 4096 for c in value):
            raise ValueError(f"channels must be between 1 and 4096, got {value}")
        return value


class BiRecurrent(nn.Module):
    """One bidirectional layer: a left-to-right and a right-to-left ``nn.LSTM``/``nn.GRU``."""

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        kind = nn.LSTM if cell == "lstm" else nn.GRU
        self.fwd = kind(input_size, hidden_size, batch_first=True)
        self.bwd = kind(input_size, hidden_size, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.fwd(x)                                              # (B, T, H)
        back, _ = self.bwd(reverse_padded(x, lengths))                    # (B, T, H), reversed
        return torch.cat([out, reverse_padded(back, lengths)], dim=-1)    # (B, T, 2H)


class CRNN(nn.Module):
    """Conv feature extractor → bidirectional recurrent layers → per-frame log-probabilities."""

    def __init__(self, config: CRNNConfig, info: DataInfo) -> None:
        super().__init__()
        height, symbols = info.extra.get("input_height"), info.extra.get("num_symbols")
        if not height or not symbols:
            raise ZooError("crnn-ctc needs a recognition dataset (DataInfo.extra input_height and num_symbols)")
        if config.width_pools > len(config.channels):
            raise ZooError(f"model.width_pools {config.width_pools} > the {len(config.channels)} conv blocks")
        blocks, prev = [], 1
        for i, c in enumerate(config.channels):
            pool = (2 if height >= 2 else 1, 2 if i < config.width_pools else 1)
            blocks.append(nn.Sequential(nn.Conv2d(prev, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                        nn.MaxPool2d(pool, pool)))
            height, prev = height // pool[0], c
        self.blocks = nn.ModuleList(blocks)
        self.strides = [2 ** min(i + 1, config.width_pools) for i in range(len(blocks))]
        self.stride = 2 ** config.width_pools
        self.drop = nn.Dropout(config.dropout)
        width = prev * height
        layers = []
        for _ in range(config.layers):
            layers.append(BiRecurrent(config.rnn, width, config.hidden_size))
            width = 2 * config.hidden_size
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(width, symbols + 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.unsqueeze(1)                                                # (B, 1, H, W)
        for block, stride in zip(self.blocks, self.strides):
            h = block(h)                                                  # (B, C, H/2, W/stride)
            # Zero what lies past each sample's end, as a sample alone would see it (conv padding):
            # BatchNorm's shift and a pooled last column would otherwise leak into real frames.
            valid = length_mask(torch.div(lengths, stride, rounding_mode="floor"), h.shape[3])
            h = h * valid[:, None, None, :].to(h.dtype)
        b, c, hh, w = h.shape
        h = h.permute(0, 3, 1, 2).reshape(b, w, c * hh)                   # (B, W', C·H')
        frames = torch.div(lengths, self.stride, rounding_mode="floor").clamp(min=1)
        for i, layer in enumerate(self.layers):
            h = layer(self.drop(h) if i else h, frames)                   # (B, W', 2·hidden)
        logits = self.head(self.drop(h))                                  # (B, W', K)
        return logits.log_softmax(-1), frames


def build_crnn(config: CRNNConfig, info: DataInfo) -> nn.Module:
    """The CRNN of the module docstring."""
    return CRNN(config, info)
