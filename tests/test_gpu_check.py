"""scripts/gpu-check.sh's table: every step gets a row, a failed step says why, goals are judged.

The script itself needs minutes (`ZOO_GPU_CHECK_ALLOW_CPU=1 bash scripts/gpu-check.sh --quick` runs
it on the CPU); here its report is rendered from the files its steps would leave.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _report():
    spec = importlib.util.spec_from_file_location("gpu_check_report", ROOT / "scripts" / "gpu_check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _steps(work: Path, *lines: str) -> None:
    (work / "steps.tsv").write_text("".join(line.replace(" ", "\t", 4) + "\n" for line in lines))


def test_rows_for_results_failures_and_skips(tmp_path):
    _steps(tmp_path, "install 0 3 0 reused .venv", "tests 1 9 120 -", "cnn 0 20 60 -", "onnx 124 90 90 -",
           "word2vec skipped 0 0 the budget is spent")
    (tmp_path / "tests.log").write_text("FAILED tests/cuda/test_x.py::test_y - AssertionError\n1 failed, 2 passed in 3.1s\n")
    (tmp_path / "cnn.json").write_text(json.dumps({"model": "cnn", "dataset": "fashion-mnist", "device": "cuda",
                                                   "steps": 400, "batch_size": 128, "zoo_images_per_s": 30000.0,
                                                   "dataloader_images_per_s": 10000.0}))
    text = _report().render(tmp_path, "full", "cuda")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + 5 and all(line.count(" | ") == 4 for line in table)
    assert "1 failed, 2 passed" in text and "exit 1: FAILED tests/cuda/test_x.py" in text
    assert "**3.00×** | ≥ 1.5× | met" in text
    assert "timed out after 90 s" in text and "skipped: the budget is spent" in text
    assert text.startswith("# GPU check\n")


def test_onnx_row_says_when_the_cuda_provider_did_not_run(tmp_path):
    _steps(tmp_path, "onnx 1 30 90 -")
    note = "CUDA execution provider unavailable (CPUExecutionProvider ran)"
    (tmp_path / "onnx.json").write_text(json.dumps({"reps": 10, "threads": 1, "device": "cuda", "failures": [],
                                                    "rows": [{"model": "mlp", "batch": 1, "torch_ms": 0.2,
                                                              "ort_ms": None, "ratio": None, "note": note,
                                                              "provider": "CPUExecutionProvider"}]}))
    text = _report().render(tmp_path, "quick", "cuda")
    assert note in text and "| CUDA EP unavailable |" in text and "ORT CPU" not in text


def test_word2vec_row_judges_the_words_per_second_goal(tmp_path):
    _steps(tmp_path, "word2vec 0 40 150 -")
    side = {"ws353": 0.3, "analogy": 0.02, "simlex": 0.1, "seconds": 1.0}
    (tmp_path / "word2vec.json").write_text(json.dumps([{
        "model": "skipgram", "dataset": "wiki-sample", "threads": 2, "epochs": 3, "device": "cuda",
        "kernel": "torch", "ours": {**side, "words_per_s": 3e6}, "gensim": {**side, "words_per_s": 1e6}}]))
    text = _report().render(tmp_path, "full", "cpu")
    assert "**3.00×**; WordSim353 0.300 vs 0.300" in text and "| ≥ 2× | met |" in text and "CPU FAKE" in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_script_parses_and_rejects_unknown_arguments():
    script = ROOT / "scripts" / "gpu-check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert subprocess.run(["bash", str(script), "--bogus"], capture_output=True).returncode == 2


@pytest.mark.slow
def test_benchmarks_refuse_cuda_without_a_gpu():
    """--device cuda where torch sees no GPU: a clear refusal, not CPU figures labelled CUDA."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "onnx_latency.py"), "--device", "cuda",
                           "--model", "mlp"], capture_output=True, text=True, env={"CUDA_VISIBLE_DEVICES": "",
                                                                                    "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
