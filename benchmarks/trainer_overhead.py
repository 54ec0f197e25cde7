"""Wall time of the zoo trainer vs a hand-written PyTorch loop: same model, data, batch, steps.

Both train the catalogue's `mlp` on Fashion-MNIST (falls back to random data of the same shape
when the files are missing), with Adam, for the same number of epochs, data already on the device.
The zoo side is `Trainer.fit` as `zoo train` runs it: per-epoch checkpoints, metrics log and
events included; validation is turned off so both do the same arithmetic: the same optimizer
hyper-parameters (Adam, no weight decay) and, at the end, one pass over the test split for its
accuracy (the hand-written loop does it too, as any real loop reports a test figure). Runs
alternate and the median of the repeats is reported.

    python benchmarks/trainer_overhead.py [--epochs 2] [--repeats 3] [--batch-size 128] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from zoo.core import api
from zoo.core.contract.errors import ZooError
from zoo.core.train.runs import Run
from zoo.core.train.trainer import Trainer, resolve_device


def load(device_name: str, batch_size: int, epochs: int):
    options = {"train": {"epochs": epochs, "batch_size": batch_size, "progress": False, "device": device_name},
               "data": {"val_fraction": 0.0}, "schedule": {"name": "constant", "warmup_epochs": 0},
               "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}, "model": {"dropout": 0.0}}
    entry, spec, cfg = api.resolve_config("mlp", options=options)
    try:
        dataset, task = api.load_data(cfg, entry)
        source = "fashion-mnist"
    except ZooError:
        from zoo.core.train.data import DataInfo, Dataset, TensorSplit

        x, y = torch.rand(60000, 1, 28, 28), torch.randint(0, 10, (60000,))
        dataset = Dataset(TensorSplit(x=x, y=y), TensorSplit(x=x[:1000], y=y[:1000]),
                          DataInfo(input_shape=(1, 28, 28), num_classes=10))
        task = api._loaded_zoo().registry.task("classification")
        source = "random (fashion-mnist missing)"
    return entry, spec, cfg, dataset, task, source


def run_zoo(spec, cfg, dataset, task, device) -> tuple[float, float]:
    torch.manual_seed(0)
    model = api.build_model(spec, cfg, dataset.info).to(device)
    data = dataset.to(device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, task, data, cfg, Run(tmp), device)
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.fit()
        _sync(device)
        return time.perf_counter() - start, time.process_time() - cpu_start


def run_raw(spec, cfg, dataset, device) -> tuple[float, float]:
    torch.manual_seed(0)
    model = api.build_model(spec, cfg, dataset.info).to(device)
    x, y = dataset.train.tensors["x"].to(device), dataset.train.tensors["y"].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas,
                                 eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
    generator = torch.Generator().manual_seed(0)
    batch_size = cfg.train.batch_size
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(cfg.train.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator).to(device)
        total = torch.zeros((), device=device)
        for begin in range(0, len(x), batch_size):
            idx = order[begin:begin + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        float(total)  # read the epoch loss once, as any real loop does
    model.eval()
    correct = torch.zeros((), device=device)
    x_test, y_test = dataset.test.tensors["x"].to(device), dataset.test.tensors["y"].to(device)
    with torch.no_grad():
        for begin in range(0, len(x_test), cfg.train.eval_batch_size):
            logits = model(x_test[begin:begin + cfg.train.eval_batch_size])
            correct += (logits.argmax(-1) == y_test[begin:begin + cfg.train.eval_batch_size]).sum()
    float(correct)
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="Also write the measurements to this JSON file.")
    args = parser.parse_args()
    device = resolve_device(args.device)
    entry, spec, cfg, dataset, task, source = load(args.device, args.batch_size, args.epochs)
    steps = dataset.train.num_batches(args.batch_size) * args.epochs
    run_raw(spec, cfg, dataset, device)  # warm-up (allocator, kernels)
    zoo_times, raw_times = [], []
    for _ in range(args.repeats):
        raw_times.append(run_raw(spec, cfg, dataset, device))
        zoo_times.append(run_zoo(spec, cfg, dataset, task, device))
    zoo_s, raw_s = (statistics.median(t[0] for t in ts) for ts in (zoo_times, raw_times))
    zoo_cpu, raw_cpu = (statistics.median(t[1] for t in ts) for ts in (zoo_times, raw_times))
    print(f"trainer overhead: mlp {cfg.model.hidden} on {source}, {len(dataset.train)} samples, "
          f"batch {args.batch_size}, {steps} steps, device {device}, torch threads {torch.get_num_threads()}")
    print("| loop | median wall s | median CPU s | steps/s (wall) | runs (wall s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, wall, cpu, times in (("hand-written PyTorch loop", raw_s, raw_cpu, raw_times),
                                   ("zoo Trainer.fit", zoo_s, zoo_cpu, zoo_times)):
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {steps / wall:,.0f} | {', '.join(f'{t[0]:.2f}' for t in times)} |")
    print(f"ratio zoo / hand-written = {zoo_s / raw_s:.3f} wall, {zoo_cpu / raw_cpu:.3f} CPU time (goal <= 1.05; "
          "on a shared machine the CPU-time ratio is the steadier one, on CUDA only wall time counts)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": f"mlp {cfg.model.hidden}", "data": source, "samples": len(dataset.train),
                       "batch_size": args.batch_size, "steps": steps, "device": str(device),
                       "repeats": args.repeats, "zoo_wall": zoo_s, "raw_wall": raw_s,
                       "zoo_cpu": zoo_cpu, "raw_cpu": raw_cpu}, fh)


if __name__ == "__main__":
    main()
