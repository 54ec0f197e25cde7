"""word2vec's update on persistent worker threads (gensim's design): one job per batch."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from zoo.plugins.word2vec.workers import UpdateWorkers

pytest.importorskip("numba")
from zoo.plugins.word2vec import kernels  # noqa: E402
from zoo.plugins.word2vec.models import CBOW, SkipGram  # noqa: E402


def test_workers_sum_every_jobs_loss_and_drain_waits_for_all():
    release = threading.Event()
    ran = []

    def job(i):
        release.wait(5)
        ran.append(i)
        return float(i), 1.0

    workers = UpdateWorkers(2, depth=8)
    try:
        for i in range(6):
            workers.submit(job, (i,))
        assert workers.collect() == (0.0, 0.0)          # nothing finished yet: no waiting
        release.set()
        loss, count = workers.drain()
        assert sorted(ran) == list(range(6))
        assert (loss, count) == (15.0, 6.0)
        assert workers.collect() == (0.0, 0.0)          # each total is returned once
    finally:
        workers.close()
    with pytest.raises(RuntimeError, match="closed"):
        workers.submit(job, (0,))


def test_a_failing_job_is_raised_on_the_producers_thread():
    def fail():
        raise ValueError("kernel failed")

    workers = UpdateWorkers(1)
    try:
        workers.submit(fail, ())
        with pytest.raises(ValueError, match="kernel failed"):
            workers.drain()
        workers.submit(lambda: (1.0, 2.0), ())              # the error is raised once
        assert workers.drain() == (1.0, 2.0)
    finally:
        workers.close()


@pytest.mark.parametrize("kind, alias", [("cbow", True), ("cbow", False), ("skipgram", False)])
def test_one_worker_runs_the_batches_as_one_thread_does(kind, alias):
    """Jobs carry their lr and seed: one worker applies exactly the updates of the synchronous
    one-chunk step, batch after batch, and the losses add up to the same total."""
    rng = np.random.default_rng(5)
    w_in, w_out = rng.standard_normal((12, 6)) * 0.5, rng.standard_normal((12, 6)) * 0.5
    keep, other = kernels.alias_table(rng.random(12) + 0.1)
    noise = torch.from_numpy(rng.integers(0, 12, 50).astype(np.int32))
    batches = [(torch.from_numpy(rng.integers(0, 12, 20)), torch.from_numpy(rng.integers(0, 12, (20, 4))),
                torch.from_numpy(rng.random((20, 4)) < 0.7), 0.1 / (i + 1), 100 + i) for i in range(5)]
    targets = dict(negatives=3, noise=noise, alias=(keep, other) if alias else None)
    sync_in, sync_out = torch.from_numpy(w_in.copy()), torch.from_numpy(w_out.copy())
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = sum(kernels.sgd_step_words(kind, sync_in, sync_out, c, x, m, False, lr, seed, **targets)
                       for c, x, m, lr, seed in batches)
    finally:
        torch.set_num_threads(before)
    got_in, got_out = torch.from_numpy(w_in.copy()), torch.from_numpy(w_out.copy())
    workers = UpdateWorkers(1)
    try:
        got = sum(kernels.sgd_step_words(kind, got_in, got_out, c, x, m, False, lr, seed, workers=workers, **targets)
                  for c, x, m, lr, seed in batches)
        got = got + torch.tensor(workers.drain(), dtype=torch.float64)
    finally:
        workers.close()
    assert float(got[0]) == pytest.approx(float(expected[0]), rel=1e-12) and float(got[1]) == float(expected[1])
    assert torch.equal(got_in, sync_in) and torch.equal(got_out, sync_out)


def _info(counts):
    from zoo.core.train.data import DataInfo

    return DataInfo(input_shape=(), extra={"vocab": [f"w{i}" for i in range(len(counts))],
                                            "counts": np.asarray(counts)})


@pytest.mark.parametrize("cls", [SkipGram, CBOW])
def test_attached_model_hands_batches_to_workers_at_two_threads(cls):
    model = cls(_info([5, 4, 3, 2, 2, 1, 1]), dim=5, negatives=2, ns_exponent=0.75)
    torch.nn.init.normal_(model.out_embed.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert model.attach_sgd(optimizer, "sum") and model.updates_itself
        assert model._workers is not None and model._workers.workers == 2
        assert torch.get_num_threads() == 1                 # the producer's own torch ops: one thread
        snapshot = model.in_embed.weight.detach().clone()
        g = torch.Generator().manual_seed(0)
        model.train()
        returned = 0.0
        for _ in range(8):
            centre, context = torch.randint(7, (16,), generator=g), torch.randint(7, (16, 4), generator=g)
            loss, _ = model(centre, context, torch.ones(16, 4, dtype=torch.bool))
            assert not loss.requires_grad
            returned += float(loss)
        rest = model.finish_updates()
        assert float(rest) + returned > 0                   # every batch's loss comes back once
        assert float(model.finish_updates()) == 0.0
        assert not torch.equal(model.in_embed.weight, snapshot)
        model.attach_sgd(None)
        assert model._workers is None and torch.get_num_threads() == 2
    finally:
        model.attach_sgd(None)
        torch.set_num_threads(before)


@pytest.mark.slow
def test_trainer_at_two_threads_records_every_batchs_loss(tmp_path, planted, monkeypatch):
    """Two workers take the batches while the trainer builds the next: the epoch's training loss
    (drained at its end) and step count match a one-thread run's, the tables learn as much,
    and torch's thread count is given back."""
    from zoo.core import api
    from zoo.core.contract.config import deep_merge

    planted_corpus, planted_options = planted
    corpus = planted_corpus(tmp_path / "planted.txt", lines=60)
    options = deep_merge(planted_options(corpus, "cbow", export={"enabled": False}), {"train": {"epochs": 2}})
    jobs = []
    submit = UpdateWorkers.submit
    monkeypatch.setattr(UpdateWorkers, "submit", lambda self, *a: jobs.append(self.workers) or submit(self, *a))
    before = torch.get_num_threads()
    records = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            summary = api.train("cbow", options=options, out=str(tmp_path / f"t{threads}"), log=None)
            assert summary["status"] == "finished" and torch.get_num_threads() == threads
            records[threads] = [json.loads(line) for line in (tmp_path / f"t{threads}" / "metrics.jsonl")
                                .read_text().splitlines()]
            records[threads].append(summary["metrics"]["loss"])
    finally:
        torch.set_num_threads(before)
    one, two = records[1], records[2]
    assert [r["steps"] for r in one[:-1]] == [r["steps"] for r in two[:-1]]
    assert jobs == [2] * sum(r["steps"] for r in two[:-1])  # every batch of the 2-thread run, none of the other
    for a, b in zip(one[:-1], two[:-1]):   # Hogwild: the order of updates differs, not their sum
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05)
    assert two[-1] == pytest.approx(one[-1], rel=0.05)      # test loss after training


@pytest.mark.parametrize("dynamic", [True, False])
def test_numba_windows_equal_the_torch_ops(dynamic, monkeypatch):
    """The trainer's thread gathers a group's windows in one compiled pass; the same centres,
    contexts and masks as the split's torch ops."""
    from zoo.plugins.word2vec import corpus

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 30, (400,), generator=g, dtype=torch.int32)
    docs = torch.repeat_interleave(torch.arange(8, dtype=torch.int32), 50)
    keep = torch.rand(30, generator=g) * 0.5 + 0.5
    split = corpus.WindowSplit(ids, docs, torch.arange(400), keep, 4, dynamic_window=dynamic)
    order = torch.randperm(400, generator=g)
    fast = list(split.batches(32, order))
    monkeypatch.setattr(corpus, "_NUMBA", False)
    slow = list(split.batches(32, order))
    assert len(fast) == len(slow) == 13
    for a, b in zip(fast, slow):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    assert any(not bool(b["mask"].all()) for b in fast)    # padding and reach left slots empty
