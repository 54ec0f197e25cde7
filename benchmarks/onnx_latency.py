"""onnxruntime vs torch eager latency at batch 1 and 64 for the models of the catalogue.

Shared by every family: a model is benchmarked the day it is declared. For each model the
default config and dataset are resolved from the catalogue, the model is built (random weights:
latency does not depend on them), exported with the core's verified exporter (checker, symbolic
axes, parity), and timed in torch (eval, no_grad) and in onnxruntime on the same inputs taken
from the test split by the task (``task.export_inputs``). Each engine is timed in its own block:
onnxruntime's spinning worker threads starve torch on small CPUs when calls alternate.

    python benchmarks/onnx_latency.py                        # regression and cnn families
    python benchmarks/onnx_latency.py --plugin cnn --reps 50
    python benchmarks/onnx_latency.py --model lenet --model stn --batch 1 --batch 64
    python benchmarks/onnx_latency.py --device cuda --model mlp --model cnn

``--device cuda``: torch runs the model and its inputs on the GPU, each call timed between two
``torch.cuda.synchronize()``; onnxruntime runs with the CUDA execution provider, fed numpy arrays
(so its time includes the host-to-device copy of the inputs and the copy of the outputs back,
which a server pays too; torch's does not). The provider that really ran is read from
``session.get_providers()``: where the CUDA provider could not be loaded the row says so and
onnxruntime is not timed, rather than silently timing the CPU. ``--device cpu`` (the default)
pins onnxruntime to the CPU provider.

Prints one row per (model, batch): median milliseconds per call and the ratio ORT / torch
(the issue's goal is ≤ 0.5 at batch 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_PLUGINS = ("regression", "cnn", "gnn", "word2vec", "rnn", "transformer")


def _no_sync() -> None:
    pass


def median_ms(fn, reps: int, warmup: int, inputs: tuple = (), sync=_no_sync) -> float:
    """Median ms of ``fn(*fresh copies of inputs)``, the copies made outside the timing: a server
    gets a new tensor per request, and models memoise per-input work while the same tensor comes
    back (GCN/GAT's sparse features, DCNN's diffusion), which a repeated tensor would skip.
    ``sync`` waits for queued device work (``torch.cuda.synchronize``): CUDA calls return before
    the GPU has finished, so the clock stops only once the call's kernels are done."""
    for _ in range(warmup):
        fn(*[t.clone() for t in inputs])
    times = []
    for _ in range(reps):
        fresh = [t.clone() for t in inputs]
        sync()  # the copies' kernels must not be counted in the call
        start = time.perf_counter()
        fn(*fresh)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def ort_session(path: Path, device: str):
    """(session, note): onnxruntime on ``device``'s provider; ``note`` is empty when that provider
    really runs, else why not (onnxruntime falls back to the CPU without raising)."""
    import onnxruntime as ort

    from zoo.core.deploy.runtime import make_session

    if device == "cpu":
        return make_session(path, providers=["CPUExecutionProvider"]), ""
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels torch brought, if any
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - the provider check below reports what did not load
            pass
    session = make_session(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    ran = session.get_providers()[0]
    if ran == "CUDAExecutionProvider":
        return session, ""
    # The usual cause: an onnxruntime-gpu built for another CUDA major than the libraries present.
    built = getattr(ort.capi.build_and_package_info, "cuda_version", "?")
    return session, (f"CUDA execution provider unavailable ({ran} ran; onnxruntime {ort.__version__}, built "
                     f"for CUDA {built}, offers {', '.join(ort.get_available_providers())})")


def bench_model(name: str, batches: list[int], reps: int, warmup: int, folder: Path,
                device: str = "cpu") -> list[dict]:
    import torch

    from zoo.core import api
    from zoo.core.contract.catalogue import load_catalogue
    from zoo.core.deploy.export import export_onnx

    entry = load_catalogue().models[name]
    _, spec, run_config = api.resolve_config(name, options={"train": {"device": "cpu"}})
    torch.manual_seed(0)
    dataset, task = api.load_data(run_config, entry)
    model = api.build_model(spec, run_config, dataset.info).eval()
    test = dataset.test
    sizes = [b for b in batches if b <= len(test)]
    try:
        examples = task.export_inputs(test, sizes=(3, *sizes))
    except TypeError:  # sequence tasks take (batch, length) pairs: time sentences of 32 tokens
        examples = task.export_inputs(test, sizes=((3, 7), *((b, 32) for b in sizes)))
    path = folder / f"{name}.onnx"
    export_onnx(model, task, examples, task.dynamic_axes(dataset.info), path, opset=run_config.export.opset)
    session, note = ort_session(path, device)
    model = model.to(device)  # after the export, which moves the model to the CPU
    sync = torch.cuda.synchronize if device == "cuda" else _no_sync
    names = [i.name for i in session.get_inputs()]
    rows = []
    for size, args in zip(sizes, examples[1:]):
        feed = {n: t.numpy() for n, t in zip(names, args)}
        with torch.no_grad():
            torch_ms = median_ms(model, reps, warmup, tuple(t.to(device) for t in args), sync)
        ort_ms = None if note else median_ms(lambda: session.run(None, feed), reps, warmup)
        rows.append({"model": name, "dataset": run_config.data.name, "batch": size,
                     "params": sum(p.numel() for p in model.parameters()), "device": device,
                     "torch_ms": torch_ms, "ort_ms": ort_ms, "ratio": None if ort_ms is None else ort_ms / torch_ms,
                     "provider": session.get_providers()[0], "note": note})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", action="append", help=f"Families to include (default: {', '.join(DEFAULT_PLUGINS)}).")
    parser.add_argument("--model", action="append", help="Only these models (overrides --plugin).")
    parser.add_argument("--batch", action="append", type=int, help="Batch sizes (default: 1 and 64).")
    parser.add_argument("--reps", type=int, default=30, help="Timed calls per engine and batch size.")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed calls first.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: torch on the CPU, onnxruntime's CPU provider; cuda: torch on the GPU, "
                             "onnxruntime's CUDA provider (default: cpu).")
    parser.add_argument("--json", help="Also write the rows (and failures) to this JSON file.")
    args = parser.parse_args(argv)

    import torch

    from zoo.core.contract.catalogue import load_catalogue

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    catalogue = load_catalogue()
    if args.model:
        names = args.model
    else:
        plugins = args.plugin or list(DEFAULT_PLUGINS)
        names = [m.name for m in catalogue.models.values() if m.plugin in plugins]
    batches = args.batch or [1, 64]
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows += bench_model(name, batches, args.reps, args.warmup, Path(tmp), args.device)
            except Exception as err:  # noqa: BLE001 - one failing model must not hide the others
                failures.append(f"{name}: {type(err).__name__}: {str(err)[:200]}")
            print(f"  done {name}", file=sys.stderr, flush=True)

    gpu = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"torch {torch.__version__}, device {args.device}{gpu}, {torch.get_num_threads()} torch threads, "
          f"median of {args.reps} calls")
    print("| model | dataset | params | batch | torch eager (ms) | onnxruntime (ms) | ORT / torch | provider |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        ort = f"{r['ort_ms']:.3f} | {r['ratio']:.2f}" if r["ort_ms"] is not None else "not timed | -"
        provider = r["note"] or r["provider"].replace("ExecutionProvider", "")
        print(f"| {r['model']} | {r['dataset']} | {r['params']:,} | {r['batch']} | {r['torch_ms']:.3f} | "
              f"{ort} | {provider} |")
    for line in failures:
        print(f"FAILED {line}")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({"reps": args.reps, "threads": torch.get_num_threads(),
                                               "device": args.device, "rows": rows, "failures": failures}))
    return 1 if failures or any(r["note"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
