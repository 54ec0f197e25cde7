"""The fused CPU kernels: word2vec's sequential SGD, and when the trainer lets them step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo import hookimpl
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.word2vec import models
from zoo.plugins.word2vec.models import CBOW, SkipGram

pytest.importorskip("numba")
from zoo.plugins.word2vec import kernels  # noqa: E402


def _info(counts):
    return DataInfo(input_shape=(), extra={"vocab": [f"w{i}" for i in range(len(counts))],
                                            "counts": np.asarray(counts)})


def _sequential(kind, w_in, w_out, context, weight, targets, labels, lr, exact=False, tmask=None):
    """word2vec's loop written out in torch (gensim's fast_sentence_cbow_neg / _sg_neg): each
    centre (CBOW) or each (context, centre) pair (skip-gram) updates the tables before the next."""
    w_in, w_out = w_in.clone(), w_out.clone()
    loss = 0.0
    for b in range(context.shape[0]):
        valid = [c for c in range(context.shape[1]) if weight[b, c] != 0]
        if kind == "cbow":
            if not valid:
                continue
            n = sum(float(weight[b, c]) for c in valid)
            h = sum(weight[b, c] * w_in[context[b, c]] for c in valid) / n
            gh = torch.zeros_like(h)
            for j in range(targets.shape[1]):
                t, label, m = targets[b, j], labels[b, j], 1.0 if tmask is None else tmask[b, j]
                s = w_out[t] @ h
                loss -= float(m * F.logsigmoid(s * (2 * label - 1)))
                g = lr * m * (torch.sigmoid(s) - label)
                gh += g * w_out[t]
                w_out[t] -= g * h
            if exact:
                gh /= n
            for c in valid:
                w_in[context[b, c]] -= weight[b, c] * gh
        else:
            for c in valid:
                row, wc = context[b, c], weight[b, c]
                gv = torch.zeros_like(w_in[row])
                for j in range(targets.shape[1]):
                    t, label, m = targets[b, j], labels[b, j], 1.0 if tmask is None else tmask[b, j]
                    s = w_out[t] @ w_in[row]
                    loss -= float(wc * m * F.logsigmoid(s * (2 * label - 1)))
                    g = lr * wc * m * (torch.sigmoid(s) - label)
                    gv += g * w_out[t]
                    w_out[t] -= g * w_in[row]
                w_in[row] -= gv
    return loss, w_in, w_out


def _batch(vocab=7, batch=6, width=4, targets=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    context = torch.randint(vocab, (batch, width), generator=g)
    weight = (torch.rand(batch, width, generator=g) < 0.7).double()
    weight[2] = 0                                           # a centre without context
    target = torch.randint(vocab, (batch, targets), generator=g)
    target[1] = target[0]                                   # rows repeated across centres
    labels = torch.zeros(batch, targets, dtype=torch.float64)
    labels[:, 0] = 1
    return context, weight, target, labels


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cbow", "skipgram"])
@pytest.mark.parametrize("exact", [False, True])
def test_sgd_step_is_word2vecs_sequential_update(kind, exact, one_thread):
    g = torch.Generator().manual_seed(1)
    w_in, w_out = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    context, weight, targets, labels = _batch()
    expected_loss, expected_in, expected_out = _sequential(kind, w_in, w_out, context, weight, targets, labels,
                                                           0.3, exact and kind == "cbow")
    got_in, got_out = w_in.clone(), w_out.clone()
    loss = kernels.sgd_step(kind, got_in, got_out, context, weight, targets, labels, None, exact, 0.3)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert torch.allclose(got_in, expected_in, atol=1e-12) and torch.allclose(got_out, expected_out, atol=1e-12)
    assert not torch.equal(got_in, w_in) and not torch.equal(got_out, w_out)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cbow", "skipgram"])
def test_sgd_step_threads_split_the_batch(kind):
    """Two threads take one half of the batch each; on halves that share no row the result is
    the sequential one (shared rows are updated without locks, as gensim's threads do)."""
    g = torch.Generator().manual_seed(2)
    w_in, w_out = torch.randn(14, 5, generator=g, dtype=torch.float64), torch.randn(14, 5, generator=g, dtype=torch.float64)
    context, weight, targets, labels = _batch(batch=6)
    context[3:] += 7
    targets[3:] += 7
    _, expected_in, expected_out = _sequential(kind, w_in, w_out, context, weight, targets, labels, 0.2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kernels.sgd_step(kind, w_in, w_out, context, weight, targets, labels, None, False, 0.2)
    finally:
        torch.set_num_threads(before)
    assert torch.allclose(w_in, expected_in, atol=1e-12) and torch.allclose(w_out, expected_out, atol=1e-12)


@pytest.mark.parametrize("cls", [SkipGram, CBOW])
def test_attach_sgd_only_where_plain_sgd_would_step_the_same(cls):
    model = cls(_info([5, 4, 3, 2]), dim=4, negatives=2, ns_exponent=0.75, sparse=True)
    params = list(model.parameters())
    assert model.attach_sgd(torch.optim.SGD(params, lr=0.1), "sum")
    assert not model.attach_sgd(torch.optim.SGD(params, lr=0.1), "mean")          # lr is per word on sums only
    assert model.sgd_group is None
    assert not model.attach_sgd(torch.optim.SGD(params, lr=0.1), "sum", exclusive=False)
    assert not model.attach_sgd(torch.optim.SGD(params, lr=0.1, momentum=0.9), "sum")
    assert not model.attach_sgd(torch.optim.SGD(params, lr=0.1, weight_decay=1e-4), "sum")
    assert not model.attach_sgd(torch.optim.Adagrad(params, lr=0.1), "sum")
    assert not model.attach_sgd(torch.optim.SGD([model.in_embed.weight], lr=0.1), "sum")
    torch_ops = cls(_info([5, 4, 3, 2]), dim=4, negatives=2, ns_exponent=0.75, kernel="torch")
    assert not torch_ops.attach_sgd(torch.optim.SGD(torch_ops.parameters(), lr=0.1), "sum")


def _kernel_seed(torch_seed):
    """The seed the attached model draws from torch's generator for its kernel."""
    torch.manual_seed(torch_seed)
    return int(torch.randint(1 << 62, (), dtype=torch.int64))


@pytest.mark.slow
@pytest.mark.parametrize("cls, kind", [(SkipGram, "skipgram"), (CBOW, "cbow")])
def test_attached_model_steps_in_training_forward_only(cls, kind, one_thread):
    model = cls(_info([5, 4, 3, 2, 2, 1, 1]), dim=5, negatives=2, ns_exponent=0.75, sparse=True).double()
    torch.nn.init.normal_(model.out_embed.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert model.attach_sgd(optimizer, "sum") and model.updates_itself
    optimizer.param_groups[0]["lr"] = 0.25                 # what a scheduler does between steps
    context, weight, _, _ = _batch()
    centre = torch.arange(6) % 7
    # the noise words the kernel draws with word2vec's generator, seeded from torch's (CBOW: from
    # the alias table of the same distribution)
    noise = torch.from_numpy(kernels.alias_words(*model.noise_alias(), _kernel_seed(5), 1, 6, 2) if kind == "cbow"
                             else kernels.noise_words(model.noise_table.numpy(), _kernel_seed(5), 1, 6, 2))
    targets = torch.cat([centre.unsqueeze(1), noise], 1)
    labels = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64).expand(6, 3)
    expected_loss, expected_in, expected_out = _sequential(kind, model.in_embed.weight.detach(),
                                                           model.out_embed.weight.detach(), context, weight,
                                                           targets, labels, 0.25)
    model.train()
    torch.manual_seed(5)
    loss, count = model(centre, context, weight.bool())
    assert float(loss) == pytest.approx(expected_loss, rel=1e-12)
    assert float(count) == (weight.sum() if kind == "skipgram" else (weight.sum(1) > 0).sum())
    assert torch.allclose(model.in_embed.weight, expected_in, atol=1e-12)
    assert torch.allclose(model.out_embed.weight, expected_out, atol=1e-12)
    assert not loss.requires_grad                          # nothing left for backward or the optimizer
    optimizer.step()
    assert torch.allclose(model.in_embed.weight, expected_in, atol=1e-12)
    # evaluation and no-grad forwards leave the tables alone
    snapshot = model.in_embed.weight.detach().clone()
    model.eval()
    model(centre, context, weight.bool())
    model.train()
    with torch.no_grad():
        model(centre, context, weight.bool())
    assert torch.equal(model.in_embed.weight, snapshot)
    # detached: gradients again
    model.attach_sgd(None)
    assert not model.updates_itself
    loss, _ = model(centre, context, weight.bool())
    loss.backward()
    assert model.in_embed.weight.grad is not None


@pytest.mark.parametrize("cls, kind", [(SkipGram, "skipgram"), (CBOW, "cbow")])
def test_attached_hierarchical_softmax_walks_the_centres_huffman_path(cls, kind, one_thread):
    model = cls(_info([9, 5, 4, 3, 2, 1, 1]), dim=5, negatives=2, ns_exponent=0.75, objective="hs").double()
    torch.nn.init.normal_(model.out_embed.weight)
    assert model.attach_sgd(torch.optim.SGD(model.parameters(), lr=0.2), "sum")
    context, weight, _, _ = _batch()
    centre = torch.tensor([0, 6, 3, 1, 5, 2])
    # the padded Huffman tables, row by centre; a padding slot (mask 0) is a zero-weight target
    targets, labels, tmask = model.hs_points[centre], model.hs_labels[centre], model.hs_mask[centre]
    expected_loss, expected_in, expected_out = _sequential(kind, model.in_embed.weight.detach(),
                                                           model.out_embed.weight.detach(), context, weight,
                                                           targets, labels, 0.2, tmask=tmask)
    model.train()
    loss, _ = model(centre, context, weight.bool())
    assert float(loss) == pytest.approx(expected_loss, rel=1e-12)
    assert torch.allclose(model.in_embed.weight, expected_in, atol=1e-12)
    assert torch.allclose(model.out_embed.weight, expected_out, atol=1e-12)


def test_kernel_noise_words_follow_unigram_to_the_three_quarters():
    counts = np.array([1000, 300, 100, 10, 1])
    model = SkipGram(_info(counts), dim=4, negatives=5, ns_exponent=0.75, table_size=10**6)
    table = model.noise_table.numpy()
    draws = kernels.noise_words(table, 7, 2, 40_000, 5)
    freq = np.bincount(draws.ravel(), minlength=5) / draws.size
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    assert np.allclose(freq, expected, atol=3e-3), (freq, expected)
    # the two chunks draw different streams, and a seed repeats its draws
    assert not np.array_equal(draws[:20_000], draws[20_000:])
    assert np.array_equal(draws, kernels.noise_words(table, 7, 2, 40_000, 5))


def test_alias_table_draws_unigram_to_the_three_quarters_exactly():
    counts = np.array([1000, 300, 100, 10, 1, 7, 55, 2])
    model = CBOW(_info(counts), dim=4, negatives=5, ns_exponent=0.75)
    keep, other = model.noise_alias()
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    # the table itself: each word's total over the slots is its probability
    span = (1 << 48) // len(counts)
    q = np.minimum(keep / span, 1.0)
    total = q + np.bincount(other, weights=1.0 - q, minlength=len(counts))
    assert np.allclose(total / len(counts), expected, atol=1e-12)
    draws = kernels.alias_words(keep, other, 7, 2, 40_000, 5)
    freq = np.bincount(draws.ravel(), minlength=len(counts)) / draws.size
    assert np.allclose(freq, expected, atol=3e-3), (freq, expected)
    assert not np.array_equal(draws[:20_000], draws[20_000:])
    assert np.array_equal(draws, kernels.alias_words(keep, other, 7, 2, 40_000, 5))


def _cbow_reference(w_in, w_out, centre, context, mask, noise, lr, exact):
    """gensim's fast_sentence_cbow_neg in numpy, float64, on given noise words ``[B, k]``."""
    w_in, w_out, loss = w_in.copy(), w_out.copy(), 0.0
    for b in range(len(centre)):
        rows = context[b][mask[b]]
        if len(rows) == 0:
            continue
        h = w_in[rows].mean(0)
        work = np.zeros_like(h)
        for t, label in [(centre[b], 1.0)] + [(t, 0.0) for t in noise[b]]:
            s = w_out[t] @ h
            loss += np.logaddexp(0.0, -s if label else s)    # −log σ(±s)
            g = lr * (1.0 / (1.0 + np.exp(-s)) - label)
            work += g * w_out[t]
            w_out[t] -= g * h
        for r in rows:
            w_in[r] -= work / len(rows) if exact else work
    return loss, w_in, w_out


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("ids", [np.int64, np.int32])
def test_cbow_negative_kernel_equals_a_numpy_reference(exact, ids):
    rng = np.random.default_rng(3)
    w_in, w_out = rng.standard_normal((9, 6)) * 0.5, rng.standard_normal((9, 6)) * 0.5
    centre = rng.integers(0, 9, 40)
    context = rng.integers(0, 9, (40, 4)).astype(ids)
    mask = rng.random((40, 4)) < 0.6
    mask[5] = False                                          # a centre without context
    keep, other = kernels.alias_table(rng.random(9) + 0.1)
    noise = kernels.alias_words(keep, other, 11, 1, 40, 3)   # the kernel's own draws
    expected = _cbow_reference(w_in, w_out, centre, context, mask, noise, 0.2, exact)
    got_in, got_out = w_in.copy(), w_out.copy()
    loss, count = kernels.cbow_negative_part(got_in, got_out, centre, context, mask, keep, other, 3, 11, exact,
                                             0.2, 0, 1)
    assert count == (mask.sum(1) > 0).sum() == 39
    assert loss == pytest.approx(expected[0], rel=1e-12)
    assert np.allclose(got_in, expected[1], atol=1e-12) and np.allclose(got_out, expected[2], atol=1e-12)
    # through the public step, float32 tables: the same update to float32 rounding
    f_in, f_out = torch.tensor(w_in, dtype=torch.float32), torch.tensor(w_out, dtype=torch.float32)
    totals = kernels.sgd_step_words("cbow", f_in, f_out, torch.from_numpy(centre), torch.from_numpy(context),
                                    torch.from_numpy(mask), exact, 0.2, 11, negatives=3, alias=(keep, other))
    assert float(totals[0]) == pytest.approx(expected[0], rel=1e-4) and float(totals[1]) == 39
    assert np.allclose(f_in.numpy(), expected[1], atol=1e-5) and np.allclose(f_out.numpy(), expected[2], atol=1e-5)


def test_cbow_negative_kernel_threads_split_the_batch():
    """Two chunks on two threads, one half of the batch each; on halves that share no row (no
    noise words: those rows would be shared), the sequential result."""
    rng = np.random.default_rng(4)
    w_in, w_out = rng.standard_normal((20, 5)) * 0.5, rng.standard_normal((20, 5)) * 0.5
    centre, context = rng.integers(0, 10, 30), rng.integers(0, 10, (30, 4))
    centre[15:] += 10
    context[15:] += 10
    mask = rng.random((30, 4)) < 0.7
    keep, other = kernels.alias_table(np.ones(20))
    _, expected_in, expected_out = _cbow_reference(w_in, w_out, centre, context, mask, np.zeros((30, 0), int), 0.1,
                                                   False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got_in, got_out = torch.from_numpy(w_in.copy()), torch.from_numpy(w_out.copy())
        totals = kernels.sgd_step_words("cbow", got_in, got_out, torch.from_numpy(centre), torch.from_numpy(context),
                                        torch.from_numpy(mask), False, 0.1, 5, negatives=0, alias=(keep, other))
    finally:
        torch.set_num_threads(before)
    assert float(totals[1]) == (mask.sum(1) > 0).sum()
    assert np.allclose(got_in.numpy(), expected_in, atol=1e-12) and np.allclose(got_out.numpy(), expected_out,
                                                                                atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("extra, fused", [({}, True), ({"train": {"loss": "mean"}}, False),
                                          ({"train": {"grad_clip": 1.0}}, False),
                                          ({"optim": {"momentum": 0.9}}, False),
                                          ({"model": {"kernel": "torch"}}, False)],
                         ids=["defaults", "mean-loss", "grad-clip", "momentum", "torch-kernel"])
def test_trainer_lets_the_kernel_step_with_the_defaults_only(extra, fused, tmp_path, planted, monkeypatch):
    from zoo.core import api
    from zoo.core.contract.config import deep_merge

    calls = []
    step = kernels.sgd_step_words
    monkeypatch.setattr(kernels, "sgd_step_words", lambda *a, **k: calls.append(a[7]) or step(*a, **k))
    planted_corpus, planted_options = planted
    corpus = planted_corpus(tmp_path / "planted.txt", lines=20)
    options = deep_merge(planted_options(corpus, "cbow", export={"enabled": False}),
                         deep_merge({"train": {"epochs": 2}, "schedule": {"name": "linear"}}, extra))
    summary = api.train("cbow", options=options, out=str(tmp_path / "run"), log=None)
    assert summary["status"] == "finished"
    assert bool(calls) == fused
    if fused:      # at the lr the scheduler set for each step: decaying
        assert calls[0] == pytest.approx(0.005) and calls[-1] < calls[0]


def test_kernel_numba_without_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(models, "NUMBA", False)
    with pytest.raises(ZooError, match="needs numba"):
        CBOW(_info([3, 2]), dim=2, negatives=1, ns_exponent=0.75, kernel="numba")
    model = CBOW(_info([3, 2]), dim=2, negatives=1, ns_exponent=0.75)       # auto: the torch ops
    assert not model.attach_sgd(torch.optim.SGD(model.parameters(), lr=0.1), "sum")


@pytest.mark.parametrize("kind", ["cbow", "skipgram"])
@pytest.mark.parametrize("mean_out", [False, True])
def test_batched_gradient_is_the_same_with_two_threads(kind, mean_out):
    """Threads split the batch; a row touched by both comes back twice (summed when applied), and
    output_updates = mean, which needs a row's hits over the whole batch, stays in one chunk."""
    g = torch.Generator().manual_seed(4)
    w_in, w_out = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    context, weight, targets, labels = _batch()
    before = torch.get_num_threads()
    grads = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            loss, (ri, vi), (ro, vo) = kernels.fused_step(kind, w_in, w_out, context, weight, targets, labels, None,
                                                          False, mean_out, True)
        finally:
            torch.set_num_threads(before)
        grads.append((float(loss), torch.zeros_like(w_in).index_add_(0, ri, vi),
                      torch.zeros_like(w_out).index_add_(0, ro, vo)))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-12)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-12) and torch.allclose(grads[0][2], grads[1][2], atol=1e-12)


@pytest.mark.slow
def test_numba_leaves_torchs_thread_count_alone():
    """numba's OpenMP threads start with all cores and used to set the OpenMP thread count torch
    shares: OMP_NUM_THREADS=1 (or torch.set_num_threads(1)) became 2 threads, chunks included."""
    import os
    import subprocess
    import sys

    code = ("import torch, numba; from zoo.plugins.word2vec import kernels; numba.get_num_threads(); "
            "print(torch.get_num_threads(), kernels._chunks(100))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]


class _StopAfterFirstEpoch:
    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        import os
        import signal

        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_interrupted_kernel_run_resumes_to_the_same_weights(tmp_path, planted):
    """word2vec's own update draws its noise words from a seed taken from torch's generator,
    which the checkpoint restores: stop after epoch 1, resume, and the weights equal a straight
    run's (one thread: two update the tables in a nondeterministic order, as gensim's do)."""
    from zoo.core import api
    from zoo.core.contract.config import deep_merge
    from zoo.core.contract.errors import TrainingInterrupted
    from zoo.core.contract.plugins import get_zoo

    planted_corpus, planted_options = planted
    corpus = planted_corpus(tmp_path / "planted.txt", lines=20)
    options = deep_merge(planted_options(corpus, "cbow", export={"enabled": False}), {"train": {"epochs": 3}})
    api.train("cbow", options=options, out=str(tmp_path / "straight"), log=None)
    zoo, stopper = get_zoo(), _StopAfterFirstEpoch()
    zoo.pm.register(stopper, name="stop-after-first-epoch")
    try:
        with pytest.raises(TrainingInterrupted):
            api.train("cbow", options=options, out=str(tmp_path / "stopped"), log=None)
    finally:
        zoo.pm.unregister(stopper)
    api.train(resume=str(tmp_path / "stopped"), log=None)
    straight, resumed = (torch.load(tmp_path / name / "checkpoint-last.pt", weights_only=True)["model"]
                         for name in ("straight", "stopped"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
