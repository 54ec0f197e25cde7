"""onnxruntime vs torch eager latency of the GNN family on graph-shaped inputs.

(benchmarks/onnx_latency.py covers every family at batch 1 and 64 from the catalogue; this one
times graphs of the sizes that matter for GNNs.)

Each family contributes a function ``cases() -> [Case]``: a model, its task, the inputs to export
with, and named inputs to time ("batch 1", "batch 64", ...). Every model is exported through the
core path (``zoo.core.deploy.export.export_onnx``: checker, symbolic axes, parity at untraced shapes), then
each engine is timed in its own block (onnxruntime's spinning threads starve torch on 2 cores when
calls alternate), both with the same thread count::

    python benchmarks/onnx_latency_gnn.py --family gnn [--threads 1] [--repeats 50]

GNN cases: every model of the family with random weights on graphs from the real data — one MUTAG
molecule ("batch 1"), 64 MUTAG molecules batched ("batch 64") for graph-level models; for node-level
models a 40-node Cora subgraph and the whole of Cora (2,708 nodes, 10,556 edges).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).parent))
import onnx_latency as ol  # noqa: E402


@dataclass
class Case:
    family: str
    model: str
    model_fn: Callable[[], torch.nn.Module]
    task: object
    export_inputs: list[tuple[torch.Tensor, ...]]
    axes: dict
    timed: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)


def gnn_cases() -> list[Case]:
    from zoo.core import api
    from zoo.core.contract.catalogue import load_catalogue
    from zoo.plugins.gnn.data import load_planetoid, load_tu
    from zoo.plugins.gnn.tasks import GraphClassification, NodeClassification, induced_subgraph

    cora = load_planetoid(None, None)
    mutag = load_tu(None, None)
    node_task, graph_task = NodeClassification(), GraphClassification()
    whole = mutag.train
    out = []
    for name, entry in sorted(load_catalogue().models.items()):
        if entry.plugin != "gnn":
            continue
        _, spec, config = api.resolve_config(name)
        if entry.tasks[0] == "graph-classification":   # the task of its default dataset
            data, task = mutag, graph_task
            timed = {"1 graph (MUTAG)": task.inputs(whole.batch(torch.arange(1))),
                     "64 graphs (MUTAG)": task.inputs(whole.batch(torch.arange(64)))}
            examples = task.export_inputs(whole)
        else:
            data, task = cora, node_task
            timed = {"40-node subgraph (Cora)": induced_subgraph(cora.test.x, cora.test.edge_index, 40),
                     "whole Cora (2,708 nodes)": (cora.test.x, cora.test.edge_index)}
            examples = task.export_inputs(cora.test)
        out.append(Case("gnn", name, lambda spec=spec, config=config, data=data: api.build_model(spec, config, data.info),
                        task, examples, task.dynamic_axes(data.info), timed))
    return out


FAMILIES = {"gnn": gnn_cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="onnxruntime vs torch eager latency")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), help="default: all")
    parser.add_argument("--models", nargs="*", help="only these models")
    parser.add_argument("--threads", type=int, default=1, help="threads for both engines")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    from zoo.core.deploy.export import export_onnx

    rows = []
    for family in args.family or sorted(FAMILIES):
        for case in FAMILIES[family]():
            if args.models and case.model not in args.models:
                continue
            torch.manual_seed(0)
            model = case.model_fn().eval()
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                result = export_onnx(model, case.task, case.export_inputs, case.axes, path)
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                names = [i.name for i in session.get_inputs()]
                for label, inputs in case.timed.items():
                    feed = {n: t.numpy() for n, t in zip(names, inputs)}
                    ort_ms = ol.median_ms(lambda: session.run(None, feed), args.repeats, 3)
                    with torch.no_grad():
                        torch_ms = ol.median_ms(model, args.repeats, 3, inputs)
                    rows.append(f"| {family} | {case.model} | {label} | {torch_ms:.3f} | {ort_ms:.3f} | "
                                f"{ort_ms / torch_ms:.2f} | {result.parity:.1e} |")
                    print(rows[-1], file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__} (CPUExecutionProvider), "
          f"{args.threads} thread(s), median of {args.repeats}\n")
    print("| family | model | input | torch eager ms | onnxruntime ms | ratio ort/torch | export parity |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.exit(main())
