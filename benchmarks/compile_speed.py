"""Training step time: eager vs ``torch.compile`` (and CUDA graphs on a GPU) for MLP, LeNet and GCN.

One training step = forward, cross-entropy, backward, Adam step, as the zoo trainer does it with
``--compile`` (only the module is compiled; the optimizer step stays eager). The models are the
catalogue's ``mlp``, ``lenet`` and ``gcn`` built from their default configs, on random inputs of
the shapes of their datasets (Fashion-MNIST batches; a Cora-sized graph: 2,708 nodes, 1,433
features, 10,556 edges), so no dataset files are needed. Modes:

- ``eager``: plain PyTorch;
- ``compile``: ``torch.compile(model)`` (inductor; on the CPU it needs a C compiler);
- ``reduce-overhead`` (CUDA only): ``torch.compile(model, mode="reduce-overhead")``, i.e. CUDA
  graphs: one graph launch per step instead of one kernel launch per op, what helps small
  static-shape models most (the issue's goal: ≥ 2× over eager on a GPU).

Compilation happens in the untimed warm-up (its seconds are reported apart); then ``--steps``
steps are timed (with a device synchronisation at the end only)::

    python benchmarks/compile_speed.py [--device auto] [--steps 50] [--batch-size 128] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def make_case(name: str, batch_size: int, device, generator):
    """(model, inputs, targets) for one catalogue model on random data of its dataset's shape."""
    import torch

    from zoo.core import api
    from zoo.core.train.data import DataInfo

    _, spec, config = api.resolve_config(name, options={"train": {"device": "cpu"}})
    if name == "gcn":
        n, f, e, c = 2708, 1433, 10556, 7
        info = DataInfo(input_shape=(f,), num_classes=c, extra={"level": "node"})
        x = (torch.rand(n, f, generator=generator) < 0.01).float()       # sparse bag-of-words rows
        edges = torch.randint(0, n, (2, e // 2), generator=generator)
        inputs = (x, torch.cat([edges, edges.flip(0)], dim=1))           # undirected
        y = torch.randint(0, c, (n,), generator=generator)
    else:
        info = DataInfo(input_shape=(1, 28, 28), num_classes=10)
        inputs = (torch.rand(batch_size, 1, 28, 28, generator=generator),)
        y = torch.randint(0, 10, (batch_size,), generator=generator)
    model = api.build_model(spec, config, info)
    return model.to(device), tuple(t.to(device) for t in inputs), y.to(device)


def time_steps(model, inputs, y, steps: int, warmup: int, device, cuda_graphs: bool = False) -> tuple[float, float]:
    """(seconds of the warm-up, which includes compilation; median ms per step over 3 blocks)."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        if cuda_graphs:  # a new iteration: the graphs' output buffers may be reused
            torch.compiler.cudagraph_mark_step_begin()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*inputs), y)
        loss.backward()
        optimizer.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    started = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm = time.perf_counter() - started
    blocks = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        blocks.append(1000 * (time.perf_counter() - started) / steps)
    return warm, statistics.median(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet,gcn")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N].")
    parser.add_argument("--steps", type=int, default=50, help="Timed steps per block (3 blocks).")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed steps first (compilation).")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU.")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)

    import torch

    from zoo.core.train.trainer import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    modes = ["eager", "compile"] + (["reduce-overhead"] if device.type == "cuda" else [])
    rows = []
    for name in args.models.split(","):
        eager_ms = None
        for mode in modes:
            torch.manual_seed(0)
            model, inputs, y = make_case(name, args.batch_size, device, torch.Generator().manual_seed(0))
            error = None
            if mode != "eager":
                torch._dynamo.reset()
                model = torch.compile(model, mode=None if mode == "compile" else mode)
            try:
                warm, ms = time_steps(model, inputs, y, args.steps, args.warmup, device,
                                      cuda_graphs=mode == "reduce-overhead")
            except Exception as err:  # noqa: BLE001 - report a model that does not compile, keep going
                error = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
                warm, ms = float("nan"), float("nan")
            if mode == "eager":
                eager_ms = ms
            rows.append({"model": name, "mode": mode, "device": str(device), "ms_per_step": ms,
                         "warmup_s": warm, "speedup_vs_eager": eager_ms / ms if ms == ms else None,
                         "error": error})
            print(f"  {name} {mode}: {ms:.3f} ms/step (warm-up {warm:.1f} s){' ' + error if error else ''}",
                  file=sys.stderr, flush=True)
    print(f"training step time, device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of 3 blocks of {args.steps} steps")
    print("| model | mode | ms / step | speed-up vs eager | warm-up s (compile) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in rows:
        speed = f"{r['speedup_vs_eager']:.2f}" if r["speedup_vs_eager"] else "-"
        print(f"| {r['model']} | {r['mode']} | {r['ms_per_step']:.3f} | {speed} | {r['warmup_s']:.1f} |"
              + (f" failed: {r['error']}" if r["error"] else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "steps": args.steps, "threads": torch.get_num_threads(),
                       "cuda_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                       "rows": rows}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
