"""Skip-gram and CBOW with negative sampling, and GloVe.

Every model has two faces:

* training: ``forward(a, b, c)`` returns ``(loss_sum, count)`` (0-d): the loss summed over the
  batch and how many terms it holds; the ``embedding`` task divides the two;
* deployment: ``forward(ids)`` (one argument) returns the L2-normalised embeddings of ``ids``;
  this is what is exported to ONNX (:class:`EmbeddingLookup`) and checked for parity.

Negative sampling (Mikolov et al. 2013b, https://arxiv.org/abs/1310.4546): for a centre/context
pair (w, c) with vectors v_w (input) and u_c (output), and k noise words n_1..n_k drawn from the
unigram distribution raised to 3/4,

    loss(w, c) = −log σ(u_c · v_w) − Σ_i log σ(−u_{n_i} · v_w).

The noise words of one centre are shared by its context words (each pair still sees k noise
words, drawn i.i.d. from the same distribution), which makes a batch ``[B, k, D]`` instead of
``[B, 2w, k, D]``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo.core.config import ModelConfig
from zoo.core.data import DataInfo
from zoo.core.errors import ZooError


class EmbeddingLookup(nn.Module):
    """The deployable form: ``ids [N] (int64) → vectors [N, D]``, each row of unit L2 norm."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.embedding(ids, self.weight), dim=-1)


class _WordVectors(nn.Module):
    """Shared by the three models: the vocabulary, the lookup face and the noise sampler."""

    def __init__(self, info: DataInfo, dim: int) -> None:
        super().__init__()
        vocab = info.extra.get("vocab")
        if not vocab:
            raise ZooError("word2vec models need a text corpus dataset (wiki-sample, lee, text-file)")
        self.vocab: list[str] = list(vocab)
        self.dim = dim

    def embedding_matrix(self) -> torch.Tensor:
        """The word vectors (unnormalised) ``[V, D]``: what word2vec files and evaluations use."""
        raise NotImplementedError

    def lookup(self) -> EmbeddingLookup:
        return EmbeddingLookup(self.embedding_matrix().cpu())

    def normalized(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.embedding(ids, self.embedding_matrix()), dim=-1)


class _NegativeSampling(_WordVectors):
    """Input vectors v (the embedding), output vectors u, and the unigram^α noise distribution."""

    def __init__(self, info: DataInfo, dim: int, negatives: int, ns_exponent: float,
                 sparse: bool = False, table_size: int = 1_000_000) -> None:
        super().__init__(info, dim)
        counts = torch.as_tensor(np.asarray(info.extra["counts"], dtype=np.float64))
        probs = counts.pow(ns_exponent)
        probs = probs / probs.sum()
        # word2vec's unigram table: word i fills ≈ table_size·p_i slots, so a uniform slot is a
        # draw from unigram^α (a gather, ~10× faster than searchsorted on the CDF). Rebuilt from
        # the counts at build time, so not part of the checkpoint.
        size = max(table_size, 100 * len(probs))
        bounds = (probs.cumsum(0) * size).round().long().clamp(max=size)
        table = torch.repeat_interleave(torch.arange(len(probs), dtype=torch.int32),
                                        torch.diff(bounds, prepend=torch.zeros(1, dtype=torch.long)))
        self.register_buffer("noise_table", table, persistent=False)
        self.negatives = negatives
        self.in_embed = nn.Embedding(len(self.vocab), dim, sparse=sparse)
        self.out_embed = nn.Embedding(len(self.vocab), dim, sparse=sparse)
        # word2vec's initialisation: v ~ U(−0.5/D, 0.5/D), u = 0.
        nn.init.uniform_(self.in_embed.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out_embed.weight)

    def sample_noise(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Word ids drawn from unigram^α. Evaluation draws from a fixed seed (comparable losses)."""
        n = self.noise_table.shape[0]
        if self.training:
            slots = torch.randint(n, shape, device=device)
        else:
            generator = torch.Generator(device=device).manual_seed(0)
            slots = torch.randint(n, shape, device=device, generator=generator)
        return self.noise_table[slots].long()

    def embedding_matrix(self) -> torch.Tensor:
        return self.in_embed.weight


class SkipGram(_NegativeSampling):
    """Skip-gram: predict each context word from the centre word.

    Only the valid (centre, context) pairs of the mask are computed: with the dynamic window and
    subsampling about half of the ``2w`` slots are empty, and centres without a pair draw no noise.

    Shapes: ``centre [B]``, ``context [B, C]``, ``mask [B, C]`` (bool) → ``(loss_sum, pairs)``
    (0-d: summed over the batch); ``ids [N]`` → ``[N, D]``.
    """

    def forward(self, centre, context=None, mask=None):
        if context is None:
            return self.normalized(centre)
        rows, cols = mask.nonzero(as_tuple=True)                        # (P,) valid pairs
        v = self.in_embed(centre)                                        # (B, D)
        u = self.out_embed(context[rows, cols])                          # (P, D)
        positive = (u * v.index_select(0, rows)).sum(-1)                 # (P,)
        pairs = mask.sum(1)                                              # (B,)
        active = pairs.nonzero(as_tuple=True)[0]                         # (A,) centres with a pair
        v_active = v.index_select(0, active)                             # (A, D)
        noise = self.sample_noise((active.shape[0], self.negatives), centre.device)
        # Broadcast multiply + sum rather than bmm: a batch of matrix-vector products is
        # memory-bound, and bmm on tiny matrices was 3× slower on the CPU.
        negative = (self.out_embed(noise) * v_active.unsqueeze(1)).sum(-1)  # (A, k)
        weight = pairs.index_select(0, active).float()                   # (A,) pairs sharing the noise
        loss = -F.logsigmoid(positive).sum() - (weight * F.logsigmoid(-negative).sum(1)).sum()
        return loss, weight.sum()


class CBOW(_NegativeSampling):
    """CBOW: predict the centre word from the mean of its context vectors (word2vec's cbow_mean).

    Shapes: ``centre [B]``, ``context [B, C]``, ``mask [B, C]`` → ``(loss_sum, centres)`` (0-d);
    ``ids [N]`` → ``[N, D]``.
    """

    def forward(self, centre, context=None, mask=None):
        if context is None:
            return self.normalized(centre)
        n_context = mask.sum(1)                                          # (B,)
        active = n_context.nonzero(as_tuple=True)[0]                     # (A,) centres with context
        rows, cols = mask.nonzero(as_tuple=True)                        # (P,) valid context slots
        # Sum only the valid context vectors into their centre's row (half the slots are empty).
        h = torch.zeros(centre.shape[0], self.dim, device=centre.device, dtype=self.in_embed.weight.dtype)
        h = h.index_add(0, rows, self.in_embed(context[rows, cols]))    # (B, D)
        h = h.index_select(0, active) / n_context.index_select(0, active).unsqueeze(-1).float()  # (A, D)
        noise = self.sample_noise((active.shape[0], self.negatives), centre.device)
        positive = (self.out_embed(centre.index_select(0, active)) * h).sum(-1)  # (A,)
        negative = (self.out_embed(noise) * h.unsqueeze(1)).sum(-1)      # (A, k)
        loss = -F.logsigmoid(positive).sum() - F.logsigmoid(-negative).sum()
        return loss, torch.tensor(float(active.shape[0]), device=centre.device)


class GloVe(_WordVectors):
    """GloVe (Pennington et al. 2014, https://nlp.stanford.edu/pubs/glove.pdf).

    Weighted least squares on log co-occurrence counts:

        J = Σ_{ij: X_ij > 0} f(X_ij) (w_i · w̃_j + b_i + b̃_j − log X_ij)² / 2,
        f(x) = min(1, (x / x_max)^α).

    The word vector is w + w̃ (as in the paper). Shapes: ``row [B]``, ``col [B]``, ``count [B]`` →
    ``(loss_sum, items)`` (0-d); ``ids [N]`` → ``[N, D]``.
    """

    def __init__(self, info: DataInfo, dim: int, x_max: float, alpha: float, sparse: bool = False) -> None:
        super().__init__(info, dim)
        v = len(self.vocab)
        self.w = nn.Embedding(v, dim, sparse=sparse)
        self.w_context = nn.Embedding(v, dim, sparse=sparse)
        self.b = nn.Embedding(v, 1, sparse=sparse)
        self.b_context = nn.Embedding(v, 1, sparse=sparse)
        for table in (self.w, self.w_context):
            nn.init.uniform_(table.weight, -0.5 / dim, 0.5 / dim)
        for table in (self.b, self.b_context):
            nn.init.zeros_(table.weight)
        self.x_max, self.alpha = x_max, alpha

    def forward(self, row, col=None, count=None):
        if col is None:
            return self.normalized(row)
        prediction = (self.w(row) * self.w_context(col)).sum(-1) + self.b(row)[:, 0] + self.b_context(col)[:, 0]
        weight = (count / self.x_max).pow(self.alpha).clamp(max=1.0)
        loss = 0.5 * weight * (prediction - count.log()) ** 2
        return loss.sum(), torch.tensor(float(loss.shape[0]), device=loss.device)

    def embedding_matrix(self) -> torch.Tensor:
        return self.w.weight + self.w_context.weight


# -- configs and builders --------------------------------------------------------------------


class SkipGramConfig(ModelConfig):
    dim: int = Field(100, ge=2, le=4096, description="Embedding dimension D.")
    negatives: int = Field(5, ge=1, le=100, description="Noise words k per centre/context pair.")
    ns_exponent: float = Field(0.75, ge=0.0, le=1.0, description="Noise distribution ∝ count^α.")
    sparse: bool = Field(False, description="Sparse gradients for the embedding tables: only the rows "
                         "of a batch are touched (use optim sgd or adagrad).")


class CBOWConfig(SkipGramConfig):
    pass


class GloVeConfig(ModelConfig):
    dim: int = Field(100, ge=2, le=4096, description="Embedding dimension D.")
    sparse: bool = Field(False, description="Sparse gradients (use optim sgd or adagrad).")
    x_max: float = Field(100.0, gt=0.0, description="Counts above x_max get weight 1.")
    alpha: float = Field(0.75, gt=0.0, le=1.0, description="Exponent of the weighting function f.")


def _check_pairs(info: DataInfo, expected: str, model: str) -> None:
    pairs = info.extra.get("pairs")
    if pairs is not None and pairs != expected:
        raise ZooError(f"{model} trains on data.options.pairs = {expected!r}, the dataset was built with "
                       f"{pairs!r}; set --set data.options.pairs={expected}")


def build_skipgram(config: SkipGramConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "windows", "skipgram")
    return SkipGram(info, config.dim, config.negatives, config.ns_exponent, config.sparse)


def build_cbow(config: CBOWConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "windows", "cbow")
    return CBOW(info, config.dim, config.negatives, config.ns_exponent, config.sparse)


def build_glove(config: GloVeConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "cooccurrence", "glove")
    return GloVe(info, config.dim, config.x_max, config.alpha, config.sparse)
