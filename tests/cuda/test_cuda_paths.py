"""Every CUDA path of the trainer and the runtime, on a real GPU.

These run only in a session that selects them (`pytest -m cuda tests/cuda`, as
scripts/gpu-check.sh does); elsewhere they skip with the reason (tests/conftest.py).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import run_cli

pytestmark = pytest.mark.cuda

DIGITS = ["mlp", "--dataset", "digits", "--epochs", "2", "--device", "cuda", "-q", "--json"]


def _train(tmp_path, name: str, *args: str) -> dict:
    result = run_cli("train", *args, "--out", str(tmp_path / name))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint-last.pt", weights_only=True, map_location="cpu")["model"]


def test_training_runs_on_the_gpu_and_the_export_passes_parity(tmp_path):
    summary = _train(tmp_path, "r", *DIGITS)
    assert summary["device"].startswith("cuda") and summary["status"] == "finished"
    assert summary["parity"] is not None and summary["parity"] < 1e-3
    assert summary.get("parity_provider") in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert summary["metrics"]["accuracy"] > 0.8


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_with_clipping_records_finite_gradient_norms(tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    _train(tmp_path, precision, *DIGITS, "--precision", precision, "--set", "train.grad_clip=1.0")
    records = [json.loads(line) for line in (tmp_path / precision / "metrics.jsonl").read_text().splitlines()]
    assert all(r["grad_norm"] is not None and math.isfinite(r["grad_norm"]) for r in records)


def test_cuda_graphs_on_fixed_shapes(tmp_path):
    summary = _train(tmp_path, "graphs", *DIGITS, "--compile-mode", "reduce-overhead")
    assert summary["metrics"]["accuracy"] > 0.5


def test_deterministic_resume_on_the_gpu_is_exact(tmp_path):
    args = [*DIGITS, "--set", "train.deterministic=true", "--no-export"]
    _train(tmp_path, "straight", *[a if a != "2" else "3" for a in args])
    _train(tmp_path, "resumed", *args)
    result = run_cli("train", "--resume", str(tmp_path / "resumed"), "--epochs", "3", "-q")
    assert result.returncode == 0, result.stderr
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_data_parallel_with_nccl(tmp_path):
    n = min(torch.cuda.device_count(), 2)
    result = run_cli("train", "mlp", "--dataset", "digits", "--epochs", "1", "--device", "cuda", "-q",
                     "--json", "--nproc-per-node", str(n), "--batch-size", "64", "--out", str(tmp_path / "ddp"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == n and len(set(summary["rank_weights_sha256"])) == 1


def test_resume_with_fewer_visible_gpus_than_saved(tmp_path):
    """A checkpoint written with every GPU visible resumes where only one is."""
    _train(tmp_path, "r", *DIGITS, "--no-export")
    result = run_cli("train", "--resume", str(tmp_path / "r"), "--epochs", "3", "-q",
                     env={"CUDA_VISIBLE_DEVICES": "0"})
    assert result.returncode == 0, result.stderr
