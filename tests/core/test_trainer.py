"""The generic trainer: exact resume after an interruption, non-finite losses, schedules, stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from zoo import hookimpl
from zoo.core import api
from zoo.core.contract.config import OptimConfig, ScheduleConfig
from zoo.core.contract.errors import NonFiniteLoss, TrainingInterrupted, ZooError
from zoo.core.contract.plugins import get_zoo
from zoo.core.contract.protocols import SelfUpdating
from zoo.core.train.trainer import build_optimizer, lr_factor

QUIET = {"train": {"progress": False, "device": "cpu"}}


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint-last.pt", weights_only=True)["model"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


ARGS = ["train", "mlp", "--dataset", "digits", "--epochs", "4", "--batch-size", "1", "--no-export", "-q",
        "--set", "model.hidden=[32]", "--set", "model.dropout=0.3", "--set", "schedule.name=\"cosine\""]


@pytest.mark.slow
def test_sigint_then_resume_gives_identical_weights(tmp_path):
    """4 epochs straight == 2 epochs + SIGINT + --resume (mid-epoch interruption, dropout on)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    straight = subprocess.run([sys.executable, "-m", "zoo", *ARGS, "--out", str(tmp_path / "a")],
                              env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr

    run_b = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "zoo", *ARGS, "--out", str(run_b)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_b / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "zoo train --resume" in stderr
    summary = json.loads((run_b / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    state = torch.load(run_b / "checkpoint-last.pt", weights_only=True)["state"]
    assert (state["epoch"], state["step"]) < (4, 0)

    resumed = subprocess.run([sys.executable, "-m", "zoo", "train", "--resume", str(run_b), "-q"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert _same(_weights(tmp_path / "a"), _weights(run_b))
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2, 3, 4]


class _InterruptAfter:
    """A plugin that sends the process SIGINT at the end of epoch ``n`` (what Ctrl-C does)."""

    def __init__(self, n: int) -> None:
        self.n = n

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        if epoch == self.n:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_interrupt_at_epoch_boundary_and_resume_in_process(tmp_path):
    options = {**QUIET, "train": {**QUIET["train"], "epochs": 4}, "export": {"enabled": False}}
    api.train("logistic", options=options, out=str(tmp_path / "a"), log=None)
    plugin = _InterruptAfter(2)
    zoo = get_zoo()
    zoo.pm.register(plugin, name="interrupter")
    try:
        with pytest.raises(TrainingInterrupted, match="stopped after epoch 2"):
            api.train("logistic", options=options, out=str(tmp_path / "b"), log=None)
    finally:
        zoo.pm.unregister(plugin)
    summary = api.train(resume=str(tmp_path / "b"), log=None)
    assert summary["epochs"] == 4
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))


@pytest.mark.slow
def test_resume_of_a_finished_run_asks_for_more_epochs(tmp_path):
    options = {**QUIET, "export": {"enabled": False}}
    api.train("linear", options=options, out=str(tmp_path / "r"), log=None)
    with pytest.raises(ZooError, match="already completed 3 epochs; pass --epochs"):
        api.train(resume=str(tmp_path / "r"), log=None)
    summary = api.train(resume=str(tmp_path / "r"), options={"train": {"epochs": 5}}, log=None)
    assert summary["epochs"] == 5


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_error_and_a_loadable_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLoss, match="non-finite training loss at epoch 1.*lower learning rate"):
        api.train("linear", options={**QUIET, "optim": {"lr": 1e3}}, out=str(tmp_path / "r"), log=None)
    checkpoint = torch.load(tmp_path / "r" / "checkpoint-last.pt", weights_only=True)
    assert checkpoint["state"]["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())
    entry, spec, cfg = api.resolve_config("linear")
    dataset, _ = api.load_data(cfg, entry)
    api.build_model(spec, cfg, dataset.info).load_state_dict(checkpoint["model"])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed"


@pytest.mark.slow
def test_early_stopping(tmp_path):
    options = {"train": {"epochs": 50, "early_stopping": 2, "monitor": "loss", "progress": False},
               "optim": {"lr": 0.5}, "export": {"enabled": False}}
    summary = api.train("logistic", options=options, out=str(tmp_path / "r"), log=None)
    assert summary["stopped_early"] and summary["epochs"] < 50
    assert summary["epochs"] - summary["best_epoch"] == 2


@pytest.mark.slow
def test_unknown_monitor_metric_fails_before_training(tmp_path):
    with pytest.raises(ZooError, match="train.monitor 'f1' is not a metric.*accuracy"):
        api.train("logistic", options={**QUIET, "train": {"monitor": "f1"}}, out=str(tmp_path / "r"), log=None)
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_loss_choice_is_checked(tmp_path):
    with pytest.raises(ZooError, match="train.loss 'huber' is not a loss of task 'regression'"):
        api.train("linear", options={**QUIET, "train": {"loss": "huber"}}, out=str(tmp_path / "r"), log=None)
    summary = api.train("linear", options={**QUIET, "train": {"loss": "mae"}, "export": {"enabled": False}},
                        out=str(tmp_path / "mae"), log=None)
    assert summary["metrics"]["mae"] < 0.05


def test_schedules():
    steps = 10
    warm = lr_factor(ScheduleConfig(name="cosine", warmup_epochs=1, min_lr=0.01), 0.1, steps, 5)
    assert warm(0) == pytest.approx(0.1) and warm(9) == pytest.approx(1.0)
    assert warm(10) == pytest.approx(1.0) and warm(49) == pytest.approx(0.1, abs=0.01)
    step = lr_factor(ScheduleConfig(name="step", step_size=2, gamma=0.5), 0.1, steps, 6)
    assert [step(e * steps) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert lr_factor(ScheduleConfig(), 0.1, steps, 3)(17) == 1.0


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_optimizers(name):
    params = [torch.nn.Parameter(torch.ones(2))]
    optimizer = build_optimizer(OptimConfig(name=name, lr=0.1, weight_decay=0.01), params)
    params[0].sum().backward()
    optimizer.step()
    assert (params[0] < 1).all()


def test_nesterov_needs_momentum():
    with pytest.raises(ZooError, match="nesterov"):
        build_optimizer(OptimConfig(name="sgd", nesterov=True), [torch.nn.Parameter(torch.ones(1))])
    build_optimizer(OptimConfig(name="sgd", nesterov=True, momentum=0.9), [torch.nn.Parameter(torch.ones(1))])


@pytest.mark.slow
def test_gradient_clipping_and_warmup_run(tmp_path):
    options = {**QUIET, "train": {"grad_clip": 0.5, "epochs": 2, "progress": False},
               "schedule": {"name": "step", "warmup_epochs": 0.5, "step_size": 1, "gamma": 0.5},
               "export": {"enabled": False}}
    api.train("logistic", options=options, out=str(tmp_path / "r"), log=None)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([0.01 * 0.5, 0.01 * 0.25])


@pytest.mark.slow
def test_unavailable_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ZooError, match="CUDA is not available"):
        api.train("linear", options={"train": {"device": "cuda"}}, out=str(tmp_path / "r"), log=None)


def test_clip_grad_norm_takes_sparse_gradients():
    """Sparse embedding gradients (word2vec's tables) clip like their dense form, repeated rows
    summed first; torch's own clip_grad_norm_ raises on them."""
    from zoo.core.train.trainer import clip_grad_norm

    torch.manual_seed(0)
    sparse = torch.nn.Embedding(6, 3, sparse=True)
    dense = torch.nn.Linear(3, 2)
    ids = torch.tensor([0, 2, 2, 5])                      # row 2 twice: an uncoalesced gradient
    (sparse(ids).sum() * 3.0 + dense(torch.ones(1, 3)).sum()).backward()
    expected_grads = [sparse.weight.grad.to_dense().clone(), dense.weight.grad.clone(), dense.bias.grad.clone()]
    expected = torch.cat([g.flatten() for g in expected_grads]).norm()
    norm = clip_grad_norm([sparse.weight, dense.weight, dense.bias], 1.0)
    assert torch.allclose(norm, expected)
    for got, before in zip([sparse.weight.grad.to_dense(), dense.weight.grad, dense.bias.grad], expected_grads):
        assert torch.allclose(got, before / expected, atol=1e-6)


class _HalvesItself(torch.nn.Module, SelfUpdating):
    """A SelfUpdating model: once the trainer attached the optimizer, its training forward halves
    its weights and returns outputs with no graph, as word2vec's attached kernel does."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.initial: dict[str, torch.Tensor] = {}
        self.updates = 0
        self.attached: list[tuple[str, float, int]] = []

    @property
    def updates_itself(self) -> bool:
        return bool(self.attached) and self.attached[-1][0] == "attached"

    def attach_optimizer(self, optimizer, train, world_size):
        self.initial = {k: p.detach().clone() for k, p in self.named_parameters()}
        self.attached.append(("attached", optimizer.param_groups[0]["lr"], world_size))

    def detach_optimizer(self):
        self.attached.append(("detached", 0.0, 0))

    def forward(self, x):
        if self.updates_itself and self.training and torch.is_grad_enabled():
            self.updates += 1
            with torch.no_grad():
                for p in self.parameters():
                    p.mul_(0.5)
                return self.inner(x)
        return self.inner(x)


@pytest.mark.slow
def test_a_model_that_updates_itself_gets_no_backward_or_optimizer_update(tmp_path, monkeypatch):
    built: list[_HalvesItself] = []
    original = api.build_model

    def build(spec, run_config, info):
        built.append(_HalvesItself(original(spec, run_config, info)))
        return built[-1]

    monkeypatch.setattr(api, "build_model", build)
    options = {"train": {"progress": False, "device": "cpu", "epochs": 2, "batch_size": 128},
               "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, "schedule": {"name": "linear"},
               "data": {"val_fraction": 0.0}, "export": {"enabled": False}}
    summary = api.train("logistic", options=options, out=str(tmp_path / "r"), log=None)
    (model,) = built
    assert summary["status"] == "finished" and model.updates > 2
    # attached once with the optimizer (at its peak lr before the first step), detached at the end
    assert [(event, world) for event, _, world in model.attached] == [("attached", 1), ("detached", 0)]
    last = torch.load(tmp_path / "r" / "checkpoint-last.pt", weights_only=True)
    # only the model's own halving moved the weights: the optimizer (momentum, weight decay)
    # found no gradient; the schedule still stepped
    assert not last["optimizer"]["state"]
    for name, before in model.initial.items():
        assert torch.allclose(last["model"][name], before * 0.5 ** model.updates)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[1] < lrs[0] < 0.1


class _FinishesLater(_HalvesItself):
    """As _HalvesItself, and its updates' loss of ``pending`` per epoch arrives only at
    ``finish_updates`` (as word2vec's worker threads hand theirs in)."""

    def __init__(self, inner: torch.nn.Module, pending: float | None) -> None:
        super().__init__(inner)
        self.pending = pending
        self.finished: list[tuple[int, bool]] = []

    def finish_updates(self):
        self.finished.append((self.updates, self.updates_itself))
        return None if self.pending is None else torch.tensor(self.pending, dtype=torch.float64)


@pytest.mark.slow
def test_finish_updates_ends_every_epoch_and_its_loss_joins_the_epochs(tmp_path, monkeypatch):
    options = {"train": {"progress": False, "device": "cpu", "epochs": 2, "batch_size": 128},
               "data": {"val_fraction": 0.0}, "export": {"enabled": False}}
    runs, original = {}, api.build_model
    for pending in (None, 1000.0):
        built: list[_FinishesLater] = []

        def build(spec, run_config, info):
            built.append(_FinishesLater(original(spec, run_config, info), pending))
            return built[-1]

        monkeypatch.setattr(api, "build_model", build)
        summary = api.train("logistic", options=options, out=str(tmp_path / str(pending)), log=None)
        assert summary["status"] == "finished"
        (model,) = built
        runs[pending] = [json.loads(line) for line in (tmp_path / str(pending) / "metrics.jsonl")
                         .read_text().splitlines()]
        # once per epoch, after all of the epoch's steps, while still attached
        steps = runs[pending][0]["steps"]
        assert model.updates == 2 * steps and model.finished == [(steps, True), (2 * steps, True)]
    for plain, later in zip(runs[None], runs[1000.0]):
        assert later["train_loss"] == pytest.approx(plain["train_loss"] + 1000.0 / plain["steps"], rel=1e-5)
