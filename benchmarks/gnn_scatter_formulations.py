"""Which formulation of sum aggregation is fastest in onnxruntime (vs torch eager)?

A linear layer (64 → 16) then ``out[i] = Σ_{j→i} h_j``, written four ways, exported with the dynamo
exporter and timed in onnxruntime and in torch eager (one thread each, each engine in its own
block) at 30 nodes / 60 edges, Cora size (2,708 / 13,264) and 20k / 200k::

    python benchmarks/gnn_scatter_formulations.py

``segment`` (sort + cumsum + gather) does not export (``aten.sort`` has no ONNX translation) and
is reported as such. The result decided ``zoo.plugins.gnn.message_passing.scatter_sum``.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

FORMULATIONS = ("index_add", "scatter_add", "index_put", "segment")
SIZES = ((30, 60), (2708, 13264), (20000, 200000))


class Aggregate(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.lin = torch.nn.Linear(64, 16)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        src, dst = edge_index[0], edge_index[1]
        messages = h.index_select(0, src)                                         # (E, 16)
        if self.kind == "index_add":
            return torch.zeros_like(h).index_add_(0, dst, messages)
        if self.kind == "scatter_add":
            return torch.zeros_like(h).scatter_add_(0, dst.unsqueeze(-1).expand_as(messages), messages)
        if self.kind == "index_put":
            return torch.zeros_like(h).index_put_((dst,), messages, accumulate=True)
        # segment sums over edges sorted by target: cumsum, then differences at the boundaries
        order = torch.argsort(dst, stable=True)
        cumulative = torch.cat([torch.zeros_like(messages[:1]), messages.index_select(0, order).cumsum(0)])
        counts = torch.zeros(h.shape[0], dtype=torch.long).index_add_(0, dst, torch.ones_like(dst))
        ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        return cumulative.index_select(0, ptr[1:]) - cumulative.index_select(0, ptr[:-1])


def random_graph(n: int, e: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 64, generator=generator), torch.randint(0, n, (2, e), generator=generator)


def median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return 1000 * float(np.median(samples))


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    folder = tempfile.mkdtemp()
    print("| formulation | ONNX ops | nodes / edges | onnxruntime ms | torch ms | ratio | max abs diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind in FORMULATIONS:
        model = Aggregate(kind).eval()
        path = os.path.join(folder, f"{kind}.onnx")
        try:
            torch.onnx.export(model, random_graph(37, 90, generator), path, dynamo=True,
                              input_names=["x", "edge_index"], output_names=["out"],
                              dynamic_axes={"x": {0: "n"}, "edge_index": {1: "e"}, "out": {0: "n"}},
                              external_data=False, verbose=False)
        except Exception as err:  # noqa: BLE001 - report and go on
            print(f"| {kind} | export failed: {type(err).__name__} | | | | | |")
            continue
        ops = ", ".join(sorted({n.op_type for n in onnx.load(path).graph.node} & {
            "ScatterND", "ScatterElements", "CumSum", "GatherElements"}))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        for n, e in SIZES:
            x, edge_index = random_graph(n, e, generator)
            feed = {"x": x.numpy(), "edge_index": edge_index.numpy()}
            with torch.no_grad():
                reference = model(x, edge_index).numpy()
            diff = float(np.abs(session.run(None, feed)[0] - reference).max())
            repeats = 200 if n < 100 else 20
            ort_ms = median_ms(lambda: session.run(None, feed), repeats)
            with torch.no_grad():
                torch_ms = median_ms(lambda: model(x, edge_index), repeats)
            print(f"| {kind} | {ops} | {n} / {e} | {ort_ms:.3f} | {torch_ms:.3f} | {ort_ms / torch_ms:.2f} | {diff:.1e} |",
                  flush=True)


if __name__ == "__main__":
    main()
