"""Skip-gram and CBOW with negative sampling, and GloVe.

Every model has two faces:

* training: ``forward(a, b, c)`` returns ``(loss_sum [B], count [B])``, the summed loss of each
  item and how many terms it holds; the ``embedding`` task divides the totals;
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

    def __init__(self, info: DataInfo, dim: int, negatives: int, ns_exponent: float) -> None:
        super().__init__(info, dim)
        counts = torch.as_tensor(np.asarray(info.extra["counts"], dtype=np.float64))
        probs = counts.pow(ns_exponent)
        # Sampling = inverse CDF: searchsorted of uniform draws (the word2vec "unigram table"
        # without a 10^8-entry table); float64 so rare words keep their share.
        self.register_buffer("noise_cdf", (probs / probs.sum()).cumsum(0), persistent=False)
        self.negatives = negatives
        self.in_embed = nn.Embedding(len(self.vocab), dim)
        self.out_embed = nn.Embedding(len(self.vocab), dim)
        # word2vec's initialisation: v ~ U(−0.5/D, 0.5/D), u = 0.
        nn.init.uniform_(self.in_embed.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out_embed.weight)

    def sample_noise(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Word ids drawn from unigram^α. Evaluation draws from a fixed seed (comparable losses)."""
        if self.training:
            u = torch.rand(shape, device=device, dtype=torch.float64)
        else:
            generator = torch.Generator(device=device).manual_seed(0)
            u = torch.rand(shape, device=device, dtype=torch.float64, generator=generator)
        return torch.searchsorted(self.noise_cdf, u).clamp_(max=len(self.vocab) - 1)

    def embedding_matrix(self) -> torch.Tensor:
        return self.in_embed.weight


class SkipGram(_NegativeSampling):
    """Skip-gram: predict each context word from the centre word.

    Shapes: ``centre [B]``, ``context [B, C]``, ``mask [B, C]`` (bool) → ``(loss_sum [B], pairs [B])``;
    ``ids [N]`` → ``[N, D]``.
    """

    def forward(self, centre, context=None, mask=None):
        if context is None:
            return self.normalized(centre)
        mask = mask.float()                                              # (B, C)
        v = self.in_embed(centre)                                        # (B, D)
        u = self.out_embed(context)                                      # (B, C, D)
        noise = self.sample_noise((centre.shape[0], self.negatives), centre.device)
        u_noise = self.out_embed(noise)                                  # (B, k, D)
        positive = torch.bmm(u, v.unsqueeze(-1)).squeeze(-1)             # (B, C)
        negative = torch.bmm(u_noise, v.unsqueeze(-1)).squeeze(-1)       # (B, k)
        pairs = mask.sum(1)                                              # (B,)
        loss = -(F.logsigmoid(positive) * mask).sum(1) - pairs * F.logsigmoid(-negative).sum(1)
        return loss, pairs


class CBOW(_NegativeSampling):
    """CBOW: predict the centre word from the mean of its context vectors (word2vec's cbow_mean).

    Shapes: ``centre [B]``, ``context [B, C]``, ``mask [B, C]`` → ``(loss_sum [B], centres [B])``.
    """

    def forward(self, centre, context=None, mask=None):
        if context is None:
            return self.normalized(centre)
        mask = mask.float()                                              # (B, C)
        n_context = mask.sum(1)                                          # (B,)
        has_context = (n_context > 0).float()
        h = (self.in_embed(context) * mask.unsqueeze(-1)).sum(1)         # (B, D)
        h = h / n_context.clamp(min=1).unsqueeze(-1)
        noise = self.sample_noise((centre.shape[0], self.negatives), centre.device)
        positive = (self.out_embed(centre) * h).sum(-1)                  # (B,)
        negative = torch.bmm(self.out_embed(noise), h.unsqueeze(-1)).squeeze(-1)  # (B, k)
        loss = -F.logsigmoid(positive) - F.logsigmoid(-negative).sum(1)
        return loss * has_context, has_context


class GloVe(_WordVectors):
    """GloVe (Pennington et al. 2014, https://nlp.stanford.edu/pubs/glove.pdf).

    Weighted least squares on log co-occurrence counts:

        J = Σ_{ij: X_ij > 0} f(X_ij) (w_i · w̃_j + b_i + b̃_j − log X_ij)² / 2,
        f(x) = min(1, (x / x_max)^α).

    The word vector is w + w̃ (as in the paper). Shapes: ``row [B]``, ``col [B]``, ``count [B]`` →
    ``(loss_sum [B], ones [B])``; ``ids [N]`` → ``[N, D]``.
    """

    def __init__(self, info: DataInfo, dim: int, x_max: float, alpha: float) -> None:
        super().__init__(info, dim)
        v = len(self.vocab)
        self.w = nn.Embedding(v, dim)
        self.w_context = nn.Embedding(v, dim)
        self.b = nn.Embedding(v, 1)
        self.b_context = nn.Embedding(v, 1)
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
        return loss, torch.ones_like(loss)

    def embedding_matrix(self) -> torch.Tensor:
        return self.w.weight + self.w_context.weight


# -- configs and builders --------------------------------------------------------------------


class SkipGramConfig(ModelConfig):
    dim: int = Field(100, ge=2, le=4096, description="Embedding dimension D.")
    negatives: int = Field(5, ge=1, le=100, description="Noise words k per centre/context pair.")
    ns_exponent: float = Field(0.75, ge=0.0, le=1.0, description="Noise distribution ∝ count^α.")


class CBOWConfig(SkipGramConfig):
    pass


class GloVeConfig(ModelConfig):
    dim: int = Field(100, ge=2, le=4096, description="Embedding dimension D.")
    x_max: float = Field(100.0, gt=0.0, description="Counts above x_max get weight 1.")
    alpha: float = Field(0.75, gt=0.0, le=1.0, description="Exponent of the weighting function f.")


def _check_pairs(info: DataInfo, expected: str, model: str) -> None:
    pairs = info.extra.get("pairs")
    if pairs is not None and pairs != expected:
        raise ZooError(f"{model} trains on data.options.pairs = {expected!r}, the dataset was built with "
                       f"{pairs!r}; set --set data.options.pairs={expected}")


def build_skipgram(config: SkipGramConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "windows", "skipgram")
    return SkipGram(info, config.dim, config.negatives, config.ns_exponent)


def build_cbow(config: CBOWConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "windows", "cbow")
    return CBOW(info, config.dim, config.negatives, config.ns_exponent)


def build_glove(config: GloVeConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "cooccurrence", "glove")
    return GloVe(info, config.dim, config.x_max, config.alpha)
