"""onnxruntime vs torch eager latency at batch 1 and 64 for the models of the catalogue.

Shared by every family: a model is benchmarked the day it is declared. For each model the
default config and dataset are resolved from the catalogue, the model is built (random weights:
latency does not depend on them), exported with the core's verified exporter (checker, symbolic
axes, parity), and timed in torch (eval, no_grad) and in onnxruntime on the same inputs taken
from the test split by the task (``task.export_inputs``). Each engine is timed in its own block:
onnxruntime's spinning worker threads starve torch on small CPUs when calls alternate. Between
blocks the process sleeps ``SETTLE_S``, so that the engine just timed has its threads parked
before the other starts: torch's OpenMP threads keep spinning after a parallel region, and on a
2-core machine onnxruntime's second thread then waits for a core (mlp at batch 1 took 0.027 ms
or 0.06 ms in onnxruntime depending on it; 0.027 ms every time with ``OMP_WAIT_POLICY=PASSIVE``).
Before the first export the process makes one small onnxruntime session, as a server's first
session would be (:func:`serving_thread_state`): onnxruntime flushes denormals on the thread that
made the process's first session, and the export's exact parity check would otherwise be it.

    python benchmarks/onnx_latency.py --all --threads 2 --rounds 3   # every catalogue model
    python benchmarks/onnx_latency.py                        # the default families
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

Every model is exported the way ``zoo export`` does it: through its family's ``export_model``
hook where there is one (GraphRNN's graph-level step network, word2vec's lookup), timed in torch
on the same inputs (the module the parity check compares against). Inputs at each batch size
come from the test split; tasks whose examples come from the model (a recurrent step's state)
have theirs repeated along the ``batch`` axes. Graph tasks answer every size with the whole
test graph: one row. A model that cannot be exported is listed as FAILED with the reason.

Prints one row per (model, batch): median milliseconds per call and the ratio ORT / torch
(the issue's goal is ≤ 0.5 at batch 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PLUGINS = ("regression", "cnn", "gnn", "word2vec", "rnn", "transformer")


#: Seconds between the engines' blocks: the threads of the engine just timed stop spinning.
SETTLE_S = 0.05


def _no_sync() -> None:
    pass


def median_ms(fn, reps: int, warmup: int, inputs: tuple = (), sync=_no_sync, clock=time.perf_counter) -> float:
    """Median ms of ``fn(*fresh copies of inputs)``, the copies made outside the timing: a server
    gets a new tensor per request, and models memoise per-input work while the same tensor comes
    back (GCN/GAT's sparse features, DCNN's diffusion), which a repeated tensor would skip.
    ``sync`` waits for queued device work (``torch.cuda.synchronize``): CUDA calls return before
    the GPU has finished, so the clock stops only once the call's kernels are done. ``clock``:
    wall time by default; ``time.thread_time`` measures this thread's CPU time (a loaded machine)."""
    for _ in range(warmup):
        fn(*[t.clone() for t in inputs])
    times = []
    for _ in range(reps):
        fresh = [t.clone() for t in inputs]
        sync()  # the copies' kernels must not be counted in the call
        start = clock()
        fn(*fresh)
        sync()
        times.append((clock() - start) * 1000)
    return statistics.median(times)


def serving_thread_state(folder: Path) -> None:
    """Give this thread the floating-point state of a serving process: denormals flushed.

    onnxruntime sets flush-to-zero / denormals-are-zero on the thread that creates a process's
    *first* session, once, from that session's ``session.set_denormal_as_zero`` (``make_session``
    asks for it; the calling thread does part of every run's work). In ``zoo serve`` and
    ``zoo predict`` (``serving_process``) that first session is the served one. Here it would be the export's parity
    check (``exact``: flags off), so every session timed afterwards ran its calling thread's share
    unflushed: masked attention scores become denormals in onnxruntime's softmax, and
    local-transformer's onnxruntime time was ~20 % higher than in a process whose first session
    was its own. A tiny session is made first, as a server's would be; torch eager then runs
    on a flushed thread too, which can only make it faster.
    """
    import onnx
    from onnx import TensorProto, helper

    from zoo.core.deploy.runtime import make_session, serving_process

    serving_process()  # as `zoo serve` declares itself: this first session also flushes this thread
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "first",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = folder / "first-session.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9  # what onnxruntime reads (onnx writes its newest by default)
    onnx.save(model, str(path))
    make_session(path, providers=["CPUExecutionProvider"])


def ort_session(path: Path, device: str, threads: int | None = None):
    """(session, note): onnxruntime on ``device``'s provider; ``note`` is empty when that provider
    really runs, else why not (onnxruntime falls back to the CPU without raising)."""
    import onnxruntime as ort

    from zoo.core.deploy.runtime import make_session

    if device == "cpu":
        return make_session(path, providers=["CPUExecutionProvider"], threads=threads), ""
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels torch brought, if any
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - the provider check below reports what did not load
            pass
    session = make_session(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], threads=threads)
    ran = session.get_providers()[0]
    if ran == "CUDAExecutionProvider":
        return session, ""
    # The usual cause: an onnxruntime-gpu built for another CUDA major than the libraries present.
    built = getattr(ort.capi.build_and_package_info, "cuda_version", "?")
    return session, (f"CUDA execution provider unavailable ({ran} ran; onnxruntime {ort.__version__}, built "
                     f"for CUDA {built}, offers {', '.join(ort.get_available_providers())})")


def exporter(entry, task, opset: int):
    """The export ``zoo export`` runs for ``entry``: the family's ``export_model`` hook when one is
    registered (GraphRNN's step network, word2vec's embedding lookup), else the core's default."""
    from zoo.core import api
    from zoo.core.contract.plugins import get_zoo

    zoo = get_zoo()
    api.resolve_config(entry.name)  # loads the entry's plugin
    if not zoo.pm.hook.export_model.get_hookimpls():
        return None
    return lambda model, path: zoo.pm.hook.export_model(model=model, task=task, model_name=entry.name,
                                                        path=path, opset=opset)


def inputs_at(task, model, test, sizes: list[int]) -> tuple[list[tuple], list[int]]:
    """(examples, batch sizes): the traced example first, then one per size that fits the test split.

    Tasks that cut batches from the split take sizes (sequence tasks (batch, length) pairs:
    sentences of 32 tokens); tasks whose examples come from the model (a recurrent step's state)
    give their own, which are repeated along the axes named ``batch`` to reach each size.
    """
    import torch

    from zoo.core.contract.task import Task

    if type(task).export_examples is not Task.export_examples:
        traced = task.export_examples(model, test)[0]
        axes = task.dynamic_axes(None)
        out = [traced]
        for size in sizes:
            args = []
            for name, t in zip(task.input_names, traced):
                axis = next((a for a, label in axes.get(name, {}).items() if label == "batch"), None)
                index = torch.arange(size) % t.shape[axis] if axis is not None else None
                args.append(t if axis is None else t.index_select(axis, index))
            out.append(tuple(args))
        return out, sizes
    sizes = [b for b in sizes if b <= len(test)]
    try:
        return task.export_inputs(test, sizes=(3, *sizes)), sizes
    except TypeError:  # sequence tasks take (batch, length) pairs
        return task.export_inputs(test, sizes=((3, 7), *((b, 32) for b in sizes))), sizes


@dataclass
class RandomModel:
    """A catalogue model at random weights (seed 0), in eval mode on the CPU, its default config and
    dataset, and its export examples (:func:`inputs_at`: the traced one first, then one per size)."""

    entry: Any
    run_config: Any
    dataset: Any
    task: Any
    model: Any
    examples: list
    sizes: list

    def export(self, path: Path, opset: int | None = None) -> Path:
        """Exported as ``zoo export`` does (the family's hook, the run config's tolerances)."""
        from zoo.core.deploy.export import export_onnx

        ec = self.run_config.export
        opset = opset or ec.opset
        export_onnx(self.model, self.task, self.examples[:1], self.task.dynamic_axes(self.dataset.info), path,
                    opset=opset, atol=ec.atol, rtol=ec.rtol, override=exporter(self.entry, self.task, opset))
        return path


def random_model(name: str, batches: list[int], opset: int | None = None) -> RandomModel:
    """:class:`RandomModel` of catalogue model ``name`` with examples at ``batches``."""
    import torch

    from zoo.core import api
    from zoo.core.contract.catalogue import load_catalogue

    entry = load_catalogue().models[name]
    options = {"train": {"device": "cpu"}, **({"export": {"opset": opset}} if opset else {})}
    _, spec, run_config = api.resolve_config(name, options=options)
    torch.manual_seed(0)
    dataset, task = api.load_data(run_config, entry)
    model = api.build_model(spec, run_config, dataset.info).eval()
    examples, sizes = inputs_at(task, model, dataset.test.to("cpu"), batches)
    return RandomModel(entry, run_config, dataset, task, model, examples, sizes)


def bench_model(name: str, batches: list[int], reps: int, warmup: int, folder: Path,
                device: str = "cpu", rounds: int = 1, ort_threads: int | None = None,
                opset: int | None = None) -> list[dict]:
    """Rows of one model. ``rounds`` > 1 alternates the engines' blocks (torch, onnxruntime,
    torch, ...) and keeps each engine's best block median: load from other processes on a
    shared machine then hits both engines alike instead of whichever ran during it."""
    import torch

    prepared = random_model(name, batches, opset)
    model, examples, sizes, run_config = prepared.model, prepared.examples, prepared.sizes, prepared.run_config
    session, note = ort_session(prepared.export(folder / f"{name}.onnx"), device, ort_threads)
    model = model.to(device)  # after the export, which moves the model to the CPU
    sync = torch.cuda.synchronize if device == "cuda" else _no_sync
    names = [i.name for i in session.get_inputs()]
    rows, seen = [], []
    for size, args in zip(sizes, examples[1:]):
        shapes = [list(t.shape) for t in args]
        if shapes in seen:  # a graph task answers every size with the whole test graph
            continue
        seen.append(shapes)
        feed = {n: t.numpy() for n, t in zip(names, args)}
        torch_times, ort_times = [], []
        for _ in range(rounds):
            time.sleep(SETTLE_S)
            with torch.no_grad():
                torch_times.append(median_ms(model, reps, warmup, tuple(t.to(device) for t in args), sync))
            if not note:
                time.sleep(SETTLE_S)
                ort_times.append(median_ms(lambda: session.run(None, feed), reps, warmup))
        torch_ms, ort_ms = min(torch_times), (min(ort_times) if ort_times else None)
        rows.append({"model": name, "dataset": run_config.data.name, "batch": size,
                     "params": sum(p.numel() for p in model.parameters()), "device": device,
                     "torch_ms": torch_ms, "ort_ms": ort_ms, "ratio": None if ort_ms is None else ort_ms / torch_ms,
                     "provider": session.get_providers()[0], "note": note,
                     "shapes": shapes})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", action="append", help=f"Families to include (default: {', '.join(DEFAULT_PLUGINS)}).")
    parser.add_argument("--model", action="append", help="Only these models (overrides --plugin).")
    parser.add_argument("--all", action="store_true", help="Every model of the catalogue (overrides --plugin).")
    parser.add_argument("--batch", action="append", type=int, help="Batch sizes (default: 1 and 64).")
    parser.add_argument("--reps", type=int, default=30, help="Timed calls per engine and batch size.")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed calls first.")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and onnxruntime intra-op threads (default: each engine's own).")
    parser.add_argument("--rounds", type=int, default=1,
                        help="Alternating blocks per engine (torch, onnxruntime, torch, ...); the best "
                             "block median of each engine is kept (default: 1).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: torch on the CPU, onnxruntime's CPU provider; cuda: torch on the GPU, "
                             "onnxruntime's CUDA provider (default: cpu).")
    parser.add_argument("--opset", type=int, default=None,
                        help="Export at this ONNX opset instead of each model's export.opset (e.g. 18 "
                             "vs 23 for the transformers' fused Attention).")
    parser.add_argument("--json", help="Also write the rows (and failures) to this JSON file.")
    parser.add_argument("--no-serving-state", action="store_true",
                        help="Do not make a first session before the exports (serving_thread_state): "
                             "the export's parity session is then the first, and this thread runs "
                             "its share of every timed call without flushing denormals.")
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
    elif args.all:
        names = list(catalogue.models)
    else:
        plugins = args.plugin or list(DEFAULT_PLUGINS)
        names = [m.name for m in catalogue.models.values() if m.plugin in plugins]
    batches = args.batch or [1, 64]
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_serving_state:
            serving_thread_state(Path(tmp))
        for name in names:
            try:
                rows += bench_model(name, batches, args.reps, args.warmup, Path(tmp), args.device, args.rounds,
                                    args.threads, args.opset)
            except Exception as err:  # noqa: BLE001 - one failing model must not hide the others
                failures.append(f"{name}: {type(err).__name__}: {str(err)[:200]}")
            print(f"  done {name}", file=sys.stderr, flush=True)

    gpu = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"torch {torch.__version__}, device {args.device}{gpu}, {torch.get_num_threads()} torch threads, "
          f"{args.threads or 'default'} onnxruntime threads, median of {args.reps} calls, best of {args.rounds} "
          f"alternating round(s)")
    print("| model | dataset | params | batch | first input | torch eager (ms) | onnxruntime (ms) | ORT / torch "
          "| provider |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        ort = f"{r['ort_ms']:.3f} | {r['ratio']:.2f}" if r["ort_ms"] is not None else "not timed | -"
        provider = r["note"] or r["provider"].replace("ExecutionProvider", "")
        shape = "×".join(map(str, r["shapes"][0]))
        print(f"| {r['model']} | {r['dataset']} | {r['params']:,} | {r['batch']} | {shape} | {r['torch_ms']:.3f} | "
              f"{ort} | {provider} |")
    for line in failures:
        print(f"FAILED {line}")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({"reps": args.reps, "threads": torch.get_num_threads(),
                                               "rounds": args.rounds,
                                               "device": args.device, "rows": rows, "failures": failures}))
    return 1 if failures or any(r["note"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
