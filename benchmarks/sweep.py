"""`zoo sweep` with and without pruning: epochs trained and the best validation accuracy.

Two studies of the same space and trial count on the MLP, one with the median pruner and one
without (``--pruner none``), through ``zoo.core.tune.sweep`` (what ``zoo sweep`` runs); then one run
of the catalogue's default MLP on the same data and epochs, the number a sweep must beat::

    python benchmarks/sweep.py                       # quick: digits, 20 trials of 20 epochs
    python benchmarks/sweep.py --full                # Fashion-MNIST, 20 trials of 15 epochs
    python benchmarks/sweep.py --trials 10 --json rows.json

Goal (issue 25): the pruned study trains ≥ 40 % fewer epochs for the same or a better best
validation accuracy, and its best trial beats the catalogue default. Studies and runs go to a
temporary folder (``--keep DIR`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SPACE = {
    "optim": {"lr": {"log_uniform": [1e-4, 1e-1]}, "weight_decay": {"log_uniform": [1e-6, 1e-2]}},
    "model": {"hidden": {"choice": [[64], [128], [256, 128], [512, 256]]}, "dropout": {"uniform": [0.0, 0.5], "step": 0.1}},
}


def study(folder: Path, pruner: str, args, options: dict) -> dict:
    from zoo.core.tune import sweep

    settings = sweep.SweepSettings(model="mlp", space=SPACE, folder=str(folder / pruner), trials=args.trials,
                                   seed=args.seed, pruner=pruner, options=options)
    started = time.time()
    result = sweep.sweep(settings, log=lambda line: print(f"[{pruner}] {line}", file=sys.stderr, flush=True))
    best = result["best"]
    return {"pruner": pruner, "trials": args.trials, "complete": result["counts"].get("complete", 0),
            "pruned": result["counts"].get("pruned", 0), "failed": result["counts"].get("fail", 0),
            "epochs_trained": result["epochs_trained"], "best_val_accuracy": best["value"],
            "best_test_accuracy": best["test"].get("accuracy"), "best_values": best["values"],
            "wall_seconds": round(time.time() - started, 1)}


def default_run(folder: Path, options: dict) -> dict:
    """The catalogue's MLP as declared, on the benchmark's data and epochs."""
    from zoo.core import api

    started = time.time()
    summary = api.train("mlp", options=options, out=str(folder / "default"), log=None)
    lines = (folder / "default" / "metrics.jsonl").read_text().splitlines()
    best = max(json.loads(line).get("val_accuracy", 0.0) for line in lines)
    return {"pruner": "catalogue default (no sweep)", "trials": 1, "epochs_trained": summary["epochs"],
            "best_val_accuracy": best, "best_test_accuracy": summary["metrics"]["accuracy"],
            "wall_seconds": round(time.time() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="Fashion-MNIST, 15 epochs (default: digits, 20)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 20 quick, 15 full)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed of both studies")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--keep", help="keep the studies and runs in this folder")
    parser.add_argument("--json", help="write the rows as JSON to this file")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    dataset = "fashion-mnist" if args.full else "digits"
    epochs = args.epochs or (15 if args.full else 20)
    options = {"data": {"name": dataset}, "train": {"epochs": epochs, "progress": False},
               "export": {"enabled": False}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        rows = [study(folder, "none", args, options), study(folder, "median", args, options),
                default_run(folder, options)]
    plain, pruned, default = rows
    report = {"dataset": dataset, "epochs": epochs, "trials": args.trials, "rows": rows,
              "epochs_saved": 1 - pruned["epochs_trained"] / plain["epochs_trained"],
              "pruned_not_worse": pruned["best_val_accuracy"] >= plain["best_val_accuracy"],
              "beats_default": pruned["best_val_accuracy"] > default["best_val_accuracy"]}
    print(f"\nmlp on {dataset}, {args.trials} trials of up to {epochs} epochs (TPE, seed {args.seed})\n")
    print("| study | complete | pruned | epochs trained | best val accuracy | its test accuracy | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['pruner']} | {r.get('complete', 1)} | {r.get('pruned', 0)} | {r['epochs_trained']} | "
              f"{r['best_val_accuracy']:.4f} | {r['best_test_accuracy']:.4f} | {r['wall_seconds']} |")
    print(f"\nepochs saved by pruning: {report['epochs_saved']:.0%} (goal ≥ 40 %); pruned best ≥ unpruned best: "
          f"{report['pruned_not_worse']}; best trial beats the default: {report['beats_default']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.exit(main())
