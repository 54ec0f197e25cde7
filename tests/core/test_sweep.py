"""zoo sweep: the space file, the Optuna study (SQLite), pruning, failures, interrupts, workers."""

from __future__ import annotations

import json
import os

import pytest

optuna = pytest.importorskip("optuna")

from click.testing import CliRunner  # noqa: E402
from zoo.cli import main  # noqa: E402
from zoo.core.tune import space, sweep  # noqa: E402
from zoo.core.contract.errors import TrainingInterrupted, ZooError  # noqa: E402

GOOD_SPACE = {"optim": {"lr": {"log_uniform": [3e-3, 3e-2]}}, "model": {"hidden": {"choice": [[32], [64, 32]]}}}
# digits (scikit-learn's bundle, offline): 3 epochs of a small MLP take about a second
OPTIONS = {"data": {"name": "digits"}, "train": {"epochs": 3, "device": "cpu"}, "export": {"enabled": False}}


def settings(tmp_path, trials, space_table=GOOD_SPACE, **extra) -> sweep.SweepSettings:
    return sweep.SweepSettings(model="mlp", space=space_table, folder=str(tmp_path / "sweep"), trials=trials,
                               seed=0, options=OPTIONS, **extra)


def trials_of(s: sweep.SweepSettings):
    return optuna.load_study(study_name=s.study_name, storage=s.storage_url).get_trials()


@pytest.mark.parametrize("text, needles", [
    ("optim.lr = { log_uniform = [1e-4, 1e-1] }\nmodel.hiden = { choice = [[32]] }", ["model.hiden", "model.hidden"]),
    ("optim.lr = { loguniform = [1e-4, 1e-1] }", ["optim.lr", "unknown distribution 'loguniform'", "log_uniform"]),
    ("optim.lr = { uniform = [0.1, 0.01] }", ["optim.lr", "low must be below high"]),
    ("optim.lr = { log_uniform = [0.0, 0.1] }", ["optim.lr", "log scale needs low > 0"]),
    ("optim.lr = { uniform = [-0.1, 0.1] }", ["optim.lr = -0.1", "greater than 0"]),
    ("model.dropout = { choice = [0.1, 2.0] }", ["model.dropout = 2.0"]),
    ("train.epochs = { int = [1, 3], choice = [2] }", ["train.epochs", "exactly one distribution"]),
    ("optim.lr = 0.1", ["optim.lr = 0.1", "give a distribution"]),
    ("", ["no parameters"]),
])
def test_space_errors_exit_2_naming_the_key(tmp_path, text, needles):
    path = tmp_path / "space.toml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["sweep", "mlp", "--space", str(path), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: ") and "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert not (tmp_path / "s").exists()  # refused before a study or a run exists


def test_space_parse_and_suggest_values():
    parsed = space.parse({"a": {"int": [32, 256], "step": 32}, "b": {"choice": [[1], [2, 3]]},
                          "c": {"uniform": [0.0, 0.5], "step": 0.1}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        a, b, c = (parsed[k].suggest(trial, k) for k in "abc")
        assert a in range(32, 257, 32) and b in ([1], [2, 3]) and c in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
        study.tell(trial, 0.0)
    assert space.nest({"optim.lr": 1, "optim.eps": 2, "x": 3}) == {"optim": {"lr": 1, "eps": 2}, "x": 3}


@pytest.mark.slow
def test_sweep_runs_resumes_after_an_interrupt_and_shows(tmp_path, monkeypatch):
    s = settings(tmp_path, trials=3)
    real, calls = sweep.run_trial, []

    def interrupted_second(settings_, trial, info, log):
        calls.append(trial.number)
        if len(calls) == 2:  # Ctrl-C in the middle of the second trial
            for key, param in space.parse(settings_.space).items():
                param.suggest(trial, key)
            raise TrainingInterrupted("SIGINT: stopped")
        return real(settings_, trial, info, log)

    monkeypatch.setattr(sweep, "run_trial", interrupted_second)
    with pytest.raises(TrainingInterrupted, match="run the same command to continue"):
        sweep.sweep(s)
    states = [t.state.name for t in trials_of(s)]
    assert states == ["COMPLETE", "FAIL", "WAITING"]  # nothing left RUNNING; its values queued
    interrupted = trials_of(s)[1]
    assert interrupted.user_attrs["interrupted"] is True
    monkeypatch.setattr(sweep, "run_trial", real)
    result = sweep.sweep(s)                          # the same command again continues the study
    trials = trials_of(s)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == interrupted.params    # the interrupted values are tried first
    assert result["counts"] == {"complete": 3, "fail": 1} and result["monitor"] == "val_accuracy"
    best = result["best"]
    assert best["value"] == max(t.value for t in trials if t.value is not None)
    run_dir = tmp_path / "sweep" / f"mlp-{best['trial']:04d}"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    # every trial is an ordinary run: `zoo runs --root FOLDER` lists them
    listed = CliRunner().invoke(main, ["runs", "--root", str(tmp_path / "sweep"), "--json"])
    assert len(json.loads(listed.output)) == 3
    shown = CliRunner().invoke(main, ["sweep", "show", str(tmp_path / "sweep"), "--top", "2"])
    assert shown.exit_code == 0, shown.output
    assert "3 complete" in shown.output and f"best: {best['run']}" in shown.output
    assert (tmp_path / "sweep" / "sweep-history.png").stat().st_size > 1000


@pytest.mark.slow
def test_pruned_and_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    """Three good trials, then one that learns nothing (pruned after epoch 2, --prune-after 2, by the median rule)
    and one whose optimizer cannot be built (failed); the sweep finishes all five."""
    table = {"optim": {"lr": {"choice": [0.02, 1e-7]}, "nesterov": {"choice": [False, True]}}}
    s = settings(tmp_path, trials=5, space_table=table, pruner="median", prune_after=2)
    info = sweep.prepare(s)
    study = optuna.load_study(study_name=s.study_name, storage=s.storage_url)
    for lr, nesterov in [(0.02, False)] * 3 + [(1e-7, False), (0.02, True)]:
        study.enqueue_trial({"optim.lr": lr, "optim.nesterov": nesterov})
    sweep.work(s, info)
    trials = trials_of(s)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["PRUNED", "FAIL"]
    pruned, failed = trials[3], trials[4]
    summary = json.loads((tmp_path / "sweep" / "mlp-0003" / "summary.json").read_text())
    assert summary["status"] == "pruned" and "pruned at epoch 2" in summary["error"]
    lines = (tmp_path / "sweep" / "mlp-0003" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and pruned.user_attrs["epochs"] == 2   # a valid run directory, 2 of 3 epochs
    assert "optim.nesterov needs" in failed.user_attrs["error"]
    assert sweep.summary(s.storage_url)["epochs_trained"] == 3 * 3 + 2


def test_a_study_of_another_model_is_refused(tmp_path):
    s = settings(tmp_path, trials=1)
    sweep.prepare(s)
    other = sweep.SweepSettings(model="softmax", space={"optim": {"lr": {"log_uniform": [1e-3, 1e-1]}}},
                                folder=s.folder, trials=1, study="mlp", options=OPTIONS)
    with pytest.raises(ZooError, match="is a sweep of 'mlp'"):
        sweep.prepare(other)


@pytest.mark.slow
def test_two_worker_processes_share_one_study(tmp_path):
    s = settings(tmp_path, trials=4, pruner="none")
    result = sweep.sweep(s, workers=2)
    trials = trials_of(s)
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 4 and result["counts"]["complete"] >= 4
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and all(w.split(":")[-1] != str(os.getpid()) for w in workers)


@pytest.mark.slow
def test_ctrl_c_of_the_command_leaves_the_study_consistent(tmp_path):
    """A real SIGINT to `zoo sweep` during a trial: exit 130, no trial left RUNNING, the trial's
    run resumable, and the same command finishes the study."""
    import signal
    import subprocess
    import sys
    import time

    space_file = tmp_path / "space.toml"
    space_file.write_text('optim.lr = { log_uniform = [3e-3, 3e-2] }\n')
    command = [sys.executable, "-m", "zoo", "sweep", "mlp", "--space", str(space_file), "--trials", "2",
               "--out", str(tmp_path / "sweep"), "--dataset", "digits", "--pruner", "none", "--set", "train.device=cpu"]
    proc = subprocess.Popen([*command, "--epochs", "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sweep" / "mlp-0000" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command to continue" in err and "Traceback" not in err
    s = settings(tmp_path, trials=2)
    assert [t.state.name for t in trials_of(s)] == ["FAIL", "WAITING"]
    assert json.loads((tmp_path / "sweep" / "mlp-0000" / "summary.json").read_text())["status"] == "interrupted"
    done = subprocess.run([*command, "--epochs", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [t.state.name for t in trials_of(s)] == ["FAIL", "COMPLETE", "COMPLETE"]
