"""``rnn-seq2seq``: the RNN encoder–decoder (Cho et al. 2014, Sutskever et al. 2014) with
attention as an option: ``none`` (the fixed-vector bottleneck), ``additive`` (Bahdanau, Cho &
Bengio 2015, https://arxiv.org/abs/1409.0473) and ``dot`` / ``general`` (Luong, Pham & Manning
2015, https://arxiv.org/abs/1508.04025).

Reading top to bottom::

    m = Encoder(Emb(tokens), lengths)              # GRU/LSTM, bi- or unidirectional   [B, S, M]
    k = m W_m                                      # memory in the decoder's width     [B, S, H]
    s = [→h_last ; ←h_first]                       # the source summary                 [B, M]
    h₀ = tanh(W_s s)                               # decoder start state                [B, H]
    for t = 1 … T:                                 # y₀ = <bos>
        additive:  c_t = attend(h_{t−1}, k)        # Bahdanau: query = previous state
                   h_t = Cell([Emb(y_{t−1}); c_t], h_{t−1})
        dot/general/none:
                   h_t = Cell([Emb(y_{t−1}); h̃_{t−1}], h_{t−1})   # Luong's input feeding
                   c_t = attend(h_t, k)            # (none: c_t = W_m s, the same every step)
        h̃_t = tanh(W_c [h_t; c_t])                 # attentional state                  [B, H]
        logits_t = W_o h̃_t                         #                                    [B, V]

Scores of ``attend(q, k)`` over the source positions j (padding masked out before the softmax,
``α = softmax_j(e)``, ``c = Σ_j α_j k_j``):

* ``additive``: ``e_j = vᵀ tanh(W_q q + U k_j)``
* ``dot``:      ``e_j = qᵀ k_j``
* ``general``:  ``e_j = qᵀ W_a k_j``

With ``none`` the decoder sees the source only through ``s`` (its start state and every step's
context): a fixed-size vector for any source length, the bottleneck that attention removes.

Training feeds the true previous token (teacher forcing, ``y_{t−1}`` = target); evaluation and
export feed the model's own argmax (greedy; ``<pad>`` after a row's ``<eos>``; ``<pad>``,
``<unk>`` and ``<bos>`` are never emitted). ONNX: ``forward(tokens, lengths) → generated [B, L]``
with the L greedy steps unrolled into the graph (L = the longest target + ``<eos>``), as
``transformer-seq2seq`` does; the encoder runs through the family's scan, so batch and source
length stay dynamic.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import PAD_ID, UNK_ID, last_valid, length_mask
from zoo.plugins.rnn.models import RecurrentLayer

Attention = Literal["none", "additive", "dot", "general"]


class RNNSeq2SeqConfig(ModelConfig):
    cell: Literal["gru", "lstm"] = Field("gru", description="Recurrent cell of encoder and decoder.")
    attention: Attention = Field("additive", description="none (fixed vector), additive (Bahdanau), "
                                 "dot or general (Luong).")
    embedding_dim: int = Field(64, ge=1, le=4096, description="Token embedding size (source and target tables).")
    hidden_size: int = Field(128, ge=1, le=8192, description="Hidden units of the decoder and of each encoder direction.")
    bidirectional: bool = Field(True, description="Encoder reads the source both ways.")
    attention_dim: int = Field(128, ge=1, le=8192, description="Width of the additive attention's hidden layer.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on embeddings and the attentional state.")


class SourceAttention(nn.Module):
    """``attend(q [B, H], keys [B, S, H], mask [B, S]) → (context [B, H], α [B, S])``."""

    def __init__(self, kind: str, hidden: int, attention_dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.query = nn.Linear(hidden, attention_dim, bias=False)
            self.key = nn.Linear(hidden, attention_dim)
            self.v = nn.Linear(attention_dim, 1, bias=False)
        elif kind == "general":
            self.w = nn.Linear(hidden, hidden, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        """The query-independent part, once per source: ``U k`` (additive), ``W_a k`` (general)."""
        if self.kind == "additive":
            return self.key(keys)                                      # (B, S, A)
        if self.kind == "general":
            return self.w(keys)                                        # (B, S, H)
        return keys

    def forward(self, q: Tensor, keys: Tensor, prepared: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "additive":
            e = self.v(torch.tanh(self.query(q)[:, None, :] + prepared)).squeeze(-1)   # (B, S)
        else:
            e = (prepared @ q[:, :, None]).squeeze(-1)                  # (B, S)
        e = e.masked_fill(~mask, torch.finfo(e.dtype).min)
        alpha = torch.softmax(e, dim=-1)                                # (B, S)
        return (alpha[:, :, None] * keys).sum(1), alpha                # (B, H), (B, S)


class RNNSeq2Seq(nn.Module):
    """Encoder–decoder RNN with optional attention; see the module docstring.

    :param config: the model options
    :param vocab_size: V (source and target share the vocabulary; separate embedding tables)
    :param decode_steps: L, the greedy steps (longest target + ``<eos>``)
    :param bos_id, eos_id: the tokens that start and stop a decode

    Shapes:
        ``forward(tokens [B, S], lengths [B])`` → ``generated [B, L]`` int64;
        ``forward(tokens, lengths, target [B, T])`` → ``logits [B, T, V]`` (training) or
        ``(logits, generated)`` (eval mode: the task's metrics need both);
        ``greedy_with_attention(tokens, lengths)`` → ``(generated [B, L], α [B, L, S])``.
    """

    def __init__(self, config: RNNSeq2SeqConfig, vocab_size: int, decode_steps: int, bos_id: int,
                 eos_id: int) -> None:
        super().__init__()
        c = config
        h, dirs = c.hidden_size, 2 if c.bidirectional else 1
        self.attention_kind, self.is_lstm = c.attention, c.cell == "lstm"
        self.decode_steps, self.bos_id, self.eos_id = decode_steps, bos_id, eos_id
        self.src_embed = nn.Embedding(vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.encoder = RecurrentLayer(c.cell, c.embedding_dim, h, c.bidirectional)
        self.memory = nn.Linear(dirs * h, h)                 # W_m: encoder outputs → decoder width
        self.bridge = nn.Linear(dirs * h, h)                 # W_s: summary → h₀
        self.attend = SourceAttention(c.attention, h, c.attention_dim) if c.attention != "none" else None
        self.cell = (nn.LSTMCell if self.is_lstm else nn.GRUCell)(c.embedding_dim + h, h)
        self.combine = nn.Linear(2 * h, h)                   # W_c
        self.out = nn.Linear(h, vocab_size)                  # W_o
        self.drop = nn.Dropout(c.dropout)
        never = torch.zeros(vocab_size, dtype=torch.bool)
        never[[PAD_ID, UNK_ID, bos_id]] = True
        self.register_buffer("never", never, persistent=False)

    # -- encoder --------------------------------------------------------------------------------
    def encode(self, tokens: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """The decoder's view of the source: ``keys [B, S, H]``, ``prepared`` (attention's
        query-independent part), ``mask [B, S]``, ``summary [B, H]`` (W_m s) and ``h0 [B, H]``."""
        m = self.encoder(self.drop(self.src_embed(tokens)), lengths)          # (B, S, M)
        if self.encoder.bwd is not None:
            half = m.shape[-1] // 2   # forward direction ends at lengths − 1, backward at t = 0
            s = torch.cat([last_valid(m[..., :half], lengths), m[:, 0, half:]], dim=-1)
        else:
            s = last_valid(m, lengths)                                         # (B, M)
        keys = self.memory(m)                                                  # (B, S, H)
        prepared = self.attend.prepare(keys) if self.attend is not None else keys
        return {"keys": keys, "prepared": prepared, "mask": length_mask(lengths, tokens.shape[1]),
                "summary": self.memory(s), "h0": torch.tanh(self.bridge(s))}

    # -- decoder --------------------------------------------------------------------------------
    def start(self, enc: dict[str, Tensor]) -> tuple[tuple[Tensor, ...], Tensor]:
        """``(cell state, h̃₀)``: ``(h₀,)`` or ``(h₀, 0)`` for the LSTM, and a zero attentional state."""
        h0 = enc["h0"]
        state = (h0, torch.zeros_like(h0)) if self.is_lstm else (h0,)
        return state, torch.zeros_like(h0)

    def step(self, y_prev: Tensor, state: tuple[Tensor, ...], feed: Tensor, enc: dict[str, Tensor]):
        """One decoder step: ``y_prev [B]`` → ``(logits [B, V], state, h̃ [B, H], α [B, S] or None)``."""
        emb = self.drop(self.tgt_embed(y_prev))                                # (B, E)
        alpha = None
        if self.attention_kind == "additive":   # Bahdanau: attend with the previous state
            context, alpha = self.attend(state[0], enc["keys"], enc["prepared"], enc["mask"])
            feed = context
        state = self._cell(torch.cat([emb, feed], dim=-1), state)
        h = state[0]                                                           # (B, H)
        if self.attention_kind == "none":
            context = enc["summary"]
        elif self.attention_kind != "additive":  # Luong: attend with the new state
            context, alpha = self.attend(h, enc["keys"], enc["prepared"], enc["mask"])
        attentional = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))   # (B, H)
        return self.out(self.drop(attentional)), state, attentional, alpha

    def _cell(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        if self.is_lstm:
            return self.cell(x, state)
        return (self.cell(x, state[0]),)

    def teacher_forced(self, enc: dict[str, Tensor], target: Tensor) -> Tensor:
        """``logits [B, T, V]``: step t reads the true ``target[:, t−1]`` (``<bos>`` at t = 0)."""
        state, feed = self.start(enc)
        y_prev = target.new_full((target.shape[0],), self.bos_id)
        logits = []
        for t in range(target.shape[1]):
            step_logits, state, attentional, _ = self.step(y_prev, state, feed, enc)
            feed = attentional
            logits.append(step_logits)
            y_prev = target[:, t]
        return torch.stack(logits, dim=1)

    def greedy(self, enc: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """``(generated [B, L], α [B, L, S] or None)``: L greedy steps, ``<pad>`` after ``<eos>``."""
        state, feed = self.start(enc)
        b = enc["h0"].shape[0]
        y_prev = torch.full((b,), self.bos_id, dtype=torch.long, device=enc["h0"].device)
        finished = torch.zeros(b, dtype=torch.bool, device=enc["h0"].device)
        out, alphas = [], []
        for _ in range(self.decode_steps):
            step_logits, state, attentional, alpha = self.step(y_prev, state, feed, enc)
            feed = attentional
            y = step_logits.masked_fill(self.never, float("-inf")).argmax(-1)     # (B,)
            y_prev = y   # a finished row keeps decoding its own argmax; only its output is padded
            y = torch.where(finished, torch.full_like(y, PAD_ID), y)
            finished = finished | (y == self.eos_id)
            out.append(y)
            if alpha is not None:
                alphas.append(alpha)
        return torch.stack(out, dim=1), (torch.stack(alphas, dim=1) if alphas else None)

    def greedy_with_attention(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        _check_source(tokens, lengths, self.src_embed.num_embeddings)
        return self.greedy(self.encode(tokens, lengths))

    def forward(self, tokens: Tensor, lengths: Tensor, target: Tensor | None = None):
        _check_source(tokens, lengths, self.src_embed.num_embeddings)
        enc = self.encode(tokens, lengths)
        if target is None:
            return self.greedy(enc)[0]
        if target.shape[1] > self.decode_steps:
            raise ZooError(f"target of length {target.shape[1]} is longer than the model decodes "
                           f"({self.decode_steps})")
        logits = self.teacher_forced(enc, target)
        if self.training:
            return logits
        return logits, self.greedy(enc)[0]


def _check_source(tokens: Tensor, lengths: Tensor, vocab_size: int) -> None:
    """ZooError for inputs the model cannot read (CPU tensors only, never while exporting: on an
    accelerator this would cost a device sync per call, and the data comes from its vocabulary)."""
    if torch.compiler.is_exporting() or tokens.device.type != "cpu":
        return
    if tokens.dim() != 2 or lengths.shape != tokens.shape[:1]:
        raise ZooError(f"expected tokens [B, S] and lengths [B], got {list(tokens.shape)} and {list(lengths.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ZooError(f"token ids must lie in [0, {vocab_size}), got {int(tokens.min())}..{int(tokens.max())}")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > tokens.shape[1]):
        raise ZooError(f"lengths must lie in [1, {tokens.shape[1]}], got {int(lengths.min())}..{int(lengths.max())}")


def build_rnn_seq2seq(config: RNNSeq2SeqConfig, info: DataInfo) -> RNNSeq2Seq:
    extra = info.extra
    if "max_target_length" not in extra or "vocab_size" not in extra:
        raise ZooError("rnn-seq2seq needs a seq2seq dataset (reverse, sort, addition, tatoeba-eng-fra, "
                       "pairs): DataInfo.extra vocab_size and max_target_length")
    return RNNSeq2Seq(config, extra["vocab_size"], extra["max_target_length"] + 1,
                      extra["bos_id"], extra["eos_id"])
