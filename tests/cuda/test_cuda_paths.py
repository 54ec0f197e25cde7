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
    # A constant lr: the default cosine schedule of a 2-epoch run is not the first 2 epochs of a 3-epoch one.
    args = [*DIGITS, "--set", "train.deterministic=true", "--set", "schedule.name=constant",
            "--set", "schedule.warmup_epochs=0", "--no-export"]
    _train(tmp_path, "straight", *[a if a != "2" else "3" for a in args])
    _train(tmp_path, "resumed", *args)
    result = run_cli("train", "--resume", str(tmp_path / "resumed"), "--epochs", "3", "-q")
    assert result.returncode == 0, result.stderr
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL wants one GPU per process: needs 2 GPUs")
def test_data_parallel_with_nccl(tmp_path):
    n = 2
    result = run_cli("train", "mlp", "--dataset", "digits", "--epochs", "1", "--device", "cuda", "-q",
                     "--json", "--nproc-per-node", str(n), "--batch-size", "64", "--out", str(tmp_path / "ddp"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == n and len(set(summary["rank_weights_sha256"])) == 1


def test_more_processes_than_gpus_is_one_clear_error(tmp_path):
    n = torch.cuda.device_count() + 1
    result = run_cli("train", "mlp", "--dataset", "digits", "--epochs", "1", "--device", "cuda", "-q",
                     "--nproc-per-node", str(n), "--out", str(tmp_path / "ddp"))
    assert result.returncode != 0
    assert "has no GPU" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_resume_with_fewer_visible_gpus_than_saved(tmp_path):
    """A checkpoint written with every GPU visible resumes where only one is."""
    _train(tmp_path, "r", *DIGITS, "--no-export")
    result = run_cli("train", "--resume", str(tmp_path / "r"), "--epochs", "3", "-q",
                     env={"CUDA_VISIBLE_DEVICES": "0"})
    assert result.returncode == 0, result.stderr


def _onnxruntime_has_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


needs_ort_cuda = pytest.mark.skipif(not _onnxruntime_has_cuda(), reason="onnxruntime has no CUDA provider "
                                    "here (pip install the onnxruntime-gpu built for torch's CUDA major)")


@needs_ort_cuda
def test_parity_is_checked_on_onnxruntime_cuda(tmp_path):
    """The export's parity check runs on the CUDA provider (TF32 off) and passes."""
    summary = _train(tmp_path, "r", *DIGITS)
    assert summary["parity_provider"] == "CUDAExecutionProvider"
    assert summary["parity"] < 1e-3


def _example_input(run_dir, path) -> None:
    import numpy as np
    import onnxruntime

    (first,) = onnxruntime.InferenceSession(str(run_dir / "model.onnx"),
                                            providers=["CPUExecutionProvider"]).get_inputs()
    shape = [d if isinstance(d, int) else 4 for d in first.shape]
    np.save(path, np.random.default_rng(0).random(shape, dtype=np.float32) * 16)


@needs_ort_cuda
def test_predict_and_serve_run_on_onnxruntime_cuda(tmp_path):
    """`zoo predict` reports the CUDA provider it ran on; `zoo serve` loads the model on it."""
    import socket
    import subprocess
    import sys
    import time

    _train(tmp_path, "r", *DIGITS)
    _example_input(tmp_path / "r", tmp_path / "x.npy")
    result = run_cli("predict", str(tmp_path / "r"), "--input", str(tmp_path / "x.npy"), "--json")
    assert result.returncode == 0, result.stderr
    assert "CUDAExecutionProvider" in result.stderr and len(json.loads(result.stdout)) == 4
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "zoo", "serve", str(tmp_path / "r"), "--port", str(port)],
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline, line = time.monotonic() + 120, ""
        while time.monotonic() < deadline and "serving" not in line:
            line = server.stderr.readline()
            if not line and server.poll() is not None:
                break
        assert "serving" in line and "(CUDAExecutionProvider" in line, line
    finally:
        server.terminate()
        server.wait(timeout=30)


# One model of each family on its fixture dataset (tests/fixtures/data, ZOO_DATA_DIR in conftest):
# the device paths that digits does not reach (token batches, graph batches, sparse embeddings,
# uint8 image folders, own tables), trained and exported on the GPU.
FAMILIES = [
    ("lstm", ["--dataset", "sst2"]),
    ("gcn", ["--dataset", "cora"]),
    ("gin", ["--dataset", "mutag"]),
    ("skipgram", ["--dataset", "wiki-sample"]),
    ("transformer-tagger", ["--dataset", "atis"]) ,
    ("cnn", ["--dataset", "fashion-mnist"]),
]


@pytest.mark.parametrize("model,args", FAMILIES, ids=[m for m, _ in FAMILIES])
def test_each_family_trains_and_exports_on_the_gpu(tmp_path, model, args):
    summary = _train(tmp_path, model, model, *args, "--epochs", "2", "--device", "cuda", "-q", "--json")
    assert summary["device"].startswith("cuda") and summary["status"] == "finished"
    assert summary.get("parity") is None or summary["parity"] < 1e-3


def test_own_image_folder_and_table_on_the_gpu(tmp_path):
    import numpy as np
    from PIL import Image

    for label, value in (("dark", 40), ("light", 210)):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for i in range(30):
            pixels = np.clip(np.random.default_rng(i).normal(value, 20, (16, 16)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{i}.png")
    summary = _train(tmp_path, "img", "cnn", "--dataset", "image-folder", "--set",
                     f"data.options.path={tmp_path / 'images'}", "--epochs", "3", "--device", "cuda", "-q", "--json")
    assert summary["device"].startswith("cuda") and summary["metrics"]["accuracy"] > 0.8
    rows = ["size,colour,price"] + [f"{s},{c},{3 * s + (5 if c == 'red' else 0)}"
                                     for s in range(60) for c in ("red", "blue")]
    (tmp_path / "houses.csv").write_text("\n".join(rows) + "\n")
    summary = _train(tmp_path, "table", "mlp", "--dataset", "table", "--set",
                     f"data.options.path={tmp_path / 'houses.csv'}", "--set", "data.options.target=price",
                     "--epochs", "20", "--device", "cuda", "-q", "--json")
    assert summary["device"].startswith("cuda") and summary["status"] == "finished"
