"""The CUDA code paths that can be checked without a GPU: RNG restore on fewer devices, CUDA
graphs refused for data whose batches change shape, deterministic mode's cuBLAS setting."""

from __future__ import annotations

import os

import pytest
import torch
from zoo.core import api
from zoo.core.train.data import Split
from zoo.core.contract.errors import ZooError
from zoo.core.train.trainer import batch_shapes_vary, check_cuda_graphs, restore_cuda_rng, uses_cuda_graphs


class _Lengths(Split):
    """A split of sequences whose batches are cut to their longest member (shapes vary)."""

    def __init__(self, n: int, varying: bool) -> None:
        self.lengths = torch.arange(n) % 7 + 1 if varying else torch.full((n,), 5)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index):
        longest = int(self.lengths[index].max())
        return {"x": torch.zeros(len(index), longest), "y": torch.zeros(len(index), dtype=torch.long)}

    @property
    def device(self):
        return torch.device("cpu")


def test_cuda_rng_states_are_restored_onto_the_devices_visible_now(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append((int(state[0]), device)))
    saved = [torch.tensor([7], dtype=torch.uint8), torch.tensor([9], dtype=torch.uint8)]  # 2 GPUs then
    assert restore_cuda_rng(saved) == 1
    assert calls == [(7, 0)]                                  # the second state has no device now
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    calls.clear()
    assert restore_cuda_rng(saved) == 2 and calls == [(7, 0), (9, 1)]
    assert restore_cuda_rng([]) == 0


def test_cuda_graph_modes():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert uses_cuda_graphs(True, "reduce-overhead", cuda) and uses_cuda_graphs(True, "max-autotune", cuda)
    assert not uses_cuda_graphs(True, "default", cuda) and not uses_cuda_graphs(True, "reduce-overhead", cpu)
    assert not uses_cuda_graphs(False, "reduce-overhead", cuda)


def test_cuda_graphs_are_refused_for_batches_that_change_shape():
    varying, fixed = _Lengths(200, varying=True), _Lengths(200, varying=False)
    assert batch_shapes_vary(varying, 16) and not batch_shapes_vary(fixed, 16)
    with pytest.raises(ZooError, match="change shape from batch to batch.*'default'"):
        check_cuda_graphs(True, "reduce-overhead", torch.device("cuda"), varying, 16)
    check_cuda_graphs(True, "reduce-overhead", torch.device("cuda"), fixed, 16)   # fixed shapes: fine
    check_cuda_graphs(True, "default", torch.device("cuda"), varying, 16)         # no CUDA graphs
    check_cuda_graphs(True, "reduce-overhead", torch.device("cpu"), varying, 16)  # none on the CPU


def test_deterministic_mode_fixes_the_cublas_workspace(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        api._seed(0, deterministic=True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


class _FakeSession:
    def __init__(self, path, sess_options=None, providers=None, disabled_optimizers=None):
        self.disabled_optimizers = disabled_optimizers
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        if "CUDAExecutionProvider" in names and _FakeSession.cuda_fails:
            raise RuntimeError("libcudnn.so.9: cannot open shared object file")
        self.requested = providers
        self.providers = ["CPUExecutionProvider"]  # what onnxruntime-gpu does without usable CUDA

    def get_providers(self):
        return self.providers

    cuda_fails = False


@pytest.fixture
def fake_ort(monkeypatch):
    import onnxruntime as ort
    from zoo.core.deploy import runtime

    monkeypatch.setattr(ort, "InferenceSession", _FakeSession)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "_cuda_visible", lambda: True)
    if hasattr(ort, "preload_dlls"):
        monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: None)
    return runtime


def test_a_silent_cpu_fallback_is_reported(fake_ort, caplog):
    session = fake_ort.make_session("m.onnx")
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "asked onnxruntime for CUDAExecutionProvider but m.onnx runs on CPUExecutionProvider" in caplog.text
    cuda_options = dict(p for p in session.requested if isinstance(p, tuple))["CUDAExecutionProvider"]
    assert cuda_options["cudnn_conv_algo_search"] == "HEURISTIC" and "use_tf32" not in cuda_options


def test_cuda_that_fails_to_load_is_retried_on_the_cpu(fake_ort, caplog, monkeypatch):
    monkeypatch.setattr(_FakeSession, "cuda_fails", True)
    session = fake_ort.make_session("m.onnx", exact=True)
    assert session.requested == ["CPUExecutionProvider"]
    assert "could not use CUDAExecutionProvider" in caplog.text and "libcudnn" in caplog.text


def test_skip_layer_norm_fusion_is_off_on_the_cpu_only(fake_ort, monkeypatch):
    """Measured slower on the CPU provider (docs/results.md); CUDA sessions keep every rewrite."""
    assert fake_ort.make_session("m.onnx").disabled_optimizers == []
    monkeypatch.setattr(_FakeSession, "cuda_fails", True)
    assert fake_ort.make_session("m.onnx").disabled_optimizers == ["SkipLayerNormFusion"]


def test_parity_sessions_turn_tf32_off(fake_ort):
    session = fake_ort.make_session("m.onnx", exact=True)
    assert dict(p for p in session.requested if isinstance(p, tuple))["CUDAExecutionProvider"]["use_tf32"] == "0"


@pytest.mark.slow
def test_the_summary_records_which_provider_checked_parity(tmp_path):
    summary = api.train("linear", options={"train": {"progress": False, "device": "cpu", "epochs": 1}},
                        out=str(tmp_path / "r"), log=None)
    assert summary["parity_provider"] == "CPUExecutionProvider"  # no GPU here
    assert summary["parity"] < 1e-4
