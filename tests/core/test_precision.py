"""Mixed precision (train.precision) and torch.compile (train.compile) on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo.core import api
from zoo.core.contract.errors import ZooError
from zoo.core.train.precision import Precision

# mlp on 40 digits: 36 train / 4 val, 3 equal batches of 12 (few distinct shapes to compile).
TINY = {"model": {"hidden": [16], "dropout": 0.0}, "data": {"name": "digits", "limit": 40},
        "train": {"epochs": 2, "batch_size": 12, "progress": False, "device": "cpu"},
        "optim": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0},
        "schedule": {"name": "constant", "warmup_epochs": 0.0}}


def _options(**train) -> dict:
    return {**TINY, "train": {**TINY["train"], **train}}


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint-last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def fp32_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "r"
    api.train("mlp", options={**_options(), "export": {"enabled": False}}, out=str(out), log=None)
    return out


def test_autocast_dtypes_and_fp16_needs_cuda():
    layer = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with Precision("bf16", torch.device("cpu")).autocast():
        assert layer(x).dtype == torch.bfloat16
    with Precision("fp32", torch.device("cpu")).autocast():
        assert layer(x).dtype == torch.float32
    with pytest.raises(ZooError, match="fp16 needs CUDA.*bf16"):
        Precision("fp16", torch.device("cpu"))
    assert Precision("bf16", torch.device("cpu")).scaler is None


@pytest.mark.slow
def test_fp16_on_cpu_is_refused_before_training(tmp_path):
    with pytest.raises(ZooError, match="fp16 needs CUDA"):
        api.train("mlp", options=_options(precision="fp16"), out=str(tmp_path / "r"), log=None)
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_bf16_trains_on_cpu_with_fp32_weights_and_exports(tmp_path, fp32_run):
    summary = api.train("mlp", options=_options(precision="bf16"), out=str(tmp_path / "r"), log=None)
    assert summary["status"] == "finished" and summary["parity"] < 1e-4   # ONNX stays fp32
    bf16, fp32 = _weights(tmp_path / "r"), _weights(fp32_run)
    assert all(t.dtype == torch.float32 for t in bf16.values())          # master weights fp32
    # Autocast really ran in bfloat16 (8-bit mantissa): close to the fp32 run, but not equal.
    assert all(torch.allclose(bf16[k], fp32[k], atol=0.05) for k in fp32)
    assert any(not torch.equal(bf16[k], fp32[k]) for k in fp32)


@pytest.mark.slow
def test_compile_matches_eager_and_stays_out_of_checkpoints_and_onnx(tmp_path, fp32_run):
    """torch.compile (inductor: needs a C compiler, present in CI; ~20-60 s cold on one core)."""
    summary = api.train("mlp", options=_options(compile=True), out=str(tmp_path / "r"), log=None)
    compiled = _weights(tmp_path / "r")
    assert not any("_orig_mod" in k or k.startswith("module.") for k in compiled)
    eager = _weights(fp32_run)
    assert compiled.keys() == eager.keys()
    assert all(torch.allclose(compiled[k], eager[k], atol=1e-5) for k in eager)
    assert summary["parity"] < 1e-4  # exported from the plain module


@pytest.mark.slow
def test_a_model_that_cannot_compile_trains_eagerly_with_a_warning(tmp_path, monkeypatch, fp32_run):
    class Broken(nn.Module):  # what torch.compile returns for a model its backend cannot handle
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            raise RuntimeError("BackendCompilerFailed: no C compiler")

    monkeypatch.setattr(torch, "compile", lambda module, mode=None: Broken(module))
    lines: list[str] = []
    options = {**_options(compile=True), "export": {"enabled": False}}
    summary = api.train("mlp", options=options, out=str(tmp_path / "r"), log=lines.append)
    assert summary["status"] == "finished"
    assert any("warning: torch.compile could not compile" in line and "training eagerly" in line
               for line in lines)
    eager = _weights(fp32_run)
    assert all(torch.equal(_weights(tmp_path / "r")[k], eager[k]) for k in eager)
