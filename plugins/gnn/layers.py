"""Graph convolution layers on the message-passing base, and graph readouts.

Notation: ``x [N, F]`` node features, ``edge_index [2, E]`` with messages flowing j → i, N(i) the
in-neighbours of i, d_i = |N(i)|. Self-loops in the input are allowed: layers that add their own
(GCN, GAT) give an existing loop weight 0 so a node never counts itself twice. Duplicate edges are
treated as a multigraph: for sum-type aggregations a doubled edge counts twice, ``max`` ignores it.
Isolated nodes receive an empty (zero) aggregation. Each layer names its paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.plugins.gnn import csr
from zoo.plugins.gnn.csr import Adjacency, EdgeGraph
from zoo.plugins.gnn.graph import (
    dropout,
    dropout_mask,
    gcn_norm,
    onnx_exporting,
    random_walk_norm,
    sparse_linear,
    with_self_loops,
)
from zoo.plugins.gnn.message_passing import (
    MessagePassing,
    scatter_max,
    scatter_mean,
    scatter_softmax,
    scatter_sum,
)


class GCNConv(MessagePassing):
    """Graph convolution, Kipf & Welling 2017 (https://arxiv.org/abs/1609.02907), eq. 8:

    H' = D̃^-1/2 Ã D̃^-1/2 H W + b,   Ã = A + I,   d̃_i = Σ_j Ã_ij

    node-wise ``h_i' = Σ_{j ∈ N(i) ∪ {i}} h_j W / sqrt(d̃_i d̃_j) + b``. The first-order
    renormalised form of a Chebyshev filter (K = 1, λ_max ≈ 2, θ = θ₀ = −θ₁).

    Shapes: ``x [N, F_in]``, ``edge_index [2, E]`` → ``[N, F_out]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__("sum")
        self.lin = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                norm: tuple[torch.Tensor, torch.Tensor] | Adjacency | None = None) -> torch.Tensor:
        """``norm``: the normalised adjacency as (edges, weights), or as an
        :class:`~zoo.plugins.gnn.csr.Adjacency` (one CSR product on the CPU; the same sums)."""
        h = sparse_linear(x, self.lin)                                   # transform first: F_out ≤ F_in
        if isinstance(norm, Adjacency):
            out = norm @ h
        else:
            edge_index, weight = norm if norm is not None else gcn_norm(edge_index, x.shape[0])
            out = self.propagate(h, edge_index, edge_weight=weight)
        return out if self.bias is None else out + self.bias


class ChebConv(MessagePassing):
    """Chebyshev spectral convolution, Defferrard et al. 2016 (https://arxiv.org/abs/1606.09375):

    H' = Σ_{k=0}^{K-1} T_k(L̃) H Θ_k,   L̃ = 2L/λ_max − I,   L = I − D^-1/2 A D^-1/2

    with the recursion T_0 = H, T_1 = L̃H, T_k = 2 L̃ T_{k-1} − T_{k-2}. A K−1 order polynomial
    of L̃ is K−1-hop localised and needs no eigendecomposition. With λ_max = 2 (the bound used
    by PyG and by the GCN paper) L̃ = −D^-1/2 A D^-1/2; any other ``lambda_max`` adds the
    (2/λ_max − 1)·H diagonal part.

    Shapes: ``x [N, F_in]``, ``edge_index [2, E]`` → ``[N, F_out]``.
    """

    def __init__(self, in_features: int, out_features: int, k: int, lambda_max: float = 2.0) -> None:
        super().__init__("sum")
        if k < 1:
            raise ValueError(f"ChebConv needs K ≥ 1, got {k}")
        self.k = k
        self.lambda_max = lambda_max
        self.lins = nn.ModuleList(nn.Linear(in_features, out_features, bias=False) for _ in range(k))
        self.bias = nn.Parameter(torch.zeros(out_features))
        for lin in self.lins:
            nn.init.xavier_uniform_(lin.weight)

    def scaled_laplacian_weights(self, edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Edges and weights of L̃ = (2/λ_max)(I − D^-1/2 A D^-1/2) − I (loops carry the diagonal)."""
        edge_index, norm = gcn_norm(edge_index, num_nodes, self_loops=False)
        scale = 2.0 / self.lambda_max
        loops = torch.arange(num_nodes, device=edge_index.device)
        # diagonal: scale·[d_i > 0] − 1 (an isolated node has L_ii = 0)
        deg = torch.zeros(num_nodes, device=edge_index.device).index_add_(
            0, edge_index[1], torch.ones_like(norm))
        diag = scale * (deg > 0).float() - 1.0
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
        return edge_index, torch.cat([-scale * norm, diag])

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                lap: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        edge_index, weight = lap if lap is not None else self.scaled_laplacian_weights(edge_index, x.shape[0])
        if self.lins[0].out_features < self.lins[0].in_features:
            return self._clenshaw(x, edge_index, weight) + self.bias
        t_prev, t = x, None
        out = self.lins[0](x)
        if self.k > 1:
            t = self.propagate(x, edge_index, edge_weight=weight)             # T_1 = L̃ x
            out = out + self.lins[1](t)
        for k in range(2, self.k):
            t_next = 2.0 * self.propagate(t, edge_index, edge_weight=weight) - t_prev
            out = out + self.lins[k](t_next)
            t_prev, t = t, t_next
        return out + self.bias

    def _clenshaw(self, x: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The same sum evaluated on the narrow side (Clenshaw's recurrence with a_k = x Θ_k):

        b_k = a_k + 2 L̃ b_{k+1} − b_{k+2}  (b_K = b_{K+1} = 0),   y = a_0 + L̃ b_1 − b_2

        K−1 propagations of F_out-wide states instead of F_in-wide ones (Cora: 16 vs 1,433).
        """
        a = [lin(x) for lin in self.lins]
        if self.k == 1:
            return a[0]
        lap = lambda h: self.propagate(h, edge_index, edge_weight=weight)  # noqa: E731
        b_next = torch.zeros_like(a[0])                                    # b_{k+2}
        b = a[-1]                                                          # b_{K-1}
        for k in range(self.k - 2, 0, -1):
            b, b_next = a[k] + 2.0 * lap(b) - b_next, b
        return a[0] + lap(b) - b_next


class SAGEConv(MessagePassing):
    """GraphSAGE, Hamilton et al. 2017 (https://arxiv.org/abs/1706.02216), aggregate then combine:

    h_N(i) = AGG({h_j : j ∈ N(i)}),   h_i' = W_self h_i + W_neigh h_N(i) (+ b)

    ``mean`` is the mean aggregator; ``max`` is the pooling aggregator
    max_j σ(W_pool h_j + b). Optional ℓ2 normalisation of the output (paper, Alg. 1 line 7).

    Shapes: ``x [N, F_in]``, ``edge_index [2, E]`` → ``[N, F_out]``.
    """

    def __init__(self, in_features: int, out_features: int, aggr: str = "mean",
                 normalize: bool = False) -> None:
        super().__init__(aggr)
        self.pool = nn.Linear(in_features, in_features) if aggr == "max" else None
        self.lin_self = nn.Linear(in_features, out_features)
        self.lin_neigh = nn.Linear(in_features, out_features, bias=False)
        self.normalize = normalize

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            neigh = self.lin_neigh(self.propagate(torch.relu(self.pool(x)), edge_index))
        elif x.shape[1] > self.lin_neigh.out_features:
            neigh = self.propagate(self.lin_neigh(x), edge_index)   # mean is linear: shrink first
        else:
            neigh = self.lin_neigh(self.propagate(x, edge_index))
        h = self.lin_self(x) + neigh
        return F.normalize(h, p=2.0, dim=-1) if self.normalize else h


class GATConv(MessagePassing):
    """Graph attention, Veličković et al. 2018 (https://arxiv.org/abs/1710.10903):

    e_ji = LeakyReLU(aᵀ [W h_i ‖ W h_j]),   α_ji = softmax_j(e_ji) over N(i) ∪ {i},
    h_i' = ‖_{k=1}^{K} Σ_j α^k_ji W^k h_j   (heads concatenated, or averaged when ``concat=False``)

    aᵀ[W h_i ‖ W h_j] is split into a_dstᵀ W h_i + a_srcᵀ W h_j, so scores are two per-node dot
    products gathered per edge. Dropout on α during training, as in the paper.

    Shapes: ``x [N, F_in]``, ``edge_index [2, E]`` → ``[N, heads·F_out]`` (or ``[N, F_out]``).
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__("sum")
        self.heads, self.out_features, self.concat = heads, out_features, concat
        self.negative_slope, self.dropout = negative_slope, dropout
        self.lin = nn.Linear(in_features, heads * out_features, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_features))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_features))
        self.bias = nn.Parameter(torch.zeros(heads * out_features if concat else out_features))
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, graph: EdgeGraph | None = None) -> torch.Tensor:
        """``graph``: the same edges sorted by receiver (:class:`~zoo.plugins.gnn.csr.EdgeGraph`),
        for the CSR form on the CPU: segment softmax and one sparse product per head, no
        ``[E, H, C]`` tensor (the same sums)."""
        n = x.shape[0]
        h = sparse_linear(x, self.lin).view(n, self.heads, self.out_features)  # (N, H, C)
        a_src = (h * self.att_src).sum(-1)                                   # (N, H)
        a_dst = (h * self.att_dst).sum(-1)                                   # (N, H)
        if graph is not None and csr.supported(h):
            out = self._attend_sorted(h, a_src, a_dst, graph)
        else:
            out = self._attend(h, a_src, a_dst, edge_index)
        out = out.reshape(n, self.heads * self.out_features) if self.concat else out.mean(1)
        return out + self.bias

    def _attend(self, h: torch.Tensor, a_src: torch.Tensor, a_dst: torch.Tensor,
                edge_index: torch.Tensor) -> torch.Tensor:
        """Gather, softmax and scatter over the edges as given (message-passing form, exports)."""
        n = h.shape[0]
        edge_index, keep = with_self_loops(edge_index, n)
        src, dst = edge_index[0], edge_index[1]
        scores = a_src.index_select(0, src) + a_dst.index_select(0, dst)     # (E, H)
        scores = F.leaky_relu(scores, self.negative_slope)
        # an input self-loop (keep = 0) is masked out: the added loop stands for it
        scores = scores + (keep.view(-1, 1) - 1.0) * 1e9
        alpha = scatter_softmax(scores, dst, n)                              # (E, H)
        alpha = dropout(alpha, self.dropout, self.training)
        messages = h.index_select(0, src) * alpha.unsqueeze(-1)             # (E, H, C)
        return scatter_sum(messages, dst, n)                                 # (N, H, C)

    def _attend_sorted(self, h: torch.Tensor, a_src: torch.Tensor, a_dst: torch.Tensor,
                       graph: EdgeGraph) -> torch.Tensor:
        """The same on receiver-sorted edges (input loops already dropped, one loop per node)."""
        scores = a_src.index_select(0, graph.src) + a_dst.index_select(0, graph.dst)   # (E', H)
        alpha = csr.edge_softmax(F.leaky_relu(scores, self.negative_slope), graph)   # (E', H)
        if self.training and self.dropout > 0.0:
            # the mask is drawn in the message-passing order, so both forms drop the same edges
            keep = dropout_mask((graph.input_edges, self.heads), self.dropout, alpha.dtype)
            alpha = alpha * keep.index_select(0, graph.order)
        return csr.edge_weighted_sum(graph, alpha, h)                                 # (N, H, C)


class GINConv(MessagePassing):
    """Graph isomorphism network layer, Xu et al. 2019 (https://arxiv.org/abs/1810.00826), eq. 4.1:

    h_i' = MLP((1 + ε) h_i + Σ_{j ∈ N(i)} h_j)

    Sum (not mean or max) keeps the multiset of neighbours injective, which makes GIN as strong as
    the 1-WL test; ε is learnable (GIN-ε) or fixed at 0 (GIN-0).

    Shapes: ``x [N, F_in]``, ``edge_index [2, E]`` → ``[N, F_out]``.
    """

    def __init__(self, mlp: nn.Module, learn_eps: bool = True, aggr: str = "sum") -> None:
        super().__init__(aggr)
        self.mlp = mlp
        self.eps = nn.Parameter(torch.zeros(1)) if learn_eps else None

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        neigh = self.propagate(x, edge_index)
        own = x if self.eps is None else (1.0 + self.eps) * x
        return self.mlp(own + neigh)


class GMMConv(MessagePassing):
    """MoNet's Gaussian mixture convolution, Monti et al. 2017 (https://arxiv.org/abs/1611.08402):

    u_ji = (1/sqrt(d_i), 1/sqrt(d_j))   pseudo-coordinates from degrees (paper, citation graphs),
    ũ_ji = tanh(A u_ji + c)             a learned transform of the coordinates,
    w_k(ũ) = exp(−½ Σ_d (ũ_d − μ_kd)² / σ_kd²),  k = 1..K Gaussian kernels,
    h_i' = Σ_k mean_{j ∈ N(i)} w_k(ũ_ji) Θ_k h_j + W_root h_i + b

    Shapes: ``x [N, F_in]``, ``edge_index [2, E]`` → ``[N, F_out]``.
    """

    def __init__(self, in_features: int, out_features: int, kernels: int = 3, dim: int = 2,
                 aggr: str = "mean") -> None:
        super().__init__(aggr)
        self.kernels, self.out_features = kernels, out_features
        self.coords = nn.Linear(2, dim)
        self.mu = nn.Parameter(torch.randn(kernels, dim) * 0.5)
        self.log_sigma = nn.Parameter(torch.zeros(kernels, dim))
        self.lin = nn.Linear(in_features, kernels * out_features, bias=False)
        self.root = nn.Linear(in_features, out_features)
        nn.init.xavier_uniform_(self.lin.weight)

    @staticmethod
    def pseudo_coordinates(edge_index: torch.Tensor, num_nodes: int, dim: int = -1) -> torch.Tensor:
        """``(1/√deg(i), 1/√deg(j))`` of each edge ``j → i``: ``[E, 2]`` (``dim=0``: ``[2, E]``)."""
        deg = torch.zeros(num_nodes, device=edge_index.device).index_add_(
            0, edge_index[1], torch.ones(edge_index.shape[1], device=edge_index.device))
        inv = deg.clamp_min(1.0).rsqrt()
        return torch.stack([inv.index_select(0, edge_index[1]), inv.index_select(0, edge_index[0])], dim=dim)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if onnx_exporting():
            return self._forward_onnx(x, edge_index)
        u = torch.tanh(self.coords(self.pseudo_coordinates(edge_index, n)))         # (E, D)
        diff = (u.unsqueeze(1) - self.mu) / self.log_sigma.exp()                  # (E, K, D)
        w = torch.exp(-0.5 * (diff * diff).sum(-1))                               # (E, K)
        h = self.lin(x).view(n, self.kernels, self.out_features)                  # (N, K, C)
        messages = (h.index_select(0, edge_index[0]) * w.unsqueeze(-1)).sum(1)    # (E, C)
        return self.aggregate(messages, edge_index[1], n) + self.root(x)

    def _forward_onnx(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` as exported to ONNX: the same maths in the shapes onnxruntime runs fast.

        onnxruntime's CPU kernels broadcast and reduce a contiguous span at a time, so torch's
        layout, ``[E, 1, D] − [K, D]`` (spans of ``D = 2``), ``[E, K, C] · [E, K, 1]`` (spans of
        ``C``) and a sum over the middle axis ``K``, runs as tens of thousands of tiny loops.
        Here (1) the coordinates are computed as ``ũᵀ [D, E]`` and the Gaussians over
        ``[D, K, E]`` (spans of ``E``), with no Transpose for the graph optimiser to push back;
        (2) the per-kernel weights and the sum over kernels are two matrix products with 0/1
        matrices, ``w_rep = wᵀ R`` with ``R = I_K ⊗ 1_Cᵀ`` ``[K, K·C]`` and ``m = (h_src ⊙ w_rep) S``
        with ``S = 1_K ⊗ I_C`` ``[K·C, C]``, so the product is elementwise on equal shapes; (3)
        ``Θ`` and ``W_root`` are one ``[K·C + C, F]`` product over ``x``, which is read once. torch
        runs its own layout faster than this one (the eager path above).
        """
        n, k, c = x.shape[0], self.kernels, self.out_features
        coords = self.pseudo_coordinates(edge_index, n, dim=0)                    # (2, E)
        u = torch.tanh(self.coords.weight @ coords + self.coords.bias.unsqueeze(-1))                # (D, E)
        diff = (u.unsqueeze(1) - self.mu.t().unsqueeze(-1)) / self.log_sigma.exp().t().unsqueeze(-1)  # (D, K, E)
        w = torch.exp(-0.5 * (diff * diff).sum(0))                                # (K, E)
        eye_k, eye_c = torch.eye(k, device=x.device), torch.eye(c, device=x.device)
        w_rep = w.t() @ eye_k.repeat_interleave(c, dim=1)                         # (E, K·C)
        weight = torch.cat([self.lin.weight, self.root.weight])                  # (K·C + C, F)
        bias = torch.cat([torch.zeros(k * c, device=x.device), self.root.bias])
        both = F.linear(x, weight, bias)                                          # (N, K·C + C)
        h, root = both[:, :k * c], both[:, k * c:]
        messages = (h.index_select(0, edge_index[0]) * w_rep) @ eye_c.repeat(k, 1)  # (E, C)
        return self.aggregate(messages, edge_index[1], n) + root


class NN4GLayer(MessagePassing):
    """NN4G, Micheli 2009 (https://doi.org/10.1109/TNN.2008.2010350), one constructive layer:

    h_i^(k) = σ(W̄_k x_i + Σ_{l<k} Ŵ_kl Σ_{j ∈ N(i)} h_j^(l))

    Layer k sees the raw features of its node and the summed states of the neighbours in *every*
    earlier layer (no weight sharing between layers; no recurrence, hence no contraction needed).

    Shapes: ``x [N, F_in]``, ``states`` list of ``[N, H]`` → ``[N, H]``.
    """

    def __init__(self, in_features: int, hidden: int, previous: int) -> None:
        super().__init__("sum")
        self.lin_x = nn.Linear(in_features, hidden)
        self.lin_prev = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(previous))

    def forward(self, x: torch.Tensor, states: list[torch.Tensor], edge_index: torch.Tensor) -> torch.Tensor:
        out = self.lin_x(x)
        for lin, h in zip(self.lin_prev, states):
            out = out + self.propagate(lin(h), edge_index)                       # Σ_j Ŵ h_j = Ŵ Σ_j h_j
        return out


class Diffusion(MessagePassing):
    """DCNN diffusion, Atwood & Towsley 2016 (https://arxiv.org/abs/1511.02136):

    P = D^-1 A (transition matrix),  Z_i,k,f = f(W_kf · (P^k X)_if),  k = 0..K

    one weight per hop and feature (elementwise), the hop-k features are k random-walk steps
    away. Returns the stacked diffusion ``[N, K+1, F]`` before the weights.
    """

    def __init__(self, hops: int) -> None:
        super().__init__("sum")
        self.hops = hops

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        weight = random_walk_norm(edge_index, x.shape[0])
        powers = [x]
        for _ in range(self.hops):
            powers.append(self.propagate(powers[-1], edge_index, edge_weight=weight))
        return torch.stack(powers, dim=1)                                          # (N, K+1, F)


# -- readouts ---------------------------------------------------------------------------------


def num_graphs(batch: torch.Tensor) -> int:
    """G: the count a training batch carries (``batch.zoo_num_graphs``, set by the graph batcher:
    no device sync), else max(batch) + 1, data-dependent (exported as a symbolic size); 0 for an
    empty batch."""
    if not torch.compiler.is_compiling():
        known = getattr(batch, "zoo_num_graphs", None)
        if isinstance(known, int):
            return known
        if batch.shape[0] == 0:
            return 0
    g = int((batch.max() + 1).item())
    torch._check(g >= 1)
    return g


def readout(h: torch.Tensor, batch: torch.Tensor, how: str, graphs: int) -> torch.Tensor:
    """Graph-level vectors ``[G, H]`` from node states ``[N, H]``: ``sum``, ``mean`` or ``max``
    over the nodes of each graph (an empty graph reads out zeros)."""
    if how == "sum":
        return scatter_sum(h, batch, graphs)
    if how == "mean":
        return scatter_mean(h, batch, graphs)
    if how == "max":
        return scatter_max(h, batch, graphs)
    raise ValueError(f"unknown readout {how!r}: sum, mean or max")


__all__ = ["ChebConv", "Diffusion", "GATConv", "GCNConv", "GINConv", "GMMConv", "NN4GLayer",
           "SAGEConv", "num_graphs", "readout"]
