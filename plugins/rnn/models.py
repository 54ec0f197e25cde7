"""The RNN models: a stack of recurrent layers (any cell, optionally bidirectional) and a head
chosen by the dataset's kind of sequence task.

Shapes::

    tokens [B, T] int64 ─ embedding ─┐            (or x [B, T, F] float for real-valued inputs)
                                     ├─ layer 1 … layer L ─ outputs [B, T, H·dirs]
    lengths [B] int64 ───────────────┘
    pooled    (sequence-classification / -regression): [B, H·dirs] → logits [B, C] / value [B]
    per_token (sequence-tagging):                     [B, T, H·dirs] → logits [B, T, C]
    autoencoder (seq2seq-autoencoder): encoder summary repeated T times → decoder → logits [B, T, V]
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import last_valid, length_mask, reverse_padded
from zoo.plugins.rnn.cells import CELLS


class RNNConfig(ModelConfig):
    embedding_dim: int = Field(64, ge=1, le=4096, description="Token embedding size (token inputs).")
    hidden_size: int = Field(64, ge=1, le=8192, description="Hidden units per direction and layer.")
    layers: int = Field(1, ge=1, le=16, description="Stacked recurrent layers.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on embeddings, between layers and before the head.")
    bidirectional: bool = Field(False, description="Add a right-to-left direction to every layer.")
    pooling: Literal["last", "mean", "max"] = Field(
        "last", description="Sequence summary for one-output-per-sequence tasks: final states, "
                            "or mean / max over the real time steps.")


class RecurrentLayer(nn.Module):
    """One layer: a left-to-right cell and, if bidirectional, a right-to-left one."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, bidirectional: bool) -> None:
        super().__init__()
        self.fwd = CELLS[cell](input_size, hidden_size)
        self.bwd = CELLS[cell](input_size, hidden_size) if bidirectional else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.fwd(x, lengths)                                       # (B, T, H)
        if self.bwd is None:
            return out
        back = reverse_padded(self.bwd(reverse_padded(x, lengths), lengths), lengths)
        return torch.cat([out, back], dim=-1)                            # (B, T, 2H)


class RNNModel(nn.Module):
    """Embedding (for token inputs) → recurrent layers → head (see the module docstring)."""

    def __init__(self, cell: str, config: RNNConfig, info: DataInfo) -> None:
        super().__init__()
        extra = info.extra
        self.head_kind = extra.get("sequence_head", "pooled")
        self.bidirectional = config.bidirectional
        self.pooling = config.pooling
        if extra.get("vocab_size"):
            self.embedding = nn.Embedding(extra["vocab_size"], config.embedding_dim,
                                          padding_idx=extra.get("pad_id", 0))
            width = config.embedding_dim
        elif extra.get("input_features"):
            self.embedding = None
            width = int(extra["input_features"])
        else:
            raise ZooError("rnn models need a sequence dataset (DataInfo.extra vocab_size or input_features)")
        self.drop = nn.Dropout(config.dropout)
        dirs = 2 if config.bidirectional else 1
        layers = []
        for _ in range(config.layers):
            layers.append(RecurrentLayer(cell, width, config.hidden_size, config.bidirectional))
            width = config.hidden_size * dirs
        self.layers = nn.ModuleList(layers)
        if self.head_kind == "autoencoder":
            # The decoder sees only the encoder's summary at every step and must unroll it.
            self.decoder = RecurrentLayer(cell, width, config.hidden_size, False)
            self.head = nn.Linear(config.hidden_size, extra["vocab_size"])
        else:
            outputs = info.num_classes or info.output_dim or 1
            self.head = nn.Linear(width, outputs)
        self.squeeze = bool(info.output_dim) and not info.num_classes

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.embedding(x) if self.embedding is not None else x)    # (B, T, E)
        for i, layer in enumerate(self.layers):
            h = layer(h, lengths)                                                 # (B, T, H·dirs)
            if i < len(self.layers) - 1:
                h = self.drop(h)
        return h

    def summary(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, T, H·dirs] → [B, H·dirs]``."""
        if self.pooling == "last":
            if not self.bidirectional:
                return last_valid(h, lengths)
            half = h.shape[-1] // 2
            # Forward direction ends at lengths − 1; the backward direction ends at t = 0.
            return torch.cat([last_valid(h[..., :half], lengths), h[:, 0, half:]], dim=-1)
        mask = length_mask(lengths, h.shape[1]).unsqueeze(-1)                   # (B, T, 1)
        if self.pooling == "max":
            return h.masked_fill(~mask, -1e4).max(dim=1).values
        return (h * mask).sum(1) / lengths.clamp(min=1).unsqueeze(-1).to(h.dtype)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.encode(x, lengths)
        if self.head_kind == "per_token":
            return self.head(self.drop(h))                                       # (B, T, C)
        s = self.summary(h, lengths)
        if self.head_kind == "autoencoder":
            # Broadcast against a (B, T, 1) tensor of ones: repeat the summary at every step.
            steps = torch.ones_like(x, dtype=s.dtype).unsqueeze(-1) if x.dim() == 2 else \
                torch.ones_like(x[..., :1], dtype=s.dtype)                        # (B, T, 1)
            repeated = s.unsqueeze(1) * steps                                     # (B, T, H·dirs)
            return self.head(self.decoder(repeated, lengths))                    # (B, T, V)
        out = self.head(self.drop(s))                                            # (B, C) or (B, 1)
        return out.squeeze(-1) if self.squeeze else out


def builder(cell: str):
    def build(config: RNNConfig, info: DataInfo) -> nn.Module:
        return RNNModel(cell, config, info)

    build.__name__ = f"build_{cell.replace('-', '_')}"
    build.__doc__ = f"RNNModel with {cell} layers."
    return build
