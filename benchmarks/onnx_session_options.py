"""onnxruntime session options chosen by measurement: ``make_session``'s CPU session against one
variant per choice, and torch eager, on the same model and inputs.

Variants (each differs from ``make_session``'s CPU session in one thing):

* ``no-flush``: denormals not flushed to zero (``session.set_denormal_as_zero`` off). Masked
  attention's softmax makes a denormal of every masked score; x86 CPUs compute with them slowly.
* ``skip-ln``: ``SkipLayerNormFusion`` on (residual Add + LayerNormalization as one node).
* ``extended`` / ``basic``: graph optimisation level ``ORT_ENABLE_EXTENDED`` / ``ORT_ENABLE_BASIC``
  instead of ``ORT_ENABLE_ALL``.

onnxruntime sets the flush-to-zero flags of the *calling* thread once per process, from its first
session, so each block here sets this thread's flags to match the session it times (with
``torch.set_flush_denormal``; torch is timed unflushed, as it runs by default). Engines alternate
in blocks (best block median of each kept), as in ``onnx_opset_compare.py``.

    python benchmarks/onnx_session_options.py --model transformer-classifier --model local-transformer
    python benchmarks/onnx_session_options.py --model transformer-tagger --threads 1 --cpu-time

``--cpu-time`` (with ``--threads 1``): the CPU time of this thread instead of wall time, so that
other processes' load on a shared machine does not count (one thread does all the work).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import onnx_latency as ol  # noqa: E402

VARIANTS = ("no-flush", "skip-ln", "extended", "basic")


def variant_session(path: Path, variant: str, threads: int):
    """``make_session``'s CPU session with one choice changed (module docstring)."""
    import onnxruntime as ort

    from zoo.core.deploy.runtime import make_session

    if variant == "default":
        return make_session(path, providers=["CPUExecutionProvider"], threads=threads)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    if variant != "no-flush":
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if variant in ("extended", "basic"):
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{variant.upper()}")
    disabled = [] if variant == "skip-ln" else ["SkipLayerNormFusion"]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)


def compare(name: str, batches: list[int], rounds: int, reps: int, threads: int, cpu_time: bool,
            folder: Path) -> list[str]:
    import torch

    prepared = ol.random_model(name, batches)
    model, examples, sizes = prepared.model, prepared.examples, prepared.sizes
    path = prepared.export(folder / f"{name}.onnx")
    sessions = {v: variant_session(path, v, threads) for v in ("default", *VARIANTS)}
    measure = functools.partial(ol.median_ms, clock=time.thread_time if cpu_time else time.perf_counter)
    names = [i.name for i in sessions["default"].get_inputs()]
    rows = []
    for size, args in zip(sizes, examples[1:]):
        feed = {n: t.numpy() for n, t in zip(names, args)}
        times: dict = {k: [] for k in ("torch", *sessions)}
        for _ in range(rounds):
            torch.set_flush_denormal(False)
            with torch.no_grad():
                times["torch"].append(measure(model, reps, 2, args))
            for variant, session in sessions.items():
                torch.set_flush_denormal(variant != "no-flush")
                times[variant].append(measure(lambda s=session: s.run(None, feed), reps, 2))
        torch.set_flush_denormal(False)
        best = {k: min(v) for k, v in times.items()}
        cells = [f"{best[k]:.3f} ({best[k] / best['torch']:.2f})" for k in sessions]
        shape = "×".join(map(str, args[0].shape))
        rows.append(f"| {name} | {size} | {shape} | {best['torch']:.3f} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="Catalogue models.")
    parser.add_argument("--batch", action="append", type=int, help="Batch sizes (default: 1 and 64).")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating blocks; best block median kept.")
    parser.add_argument("--reps", type=int, default=10, help="Timed calls per block.")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads.")
    parser.add_argument("--cpu-time", action="store_true", help="CPU time of this thread (needs --threads 1).")
    args = parser.parse_args(argv)
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time measures one thread: pass --threads 1")
    import torch

    torch.set_num_threads(args.threads)
    clock = "thread CPU time" if args.cpu_time else "wall time"
    print(f"{args.threads} thread(s) each, {clock}, median of {args.reps} calls, best of {args.rounds} rounds; "
          f"ms (ORT / torch)")
    print("| model | batch | input | torch ms | make_session | " + " | ".join(VARIANTS) + " |")
    print("| --- | ---: | --- | ---: | " + " | ".join("---:" for _ in range(len(VARIANTS) + 1)) + " |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.model:
            for row in compare(name, args.batch or [1, 64], args.rounds, args.reps, args.threads, args.cpu_time,
                               Path(tmp)):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
