"""Graph utilities: input validation, self-loops, degrees, normalised adjacency, Laplacians.

A graph is ``x [N, F]`` (float node features) and ``edge_index [2, E]`` (int64, row 0 = source j,
row 1 = target i: a message flows ``j → i``). Undirected graphs store both directions. A batch of
graphs is one big disconnected graph plus ``batch [N]`` giving each node's graph id.

Everything here uses plain tensor ops that the dynamo ONNX exporter handles (gather, ``index_add_``,
elementwise maths), so the same code runs in eager training and in the exported graph. Dense
helpers (``laplacian``, ``fourier_basis``) are for small graphs, tests and teaching only.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core.contract.errors import ZooError


class GraphInputError(ZooError):
    """A graph given to a model or a loader is malformed (message says expected, got, what to do)."""


def exporting() -> bool:
    """True while ONNX export or torch.compile traces: host-side checks and shortcuts step aside."""
    return torch.compiler.is_compiling()


def onnx_exporting() -> bool:
    """True while zoo's ONNX exporter traces (``torch.compile`` excluded): a layer may then write
    the same maths in the layout onnxruntime runs fastest, which eager torch would run slower."""
    if not torch.compiler.is_exporting():
        return False
    from zoo.core.deploy.export import export_opset

    return export_opset() is not None


def check_graph(x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> None:
    """Validate a graph at the boundary (eager only; a no-op while exporting).

    Raises :class:`GraphInputError` for: ``x`` not 2-D floating point, ``edge_index`` not int64 of
    shape ``[2, E]``, indices outside ``[0, N)``, a ``batch`` vector of the wrong length or dtype
    or with a negative graph id. Self-loops, duplicate edges, isolated nodes and empty graphs are
    valid (see the layers' notes).

    The values (node indices, graph ids) are read on the host, so they are checked on CPU tensors
    only, where that costs no device sync (as the transformer's ``check_tokens``): on an
    accelerator the graphs come from the dataset's loaders, and ``zoo predict`` / ``zoo serve``
    check raw arrays before the model runs. Shapes and dtypes are checked everywhere.
    """
    if exporting():
        return
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise GraphInputError(f"x must be a [num_nodes, num_features] tensor, got "
                              f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not x.is_floating_point():
        raise GraphInputError(f"x must be floating point, got {x.dtype}; cast with x.float()")
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        got = tuple(edge_index.shape) if isinstance(edge_index, torch.Tensor) else type(edge_index).__name__
        raise GraphInputError(f"edge_index must have shape [2, num_edges] (row 0 = source, row 1 = "
                              f"target), got {got}; transpose an [E, 2] edge list with .t()")
    if edge_index.dtype != torch.int64:
        raise GraphInputError(f"edge_index must be int64, got {edge_index.dtype}; cast with "
                              f"edge_index.long()")
    n = x.shape[0]
    if batch is not None and (batch.dtype != torch.int64 or batch.dim() != 1 or batch.shape[0] != n):
        raise GraphInputError(f"batch must be int64 of shape [{n}] (one graph id per node), got "
                              f"{batch.dtype} {tuple(batch.shape)}")
    if x.device.type != "cpu":
        return
    if edge_index.numel():
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= n:
            raise GraphInputError(f"edge_index refers to node {low if low < 0 else high}, but the graph "
                                  f"has {n} nodes (valid indices 0..{n - 1})")
    if batch is not None and n and int(batch.min()) < 0:
        raise GraphInputError("batch holds a negative graph id")


def dropout(x: torch.Tensor, p: float, training: bool = True, min_size: int = 2**16) -> torch.Tensor:
    """``F.dropout``: each entry zeroed with probability ``p``, the rest scaled by 1/(1 − p).

    On the CPU, for tensors of at least ``min_size`` entries, the mask is ``u < 1 − p`` for a
    uniform ``u`` per entry (one vectorised draw, compared and scaled in place): the same
    distribution as ``F.dropout``'s ``bernoulli_(1 − p)``, whose CPU sampler is the slower one
    (it matters at scale: a GAT epoch drops out ``[N, F]`` features and ``[E, H]`` attention
    weights twice each). The draws differ from ``F.dropout``'s for the same seed, so smaller
    tensors (small graphs, where the sampler's cost is small) keep ``F.dropout`` and the seeded
    runs recorded with it; so do other devices, ``p = 1`` and eval mode.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0 or not x.is_floating_point() or x.numel() < min_size:
        return F.dropout(x, p, training)
    return x * dropout_mask(x.shape, p, x.dtype, min_size)


def dropout_mask(shape: tuple[int, ...], p: float, dtype: torch.dtype = torch.float32,
                 min_size: int = 2**16) -> torch.Tensor:
    """The CPU mask :func:`dropout` multiplies by: 0 with probability ``p``, else 1/(1 − p).
    The draws depend on the shape alone (``F.dropout``'s below ``min_size`` entries), so a mask
    drawn for one order of the entries can be permuted to another (GAT's CSR form)."""
    if p >= 1.0 or math.prod(shape) < min_size:
        return F.dropout(torch.ones(shape, dtype=dtype), p)
    return torch.rand(shape, dtype=dtype).lt_(1.0 - p).mul_(1.0 / (1.0 - p))   # u < 1 − p: 1/(1 − p)


def sparse_dropout(x: torch.Tensor, p: float, training: bool = True, max_density: float = 0.1) -> torch.Tensor:
    """Dropout drawing random numbers only for the non-zero entries of ``x``.

    Same distribution as ``F.dropout`` (a zero stays zero whether dropped or not) but much cheaper
    on sparse bag-of-words features (Cora: 1.3 % non-zero; Kipf & Welling's sparse dropout). A
    dense ``x`` off the CPU takes :func:`dropout`: finding its non-zeros would be a device sync; so
    does one more than ``max_density`` non-zero (dense features), where gathering and scattering
    the non-zeros costs more than a random number per entry.
    """
    if not training or p == 0.0:
        return x
    if x.is_sparse:     # sparse_features: the non-zeros are the values
        keep = (torch.rand(x.values().shape, device=x.device) >= p).to(x.dtype)
        return torch.sparse_coo_tensor(x.indices(), x.values() * keep / (1.0 - p), x.shape, is_coalesced=True,
                                       check_invariants=False)
    if x.device.type != "cpu" or int(torch.count_nonzero(x)) > max_density * x.numel():
        return dropout(x, p, training)
    index = x.nonzero(as_tuple=True)
    values = x[index]
    keep = (torch.rand(values.shape, device=x.device) >= p).to(x.dtype)
    return torch.zeros_like(x).index_put_(index, values * keep / (1.0 - p))


class SameInputs:
    """Memoise a function of tensors while the very same tensors come back unchanged (identity
    and in-place version counter): full-batch training feeds the same graph every epoch, so
    per-graph work without parameters is done once. Keeps the last result only.

    ``hits`` / ``misses`` count the calls whose tensors were / were not the remembered ones (the
    train, validation and test splits of one graph share its tensors: ``Dataset.to`` keeps them
    shared on the device, so the memo hits across splits)."""

    _NOT_YET = object()

    def __init__(self) -> None:
        self._entry: tuple | None = None
        self.hits = self.misses = 0

    def _same(self, tensors: tuple) -> bool:
        entry = self._entry
        same = (entry is not None and len(entry[0]) == len(tensors)
                and entry[1] == tuple(t._version for t in tensors)
                and all(a is b for a, b in zip(entry[0], tensors)))
        self.hits, self.misses = self.hits + same, self.misses + (not same)
        return same

    def _compute(self, fn, tensors: tuple):
        self._entry = (tensors, tuple(t._version for t in tensors), fn(*tensors))
        return self._entry[2]

    def __call__(self, fn, *tensors: torch.Tensor):
        if not self._same(tensors) or self._entry[2] is self._NOT_YET:
            return self._compute(fn, tensors)
        return self._entry[2]

    def on_repeat(self, fn, *tensors: torch.Tensor):
        """``fn(*tensors)`` memoised from the second call with the same tensors on; ``None`` the
        first time, for work that pays off only when reused (a one-off input takes the plain path)."""
        if not self._same(tensors):
            self._entry = (tensors, tuple(t._version for t in tensors), self._NOT_YET)
            return None
        return self._compute(fn, tensors) if self._entry[2] is self._NOT_YET else self._entry[2]


def sparse_features(x: torch.Tensor, row_normalize: bool, max_density: float = 0.1) -> torch.Tensor | None:
    """``x [N, F]`` as a sparse COO matrix (row-normalised, x / Σ_j |x_ij|, when asked), or None
    when more than ``max_density`` of it is non-zero.

    Bag-of-words features are ~1 % non-zero (Cora 1.27 %): a first layer whose first operation is
    ``x W`` then multiplies only the non-zeros (Kipf & Welling's sparse inputs), and the input
    dropout draws one number per non-zero (:func:`sparse_dropout`).
    """
    if int(torch.count_nonzero(x)) > max_density * x.numel():    # dense: no [2, nnz] index built
        return None
    index = x.nonzero().t()                                      # row-major: already coalesced
    values = x[index[0], index[1]]
    if row_normalize:
        sums = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device).index_add_(0, index[0], values.abs())
        values = values / sums.clamp_min(1e-12).index_select(0, index[0])
    return torch.sparse_coo_tensor(index, values, x.shape, is_coalesced=True, check_invariants=False)


def sparse_linear(x: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
    """``lin(x)``: ``x Wᵀ + b``, ``x [N, F_in]`` → ``[N, F_out]``; a sparse COO ``x``
    (:func:`sparse_features`) is multiplied in fp32 with autocast off, giving an fp32 output.

    Autocast would run the product in bf16/fp16, which CUDA's sparse matmul does not implement
    (``addmm_sparse_cuda``); the sparse product is one layer's input projection, cheap in fp32,
    and the following ops cast its output as autocast asks.
    """
    if not x.is_sparse:
        return lin(x)
    with torch.autocast(x.device.type, enabled=False):
        bias = None if lin.bias is None else lin.bias.float()
        return F.linear(x.float(), lin.weight.float(), bias)


def degree(index: torch.Tensor, num_nodes: int, weight: torch.Tensor | None = None,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Number (or total weight) of entries of ``index`` per node: ``[num_nodes]``."""
    w = torch.ones_like(index, dtype=dtype) if weight is None else weight.to(dtype)
    return torch.zeros(num_nodes, dtype=dtype, device=index.device).index_add_(0, index, w)


def with_self_loops(edge_index: torch.Tensor, num_nodes: int,
                    weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Append one self-loop per node; existing self-loops get weight 0 so every node has exactly
    one loop of weight 1 (PyG's ``add_remaining_self_loops``, without a data-dependent filter).

    :returns: ``edge_index [2, E + N]``, ``weight [E + N]``
    """
    src, dst = edge_index[0], edge_index[1]
    keep = (src != dst).to(torch.float32)
    w = keep if weight is None else weight * keep
    loops = torch.arange(num_nodes, device=edge_index.device)
    edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    w = torch.cat([w, torch.ones(num_nodes, dtype=w.dtype, device=w.device)])
    return edge_index, w


def gcn_norm(edge_index: torch.Tensor, num_nodes: int, self_loops: bool = True,
             weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge weights of D̃^-1/2 Ã D̃^-1/2 (Ã = A + I when ``self_loops``), Kipf & Welling eq. 8.

    Node-wise: ``w_ji = 1 / sqrt(d̃_i d̃_j)``. Isolated nodes (degree 0 without loops) get 0.
    """
    if self_loops:
        edge_index, weight = with_self_loops(edge_index, num_nodes, weight)
    elif weight is None:
        weight = torch.ones(edge_index.shape[1], dtype=torch.float32, device=edge_index.device)
    deg = degree(edge_index[1], num_nodes, weight)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
    norm = inv_sqrt.index_select(0, edge_index[0]) * weight * inv_sqrt.index_select(0, edge_index[1])
    return edge_index, norm


def random_walk_norm(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Edge weights of the transition matrix P = D^-1 A, seen from the receiver: ``w_ji = 1/d_i``
    so that ``(P h)_i = mean_{j ∈ N(i)} h_j``; 0 for isolated nodes."""
    deg = degree(edge_index[1], num_nodes)
    inv = torch.where(deg > 0, 1.0 / deg.clamp_min(1.0), torch.zeros_like(deg))
    return inv.index_select(0, edge_index[1])


# -- dense spectral utilities (small graphs) ---------------------------------------------------


def dense_adjacency(edge_index: torch.Tensor, num_nodes: int,
                    weight: torch.Tensor | None = None) -> torch.Tensor:
    """A with ``A[i, j]`` = weight of edge j → i (duplicates add up): ``[N, N]``."""
    a = torch.zeros(num_nodes, num_nodes)
    w = torch.ones(edge_index.shape[1]) if weight is None else weight.float()
    a.index_put_((edge_index[1], edge_index[0]), w, accumulate=True)
    return a


def laplacian(edge_index: torch.Tensor, num_nodes: int,
              kind: Literal["combinatorial", "normalized", "scaled"] = "combinatorial",
              lambda_max: float | None = None) -> torch.Tensor:
    """Dense graph Laplacian (undirected graphs):

    - ``combinatorial``: L = D − A
    - ``normalized``: L = I − D^-1/2 A D^-1/2 (rows/cols of isolated nodes: L_ii = 0)
    - ``scaled`` (ChebNet): L̃ = 2 L_norm / λ_max − I, eigenvalues in [−1, 1]; ``lambda_max``
      defaults to the largest eigenvalue of L_norm (ChebNet's layers use the bound λ_max = 2).
    """
    a = dense_adjacency(edge_index, num_nodes)
    deg = a.sum(1)
    if kind == "combinatorial":
        return torch.diag(deg) - a
    inv = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))
    norm = torch.diag((deg > 0).float()) - inv[:, None] * a * inv[None, :]
    if kind == "normalized":
        return norm
    if kind == "scaled":
        lam = float(torch.linalg.eigvalsh(norm).max()) if lambda_max is None else lambda_max
        return 2.0 * norm / lam - torch.eye(num_nodes)
    raise ValueError(f"unknown Laplacian kind {kind!r}: combinatorial, normalized or scaled")


def fourier_basis(lap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Graph Fourier basis: L = U Λ Uᵀ. Returns (eigenvalues λ = frequencies ascending, U)."""
    return torch.linalg.eigh(lap)


def graph_fourier(signal: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """x̂ = Uᵀ x (the inverse transform is x = U x̂)."""
    return basis.T @ signal


def spectral_filter(signal: torch.Tensor, lap: torch.Tensor, response) -> torch.Tensor:
    """y = U g(Λ) Uᵀ x for a frequency response ``g`` (callable on the eigenvalues).

    A full spectral filter has one free value per eigenvalue (O(N) parameters, not localised) and
    needs the eigendecomposition; polynomial responses (ChebNet) avoid both.
    """
    lam, u = fourier_basis(lap)
    return u @ (response(lam)[:, None] * (u.T @ signal))
