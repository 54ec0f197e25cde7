"""Why the export's parity check turns TF32 off on onnxruntime's CUDA provider (issue 19).

Exports a 784-256-128-10 MLP with random weights, runs it on onnxruntime's CUDA provider with
onnxruntime's defaults (MatMul/Gemm in TF32) and with ``use_tf32=0`` (what ``make_session(exact=True)``
asks for), and prints the largest difference from the float32 torch reference on the CPU next to
the parity tolerance (atol 1e-4 + rtol 1e-3 · |reference|). Needs a GPU and onnxruntime-gpu::

    python benchmarks/ort_tf32_parity.py [--trials 20]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    import onnxruntime as ort

    from zoo.core.deploy.export import export_module

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("Skipped: onnxruntime has no CUDA provider here (a GPU and onnxruntime-gpu are needed).")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(args.trials):
            torch.manual_seed(trial)
            model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                  nn.Linear(128, 10)).eval()
            x = torch.rand(64, 784)
            path = Path(tmp) / f"mlp{trial}.onnx"
            export_module(model, (x,), path, ("x",), ("y",), {"x": {0: "batch"}}, opset=18)
            with torch.no_grad():
                reference = model(x).numpy()
            tolerance = 1e-4 + 1e-3 * np.abs(reference)
            row = []
            for tf32 in ("1", "0"):
                session = ort.InferenceSession(str(path), providers=[
                    ("CUDAExecutionProvider", {"use_tf32": tf32}), "CPUExecutionProvider"])
                assert session.get_providers()[0] == "CUDAExecutionProvider"
                out = session.run(None, {"x": x.numpy()})[0]
                row.append((float(np.abs(out - reference).max()), bool((np.abs(out - reference) <= tolerance).all())))
            rows.append(row)
    print(f"| use_tf32 | max abs diff (worst of {args.trials}) | trials within atol 1e-4, rtol 1e-3 |")
    print("| --- | --- | --- |")
    for i, label in enumerate(("1 (onnxruntime's default)", "0 (zoo's parity check)")):
        worst = max(r[i][0] for r in rows)
        passed = sum(r[i][1] for r in rows)
        print(f"| {label} | {worst:.2e} | {passed} / {len(rows)} |")


if __name__ == "__main__":
    main()
