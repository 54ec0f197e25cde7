"""word2vec steps without host syncs (issue 19, point 5), checked on the CPU.

- ``output_updates = "mean"`` counts a row's hits with an integer ``index_add_`` instead of
  ``bincount`` with weights (a sync to size its output, and atomic float adds on CUDA).
- GloVe's item count is filled on the device instead of copied from a host ``torch.tensor``.

The losses and gradients are the ones recorded from the earlier code for the same seeded batch.
"""

from __future__ import annotations

import pytest
import torch

from zoo.core.train.data import DataInfo
from zoo.plugins.word2vec.models import CBOW, GloVe, SkipGram, _row_gradient

COUNTS = [50, 30, 20, 10, 8, 6, 5, 3, 2, 1]
INFO = DataInfo(input_shape=(), extra={"vocab": [f"w{i}" for i in range(10)], "counts": COUNTS})


def seeded_batches() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """A window batch (centre [16], context [16, 6], mask [16, 6]; centre 3 has no context) and a
    co-occurrence batch (row [20], col [20], count [20]), drawn in this order from one generator."""
    g = torch.Generator().manual_seed(5)
    centre, context = torch.randint(10, (16,), generator=g), torch.randint(10, (16, 6), generator=g)
    mask = torch.rand(16, 6, generator=g) < 0.7
    mask[3] = False
    row, col = torch.randint(10, (20,), generator=g), torch.randint(10, (20,), generator=g)
    return (centre, context, mask), (row, col, torch.rand(20, generator=g) * 20 + 0.5)


@pytest.fixture
def no_bincount(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("bincount syncs on CUDA (and is nondeterministic there with weights)")

    monkeypatch.setattr(torch, "bincount", refuse)


def test_mean_updates_divide_each_row_by_its_valid_hits(no_bincount):
    index = torch.tensor([[2, 0, 2], [2, 5, 0]])
    values = torch.arange(1.0, 13.0).view(2, 3, 2)                       # (B, J, D) rows to add
    valid = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])             # the third entry's hit does not count
    like = torch.zeros(6, 2)
    got = _row_gradient(index, values, like, sparse=False, mean=True, valid=valid)
    hits = torch.tensor([2.0, 0, 2, 0, 0, 1])                            # row 2: 3 entries, 2 valid
    expected = torch.zeros(6, 2).index_add_(0, index.reshape(-1), values.reshape(-1, 2)) / hits.clamp(min=1)[:, None]
    assert torch.allclose(got, expected)
    every = _row_gradient(index, values, like, sparse=False, mean=True)  # no valid: every entry is a hit
    assert torch.allclose(every[2], (values[0, 0] + values[0, 2] + values[1, 0]) / 3)
    sparse = _row_gradient(index, values, like, sparse=True, mean=True, valid=valid)
    assert torch.allclose(sparse.to_dense(), got)


# Recorded from the earlier code (bincount, host count) for `seeded_batches()`: loss, count,
# Σ grad(in), Σ |grad(out)|, grad(out)[0, :3].
RECORDED = {
    (SkipGram, "hs"): (175.220947265625, 66.0, -0.18230009078979492, 1.2351328134536743,
                       [0.013246545568108559, -0.014963413588702679, 0.004969457164406776]),
    (SkipGram, "ns"): (182.98756408691406, 66.0, 2.6606483459472656, 1.3031480312347412,
                       [0.03228406980633736, -0.03335375338792801, 0.019828200340270996]),
    (CBOW, "hs"): (40.167442321777344, 15.0, -0.18230080604553223, 0.3130333721637726,
                   [0.004847866483032703, -0.002675745403394103, 0.0015021624276414514]),
    (CBOW, "ns"): (41.57643127441406, 15.0, 2.6606483459472656, 0.2826286256313324,
                   [0.0077966079115867615, -0.006964046508073807, 0.004141626413911581]),
}


@pytest.mark.parametrize("cls, objective", sorted(RECORDED, key=lambda k: (k[0].__name__, k[1])),
                         ids=lambda v: getattr(v, "__name__", v))
def test_mean_output_updates_give_the_recorded_loss_and_gradients(no_bincount, cls, objective):
    windows, _ = seeded_batches()
    torch.manual_seed(4)
    model = cls(INFO, 8, 3, 0.75, objective=objective, output_updates="mean", kernel="torch")
    torch.nn.init.normal_(model.out_embed.weight, std=0.1)
    loss, count = model(*windows)
    loss.backward()
    grad_in, grad_out = model.in_embed.weight.grad, model.out_embed.weight.grad
    got = (loss.item(), count.item(), grad_in.sum().item(), grad_out.abs().sum().item(), grad_out[0, :3].tolist())
    want = RECORDED[(cls, objective)]
    assert got[:4] == pytest.approx(want[:4], rel=1e-5, abs=1e-6)
    assert got[4] == pytest.approx(want[4], rel=1e-5, abs=1e-7)


def test_glove_count_is_made_on_the_device(monkeypatch):
    _, pairs = seeded_batches()
    torch.manual_seed(4)
    model = GloVe(INFO, 8, 10.0, 0.75)
    made = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or real(*a, **k))
    loss, count = model(*pairs)
    assert made == []                                                     # no host tensor copied in per step
    assert count.dtype == torch.float32 and count.shape == () and count.item() == 20.0
    assert loss.item() == pytest.approx(33.1999397277832, rel=1e-6)      # recorded from the earlier code
