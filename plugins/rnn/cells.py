"""One direction of one recurrent layer: ``x [B, T, D], lengths [B] → outputs [B, T, H]``.

Padding sits at the end of each sequence, so a left-to-right pass never mixes padding into the
real positions; callers read only ``t < lengths`` (the backward direction is run on sequences
reversed within their lengths, see :func:`zoo.plugins.sequence.pipeline.reverse_padded`).

Hand-written recurrences (Elman for export, Jordan, peephole LSTM in eager) are a ``step`` function
``(carry, x_t) → (carry, y_t)``. In eager mode a Python loop runs it (fast to differentiate);
under ``torch.export`` (ONNX export) the same step goes through ``torch._higher_order_ops.scan``,
which becomes an ONNX Scan with a dynamic time axis. A Python loop would be unrolled and the
time axis silently frozen to the traced length.

``nn.LSTM``/``nn.GRU`` and the peephole LSTM export as ONNX's own ``LSTM``/``GRU`` operator
(:func:`onnx_recurrence`): one node that onnxruntime runs with its fused recurrent kernel.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _exporting() -> bool:
    return bool(torch.compiler.is_exporting())


class Recurrence(nn.Module):
    """Base of hand-written recurrences; subclasses define ``project``, ``init`` and ``step``."""

    hidden_size: int

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The input part of every step, for all steps at once: ``[B, T, D] → [B, T, *]``."""
        raise NotImplementedError

    def init(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def step(self, carry: tuple[torch.Tensor, ...], xt: torch.Tensor):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        xs = self.project(x).transpose(0, 1)                     # (T, B, *)
        carry = self.init(x)
        if _exporting():
            from torch._higher_order_ops.scan import scan

            def combine(c, xt):
                c, y = self.step(c, xt)
                return c, y.clone()   # scan outputs must not alias the carry

            _, ys = scan(combine, carry, xs)                     # (T, B, H)
        else:
            outputs = []
            for t in range(xs.shape[0]):
                carry, y = self.step(carry, xs[t])
                outputs.append(y)
            ys = torch.stack(outputs)
        return ys.transpose(0, 1)                                # (B, T, H)


class ElmanCell(Recurrence):
    """Elman: the hidden state is stored and fed back. ``h_t = tanh(W x_t + U h_{t−1} + b)``.

    Trains with ``nn.RNN`` (its fused kernel); exports through the scan with the same weights,
    since the exporter freezes ``nn.RNN``'s time axis.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)

    def project(self, x):
        return x @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0

    def init(self, x):
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def step(self, carry, xt):
        h = torch.tanh(xt + carry[0] @ self.rnn.weight_hh_l0.T)
        return (h,), h

    def forward(self, x, lengths):
        # Not ONNX's own RNN operator: onnxruntime's CPU kernel for it was ~15× slower than this
        # scan at batch 64 (hidden 64, 32 steps; docs/results.md), unlike its LSTM and GRU.
        if _exporting():
            return super().forward(x, lengths)
        return self.rnn(x)[0]


class JordanCell(Recurrence):
    """Jordan: the network's *output* is fed back, not its hidden state.

    ``h_t = tanh(W x_t + U y_{t−1} + b)``, ``y_t = tanh(V h_t + c)``; the layer's outputs are the
    ``y_t`` (size ``hidden_size``, the same as ``h_t``).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.inp = nn.Linear(input_size, hidden_size)
        self.back = nn.Linear(hidden_size, hidden_size, bias=False)
        self.out = nn.Linear(hidden_size, hidden_size)

    def project(self, x):
        return self.inp(x)

    def init(self, x):
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def step(self, carry, xt):
        h = torch.tanh(xt + self.back(carry[0]))
        y = torch.tanh(self.out(h))
        return (y,), y


class PeepholeLSTMCell(Recurrence):
    """LSTM with peephole connections (Gers & Schmidhuber 2000): the gates see the cell state.

    ``i = σ(W_i x + U_i h + p_i ⊙ c_{t−1} + b_i)``, ``f = σ(W_f x + U_f h + p_f ⊙ c_{t−1} + b_f)``,
    ``c_t = f ⊙ c_{t−1} + i ⊙ tanh(W_c x + U_c h + b_c)``,
    ``o = σ(W_o x + U_o h + p_o ⊙ c_t + b_o)``, ``h_t = o ⊙ tanh(c_t)``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.inp = nn.Linear(input_size, 4 * hidden_size)
        self.rec = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        self.peep = nn.Parameter(torch.zeros(3, hidden_size))
        bound = 1 / math.sqrt(hidden_size)
        nn.init.uniform_(self.peep, -bound, bound)
        with torch.no_grad():  # forget-gate bias 1: remember by default (Gers et al. 2000)
            self.inp.bias[hidden_size:2 * hidden_size].fill_(1.0)

    def project(self, x):
        return self.inp(x)

    def init(self, x):
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        return (zeros, zeros.clone())

    def forward(self, x, lengths):
        if not _exporting():
            return super().forward(x, lengths)
        # ONNX's LSTM operator has these peepholes (input P, gates i, o, f): one fused node.
        order = (0, 3, 1, 2)                           # (i, f, g, o) → ONNX's (i, o, f, c)
        bias = torch.cat([_gates(self.inp.bias, order), torch.zeros_like(self.inp.bias)]).unsqueeze(0)
        peepholes = self.peep[[0, 2, 1]].reshape(1, -1)                              # (1, 3H): i, o, f
        return onnx_recurrence("LSTM", x, _gates(self.inp.weight, order), _gates(self.rec.weight, order),
                               bias, self.hidden_size, peepholes=peepholes)

    def step(self, carry, xt):
        h, c = carry
        z = xt + self.rec(h)                                     # (B, 4H)
        zi, zf, zg, zo = z.chunk(4, dim=-1)
        i = torch.sigmoid(zi + self.peep[0] * c)
        f = torch.sigmoid(zf + self.peep[1] * c)
        c = f * c + i * torch.tanh(zg)
        o = torch.sigmoid(zo + self.peep[2] * c)
        h = o * torch.tanh(c)
        return (h, c), h


class TorchCell(Recurrence):
    """``nn.LSTM`` / ``nn.GRU``, one layer, one direction: their fused kernels to train, and
    ONNX's own ``LSTM`` / ``GRU`` operator to export (:meth:`onnx_operator`; the exporter's own
    translation froze the time axis of their per-step outputs, which taggers and the autoencoder
    need). ``project``/``step`` keep the same equations as a scan, for reference and tests.

    LSTM (PyTorch's gate order i, f, g, o): ``c_t = f ⊙ c_{t−1} + i ⊙ g``, ``h_t = o ⊙ tanh(c_t)``.
    GRU (r, z, n): ``n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))``, ``h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}``.
    """

    def __init__(self, kind: type[nn.Module], input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.is_lstm = kind is nn.LSTM
        self.rnn = kind(input_size, hidden_size, batch_first=True)
        if self.is_lstm:
            with torch.no_grad():  # forget-gate bias 1 (Jozefowicz et al. 2015)
                self.rnn.bias_ih_l0[hidden_size:2 * hidden_size].fill_(1.0)

    def project(self, x):
        return x @ self.rnn.weight_ih_l0.T + self.rnn.bias_ih_l0            # (B, T, 4H | 3H)

    def init(self, x):
        zeros = x.new_zeros(x.shape[0], self.hidden_size)
        return (zeros, zeros.clone()) if self.is_lstm else (zeros,)

    def step(self, carry, xt):
        rec = carry[0] @ self.rnn.weight_hh_l0.T + self.rnn.bias_hh_l0
        if self.is_lstm:
            h, c = carry
            i, f, g, o = (xt + rec).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            return (h, c), h
        (h,) = carry
        xr, xz, xn = xt.chunk(3, dim=-1)
        hr, hz, hn = rec.chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return (h,), h

    def forward(self, x, lengths):
        if _exporting():
            return self.onnx_operator(x)
        return self.rnn(x)[0]

    def onnx_operator(self, x: torch.Tensor) -> torch.Tensor:
        """The layer as ONNX's own ``LSTM`` / ``GRU`` operator (export only): ``[B, T, D] → [B, T, H]``.

        The weights are reordered from PyTorch's gate order to ONNX's: LSTM ``(i, f, g, o) →
        (i, o, f, c)``, GRU ``(r, z, n) → (z, r, h)``; GRU runs with ``linear_before_reset=1``,
        which is PyTorch's ``r ⊙ (U_n h + b_hn)``.
        """
        order = (0, 3, 1, 2) if self.is_lstm else (1, 0, 2)
        rnn = self.rnn
        bias = torch.cat([_gates(rnn.bias_ih_l0, order), _gates(rnn.bias_hh_l0, order)]).unsqueeze(0)
        return onnx_recurrence("LSTM" if self.is_lstm else "GRU", x, _gates(rnn.weight_ih_l0, order),
                               _gates(rnn.weight_hh_l0, order), bias, self.hidden_size,
                               **({} if self.is_lstm else {"linear_before_reset": 1}))


def _gates(w: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """The gate blocks of ``w [G·H, ...]`` (stacked along dim 0) in another order."""
    parts = w.chunk(len(order), dim=0)
    return torch.cat([parts[k] for k in order], dim=0)


def onnx_recurrence(op: str, x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, bias: torch.Tensor,
                    hidden_size: int, peepholes: torch.Tensor | None = None, **attrs) -> torch.Tensor:
    """ONNX's own ``RNN`` / ``GRU`` / ``LSTM`` operator, forward direction, in an exported graph:
    ``x [B, T, D] → outputs [B, T, H]`` (call only under export; eager has no kernel for it).

    One fused node with the time axis symbolic, run by onnxruntime's recurrent kernel (the input
    projection of all steps as one GEMM, then one small GEMM per step), where a Scan would run
    a subgraph of a dozen nodes per step. No ``sequence_lens``: like ``nn.LSTM`` and the scan
    the op also runs over the padding, so every output (padding included) matches torch.

    Args:
        op (str): ``"GRU"`` or ``"LSTM"`` (``"RNN"`` works too, but its kernel is slow).
        w (Tensor): input weights ``[G·H, D]`` in ONNX's gate order (G = 1, 3, 4).
        r (Tensor): recurrent weights ``[G·H, H]``, same order.
        bias (Tensor): ``[1, 2·G·H]``, the input biases then the recurrent ones.
        peepholes (Tensor, optional): LSTM peepholes ``[1, 3·H]`` in the order i, o, f.
        **attrs: more ONNX attributes (``linear_before_reset``).
    """
    xs = x.transpose(0, 1)                                                   # (T, B, D)
    inputs = [xs, w.unsqueeze(0), r.unsqueeze(0), bias]
    if peepholes is not None:  # LSTM inputs 5-7: sequence_lens, initial_h, initial_c absent
        inputs += [None, None, None, peepholes]
    ys = torch.onnx.ops.symbolic(op, inputs, {"hidden_size": hidden_size, "direction": "forward", **attrs},
                                 dtype=x.dtype, shape=(xs.shape[0], 1, xs.shape[1], hidden_size))
    return ys.squeeze(1).transpose(0, 1)                                     # (T, 1, B, H) → (B, T, H)

CELLS = {
    "elman": ElmanCell,
    "jordan": JordanCell,
    "lstm-peephole": PeepholeLSTMCell,
    "lstm": lambda i, h: TorchCell(nn.LSTM, i, h),
    "gru": lambda i, h: TorchCell(nn.GRU, i, h),
}
