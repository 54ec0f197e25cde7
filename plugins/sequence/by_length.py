"""Exact match by source length: where a fixed-vector encoder–decoder breaks down and attention
does not (Bahdanau et al. 2015, Fig. 2; Cho et al. 2014).

After every finished ``seq2seq`` / ``translation`` run, whatever its family, the run directory
gets ``match_by_length.json`` (``{length: {"n", "exact_match"}}`` over the test split, the greedy
decode of the best checkpoint) and ``match_by_length.png`` (exact match against source length).
``scripts/seq2seq_by_length.py`` draws several runs in one figure and prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from zoo.plugins.sequence.pipeline import PAD_ID

TASKS = ("seq2seq", "translation")
JSON_NAME, PNG_NAME = "match_by_length.json", "match_by_length.png"


@torch.no_grad()
def exact_match_by_length(net: torch.nn.Module, task: Any, split: Any, batch_size: int = 256) -> dict[int, dict]:
    """``{source length: {"n": count, "exact_match": share}}`` of the greedy decodes of ``split``.

    A decode matches when it equals the target exactly, ``<eos>`` included and nothing after it
    (the task's own ``exact_match``, grouped by ``lengths``).
    """
    hits: dict[int, list[int]] = {}
    net.eval()
    for batch in split.batches(batch_size, None):
        _, generated = net(*task.inputs(batch))
        target = batch["target"]
        padded = F.pad(target, (0, generated.shape[1] - target.shape[1]), value=PAD_ID)
        exact = (generated == padded).all(dim=1)
        for length, ok in zip(batch["lengths"].tolist(), exact.tolist()):
            counts = hits.setdefault(int(length), [0, 0])
            counts[0] += int(ok)
            counts[1] += 1
    return {k: {"n": n, "exact_match": h / n} for k, (h, n) in sorted(hits.items())}


def plot(series: dict[str, dict[int, dict]], path: Path, title: str) -> Path | None:
    """One line per run (label → by-length table) of exact match against source length; ``None``
    when matplotlib is missing (the JSON is still written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, table in series.items():
        lengths = sorted(int(k) for k in table)
        ax.plot(lengths, [table[k if k in table else str(k)]["exact_match"] for k in lengths],
                marker="o", label=label)
    ax.set_xlabel("source length (tokens)")
    ax.set_ylabel("exact match (greedy)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(run_dir: Path) -> dict[str, Any]:
    """Reload the run's best checkpoint and data (CPU), write the JSON and the PNG; the report."""
    from zoo.core import api

    run, entry, run_config, net, dataset, task, _ = api.load_run(str(run_dir))
    table = exact_match_by_length(net, task, dataset.test)
    report = {"model": entry.name, "dataset": run_config.data.name,
              "attention": getattr(run_config.model, "attention", None), "by_length": table}
    (run.path / JSON_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    label = entry.name + (f" ({report['attention']})" if report["attention"] else "")
    plot({label: table}, run.path / PNG_NAME, f"{run_config.data.name}: exact match by source length")
    return report
