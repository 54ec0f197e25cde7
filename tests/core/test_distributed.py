"""Data-parallel training through torchrun + DDP (gloo on the CPU), and its pure helpers.

The CLI tests start `python -m zoo train ... --nproc-per-node 2`, which re-runs itself through
`torch.distributed.run --standalone` (a free local port), exactly as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn
from zoo.core.train import distributed
from zoo.core.train.distributed import DistContext
from zoo.core.contract.errors import ZooError

# A deterministic tiny run: no dropout, plain SGD, constant lr; 120 digits → 108 train / 12 val,
# 9 global batches of 12 (6 per rank with 2 processes), so every rank's slice has the same size
# and the mean of the ranks' gradients is the gradient of the global batch.
BASE = ["train", "mlp", "--dataset", "digits", "--batch-size", "12", "--device", "cpu", "--no-export",
        "-q", "--json", "--seed", "3", "--set", "data.limit=120", "--set", "model.hidden=[16]",
        "--set", "model.dropout=0.0", "--set", "optim.name=\"sgd\"", "--set", "optim.lr=0.1",
        "--set", "optim.weight_decay=0.0", "--set", "schedule.name=\"constant\"",
        "--set", "schedule.warmup_epochs=0.0"]


def _zoo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DIST_TIMEOUT": "60"}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _summary(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint-last.pt", weights_only=True)["model"]


def _close(a: dict, b: dict, tol: float = 1e-4) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=tol, rtol=tol) for k in a)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def two(root):
    """2 epochs in 2 processes."""
    return _summary(_zoo(*BASE, "--epochs", "2", "--out", str(root / "two"), "--nproc-per-node", "2"))


@pytest.fixture(scope="module")
def one(root):
    """The same 2 epochs in 1 process (same global batch and seed)."""
    return _summary(_zoo(*BASE, "--epochs", "2", "--out", str(root / "one")))


@pytest.fixture(scope="module")
def two_then_one(root, two):
    """The 2-process run continued for a third epoch by 1 process (in a copy)."""
    shutil.copytree(root / "two", root / "two-one")
    return _summary(_zoo("train", "--resume", str(root / "two-one"), "--epochs", "3", "-q", "--json"))


@pytest.mark.slow
def test_two_processes_keep_identical_weights_and_match_one_process(root, two, one):
    assert two["world_size"] == 2 and two["batch_size_per_rank"] == 6
    # Each rank hashed its own final weights: DDP kept the replicas bit-identical...
    digests = two["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    # ...and rank 0's digest is that of the checkpoint it wrote (no DDP/compile prefix in it).
    saved = _weights(root / "two")
    assert all(not k.startswith(("module.", "_orig_mod.")) for k in saved)
    assert distributed.weights_digest(saved) == digests[0]
    # Same global batches, same seed → the same training as one process, up to float rounding.
    assert _close(saved, _weights(root / "one"))
    history_two = _history(root / "two")
    history_one = _history(root / "one")
    assert len(history_two) == 2  # only rank 0 wrote: one line per epoch, not one per rank
    for a, b in zip(history_two, history_one, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["val_accuracy"] == b["val_accuracy"]
    assert two["metrics"]["accuracy"] == pytest.approx(one["metrics"]["accuracy"])
    assert two["metrics"]["loss"] == pytest.approx(one["metrics"]["loss"], rel=1e-4)


@pytest.mark.slow
def test_resume_a_two_process_run_with_one(root, two_then_one):
    assert two_then_one["epochs"] == 3 and "world_size" not in two_then_one
    assert [r["epoch"] for r in _history(root / "two-one")] == [1, 2, 3]


@pytest.mark.slow
def test_resume_a_one_process_run_with_two(root, one, two_then_one):
    """1 process then 2 ends where 2 processes then 1 does: the checkpoint ignores the world size."""
    shutil.copytree(root / "one", root / "one-two")
    one_then_two = _summary(_zoo("train", "--resume", str(root / "one-two"), "--epochs", "3", "-q",
                                 "--json", "--nproc-per-node", "2"))
    assert one_then_two["epochs"] == 3 and one_then_two["world_size"] == 2
    assert [r["epoch"] for r in _history(root / "one-two")] == [1, 2, 3]
    assert _close(_weights(root / "one-two"), _weights(root / "two-one"))
    assert _history(root / "one-two")[2]["train_loss"] == pytest.approx(
        _history(root / "two-one")[2]["train_loss"], rel=1e-4)


@pytest.mark.slow
def test_torchrun_module_launch_is_the_same_as_nproc_per_node(root, two):
    """`torchrun -m zoo train ...` (the ranks find WORLD_SIZE/RANK/LOCAL_RANK) == --nproc-per-node."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DIST_TIMEOUT": "60"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "zoo", *BASE, "--epochs", "2", "--out", str(root / "torchrun")],
                          capture_output=True, text=True, env=env, timeout=120)
    summary = _summary(proc)
    assert summary["world_size"] == 2
    assert _close(_weights(root / "torchrun"), _weights(root / "two"), tol=1e-6)


@pytest.mark.slow
def test_a_bad_config_ends_every_rank_with_a_clear_message():
    proc = _zoo(*BASE, "--epochs", "1", "--batch-size", "15", "--nproc-per-node", "2", timeout=90)
    assert proc.returncode != 0
    assert "must divide evenly over 2 processes" in proc.stderr
    assert "distributed training failed" in proc.stderr


@pytest.mark.slow
def test_launcher_options_need_nproc_per_node(cli):
    result = cli("train", "mlp", "--nnodes", "2")
    assert result.returncode == 2 and "need --nproc-per-node" in result.stderr


# -- pure helpers (no processes) --------------------------------------------------------------


@pytest.mark.parametrize("n", [96, 100, 101, 7])
def test_shards_put_together_are_the_global_batches(n):
    batch, world = 12, 3
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    shards = [distributed.shard_order(order, batch, DistContext(world, r, r)) for r in range(world)]
    steps = distributed.steps_per_epoch(n, batch, world)
    per_rank = batch // world
    assert {s.shape[0] for s in shards} == {shards[0].shape[0]}  # equal: DDP needs equal step counts
    for k in range(steps):
        parts = [s[k * per_rank:(k + 1) * per_rank] for s in shards]
        together = torch.cat(parts)
        if (k + 1) * batch <= n:
            assert torch.equal(together, order[k * batch:(k + 1) * batch])
        else:  # the partial last batch, minus what does not divide over the ranks
            tail = n - k * batch
            assert together.shape[0] == tail // world * world
            assert set(together.tolist()) <= set(order[k * batch:].tolist())
    assert distributed.steps_per_epoch(n, batch, 1) == -(-n // batch)


def test_per_rank_batch_size():
    assert distributed.check_batch_size(DistContext(4, 0, 0), 64) == 16
    with pytest.raises(ZooError, match="global batch"):
        distributed.check_batch_size(DistContext(4, 0, 0), 30)


def test_full_graph_and_sparse_embeddings_are_refused_with_a_reason():
    ctx = DistContext(2, 0, 0)
    with pytest.raises(ZooError, match="Full-graph training"):
        distributed.check_trainable(ctx, nn.Linear(2, 2), n_train=1)
    with pytest.raises(ZooError, match="model.sparse=false"):
        distributed.check_trainable(ctx, nn.Embedding(5, 2, sparse=True), n_train=100)
    distributed.check_trainable(ctx, nn.Embedding(5, 2), n_train=100)
    distributed.check_trainable(DistContext(), nn.Linear(2, 2), n_train=1)  # one process: anything


@pytest.mark.slow
def test_environment_is_read_like_torchrun_writes_it(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = distributed.context_from_env()
    assert (ctx.world_size, ctx.rank, ctx.local_rank, ctx.enabled, ctx.is_main) == (4, 3, 1, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ZooError, match="malformed"):
        distributed.context_from_env()
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    assert not distributed.context_from_env().enabled
