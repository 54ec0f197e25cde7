"""Test metrics of a run's best (or last) checkpoint, e.g. of a run stopped with Ctrl-C.

    python benchmarks/evaluate_run.py runs/sst2-lstm [--split test|val]

Rebuilds data and model from the run's saved config, loads the checkpoint and prints the task's
metrics on the split as JSON (the same ``Task.metric_sums``/``finalize`` the trainer uses).
"""

from __future__ import annotations

import argparse
import json

import torch
from zoo.core import api
from zoo.core.runs import Run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--split", default="test", choices=["test", "val"])
    args = parser.parse_args()
    run = Run.open(args.run)
    saved = run.read_config()
    entry, spec, run_config = api.resolve_config(saved["model"]["name"], options=saved)
    dataset, task = api.load_data(run_config, entry)
    model = api.build_model(spec, run_config, dataset.info)
    path = run.file(Run.BEST) if run.file(Run.BEST).exists() else run.file(Run.LAST)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    split = dataset.test if args.split == "test" else dataset.val
    sums: dict[str, float] = {}
    with torch.no_grad():
        for batch in split.batches(1024):
            for key, value in task.metric_sums(model(*task.inputs(batch)), batch).items():
                sums[key] = sums.get(key, 0.0) + float(value)
    print(json.dumps({"checkpoint": str(path), "epoch": checkpoint["state"]["epoch"],
                      "split": args.split, **task.finalize(sums)}))


if __name__ == "__main__":
    main()
