"""Accuracy of the GNN family: mean ± std over seeds (Cora) or over the folds of a k-fold split (MUTAG).

Trains through the same flow as ``zoo train`` (``zoo.core.api.train``, ONNX export off) and prints
the Markdown rows of the ``## GNN family`` table in docs/results.md::

    python benchmarks/gnn_results.py --seeds 10                    # every node model on Cora
    python benchmarks/gnn_results.py --models gin --folds 10       # MUTAG 10-fold for GIN
    python benchmarks/gnn_results.py --models gcn --seeds 3 --set optim.lr=0.02

One run equals ``zoo train MODEL --seed N`` (node models) or
``zoo train gin --set data.options.fold=F`` (graph models). Runs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

NODE_MODELS = ["gcn", "gat", "chebnet", "graphsage", "monet", "nn4g", "dcnn"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=NODE_MODELS)
    parser.add_argument("--seeds", type=int, default=10, help="node models: seeds 0..N-1")
    parser.add_argument("--seed-list", type=int, nargs="+", help="node models: exactly these seeds (split a long "
                        "job over processes; merge their --json files)")
    parser.add_argument("--folds", type=int, default=10, help="graph models: k of the k-fold split")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)")
    parser.add_argument("--json", help="append one JSON line per run to this file")
    parser.add_argument("--paper-protocol", action="store_true",
                        help="graph models: also report Xu et al. 2019's protocol (the test fold doubles as the "
                        "validation split; the epoch with the best accuracy averaged over folds is reported)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from zoo.core import api
    from zoo.core.contract.catalogue import load_catalogue

    catalogue = load_catalogue()
    rows = []
    for name in args.models:
        entry = catalogue.models[name]
        graph_level = entry.tasks[0] == "graph-classification"   # the task of its default dataset
        runs = range(args.folds) if graph_level else (args.seed_list or range(args.seeds))
        accuracies, walls, epochs, curves = [], [], [], []
        for run in runs:
            options = {"train": {"progress": False}, "export": {"enabled": False}}
            if graph_level:
                options["data"] = {"options": {"fold": run, "folds": args.folds,
                                               "test_as_val": args.paper_protocol}}
            else:
                options["train"]["seed"] = run
            started = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                summary = api.train(name, options=options, sets=tuple(args.sets), out=str(Path(tmp) / "run"), log=None)
                metrics = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
            curves.append([m.get("val_accuracy") for m in metrics])
            wall = time.time() - started
            accuracies.append(summary["metrics"]["accuracy"])
            walls.append(wall)
            epochs.append(summary["epochs"])
            record = {"model": name, "dataset": summary["dataset"], "run": run, "fold" if graph_level else "seed": run,
                      "test_accuracy": summary["metrics"]["accuracy"], "epochs": summary["epochs"],
                      "best_epoch": summary["best_epoch"], "wall_seconds": round(wall, 2), "sets": args.sets}
            print(json.dumps(record), file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(record) + "\n")
        if graph_level and args.paper_protocol:
            # per-epoch test-fold accuracy averaged over folds; the best epoch, and the last one
            length = min(len(c) for c in curves)
            per_epoch = [statistics.mean(c[e] for c in curves) for e in range(length)]
            best = max(range(length), key=per_epoch.__getitem__)
            for label, epoch in (("Xu et al. protocol: best epoch on the fold mean", best), ("last epoch", length - 1)):
                values = [c[epoch] for c in curves]
                rows.append(f"| {name} | {entry.dataset} | test accuracy, {args.folds}-fold CV, {label} "
                            f"(epoch {epoch + 1}) | {statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} | "
                            f"— | {epoch + 1} | — | CPU (2 cores, shared) | `python benchmarks/gnn_results.py "
                            f"--models {name} --folds {args.folds} --paper-protocol` |")
                print(rows[-1], flush=True)
        mean = statistics.mean(accuracies)
        std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        ref = entry.reference
        reference = f"{ref['value']:.3f} ({ref['source']})" if ref.get("value") is not None else "—"
        protocol = " --paper-protocol" if args.paper_protocol else ""
        command = (f"`python benchmarks/gnn_results.py --models {name} --folds {args.folds}{protocol}`" if graph_level
                   else f"`python benchmarks/gnn_results.py --models {name} --seeds {args.seeds}` "
                        f"(one run: `zoo train {name} --seed N`)")
        if args.sets:
            command += " with " + " ".join(f"`--set {s}`" for s in args.sets)
        if graph_level and args.paper_protocol:
            command += " (weights at the best validation = test-fold accuracy: optimistic)"
        what = f"{args.folds}-fold CV" if graph_level else f"{len(accuracies)} seeds"
        rows.append(f"| {name} | {summary['dataset']} | test accuracy, {what} | {mean:.3f} ± {std:.3f} | {reference} | "
                    f"{statistics.mean(epochs):.0f} | {statistics.mean(walls):.0f} s per run, {sum(walls) / 60:.1f} min total | "
                    f"CPU (2 cores, shared) | {command} |")
        print(rows[-1], flush=True)
    header = "| model | dataset | metric | ours (mean ± std) | reference (source) | epochs | wall time | device | command |"
    print("\n" + "\n".join([header, "| --- " * 9 + "|", *rows]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.exit(main())
