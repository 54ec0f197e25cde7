"""Sparse-matrix propagation for full-batch training on the CPU: one compressed-sparse-row (CSR)
product instead of gather → multiply → scatter.

The message-passing base (:mod:`~zoo.plugins.gnn.message_passing`) writes ``Σ_j w_ji h_j`` as
``index_select`` of the senders (an ``[E, F]`` copy), a multiply (a second ``[E, F]`` tensor, kept
for the backward pass) and ``index_add_`` into the receivers. As a matrix product
``out = A h`` with ``A[i, j] = w_ji`` the same sum is one CSR × dense product that touches
each edge once and keeps no ``[E, F]`` tensor; its backward is ``Aᵀ grad``, so the transposed
CSR is built once too (or shared when A is symmetric, as a normalised undirected graph is).

Two users, both in eager mode on the CPU (ONNX export and other devices keep the message-passing
form, which computes the same sums):

- :class:`Adjacency`: a fixed weighted adjacency (GCN's D̃^-1/2 Ã D̃^-1/2), ``A @ h``.
- :class:`EdgeGraph` + :func:`edge_softmax` + :func:`edge_weighted_sum`: per-edge weights
  that depend on the parameters (GAT's attention, ``[E, H]`` for H heads). The edges are sorted
  by receiver, so the softmax over each receiver's edges is a segment reduction and the weighted
  sum a CSR product per head; the gradient of the weights is the sampled product
  ``(grad hᵀ)[i, j]`` at the edges (SDDMM, ``torch.sparse.sampled_addmm``).
"""

from __future__ import annotations

import warnings

import torch

# CSR tensors are "beta" in torch; the operations used here (construction, CSR @ dense,
# sampled_addmm) are the stable core of that support. The warning would reach every user.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def supported(h: torch.Tensor) -> bool:
    """The CSR path applies: a CPU float32/float64 tensor (other devices and dtypes, e.g. bf16
    under autocast, take the message-passing form)."""
    return h.device.type == "cpu" and h.dtype in (torch.float32, torch.float64)


def _fp32_products():
    """Autocast off: the CPU sparse kernels (MKL) have no bf16 product; the inputs are fp32 and
    the following ops cast the output as autocast asks (as ``sparse_linear`` does)."""
    return torch.autocast("cpu", enabled=False)


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    return torch.sparse_csr_tensor(crow, col, values, (n, n), check_invariants=False)


def _index_dtype(size: int) -> torch.dtype:
    """int32 indices where they fit: half the memory, and the CPU sparse kernels (MKL) take
    int32, so an int64 CSR is converted on every product."""
    return torch.int32 if size < 2**31 else torch.int64


def _row_offsets(rows: torch.Tensor, n: int) -> torch.Tensor:
    """CSR row pointer ``[n + 1]`` of sorted row indices."""
    counts = torch.bincount(rows, minlength=n)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


# -- a fixed adjacency (GCN) ------------------------------------------------------------------


class _FixedProduct(torch.autograd.Function):
    """``A @ h`` for a constant sparse A; the backward is ``Aᵀ @ grad`` (nothing saved but A)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, a: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
        ctx.a_t = a_t
        with _fp32_products():
            return a @ h

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        with _fp32_products():
            return ctx.a_t @ grad.contiguous(), None, None


class Adjacency:
    """A weighted adjacency ``A [N, N]`` with ``A[i, j] = Σ w_ji`` over the edges j → i
    (duplicate edges add up, as they do in a sum aggregation), kept as CSR together with Aᵀ.

    Shapes: ``edge_index [2, E]``, ``weight [E]``; ``adjacency @ h`` maps ``[N, F]`` → ``[N, F]``.
    """

    def __init__(self, edge_index: torch.Tensor, weight: torch.Tensor, num_nodes: int) -> None:
        self.num_nodes = num_nodes
        src, dst = edge_index[0], edge_index[1]
        self.matrix = self._build(dst, src, weight, num_nodes)
        transposed = self._build(src, dst, weight, num_nodes)
        same = (torch.equal(transposed.crow_indices(), self.matrix.crow_indices())
                and torch.equal(transposed.col_indices(), self.matrix.col_indices())
                and torch.equal(transposed.values(), self.matrix.values()))
        self.transposed = self.matrix if same else transposed        # symmetric: one copy

    @staticmethod
    def _build(rows: torch.Tensor, cols: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), weight, (n, n), check_invariants=False)
        matrix = coo.coalesce().to_sparse_csr()
        index = _index_dtype(matrix.values().numel() + n)
        return _csr(matrix.crow_indices().to(index), matrix.col_indices().to(index), matrix.values(), n)

    def __matmul__(self, h: torch.Tensor) -> torch.Tensor:
        if h.dtype != self.matrix.dtype:
            return (self @ h.to(self.matrix.dtype)).to(h.dtype)
        return _FixedProduct.apply(h.contiguous(), self.matrix, self.transposed)


# -- per-edge weights (GAT) -------------------------------------------------------------------


class EdgeGraph:
    """The edges of a graph sorted by receiver (CSR rows i, columns j), for weights that change
    every step. Input self-loops are dropped and one loop per node is added (GAT's ``N(i) ∪ {i}``:
    the message-passing form gives an input loop the weight 0 instead, the same sums).

    ``src``/``dst [E']`` in CSR order, ``crow [N + 1]`` and ``col [E']`` (= ``src``, int32 while
    it fits); ``perm_t [E']`` reorders CSR-ordered edge values into the CSR order of Aᵀ
    (``crow_t``, ``col_t``). ``order [E']``: where each edge sits in the message-passing form's
    list (the input edges, then one loop per node: ``input_edges`` in all), so per-edge random
    draws (attention dropout) can be made in that order and come out the same. ``duplicates``: some edge
    occurs twice (a multigraph: CSR wants distinct columns per row, so callers fall back).
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int) -> None:
        n = self.num_nodes = num_nodes
        src, dst = edge_index[0], edge_index[1]
        keep = (src != dst).nonzero().squeeze(1)
        loops = torch.arange(n, device=edge_index.device)
        src, dst = torch.cat([src[keep], loops]), torch.cat([dst[keep], loops])
        key, order = torch.sort(dst * n + src, stable=True)
        src, dst = src[order], dst[order]
        self.input_edges = edge_index.shape[1] + n
        self.order = torch.cat([keep, loops + edge_index.shape[1]])[order]
        self.duplicates = bool((key[1:] == key[:-1]).any())
        perm_t = torch.argsort(src * n + dst, stable=True)
        self.src, self.dst, self.perm_t = src, dst, perm_t     # int64: the backward of a gather
        index = _index_dtype(src.numel() + n)                  # (index_add_) is slow with int32
        self.col, self.crow = src.to(index), _row_offsets(dst, n).to(index)
        self.col_t = dst.index_select(0, perm_t).to(index)
        self.crow_t = _row_offsets(src.index_select(0, perm_t), n).to(index)
        self._zeros = torch.zeros(0)

    def pattern(self, dtype: torch.dtype) -> torch.Tensor:
        """The edges as a CSR matrix of zeros: where the backward pass samples ``grad hᵀ``."""
        if self._zeros.dtype != dtype or self._zeros.numel() != self.src.numel():
            self._zeros = torch.zeros(self.src.numel(), dtype=dtype)
        return _csr(self.crow, self.col, self._zeros, self.num_nodes)


def _per_head_product(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, h: torch.Tensor,
                      n: int) -> torch.Tensor:
    """``out[:, k] = A_k h[:, k]`` with ``A_k`` the CSR (crow, col, values[:, k]).
    ``values [E, H]``, ``h [N, H, C]`` → ``[N, H, C]``."""
    weights = values.t().contiguous()                                    # (H, E)
    with _fp32_products():
        return torch.stack([_csr(crow, col, weights[k], n) @ h[:, k] for k in range(h.shape[1])], dim=1)


class _EdgeWeightedSum(torch.autograd.Function):
    """``out_i = Σ_{j → i} α_ji h_j`` per head; grads ``Aᵀ grad`` (h) and ``grad_i · h_j`` (α)."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, h: torch.Tensor, graph: EdgeGraph) -> torch.Tensor:
        ctx.graph = graph
        ctx.save_for_backward(alpha, h)
        return _per_head_product(graph.crow, graph.col, alpha, h, graph.num_nodes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        alpha, h = ctx.saved_tensors
        g, n = ctx.graph, ctx.graph.num_nodes
        grad_alpha = grad_h = None
        if ctx.needs_input_grad[1]:
            grad_h = _per_head_product(g.crow_t, g.col_t, alpha.index_select(0, g.perm_t), grad.contiguous(), n)
        if ctx.needs_input_grad[0]:
            pattern = g.pattern(grad.dtype)
            with _fp32_products():
                grad_alpha = torch.stack([
                    torch.sparse.sampled_addmm(pattern, grad[:, k], h[:, k].t(), beta=0.0).values()
                    for k in range(h.shape[1])], dim=1)                    # (E, H): grad_i · h_j
        return grad_alpha, grad_h, None


def edge_weighted_sum(graph: EdgeGraph, alpha: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``Σ_{j → i} α_ji h_j`` per head: ``alpha [E', H]`` (CSR order), ``h [N, H, C]`` → ``[N, H, C]``."""
    return _EdgeWeightedSum.apply(alpha, h.contiguous(), graph)


class _EdgeSoftmax(torch.autograd.Function):
    """Softmax over each receiver's edges (segments of the CSR order); saves only α:
    ``∂L/∂e_ji = α_ji (g_ji − Σ_k α_ki g_ki)``."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, graph: EdgeGraph) -> torch.Tensor:
        peak = torch.segment_reduce(scores, "max", offsets=graph.crow, axis=0)     # (N, H)
        alpha = (scores - peak.index_select(0, graph.dst)).exp_()
        total = torch.segment_reduce(alpha, "sum", offsets=graph.crow, axis=0)
        alpha = alpha.div_(total.index_select(0, graph.dst))
        ctx.graph = graph
        ctx.save_for_backward(alpha)
        return alpha

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (alpha,) = ctx.saved_tensors
        graph = ctx.graph
        weighted = alpha * grad
        inner = torch.segment_reduce(weighted, "sum", offsets=graph.crow, axis=0)  # (N, H)
        return weighted.sub_(alpha * inner.index_select(0, graph.dst)), None


def edge_softmax(scores: torch.Tensor, graph: EdgeGraph) -> torch.Tensor:
    """α_ji = exp(e_ji) / Σ_{k → i} exp(e_ki) over each receiver's edges (max subtracted first):
    ``scores [E', H]`` in CSR order → ``[E', H]``. Every receiver has its self-loop, so no
    segment is empty."""
    return _EdgeSoftmax.apply(scores, graph)
