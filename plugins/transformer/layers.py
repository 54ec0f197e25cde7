"""Transformer layers written out: attention as matrix products, masks, positions, blocks.

Shapes: ``B`` batch, ``T``/``S`` lengths (``Tq`` queries, ``Tk`` keys), ``D`` model width,
``H`` heads, ``d = D / H`` per-head width. Masks are **bool, True = may attend**, broadcastable
to ``[B, H, Tq, Tk]`` (the convention of ``F.scaled_dot_product_attention``); combine them
with ``&``.

Self-attention, step by step (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762)::

    Q = X W_q,  K = X W_k,  V = X W_v                 # projections            [B, T, D]
    S = Q Kᵀ / √d                                     # relevance of j to i     [B, H, Tq, Tk]
    S[i, j] = −∞  where the mask is False             # padding, future, far away
    A = softmax_j(S)                                  # weights, rows sum to 1
    Y = A V                                           # weighted sum            [B, H, Tq, d]
    out = concat_h(Y_h) W_o                           # heads merged            [B, T, D]

:func:`scaled_dot_product_attention` is that recipe in plain matmuls (it returns the weights
too); :class:`MultiHeadAttention` uses ``F.scaled_dot_product_attention`` (fused kernels) when
``use_sdpa=True`` and the written-out function otherwise — the tests check they agree to 1e-5.

Attention alone ignores order (permuting the tokens permutes the outputs), so positions are
added to the embeddings: :class:`SinusoidalPositions` (fixed formula) or
:class:`LearnedPositions` (a table). Both raise :class:`ZooError` past ``max_length``.

Blocks follow ``nn.TransformerEncoderLayer``: post-LN (the original, ``x = LN(x + f(x))``) by
default, pre-LN (``x = x + f(LN(x))``, steadier with depth) with ``norm_first=True``; a pre-LN
stack ends with a final LayerNorm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from zoo.core.contract.errors import ZooError

# -- attention --------------------------------------------------------------------------------


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                                 dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """``softmax(q kᵀ / √d, masked) v``, written out.

    :param q: ``[B, H, Tq, d]``
    :param k: ``[B, H, Tk, d]``
    :param v: ``[B, H, Tk, d]``
    :param mask: bool, True = may attend, broadcastable to ``[B, H, Tq, Tk]``
    :param dropout_p: dropout on the attention weights (pass 0 in eval)
    :returns: ``(out [B, H, Tq, d], weights [B, H, Tq, Tk])``

    A row whose mask is all False gets all-zero weights (output 0), as in PyTorch's
    ``F.scaled_dot_product_attention``, rather than the NaN of a softmax over −∞ only. Models
    still avoid such rows: ONNX runtimes do not all make the same choice.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale                  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)                                 # rows sum to 1
    if mask is not None:
        # Exact zeros where masked: a no-op for rows with one allowed key, all zero otherwise.
        weights = weights.masked_fill(~mask, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return torch.matmul(weights, v), weights                               # (B, H, Tq, d)


# -- masks ------------------------------------------------------------------------------------


def padding_mask(lengths: Tensor, length: int | torch.SymInt) -> Tensor:
    """``[B, 1, 1, T]`` bool, True on real tokens (``t < lengths[b]``): no query attends to
    padding. Built from runtime sizes so an ONNX export keeps ``T`` dynamic."""
    positions = torch.arange(length, device=lengths.device)                 # (T,)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]        # (B, 1, 1, T)


def causal_mask(length: int | torch.SymInt, device: torch.device | str | None = None) -> Tensor:
    """``[1, 1, T, T]`` bool, True where ``j <= i``: position i sees itself and the past."""
    i = torch.arange(length, device=device)
    return (i[None, :] <= i[:, None])[None, None]                          # (1, 1, T, T)


def local_mask(length: int | torch.SymInt, window: int,
               device: torch.device | str | None = None) -> Tensor:
    """``[1, 1, T, T]`` bool, True where ``|i − j| <= window``: truncated (local) attention.

    Each token sees ``2·window + 1`` neighbours, so L layers see ``2·L·window + 1`` tokens — a
    1-D convolution's receptive field, with content-dependent weights.
    """
    i = torch.arange(length, device=device)
    return ((i[None, :] - i[:, None]).abs() <= window)[None, None]         # (1, 1, T, T)


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A bool mask (True = may attend) as the additive bias ``0`` / ``finfo(dtype).min / 2``,
    same shape: what the attention of an exported model is given.

    The exporter writes a bool mask as ``Where(IsNaN(softmax), 0, softmax)`` over all
    ``[B, H, Tq, Tk]`` weights (PyTorch's zero rows for rows without any allowed key), ~10 % of
    onnxruntime's time in an encoder; the additive bias is one broadcast Add. onnxruntime's fused
    ``Attention`` kernel (:func:`onnx_attention`) converts a bool mask on every call (a scalar
    loop over ``[B | 1, H | 1, Tq, Tk]``) with ``finfo.min`` for masked scores, and its softmax
    is slower on rows full of ``finfo.min`` than at ``finfo.min / 2`` (one ``Attention`` node,
    B 64, T 32, D 64, H 4, window 4, one thread: bool 0.64 ms, additive ``finfo.min`` 0.58,
    additive ``finfo.min / 2`` 0.49, no mask 0.43). Half of ``finfo.min`` still gives masked
    keys an exact zero weight (``exp(−1.7·10³⁸) = 0``) and leaves room for any finite score to
    be added without overflowing to ``−inf``. Equal results for every row with at least one
    allowed key, which the models here guarantee (an all-masked row would average all keys).
    """
    allowed = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask, allowed, torch.full((), torch.finfo(dtype).min / 2, dtype=dtype, device=mask.device))


ATTENTION_OPSET = 23   # the first opset whose default domain has ``Attention``


def onnx_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, heads: int) -> Tensor:
    """ONNX's fused ``Attention`` operator (opset 23) in an exported graph: ``q [B, Tq, D]``,
    ``k``/``v`` ``[B, Tk, D]`` (heads not split), ``mask`` broadcastable to ``[B, H, Tq, Tk]``
    → ``[B, Tq, D]`` (heads merged). Call only under an export to opset ≥ 23.

    The same maths as ``F.scaled_dot_product_attention``, ``softmax(q_h k_hᵀ / √d + mask) v_h``
    per head, as one node: onnxruntime runs it with its attention kernel, where the exporter's
    own translation at lower opsets is a dozen nodes over the ``[B, H, Tq, Tk]`` scores
    (Transpose, MatMul, Mul, Add, Softmax, MatMul, Transpose) that its CPU optimiser leaves
    unfused. Inputs stay 3-D (``q_num_heads``/``kv_num_heads`` attributes), so no Transpose
    splits or merges the heads. The mask (bool, True = may attend, or an additive bias) is
    given to the kernel as an additive bias (:func:`additive_mask`: a bool one costs a
    conversion per call and a slower softmax) and expanded to ``[B | 1, H | 1, Tq, Tk]``: the
    kernel broadcasts the two leading axes only.
    """
    inputs: list[Tensor | None] = [q, k, v]
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = additive_mask(mask, q.dtype)                             # before the expand: small
        while mask.dim() < 4:
            mask = mask.unsqueeze(0)
        inputs.append(mask.expand(mask.shape[0], mask.shape[1], q.shape[1], k.shape[1]))
    return torch.onnx.ops.symbolic("Attention", inputs, {"q_num_heads": heads, "kv_num_heads": heads},
                                   dtype=q.dtype, shape=q.shape, version=ATTENTION_OPSET)


def _fused_export() -> bool:
    """True while exporting to an opset that has ONNX's ``Attention`` (:func:`onnx_attention`)."""
    if not torch.compiler.is_exporting():
        return False
    from zoo.core.deploy.export import export_opset

    opset = export_opset()
    return opset is not None and opset >= ATTENTION_OPSET


class MultiHeadAttention(nn.Module):
    """``H`` attention heads of width ``d = D / H`` in parallel, then an output projection.

    .. math::
        \\text{head}_h = \\text{softmax}\\Big(\\frac{(X_q W^q_h)(X_k W^k_h)^\\top}{\\sqrt d}\\Big) X_v W^v_h,
        \\qquad \\text{out} = [\\text{head}_1, …, \\text{head}_H]\\, W^o

    The q/k/v projections are one ``[3D, D]`` weight (as in ``nn.MultiheadAttention``) so
    self-attention costs one matmul for all three.

    Shapes:
        query ``[B, Tq, D]``, key/value ``[B, Tk, D]``, mask broadcastable to
        ``[B, H, Tq, Tk]`` (True = may attend) → ``[B, Tq, D]``.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, use_sdpa: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ZooError(f"attention width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.dropout = dropout
        self.use_sdpa = use_sdpa
        self.in_proj = nn.Linear(dim, 3 * dim)                              # W_q, W_k, W_v stacked
        self.out_proj = nn.Linear(dim, dim)                                 # W_o

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)     # (B, H, T, d)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.use_sdpa and _fused_export():
            return self._fused(query, key, value, mask)
        if query is key and key is value:                                  # self-attention: one matmul
            q, k, v = self.in_proj(query).chunk(3, dim=-1)                  # 3 × (B, T, D)
        else:
            w_q, w_k, w_v = self.in_proj.weight.chunk(3, dim=0)
            b_q, b_k, b_v = self.in_proj.bias.chunk(3, dim=0)
            q = F.linear(query, w_q, b_q)                                   # (B, Tq, D)
            k = F.linear(key, w_k, b_k)                                     # (B, Tk, D)
            v = F.linear(value, w_v, b_v)                                   # (B, Tk, D)
        q, k, v = self._split(q), self._split(k), self._split(v)            # (B, H, T·, d)
        p = self.dropout if self.training else 0.0
        if self.use_sdpa:
            if mask is not None and mask.dtype == torch.bool and torch.compiler.is_exporting():
                mask = additive_mask(mask, q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            y, _ = scaled_dot_product_attention(q, k, v, mask, p)           # (B, H, Tq, d)
        b, _, tq, _ = y.shape
        y = y.transpose(1, 2).reshape(b, tq, self.dim)                      # (B, Tq, D), heads merged
        return self.out_proj(y)

    def _fused(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> Tensor:
        """The forward pass as exported at opset ≥ 23: one ``Attention`` node (:func:`onnx_attention`),
        and two biases moved where they cost nothing.

        Each head's weights sum to 1 over the keys, so the value bias passes through attention
        unchanged and folds into the output bias, and the key bias adds ``q_i · b_k`` to every
        score of query i, which the softmax cancels::

            softmax_j(q_i (k_j + b_k)ᵀ) = softmax_j(q_i k_jᵀ),   Σ_j a_ij (v_j + b_v) = Σ_j a_ij v_j + b_v
            out = (Y + b_v) W_oᵀ + b_o = Y W_oᵀ + (b_o + W_o b_v)

        So K and V are bias-free matmuls, and q, k, v are three matmuls rather than one over
        ``[3D, D]`` and a Split: onnxruntime adds a bias in a pass of its own (its ``MatMul``
        takes none) and copies each output of a Split.
        """
        w_q, w_k, w_v = self.in_proj.weight.chunk(3, dim=0)
        b_q, _, b_v = self.in_proj.bias.chunk(3, dim=0)
        q = F.linear(query, w_q, b_q)                                       # (B, Tq, D)
        k = F.linear(key, w_k)                                              # (B, Tk, D), bias cancels
        v = F.linear(value, w_v)                                            # (B, Tk, D), bias moved on
        y = onnx_attention(q, k, v, mask, self.heads)                       # (B, Tq, D)
        return F.linear(y, self.out_proj.weight, self.out_proj.bias + self.out_proj.weight @ b_v)


# -- positions --------------------------------------------------------------------------------


def _check_length(length: int | torch.SymInt, max_length: int, what: str) -> None:
    # Skipped while torch.export traces the model: the length is symbolic there, and the
    # exported graph is guarded by the serving path (DataInfo.extra "onnx_max_length") instead.
    if not torch.compiler.is_compiling() and length > max_length:
        raise ZooError(f"sequence of length {length} is longer than the {what} table "
                       f"(max_length {max_length}); shorten the input or build the model with a "
                       f"larger max_length")


def sinusoidal_table(length: int, dim: int) -> Tensor:
    """``PE[t, 2i] = sin(t / 10000^{2i/D})``, ``PE[t, 2i+1] = cos(t / 10000^{2i/D})`` → ``[T, D]``.

    Every dimension pair is a rotation at its own frequency, so ``PE[t + k]`` is a linear
    function of ``PE[t]`` (relative offsets are easy to read off).
    """
    t = torch.arange(length, dtype=torch.float32)[:, None]                  # (T, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(t * freq)                                    # (T, ⌈D/2⌉)
    table[:, 1::2] = torch.cos(t * freq[: dim // 2])                        # (T, ⌊D/2⌋)
    return table


class SinusoidalPositions(nn.Module):
    """``x + PE[:T]`` with the fixed table of :func:`sinusoidal_table`; no parameters.

    Shapes: ``x [B, T, D] → [B, T, D]``. The formula is defined for any t, but a model only ever
    saw positions below ``max_length`` in training, so longer inputs raise :class:`ZooError`
    instead of extrapolating silently.
    """

    def __init__(self, dim: int, max_length: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.register_buffer("table", sinusoidal_table(max_length, dim), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_length(x.shape[1], self.max_length, "sinusoidal position")
        # Gather by arange (not a slice) so an ONNX export keeps T symbolic without a guard.
        positions = torch.arange(x.shape[1], device=x.device)               # (T,)
        return x + self.table[positions].to(x.dtype)                        # (B, T, D)


class LearnedPositions(nn.Module):
    """``x + P[:T]`` with a learned table ``P [max_length, D]`` (BERT, ViT).

    Shapes: ``x [B, T, D] → [B, T, D]``; T > ``max_length`` raises :class:`ZooError` (there is
    no row to look up).
    """

    def __init__(self, dim: int, max_length: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.table = nn.Embedding(max_length, dim)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        _check_length(x.shape[1], self.max_length, "learned position")
        positions = torch.arange(x.shape[1], device=x.device)               # (T,)
        return x + self.table(positions)                                    # (B, T, D)


# -- blocks -----------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """Position-wise ``W_2 · dropout(act(W_1 x + b_1)) + b_2``: ``[B, T, D] → [B, T, D]``."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.act = {"relu": F.relu, "gelu": F.gelu}[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.drop(self.act(self.linear1(x))))           # (B, T, D)


class EncoderBlock(nn.Module):
    """Self-attention and a feed-forward layer, each with a residual connection and LayerNorm.

    post-LN (``norm_first=False``, the original)::

        x = LN₁(x + drop(MHA(x, x, x, mask)))
        x = LN₂(x + drop(FF(x)))

    pre-LN (``norm_first=True``)::

        x = x + drop(MHA(LN₁(x), …, mask))
        x = x + drop(FF(LN₂(x)))

    Shapes: ``x [B, T, D]``, mask broadcastable to ``[B, H, T, T]`` → ``[B, T, D]``.
    """

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float = 0.1, norm_first: bool = False,
                 use_sdpa: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attn = MultiHeadAttention(dim, heads, dropout, use_sdpa)
        self.ff = FeedForward(dim, ff_dim, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.drop1(self.attn(h, h, h, mask))
            return x + self.drop2(self.ff(self.norm2(x)))
        x = self.norm1(x + self.drop1(self.attn(x, x, x, mask)))
        return self.norm2(x + self.drop2(self.ff(x)))


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the encoder's memory, feed-forward; each with
    a residual connection and LayerNorm (post-LN by default, pre-LN with ``norm_first``).

    The self-attention is always causal: ``self_mask`` (e.g. the target's padding mask) is
    combined with :func:`causal_mask` here, so passing a causal mask again is harmless.

    Shapes: ``y [B, Ty, D]``, ``memory [B, Tx, D]``, ``self_mask`` broadcastable to
    ``[B, H, Ty, Ty]``, ``memory_mask`` to ``[B, H, Ty, Tx]`` (usually the source padding mask
    ``[B, 1, 1, Tx]``) → ``[B, Ty, D]``.
    """

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float = 0.1, norm_first: bool = False,
                 use_sdpa: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(dim, heads, dropout, use_sdpa)
        self.cross_attn = MultiHeadAttention(dim, heads, dropout, use_sdpa)
        self.ff = FeedForward(dim, ff_dim, dropout, activation)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, y: Tensor, memory: Tensor, self_mask: Tensor | None = None,
                memory_mask: Tensor | None = None) -> Tensor:
        causal = causal_mask(y.shape[1], y.device)                          # (1, 1, Ty, Ty)
        self_mask = causal if self_mask is None else causal & self_mask
        if self.norm_first:
            h = self.norm1(y)
            y = y + self.drop1(self.self_attn(h, h, h, self_mask))
            y = y + self.drop2(self.cross_attn(self.norm2(y), memory, memory, memory_mask))
            return y + self.drop3(self.ff(self.norm3(y)))
        y = self.norm1(y + self.drop1(self.self_attn(y, y, y, self_mask)))
        y = self.norm2(y + self.drop2(self.cross_attn(y, memory, memory, memory_mask)))
        return self.norm3(y + self.drop3(self.ff(y)))


class Encoder(nn.Module):
    """``layers`` :class:`EncoderBlock` s; a final LayerNorm when ``norm_first`` (pre-LN leaves
    the residual stream un-normalised). ``x [B, T, D] → [B, T, D]``."""

    def __init__(self, dim: int, heads: int, ff_dim: int, layers: int, dropout: float = 0.1,
                 norm_first: bool = False, use_sdpa: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderBlock(dim, heads, ff_dim, dropout, norm_first, use_sdpa, activation)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """``layers`` :class:`DecoderBlock` s; a final LayerNorm when ``norm_first``.
    ``y [B, Ty, D], memory [B, Tx, D] → [B, Ty, D]``."""

    def __init__(self, dim: int, heads: int, ff_dim: int, layers: int, dropout: float = 0.1,
                 norm_first: bool = False, use_sdpa: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderBlock(dim, heads, ff_dim, dropout, norm_first, use_sdpa, activation)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(self, y: Tensor, memory: Tensor, self_mask: Tensor | None = None,
                memory_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            y = layer(y, memory, self_mask, memory_mask)
        return self.norm(y)
