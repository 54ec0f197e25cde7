"""Fault injection: SIGKILL at random moments of real `zoo train` processes, and a full disk.

Each killed run is resumed (and maybe killed again) until it finishes; it must end with the
weights, metrics and summary of a run that was never interrupted, bitwise.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow

ARGS = ["train", "mlp", "--dataset", "digits", "--epochs", "3", "--batch-size", "8", "--no-export", "-q",
        "--set", "model.hidden=[32]", "--set", "model.dropout=0.2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _zoo(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint-last.pt", weights_only=True)["model"]


def _kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL ``proc`` after ``seconds`` unless it ended first; True if it was killed."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def test_sigkill_at_random_points_then_resume_gives_identical_weights(tmp_path):
    reference = tmp_path / "reference"
    proc = _zoo(*ARGS, "--out", str(reference))
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    duration = time.monotonic() - started
    expected = _weights(reference)
    rng = random.Random(0)
    kills = 0
    for trial in range(4):
        run = tmp_path / f"killed-{trial}"
        upper = duration
        for _ in range(6):  # a run that finished before its kill point (faster than the reference, whose
            shutil.rmtree(run, ignore_errors=True)  # time bounds the draw) is run again, killed sooner
            if _kill_after(_zoo(*ARGS, "--out", str(run)), rng.uniform(0.3, upper)):
                kills += 1
                break
            upper = max(0.6, upper / 2)
        for _ in range(10):  # resume, sometimes killed again, until it finishes
            summary = run / "summary.json"
            if summary.exists() and json.loads(summary.read_text()).get("status") == "finished":
                break  # killed after it had finished: nothing left to resume
            args = ("train", "--resume", str(run), "-q") if (run / "config.toml").exists() else (*ARGS, "--out", str(run))
            proc = _zoo(*args)
            if rng.random() < 0.4 and _kill_after(proc, rng.uniform(0.3, duration)):
                kills += 1
                continue
            _, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            break
        got = _weights(run)
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got), trial
        epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2, 3], trial
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"
        assert not (run / ".lock").exists() and not list(run.glob(".*.tmp"))
    assert kills >= 4  # every trial was really cut short at least once


def _small_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of ``size`` at ``path`` (root with mount rights only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True)
    return result.returncode == 0


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_intact(tmp_path, cli):
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk, "700k"):
        pytest.skip("needs root and the right to mount a tmpfs (a small disk to fill)")
    try:
        # An MLP whose checkpoints (~0.5 MB each, with Adam's moments) fill 700 KB after a few.
        result = cli("train", "mlp", "--dataset", "digits", "--epochs", "5", "--no-export", "-q",
                     "--set", "model.hidden=[256]", "--out", str(disk / "run"))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "No space left on device" in lines[0] and "could not write" in lines[0]
        run = disk / "run"
        if (run / "checkpoint-last.pt").exists():
            from zoo.core.train import checkpoint

            checkpoint.load(run / "checkpoint-last.pt")  # intact: loads and matches its digest
        assert not list(run.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


@pytest.mark.parametrize("where", ["loss", "metric_sums"])
def test_a_plugin_that_calls_sys_exit_mid_run_is_a_failed_run_and_one_line(tmp_path, monkeypatch, where):
    """sys.exit inside a task's loss or metrics must not end zoo silently (exit 0, no message)."""
    from zoo.core import api
    from zoo.core.contract.errors import ZooError
    from zoo.core.train.tasks import Classification

    def exits(*args, **kwargs):
        raise SystemExit(0)

    monkeypatch.setattr(Classification, where, exits)
    options = {"train": {"epochs": 1, "progress": False}, "export": {"enabled": False}}
    with pytest.raises(ZooError, match=r"plugin's code exited \(SystemExit 0\)"):
        api.train("logistic", options=options, out=str(tmp_path / "r"), log=None)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed"
