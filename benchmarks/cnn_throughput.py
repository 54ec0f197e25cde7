"""Training throughput: the zoo trainer vs a standard torch DataLoader loop, same model and steps.

Both train the same architecture (built from the catalogue's defaults for ``--model``) from the
same initial weights, with the same optimizer and batch size, for the same number of steps on the
same Fashion-MNIST images:

- **zoo**: ``zoo train`` (``zoo.core.api.train``) on ``steps × batch`` training images, one epoch,
  no validation and no export; images/s from the trainer's own ``epoch_seconds`` (the training
  loop only: batches by index from tensors already on the device, no host sync per step).
- **DataLoader**: ``TensorDataset`` + ``DataLoader(shuffle=True)`` over the same CPU tensors,
  each batch moved to the device, forward, loss, backward, step; a textbook loop. On CUDA it
  uses pinned memory and ``--workers`` worker processes.

Both run once, untimed, for ``--warmup`` steps first (allocator, kernels, thread pools).

    python benchmarks/cnn_throughput.py --steps 200
    python benchmarks/cnn_throughput.py --model resnet-small --device cuda --workers 4

Prints images/s for each and the ratio zoo / DataLoader (issue goal: ≥ 1.0 on CPU, ≥ 1.5 on GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def dataloader_loop(model, task, x, y, batch_size: int, steps: int, optim_config, device, workers: int,
                    seed: int) -> float:
    """Seconds for ``steps`` optimizer steps of a standard DataLoader training loop."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from zoo.core.train.trainer import build_optimizer

    optimizer = build_optimizer(optim_config, model.parameters())
    cuda = device.type == "cuda"
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=False,
                        num_workers=workers if cuda else 0, pin_memory=cuda,
                        generator=torch.Generator().manual_seed(seed))
    model.train()
    done = 0
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    while done < steps:
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = task.loss(model(xb), {"x": xb, "y": yb})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn", help="Catalogue model (default: cnn).")
    parser.add_argument("--steps", type=int, default=200, help="Optimizer steps for each engine.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10, help="Untimed steps before each measurement.")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N].")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers on CUDA (CPU uses 0).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="Also write the measurements to this JSON file.")
    args = parser.parse_args(argv)

    import torch

    from zoo.core import api
    from zoo.core.contract.catalogue import load_catalogue
    from zoo.core.train.trainer import resolve_device

    device = resolve_device(args.device)
    images = args.steps * args.batch_size
    entry = load_catalogue().resolve_trainable(args.model)
    options = {"data": {"limit": images, "val_fraction": 0.0},
               "train": {"epochs": 1, "batch_size": args.batch_size, "device": str(device),
                         "progress": False, "seed": args.seed},
               "schedule": {"name": "constant", "warmup_epochs": 0.0},
               "export": {"enabled": False}}
    _, spec, run_config = api.resolve_config(entry.name, options=options)
    dataset, task = api.load_data(run_config, entry)
    x, y = dataset.train.tensors["x"], dataset.train.tensors["y"]
    if len(x) < images:
        print(f"the training split has only {len(x)} images; lower --steps", file=sys.stderr)
        return 2

    # Warm-up of both code paths (kernels, allocator, thread pools), untimed.
    torch.manual_seed(args.seed)
    warm = api.build_model(spec, run_config, dataset.info).to(device)
    dataloader_loop(warm, task, x, y, args.batch_size, args.warmup, run_config.optim, device, args.workers, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        warm_options = {**options, "data": {"limit": args.warmup * args.batch_size, "val_fraction": 0.0}}
        api.train(entry.name, options=warm_options, out=str(Path(tmp) / "warm"), log=None)

        # zoo: the trainer's own timing of its training loop (no validation, no export).
        api.train(entry.name, options=options, out=str(Path(tmp) / "zoo"), log=None)
        record = json.loads((Path(tmp) / "zoo" / "metrics.jsonl").read_text().splitlines()[0])
        zoo_seconds = record["epoch_seconds"]

    # DataLoader: same architecture and initial weights (api.train seeds with train.seed before building).
    torch.manual_seed(args.seed)
    model = api.build_model(spec, run_config, dataset.info).to(device)
    torch.manual_seed(args.seed)
    dl_seconds = dataloader_loop(model, task, x, y, args.batch_size, args.steps, run_config.optim, device,
                                 args.workers, args.seed)

    zoo_rate, dl_rate = images / zoo_seconds, images / dl_seconds
    print(f"{entry.name} on {run_config.data.name}, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.steps} steps × batch {args.batch_size}")
    print("| engine | steps | images | seconds | images/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| zoo trainer | {args.steps} | {images} | {zoo_seconds:.2f} | {zoo_rate:,.0f} |")
    print(f"| torch DataLoader loop | {args.steps} | {images} | {dl_seconds:.2f} | {dl_rate:,.0f} |")
    print(f"ratio zoo / DataLoader = {zoo_rate / dl_rate:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": entry.name, "dataset": run_config.data.name, "device": str(device), "steps": args.steps,
            "batch_size": args.batch_size, "zoo_images_per_s": zoo_rate, "dataloader_images_per_s": dl_rate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
