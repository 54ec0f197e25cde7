"""``transformer-seq2seq``: the encoder–decoder transformer with greedy decoding
(Vaswani et al. 2017, https://arxiv.org/abs/1706.03762).

Reading top to bottom::

    x = Emb_src(tokens) · √D + PE                        # source                [B, S, D]
    memory = Encoder(x, padding_mask(lengths))           # self-attention         [B, S, D]
    y = Emb_tgt(<bos> y₁ … y_{T−1}) · √D + PE            # target shifted right   [B, T, D]
    h = Decoder(y, memory, causal, padding_mask)         # causal self-, cross-attention
    logits = h W_out                                     # next-token scores      [B, T, V]

Training uses teacher forcing: the decoder reads the true target shifted right, all positions in
one pass (the causal mask keeps position t from seeing t and later). Decoding is greedy: start
from ``<bos>``, append ``argmax`` of the last position's logits, repeat; a row that emitted
``<eos>`` gets ``<pad>`` from then on.

ONNX: the deployable form is ``forward(tokens, lengths) → generated [B, L]``, the **whole greedy
loop unrolled** to ``L`` = the longest target the dataset has plus ``<eos>`` (``batch`` and the
source length stay dynamic). Why not an encoder and a decoder-step graph with the loop in Python:
``zoo predict``, ``zoo serve`` and the Triton repository all run one ONNX graph, so one graph
that is the whole decoder keeps them working unchanged, and the exporter's parity check then
compares the final decode with torch token for token. The price is that each of the ``L`` steps
re-runs the decoder on the whole prefix (no key/value cache: O(L²) decoder positions) and the
graph grows linearly with L; both are small for the outputs of these tasks (L = 11 for reverse
and sort of length ≤ 10, 7 for 5-digit addition). Torch decodes the same way (no early exit
when all rows finished: that would be a host sync per step and a different program from the
exported one).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import PAD_ID, UNK_ID
from zoo.plugins.transformer.layers import (
    Decoder,
    Encoder,
    LearnedPositions,
    SinusoidalPositions,
    padding_mask,
)
from zoo.plugins.transformer.models import AttentionConfig, check_tokens


class Seq2SeqConfig(AttentionConfig):
    dim: int = Field(128, ge=1, le=4096, description="Model width D (embeddings, attention, residual).")
    ff_dim: int = Field(256, ge=1, le=16384, description="Hidden width of the feed-forward layers.")
    encoder_layers: int = Field(2, ge=1, le=24, description="Encoder blocks.")
    decoder_layers: int = Field(2, ge=1, le=24, description="Decoder blocks.")
    positions: Literal["sinusoidal", "learned"] = Field("sinusoidal", description="Positional encoding.")
    max_positions: int = Field(128, ge=2, le=65_536, description="Rows of the positional table: the "
                               "longest source (and target + 1) the model accepts.")


class Seq2SeqTransformer(nn.Module):
    """Encoder–decoder transformer; see the module docstring.

    :param vocab_size: V (source and target share the vocabulary; separate embedding tables)
    :param decode_steps: L, the number of greedy steps (longest target + ``<eos>``)
    :param bos_id, eos_id: the special tokens that start and stop a decode

    Shapes:
        ``forward(tokens [B, S], lengths [B])`` → ``generated [B, L]`` int64;
        ``forward(tokens, lengths, target [B, T])`` → ``logits [B, T, V]`` (training) or
        ``(logits, generated)`` (eval mode: the task's metrics need both).
    """

    def __init__(self, config: Seq2SeqConfig, vocab_size: int, decode_steps: int, bos_id: int,
                 eos_id: int) -> None:
        super().__init__()
        c = config
        if decode_steps > c.max_positions:
            raise ZooError(f"targets need {decode_steps} decoder positions; model.max_positions is "
                           f"{c.max_positions}")
        self.dim, self.decode_steps, self.bos_id, self.eos_id = c.dim, decode_steps, bos_id, eos_id
        self.src_embed = nn.Embedding(vocab_size, c.dim, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(vocab_size, c.dim, padding_idx=PAD_ID)
        for table in (self.src_embed, self.tgt_embed):
            # std D^-1/2, so that embedding · √D has unit scale, like the positions it is added to
            # (nn.Embedding's N(0, 1) · √D would drown the positions: reverse and sort need them).
            nn.init.normal_(table.weight, std=c.dim ** -0.5)
            with torch.no_grad():
                table.weight[PAD_ID].zero_()
        positions = SinusoidalPositions if c.positions == "sinusoidal" else LearnedPositions
        self.src_pos = positions(c.dim, c.max_positions)
        self.tgt_pos = positions(c.dim, c.max_positions)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = Encoder(c.dim, c.heads, c.ff_dim, c.encoder_layers, c.dropout, c.norm_first)
        self.decoder = Decoder(c.dim, c.heads, c.ff_dim, c.decoder_layers, c.dropout, c.norm_first)
        self.out = nn.Linear(c.dim, vocab_size)
        # Greedy decoding never emits <pad>, <unk> or <bos> (they are never targets).
        never = torch.zeros(vocab_size, dtype=torch.bool)
        never[[PAD_ID, UNK_ID, bos_id]] = True
        self.register_buffer("never", never, persistent=False)

    # -- the two halves ---------------------------------------------------------------------
    def encode(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(memory [B, S, D], memory_mask [B, 1, 1, S])``."""
        mask = padding_mask(lengths, tokens.shape[1])                      # (B, 1, 1, S)
        x = self.drop(self.src_pos(self.src_embed(tokens) * math.sqrt(self.dim)))
        return self.encoder(x, mask), mask                                  # (B, S, D)

    def decode(self, y_in: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` for decoder input ``y_in [B, T]`` (``<bos>`` + target prefix)."""
        y = self.drop(self.tgt_pos(self.tgt_embed(y_in) * math.sqrt(self.dim)))   # (B, T, D)
        return self.out(self.decoder(y, memory, memory_mask=memory_mask))   # (B, T, V)

    def teacher_forced(self, memory: Tensor, memory_mask: Tensor, target: Tensor) -> Tensor:
        """``logits [B, T, V]`` predicting ``target [B, T]`` from ``<bos> target[:, :T−1]``."""
        bos = target.new_full((target.shape[0], 1), self.bos_id)
        return self.decode(torch.cat([bos, target[:, :-1]], dim=1), memory, memory_mask)

    def greedy(self, memory: Tensor, memory_mask: Tensor) -> Tensor:
        """``generated [B, L]``: L greedy steps; ``<pad>`` after a row's ``<eos>``."""
        b = memory.shape[0]
        ys = torch.full((b, 1), self.bos_id, dtype=torch.long, device=memory.device)  # (B, 1)
        finished = torch.zeros(b, dtype=torch.bool, device=memory.device)             # (B,)
        for _ in range(self.decode_steps):
            logits = self.decode(ys, memory, memory_mask)[:, -1]           # (B, V), last position
            step = logits.masked_fill(self.never, float("-inf")).argmax(-1)  # (B,)
            step = torch.where(finished, torch.full_like(step, PAD_ID), step)
            finished = finished | (step == self.eos_id)
            ys = torch.cat([ys, step[:, None]], dim=1)                     # (B, t + 2)
        return ys[:, 1:]                                                    # (B, L), <bos> dropped

    def forward(self, tokens: Tensor, lengths: Tensor, target: Tensor | None = None):
        check_tokens(tokens, lengths, self.src_embed.num_embeddings)
        memory, memory_mask = self.encode(tokens, lengths)
        if target is None:
            return self.greedy(memory, memory_mask)
        if target.shape[1] > self.decode_steps:
            raise ZooError(f"target of length {target.shape[1]} is longer than the model decodes "
                           f"({self.decode_steps})")
        logits = self.teacher_forced(memory, memory_mask, target)
        if self.training:
            return logits
        return logits, self.greedy(memory, memory_mask)


def build_seq2seq(config: Seq2SeqConfig, info: DataInfo) -> Seq2SeqTransformer:
    extra = info.extra
    if "max_target_length" not in extra or "vocab_size" not in extra:
        raise ZooError("transformer-seq2seq needs a seq2seq dataset (reverse, sort, addition): "
                       "DataInfo.extra vocab_size and max_target_length")
    if extra.get("max_length") and extra["max_length"] > config.max_positions:
        raise ZooError(f"sources of up to {extra['max_length']} tokens need model.max_positions ≥ "
                       f"{extra['max_length']} (it is {config.max_positions})")
    return Seq2SeqTransformer(config, extra["vocab_size"], extra["max_target_length"] + 1,
                              extra["bos_id"], extra["eos_id"])
