"""word2vec trained by 2 processes (DDP, gloo on the CPU) takes the steps of 1 process (issue 19, point 2).

Each rank iterates its shard of the epoch with the per-rank batch size; the number of batches
must be that of the global batches, or the linear lr decay, counted per step, reaches its floor
after 1/W of training. ``metrics.jsonl`` records each epoch's optimizer steps as ``steps``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EPOCHS, BATCH = 2, 256


def _train(corpus, out, *extra: str) -> tuple[dict, list[dict]]:
    """``zoo train skipgram`` on ``corpus`` as a user runs it: (summary, metrics.jsonl rows)."""
    args = ["train", "skipgram", "--dataset", "text-file", "--set", f'data.options.path="{corpus}"',
            "--set", "data.options.min_count=1", "--set", "data.options.window=3", "--set", "model.dim=8",
            "--set", "model.sparse=false",                        # DDP all-reduces dense gradients
            "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--device", "cpu", "--no-export",
            "-q", "--json", "--seed", "0", "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DIST_TIMEOUT": "60"}
    proc = subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return json.loads(proc.stdout), rows


@pytest.mark.slow
def test_two_processes_take_the_steps_and_lr_decay_of_one(tmp_path, planted):
    corpus = planted[0](tmp_path / "planted.txt")             # 3,600 tokens: 14 global batches of 256
    _, one = _train(corpus, tmp_path / "one")
    summary, two = _train(corpus, tmp_path / "two", "--nproc-per-node", "2")
    assert summary["world_size"] == 2 and summary["batch_size_per_rank"] == BATCH // 2
    steps = [row["steps"] for row in one]
    assert steps == [14] * EPOCHS                                 # ⌈(3,600 − 36 test positions) / 256⌉
    assert [row["steps"] for row in two] == steps
    # The linear decay halfway after epoch 1 and at its floor after the last, in both runs.
    assert [row["lr"] for row in two] == pytest.approx([row["lr"] for row in one])
    assert one[0]["lr"] > 100 * one[-1]["lr"]
