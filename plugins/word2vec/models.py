"""Skip-gram and CBOW with negative sampling, and GloVe.

Every model has two faces:

* training: ``forward(a, b, c)`` returns ``(loss_sum, count)`` (0-d): the loss summed over the
  batch and how many terms it holds; the ``embedding`` task sums (``train.loss = "sum"``, what
  word2vec's SGD minimises) or divides the two (``"mean"``);
* deployment: ``forward(ids)`` (one argument) returns the L2-normalised embeddings of ``ids``;
  this is what is exported to ONNX (:class:`EmbeddingLookup`) and checked for parity.

Negative sampling (Mikolov et al. 2013b, https://arxiv.org/abs/1310.4546): for a pair of an input
word with vector v (``in_embed``) and a word o to predict with vector u_o (``out_embed``), and k
noise words n_1..n_k drawn from the unigram distribution raised to 3/4,

    loss = −log σ(u_o · v) − Σ_i log σ(−u_{n_i} · v).

Hierarchical softmax (``loss = "hs"``, Mikolov et al. 2013a, https://arxiv.org/abs/1301.3781):
o is instead predicted by the inner nodes n_1..n_L of its Huffman path (:func:`huffman_codes`),
with code bits d_l: loss = −Σ_l log σ((1 − 2 d_l) u_{n_l} · v).

The training step has two forms. Batched gradients: the loss and its gradients are computed
analytically (:class:`_SkipGramLoss`, :class:`_CBOWLoss`, no autograd graph over the gathers; or
:class:`_FusedLoss`, the same from the CPU kernel in :mod:`~zoo.plugins.word2vec.kernels`) and
touch only the rows of the batch: with ``sparse = true`` they are sparse ``[V, D]`` tensors
(``torch.optim.SGD`` adds them row by row: rows hit twice in a batch get both updates),
otherwise dense (any optimizer, e.g. Adam). With ``d loss / d s = σ(s) − label`` for a score
``s = u · v``, every gradient is a batched matrix product of these ``[B, ·]`` coefficients with
the gathered vectors. word2vec's own update: where plain SGD on the summed loss would apply that
gradient, the CPU kernel instead runs word2vec's loop, centre after centre, each update applied
in place before the next (:meth:`_NegativeSampling.attach_sgd`, set up by the trainer when
training starts: :meth:`_NegativeSampling.attach_optimizer`, the ``SelfUpdating`` protocol).
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.core.contract.protocols import SelfUpdating

# The fused CPU step (kernels.py) needs numba; found without importing it (importing numba is slow).
NUMBA = importlib.util.find_spec("numba") is not None
_KERNEL_DTYPES = (torch.float32, torch.float64)


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


def _row_gradient(index: torch.Tensor, values: torch.Tensor, like: torch.Tensor, sparse: bool,
                  mean: bool = False, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over j of ``values[j]`` into row ``index[j]`` of a ``like``-shaped gradient.

    Sparse: an uncoalesced COO tensor (repeated rows are summed when it is applied); dense: a
    zero matrix with ``index_add_``. ``mean``: a row hit m times gets the mean of its m values
    instead of the sum (no longer the exact gradient; see ``output_updates``); only the entries
    where ``valid`` (shaped like ``index``) is non-zero count as hits.
    """
    index, values = index.reshape(-1), values.reshape(-1, like.shape[1]).to(like.dtype)
    if mean:
        # Integer counts with index_add_: exact and deterministic in any order, and no sync
        # (bincount reads the largest index on the host to size its output; with weights its CUDA
        # kernel adds floats atomically, which torch flags as nondeterministic).
        counts = torch.ones_like(index, dtype=torch.int32) if valid is None else (valid.reshape(-1) != 0).int()
        hits = torch.zeros(like.shape[0], dtype=torch.int32, device=index.device).index_add_(0, index, counts)
        values = values / hits.clamp_(min=1).index_select(0, index).unsqueeze(1).to(values.dtype)
    if sparse:
        return torch.sparse_coo_tensor(index.unsqueeze(0), values, like.shape, check_invariants=False)
    return torch.zeros_like(like).index_add_(0, index, values)


def _scores_loss(s: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, tmask: torch.Tensor | None
                 ) -> torch.Tensor:
    """−Σ weight·tmask·log σ(±s): ``+`` where the label is 1 (the word to predict; the left turns of
    a Huffman path), ``−`` where it is 0 (noise words; right turns). ``s [..., J]``, ``weight [...]``,
    ``labels``/``tmask`` broadcastable to ``s`` (``tmask`` None: every column counts)."""
    ll = F.logsigmoid(s * (2.0 * labels - 1.0))
    if tmask is not None:
        ll = ll * tmask
    return -(ll.sum(-1) * weight).sum()


def _scores_grad(s: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, tmask: torch.Tensor | None,
                 grad: torch.Tensor) -> torch.Tensor:
    """d loss / d s = (σ(s) − label)·tmask·weight."""
    g = torch.sigmoid(s) - labels
    if tmask is not None:
        g = g * tmask
    return g * (weight * grad).unsqueeze(-1)


class _SkipGramLoss(torch.autograd.Function):
    """Skip-gram with negative sampling, gensim's orientation: each context word c of a centre w
    predicts w (and rejects w's k noise words, shared by the contexts of one centre).

    ``w_in, w_out [V, D]``, ``context [B, C]``, ``weight [B, C]`` (1 for a valid context slot,
    0 for an empty one), ``targets [B, J]`` with ``labels [B, J]`` and ``tmask [B, J]`` or None
    (negative sampling: the centre, label 1, then its k noise words, label 0; hierarchical softmax:
    the inner nodes on the centre's Huffman path, label 1 − code bit, tmask 1 up to the path's
    length) → the summed loss (0-d)::

        s_bcj = v_{context_bc} · u_{targets_bj},
        loss = −Σ_bcj weight_bc tmask_bj log σ((2 labels_bj − 1) s_bcj)

    Backward, with g_bcj = d loss / d s_bcj: ∂/∂u_{targets_bj} = Σ_c g_bcj v_{context_bc},
    ∂/∂v_{context_bc} = Σ_j g_bcj u_{targets_bj}.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # fp32 under bf16 autocast
    def forward(ctx, w_in, w_out, context, weight, targets, labels, tmask, sparse: bool, mean_out: bool = False):
        v = F.embedding(context, w_in)                          # (B, C, D)
        u = F.embedding(targets, w_out)                         # (B, J, D)
        s = torch.bmm(v, u.transpose(1, 2))                     # (B, C, J)
        labels = labels.unsqueeze(1)                            # (B, 1, J)
        tmask = None if tmask is None else tmask.unsqueeze(1)
        ctx.save_for_backward(w_in, w_out, context, weight, targets, labels, tmask, v, u, s)
        ctx.sparse, ctx.mean_out = sparse, mean_out
        return _scores_loss(s, weight, labels, tmask)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad):
        w_in, w_out, context, weight, targets, labels, tmask, v, u, s = ctx.saved_tensors
        g = _scores_grad(s, weight, labels, tmask, grad)        # (B, C, J)
        grad_in = _row_gradient(context, torch.bmm(g, u), w_in, ctx.sparse)                  # (B·C, D)
        valid = (weight.sum(1, keepdim=True) > 0).to(s.dtype)  # (B, 1): centres with a pair
        valid = valid if tmask is None else valid * tmask[:, 0]  # (B, J)
        grad_out = _row_gradient(targets, torch.bmm(g.transpose(1, 2), v), w_out, ctx.sparse,
                                 ctx.mean_out, valid.expand_as(targets))  # (B·J, D)
        return grad_in, grad_out, None, None, None, None, None, None, None


class _CBOWLoss(torch.autograd.Function):
    """CBOW with negative sampling: the mean h of the valid context vectors predicts the centre.

    ``w_in, w_out [V, D]``, ``context [B, C]``, ``weight [B, C]`` (1 valid / 0 empty slot),
    ``targets``, ``labels [B, J]``, ``tmask [B, J]`` or None as in :class:`_SkipGramLoss` → the
    summed loss (0-d)::

        h_b = Σ_c weight_bc v_{context_bc} / n_b,   n_b = Σ_c weight_bc,
        s_bj = u_{targets_bj} · h_b,   loss = −Σ_{b: n_b > 0} Σ_j tmask_bj log σ((2 labels_bj − 1) s_bj)

    Backward, with g_bj = d loss / d s_bj: ∂/∂u_{targets_bj} = g_bj h_b,
    ∂/∂v_{context_bc} = weight_bc / n_b · Σ_j g_bj u_{targets_bj}  (``exact``). word2vec and
    gensim (``cbow_mean = 1``) give every context vector the whole ∂/∂h_b instead, i.e. n_b
    times the exact gradient (``exact = False``): a per-centre step size that makes the input
    vectors learn as fast as in skip-gram; on wiki-sample the exact gradient with the same lr
    learned almost nothing in 5 epochs (WordSim353 −0.02 against 0.16).
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # fp32 under bf16 autocast
    def forward(ctx, w_in, w_out, context, weight, targets, labels, tmask, sparse: bool, exact: bool = False,
                mean_out: bool = False):
        b, c = context.shape
        n = weight.sum(1)                                       # (B,)
        offsets = torch.arange(0, b * c, c, device=context.device)
        # embedding_bag: the weighted sum without materialising the (B, C, D) gather.
        h = F.embedding_bag(context.reshape(-1), w_in, offsets, mode="sum",
                            per_sample_weights=weight.reshape(-1).to(w_in.dtype))
        h = h / n.clamp(min=1.0).unsqueeze(1).to(h.dtype)      # (B, D)
        u = F.embedding(targets, w_out)                         # (B, J, D)
        s = torch.bmm(u, h.unsqueeze(2)).squeeze(2)             # (B, J)
        active = (n > 0).to(s.dtype)                            # centres with a context
        ctx.save_for_backward(w_in, w_out, context, weight, targets, labels, tmask, h, u, s, n, active)
        ctx.sparse = sparse
        ctx.exact, ctx.mean_out = exact, mean_out
        return _scores_loss(s, active, labels, tmask)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad):
        w_in, w_out, context, weight, targets, labels, tmask, h, u, s, n, active = ctx.saved_tensors
        g = _scores_grad(s, active, labels, tmask, grad)        # (B, J)
        valid = active.unsqueeze(1) if tmask is None else active.unsqueeze(1) * tmask  # (B, J)
        grad_out = _row_gradient(targets, g.unsqueeze(2) * h.unsqueeze(1), w_out, ctx.sparse, ctx.mean_out,
                                 valid.expand_as(targets))
        grad_h = torch.bmm(g.unsqueeze(1), u).squeeze(1)     # (B, D)
        if ctx.exact:
            grad_h = grad_h / n.clamp(min=1.0).unsqueeze(1)
        grad_in = _row_gradient(context, grad_h.unsqueeze(1) * weight.unsqueeze(2), w_in, ctx.sparse)
        return grad_in, grad_out, None, None, None, None, None, None, None, None


class _FusedLoss(torch.autograd.Function):
    """The same loss and gradients as :class:`_SkipGramLoss` / :class:`_CBOWLoss` (``kind``), from
    the fused CPU kernel (:func:`zoo.plugins.word2vec.kernels.fused_step`): the kernel returns the
    gradient rows with the loss, and backward only scales them by the incoming gradient."""

    @staticmethod
    def forward(ctx, w_in, w_out, kind: str, context, weight, targets, labels, tmask, sparse: bool,
                exact: bool, mean_out: bool):
        from zoo.plugins.word2vec.kernels import fused_step

        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        loss, grad_in, grad_out = fused_step(kind, w_in, w_out, context, weight, targets, labels, tmask,
                                             exact, mean_out, want_grad)
        ctx.save_for_backward(w_in, w_out, *grad_in, *grad_out)
        ctx.sparse = sparse
        return loss

    @staticmethod
    def backward(ctx, grad):
        w_in, w_out, rows_in, values_in, rows_out, values_out = ctx.saved_tensors
        if float(grad) != 1.0:  # train.loss = "sum" passes 1: no copy
            values_in, values_out = values_in * grad, values_out * grad
        return (_row_gradient(rows_in, values_in, w_in, ctx.sparse),
                _row_gradient(rows_out, values_out, w_out, ctx.sparse),
                None, None, None, None, None, None, None, None, None)


def huffman_codes(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Huffman tree of word2vec's hierarchical softmax (Mikolov et al. 2013a).

    Repeatedly merge the two least frequent nodes (ties: the lower id first); leaves are the
    words ``0..V−1``, inner node ``i`` is the ``i``-th merge (the root is ``V − 2``). A word's code
    is the path from the root: at each inner node, bit 0 for the first-merged (less frequent)
    child, 1 for the other. Frequent words get short codes: Σ_w count_w·len_w is minimal.

    Returns ``points [V, L]`` (int64: the inner nodes on the path, root first), ``codes [V, L]``
    (int8 bits) and ``lengths [V]``, padded with 0 to the longest code L (≥ 1).
    """
    import heapq

    v = len(counts)
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(max(2 * v - 1, 1), dtype=np.int64)
    bit = np.zeros(max(2 * v - 1, 1), dtype=np.int8)
    node = v
    while len(heap) > 1:
        (c1, a), (c2, b) = heapq.heappop(heap), heapq.heappop(heap)
        parent[a], parent[b], bit[a], bit[b] = node, node, 0, 1
        heapq.heappush(heap, (c1 + c2, node))
        node += 1
    root = node - 1
    paths = []
    for word in range(v):
        path, current = [], word
        while current != root and v > 1:
            path.append((parent[current] - v, bit[current]))
            current = parent[current]
        paths.append(path[::-1])
    longest = max(1, max(len(path) for path in paths))
    points = np.zeros((v, longest), dtype=np.int64)
    codes = np.zeros((v, longest), dtype=np.int8)
    lengths = np.array([len(path) for path in paths], dtype=np.int64)
    for word, path in enumerate(paths):
        if path:
            points[word, :len(path)], codes[word, :len(path)] = zip(*path)
    return points, codes, lengths


class _NegativeSampling(_WordVectors, SelfUpdating):
    """Input vectors v (the embedding), output vectors u, and the unigram^α noise distribution."""

    def __init__(self, info: DataInfo, dim: int, negatives: int, ns_exponent: float,
                 sparse: bool = False, table_size: int = 1_000_000, objective: str = "ns",
                 output_updates: str = "auto", kernel: str = "auto") -> None:
        super().__init__(info, dim)
        if kernel == "numba" and not NUMBA:
            raise ZooError("model.kernel = 'numba' needs numba: pip install 'zoo-ml[word2vec]' "
                           "(or set model.kernel = 'torch')")
        self.kernel = kernel
        # The optimizer's param group while the kernel applies word2vec's SGD itself (attach_sgd).
        self.sgd_group: dict | None = None
        # With several threads, the persistent threads that run word2vec's update (workers.py).
        self._workers = None
        self.objective = objective
        # auto: averaged only where summing diverges, skip-gram's hierarchical softmax (the top
        # Huffman nodes are on the path of every pair of a batch).
        self.mean_out = output_updates == "mean" or (
            output_updates == "auto" and objective == "hs" and isinstance(self, SkipGram))
        if objective == "hs":
            # Hierarchical softmax: out_embed row i is inner node i of the Huffman tree (V − 1
            # of the V rows are used). Rebuilt from the counts, so not part of the checkpoint.
            points, codes, lengths = huffman_codes(np.asarray(info.extra["counts"]))
            depth = torch.arange(points.shape[1]).unsqueeze(0)
            self.register_buffer("hs_points", torch.as_tensor(points), persistent=False)
            self.register_buffer("hs_labels", 1.0 - torch.as_tensor(codes, dtype=torch.float32), persistent=False)
            self.register_buffer("hs_mask", (depth < torch.as_tensor(lengths).unsqueeze(1)).float(),
                                 persistent=False)
        labels = torch.zeros(1, 1 + negatives)
        labels[0, 0] = 1.0
        self.register_buffer("ns_labels", labels, persistent=False)
        counts = torch.as_tensor(np.asarray(info.extra["counts"], dtype=np.float64))
        probs = counts.pow(ns_exponent)
        probs = probs / probs.sum()
        # word2vec's unigram table: word i fills ≈ table_size·p_i slots, so a uniform slot is a
        # draw from unigram^α (a gather: cheaper than searchsorted on the CDF). Rebuilt from
        # the counts at build time, so not part of the checkpoint.
        size = max(table_size, 100 * len(probs))
        bounds = (probs.cumsum(0) * size).round().long().clamp(max=size)
        table = torch.repeat_interleave(torch.arange(len(probs), dtype=torch.int32),
                                        torch.diff(bounds, prepend=torch.zeros(1, dtype=torch.long)))
        self.register_buffer("noise_table", table, persistent=False)
        # The same distribution as an alias table for the CPU kernel (built on its first step).
        self.noise_probs = probs.numpy()
        self._alias: tuple[np.ndarray, np.ndarray] | None = None
        self.negatives = negatives
        self.sparse = sparse
        self.in_embed = nn.Embedding(len(self.vocab), dim, sparse=sparse)
        self.out_embed = nn.Embedding(len(self.vocab), dim, sparse=sparse)
        # word2vec's initialisation: v ~ U(−0.5/D, 0.5/D), u = 0.
        nn.init.uniform_(self.in_embed.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out_embed.weight)

    def _kernel_applies(self) -> bool:
        w = self.in_embed.weight
        return self.kernel != "torch" and NUMBA and w.device.type == "cpu" and w.dtype in _KERNEL_DTYPES

    def attach_optimizer(self, optimizer: torch.optim.Optimizer, train, world_size: int) -> None:
        """The trainer's cue (:class:`~zoo.core.contract.protocols.SelfUpdating`): attach the CPU kernel's
        SGD (:meth:`attach_sgd`) when nothing else touches the gradients."""
        exclusive = (train.grad_clip is None and train.precision == "fp32" and not train.compile
                     and world_size == 1)
        self.attach_sgd(optimizer, train.loss, exclusive)

    def detach_optimizer(self) -> None:
        self.attach_sgd(None)

    def attach_sgd(self, optimizer: torch.optim.Optimizer | None, loss: str = "sum", exclusive: bool = True) -> bool:
        """Let the CPU kernel run word2vec's SGD itself (:func:`kernels.sgd_step`) at the lr of
        ``optimizer``'s param group, where that is exactly what the optimizer would do: plain
        SGD (no momentum, weight decay, nesterov or maximize) over these two tables, the summed
        loss (``train.loss = "sum"``: lr is the step per word) and nothing else touching the
        gradients (``exclusive``: no clipping, scaling, DDP averaging or compilation).

        The update is then word2vec's own: centre after centre, each applied before the next
        reads the tables (the batch only sets how often the lr schedule moves), instead of the
        batch's gradient at the batch's start; the forward pass returns the loss with no
        gradient left for the optimizer. With ``torch.get_num_threads()`` > 1 the batches go to
        as many persistent worker threads (:class:`~zoo.plugins.word2vec.workers.UpdateWorkers`,
        gensim's design: one whole batch per worker, no meeting per batch) and a forward returns
        the loss of the batches finished so far; :meth:`finish_updates` waits for the rest.
        ``None`` detaches (and stops the workers). Returns whether it attached.
        """
        self.sgd_group = None
        self._close_workers()
        if optimizer is None or not (exclusive and loss == "sum" and self._kernel_applies()):
            return False
        if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
            return False
        group = optimizer.param_groups[0]
        if group["momentum"] or group["weight_decay"] or group["nesterov"] or group.get("maximize"):
            return False
        if {id(p) for p in group["params"]} != {id(self.in_embed.weight), id(self.out_embed.weight)}:
            return False
        self.sgd_group = group
        threads = torch.get_num_threads()
        if threads > 1:  # gensim's shape: persistent workers, one job per batch (workers.py)
            from zoo.plugins.word2vec.workers import UpdateWorkers

            self._workers = UpdateWorkers(threads)
            # The trainer's thread is now gensim's job producer: its torch ops (the windows) run
            # on it alone. Parallel torch ops would leave OpenMP threads spinning after each one,
            # on the cores the workers need (docs/results.md, word2vec worker threads).
            self._torch_threads = threads
            torch.set_num_threads(1)
        return True

    def finish_updates(self) -> torch.Tensor | None:
        """The trainer's cue at the end of an epoch (:class:`~zoo.core.contract.protocols.SelfUpdating`):
        wait for the batches the worker threads still run and return their summed loss (None
        with no workers: every forward returned its own batch's loss)."""
        if self._workers is None:
            return None
        return torch.tensor(self._workers.drain()[0], dtype=torch.float64)

    def _close_workers(self) -> None:
        if self._workers is not None:
            workers, self._workers = self._workers, None
            workers.close()
            torch.set_num_threads(self._torch_threads)

    def loss(self, kind: str, centre: torch.Tensor, context: torch.Tensor, mask: torch.Tensor,
             exact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss_sum, count)`` of a batch of windows (count: CBOW the centres with a context,
        skip-gram the pairs): word2vec's own update in the CPU kernel where it is attached (the
        loss then needs no gradient), else the fused kernel's or the torch ops' batched gradient."""
        w_in, w_out = self.in_embed.weight, self.out_embed.weight
        if self.sgd_group is not None and self.training and torch.is_grad_enabled():
            from zoo.plugins.word2vec.kernels import sgd_step_words

            # One draw from torch's generator seeds the kernel's (reproducible under train.seed).
            seed = int(torch.randint(1 << 62, (), dtype=torch.int64))
            targets = (dict(huffman=(self.hs_points, self.hs_labels, self.hs_mask)) if self.objective == "hs"
                       else dict(noise=self.noise_table, negatives=self.negatives,
                                 alias=self.noise_alias() if kind == "cbow" else None))
            totals = sgd_step_words(kind, w_in, w_out, centre, context, mask, exact, self.sgd_group["lr"], seed,
                                    workers=self._workers, **targets)
            # Updated already (or queued for a worker, whose loss a later step or finish_updates
            # returns): there is no graph, nothing for backward or the optimizer to do.
            return totals[0], totals[1]
        weight = mask.to(w_in.dtype)
        count = weight.sum() if kind == "skipgram" else (weight.sum(1) > 0).sum().to(weight.dtype)
        context, targets = context.long(), self._targets(centre)
        if self._kernel_applies():
            loss = _FusedLoss.apply(w_in, w_out, kind, context, weight, *targets, self.sparse, exact, self.mean_out)
        elif kind == "cbow":
            loss = _CBOWLoss.apply(w_in, w_out, context, weight, *targets, self.sparse, exact, self.mean_out)
        else:
            loss = _SkipGramLoss.apply(w_in, w_out, context, weight, *targets, self.sparse, self.mean_out)
        return loss, count

    def noise_alias(self) -> tuple[np.ndarray, np.ndarray]:
        """The noise distribution as a Walker alias table (:func:`kernels.alias_table`, 12 bytes
        a word): what the CBOW kernel draws from, in cache where the 4 MB unigram table is not."""
        if self._alias is None:
            from zoo.plugins.word2vec.kernels import alias_table

            self._alias = alias_table(self.noise_probs)
        return self._alias

    @property
    def updates_itself(self) -> bool:
        """The trainer's cue: a training forward applies the update itself (see :meth:`attach_sgd`)."""
        return self.sgd_group is not None

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

    def _targets(self, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(targets, labels, tmask)``, each ``[B, J]`` (no host sync: fixed shapes).

        Negative sampling: the centre word (label 1), then k noise words (label 0), tmask None.
        Hierarchical softmax: the inner nodes on the centre's Huffman path, label 1 − code bit,
        padded to the longest code with tmask 0.
        """
        centre = centre.long()
        if self.objective == "hs":
            return self.hs_points[centre], self.hs_labels[centre], self.hs_mask[centre]
        noise = self.sample_noise((centre.shape[0], self.negatives), centre.device)
        labels = self.ns_labels.expand(centre.shape[0], -1)
        return torch.cat([centre.unsqueeze(1), noise], 1), labels, None


class SkipGram(_NegativeSampling):
    """Skip-gram: each context word predicts the centre word (:class:`_SkipGramLoss`).

    Fixed shapes, no host sync: empty context slots (dynamic window, document edges, subsampling)
    have weight 0 and contribute nothing; the k noise words are drawn per centre and shared by
    its context words (each pair still sees k noise words, drawn i.i.d.), so a batch is
    ``[B, C, 1 + k]`` scores.

    Shapes: ``centre [B]``, ``context [B, C]``, ``mask [B, C]`` (bool) → ``(loss_sum, pairs)``
    (0-d: summed over the batch); ``ids [N]`` → ``[N, D]``.
    """

    def forward(self, centre, context=None, mask=None):
        if context is None:
            return self.normalized(centre)
        return self.loss("skipgram", centre, context, mask)


class CBOW(_NegativeSampling):
    """CBOW: predict the centre word from the mean of its context vectors (word2vec's cbow_mean).

    ``exact_gradient``: the input vectors get the exact gradient of the loss (1/n of word2vec's
    update, see :class:`_CBOWLoss`); default False, word2vec's update.

    Shapes: ``centre [B]``, ``context [B, C]``, ``mask [B, C]`` → ``(loss_sum, centres)`` (0-d:
    centres with at least one context word); ``ids [N]`` → ``[N, D]``.
    """

    def __init__(self, info: DataInfo, dim: int, negatives: int, ns_exponent: float,
                 sparse: bool = False, exact_gradient: bool = False, **kwargs) -> None:
        super().__init__(info, dim, negatives, ns_exponent, sparse, **kwargs)
        self.exact_gradient = exact_gradient

    def forward(self, centre, context=None, mask=None):
        if context is None:
            return self.normalized(centre)
        return self.loss("cbow", centre, context, mask, self.exact_gradient)


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
        # The count as a fill on the device: torch.tensor(...) would copy from the host (a sync) per step
        return loss.sum(), loss.new_full((), loss.shape[0], dtype=torch.float32)

    def embedding_matrix(self) -> torch.Tensor:
        return self.w.weight + self.w_context.weight


# -- configs and builders --------------------------------------------------------------------


class SkipGramConfig(ModelConfig):
    dim: int = Field(100, ge=2, le=4096, description="Embedding dimension D.")
    loss: Literal["ns", "hs"] = Field("ns", description="ns: negative sampling; hs: hierarchical "
                                      "softmax over word2vec's Huffman tree (negatives unused).")
    negatives: int = Field(5, ge=1, le=100, description="Noise words k per centre/context pair.")
    output_updates: Literal["auto", "sum", "mean"] = Field(
        "auto", description="How a batch's updates of one output row combine: sum (word2vec's "
        "Hogwild, the exact gradient) or mean over the row's hits; auto: mean for skip-gram with "
        "hierarchical softmax (its top tree nodes are hit by every pair of a batch), else sum. "
        "Batched gradients only: word2vec's own update (kernel) applies each one at once.")
    ns_exponent: float = Field(0.75, ge=0.0, le=1.0, description="Noise distribution ∝ count^α.")
    sparse: bool = Field(False, description="Sparse gradients for the embedding tables: only the rows "
                         "of a batch are touched (use optim sgd or adagrad).")
    kernel: Literal["auto", "numba", "torch"] = Field(
        "auto", description="The training step on the CPU: numba, word2vec's loop compiled into one "
        "kernel (pip install 'zoo-ml[word2vec]'), or torch ops; auto: numba when it is installed. "
        "With the defaults (plain SGD, train.loss = sum) the kernel applies word2vec's own update, "
        "centre after centre; otherwise it returns the batch's gradient as the torch ops do. "
        "CUDA always runs the torch ops.")


class CBOWConfig(SkipGramConfig):
    exact_gradient: bool = Field(False, description="Give the context vectors the exact gradient of "
                                 "the loss (1/n of word2vec's update, n = context words); default: "
                                 "word2vec's and gensim's update (cbow_mean = 1).")


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
    return SkipGram(info, config.dim, config.negatives, config.ns_exponent, config.sparse, objective=config.loss,
                    output_updates=config.output_updates, kernel=config.kernel)


def build_cbow(config: CBOWConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "windows", "cbow")
    return CBOW(info, config.dim, config.negatives, config.ns_exponent, config.sparse, config.exact_gradient,
                objective=config.loss, output_updates=config.output_updates, kernel=config.kernel)


def build_glove(config: GloVeConfig, info: DataInfo) -> nn.Module:
    _check_pairs(info, "cooccurrence", "glove")
    return GloVe(info, config.dim, config.x_max, config.alpha, config.sparse)
