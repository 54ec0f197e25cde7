"""``zoo reproduce``: train a model's reference recipe and compare with the catalogue's number.

The recipe is the model's catalogue defaults on its dataset, repeated over a protocol: seeds
(``train.seed`` = 0..N-1) or the folds of a k-fold split (``data.options.fold`` = 0..K-1, for
datasets whose options have ``fold``). The reference table of the model says what to compare::

    reference = { metric = "test_accuracy", value = 0.815, source = "Kipf & Welling 2017, Table 2",
                  tolerance = 0.02, protocol = "seeds", runs = 10 }

``tolerance`` is absolute and one-sided: a higher-is-better metric passes when the mean is at
least ``value - tolerance`` (beating the paper is a pass), a lower-is-better one when it is at
most ``value + tolerance``. Without a tolerance the mean is reported, never judged. ``--quick``
runs one seed or fold at smoke size (the manifest's ``smoke`` overrides, one epoch, 64 samples):
it checks that the recipe runs, not the number. Each run is an ordinary run directory (ONNX
export off) under the output folder, next to ``reproduce.json`` and ``reproduce.md``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from zoo.core.contract.errors import ZooError

#: What ``--quick`` merges over the recipe (then the manifest's ``smoke`` table over that).
QUICK = {"train": {"epochs": 1, "batch_size": 16}, "data": {"limit": 64}}
DEFAULT_RUNS = {"seeds": 3, "folds": 10}


def protocol(entry, dataset: str, seeds: int | None, folds: int | None) -> tuple[str, int]:
    """``("seeds", N)`` or ``("folds", K)``: the command line's, else the reference's, else folds
    for a dataset whose options have ``fold`` and seeds otherwise."""
    if seeds is not None and folds is not None:
        raise ZooError("give --seeds or --folds, not both")
    if seeds is not None or folds is not None:
        return ("seeds", seeds) if seeds is not None else ("folds", folds)
    kind = entry.reference.get("protocol") or ("folds" if _has_folds(dataset) else "seeds")
    if kind not in DEFAULT_RUNS:
        raise ZooError(f"model {entry.name!r}: reference.protocol {kind!r} is not seeds or folds")
    return kind, int(entry.reference.get("runs", DEFAULT_RUNS[kind]))


def _has_folds(dataset: str) -> bool:
    from zoo.core.contract.plugins import get_zoo

    spec = get_zoo().registry.datasets.get(dataset)
    fields = getattr(getattr(spec, "options_class", None), "model_fields", {})
    return "fold" in fields


def run_options(kind: str, count: int, index: int, entry, quick: bool) -> dict[str, Any]:
    """The config overrides of run ``index`` of the protocol."""
    from zoo.core.contract.config import deep_merge

    options: dict[str, Any] = {"train": {"progress": False}, "export": {"enabled": False}}
    if quick:
        options = deep_merge(deep_merge(options, QUICK), entry.smoke)
    if kind == "folds":
        return deep_merge(options, {"data": {"options": {"fold": index, "folds": count}}})
    return deep_merge(options, {"train": {"seed": index}})


def observed(summary: dict[str, Any], metric: str) -> float | None:
    """The run's value of a reference metric (``test_accuracy`` is the test metric ``accuracy``;
    other names are looked up among the test metrics, the summary and the learned values)."""
    tests = summary.get("metrics", {})
    for table, key in ((tests, metric), (tests, metric.removeprefix("test_")), (summary, metric),
                       (summary.get("learned") or {}, metric)):
        if isinstance(table, dict) and isinstance(table.get(key), (int, float)):
            return float(table[key])
    return None


def verdict(mean: float | None, reference: dict[str, Any], maximize: bool, quick: bool) -> str:
    """``pass``/``fail`` against the reference and its tolerance, or why there is no verdict."""
    if quick:
        return "ran (quick)"
    if mean is None:
        return "not measured"
    if reference.get("value") is None or reference.get("tolerance") is None:
        return "no tolerance declared"
    value, tolerance = float(reference["value"]), float(reference["tolerance"])
    return "pass" if (mean >= value - tolerance if maximize else mean <= value + tolerance) else "fail"


def _train_one(model: str, options: dict, sets: tuple[str, ...], out: Path) -> tuple[dict, float]:
    from zoo.core import api

    started = time.time()
    summary = api.train(model, options=options, sets=sets, out=str(out), log=None)
    return summary, time.time() - started


def reproduce(model: str, *, seeds: int | None = None, folds: int | None = None, quick: bool = False,
              out: str | Path | None = None, sets: tuple[str, ...] = (),
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run MODEL's recipe over its protocol; returns the result (one row of ``reproduce.json``)."""
    from zoo.core import api
    from zoo.core.tune import objective
    from zoo.core.contract.catalogue import load_catalogue

    log = log or (lambda line: None)
    entry = load_catalogue().resolve_trainable(model)
    config = api.show_config(entry.name, sets=sets)
    dataset = config["data"]["name"]
    kind, count = protocol(entry, dataset, seeds, folds)
    if count < 1:
        raise ZooError(f"--{kind} must be at least 1")
    reference = dict(entry.reference)
    metric = reference.get("metric", "test_" + objective.task_of(entry.name, dataset).main_metric)
    maximize = reference.get("higher_is_better",
                             objective.higher_is_better(objective.task_of(entry.name, dataset), metric))
    folder = Path(out or Path("reproduce") / entry.name)
    runs = []
    for index in range(1 if quick else count):
        options = run_options(kind, count, index, entry, quick)
        summary, wall = _train_one(entry.name, options, sets, folder / entry.name / f"{kind[:-1]}-{index}")
        runs.append({kind[:-1]: index, "value": observed(summary, metric), "epochs": summary.get("epochs"),
                     "wall_seconds": round(wall, 2), "run": str(folder / entry.name / f"{kind[:-1]}-{index}")})
        log(f"{entry.name} {kind[:-1]} {index}: {metric} {runs[-1]['value']} ({wall:.1f} s)")
    return _result(entry, dataset, metric, maximize, kind, count, runs, reference, quick, sets)


def _result(entry, dataset, metric, maximize, kind, count, runs, reference, quick, sets) -> dict[str, Any]:
    values = [r["value"] for r in runs if r["value"] is not None]
    mean = statistics.mean(values) if values else None
    std = statistics.stdev(values) if len(values) > 1 else 0.0 if values else None
    command = f"zoo reproduce {entry.name} --{kind} {count}" + ("" if not quick else " --quick")
    command += "".join(f" --set {s}" for s in sets)
    return {"model": entry.name, "dataset": dataset, "metric": metric, "higher_is_better": maximize,
            "protocol": kind, "count": count, "quick": quick, "runs": runs, "mean": mean, "std": std,
            "reference": reference.get("value"), "source": reference.get("source", ""),
            "tolerance": reference.get("tolerance"), "verdict": verdict(mean, reference, maximize, quick),
            "epochs": statistics.mean([r["epochs"] for r in runs if r["epochs"] is not None] or [0]),
            "wall_seconds": round(sum(r["wall_seconds"] for r in runs), 2), "command": command}


def reproduce_many(models: list[str], out: str | Path, log: Callable[[str], None] | None = None,
                   **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`reproduce` each model; a model whose recipe cannot run gets verdict ``error`` and
    the message, and the rest go on (``zoo reproduce --all``)."""
    results = []
    for name in models:
        try:
            results.append(reproduce(name, out=out, log=log, **kwargs))
        except ZooError as err:
            results.append({"model": name, "verdict": "error", "error": str(err), "runs": []})
            (log or (lambda line: None))(f"{name}: error: {err}")
    return results


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table ``zoo reproduce`` prints and writes into ``reproduce.md``."""
    lines = ["| model | dataset | metric | protocol | per run | mean ± std | reference (source) | tolerance "
             "| verdict | wall s |", "| " + " | ".join(["---"] * 10) + " |"]
    for r in results:
        if r["verdict"] == "error":
            lines.append(f"| {r['model']} | | | | | | | | error: {r['error']} | |")
            continue
        per_run = ", ".join(_fmt(x["value"]) for x in r["runs"])
        spread = f"{_fmt(r['mean'])} ± {_fmt(r['std'])}" if r["mean"] is not None else "—"
        reference = f"{_fmt(r['reference'])} ({r['source']})" if r["reference"] is not None else "—"
        bound = "—" if r["tolerance"] is None else ("≥ " if r["higher_is_better"] else "≤ ") + _fmt(
            r["reference"] - r["tolerance"] if r["higher_is_better"] else r["reference"] + r["tolerance"])
        lines.append(f"| {r['model']} | {r['dataset']} | {r['metric']} | {r['protocol']} ({len(r['runs'])}) | "
                     f"{per_run} | {spread} | {reference} | {_fmt(r['tolerance'])} ({bound}) | {r['verdict']} | "
                     f"{r['wall_seconds']:.1f} |")
    return "\n".join(lines)


def results_row(r: dict[str, Any], device: str) -> str:
    """The result as a row of docs/results.md (model, dataset, metric, ours, reference, epochs,
    wall time, device, command)."""
    return (f"| {r['model']} | {r['dataset']} | {r['metric']}, {len(r['runs'])} {r['protocol']} | "
            f"{_fmt(r['mean'])} ± {_fmt(r['std'])} | {_fmt(r['reference'])} ({r['source']}) | {r['epochs']:.0f} | "
            f"{r['wall_seconds'] / max(len(r['runs']), 1):.0f} s per run | {device} | `{r['command']}` |")


def write(results: list[dict[str, Any]], folder: str | Path, device: str = "CPU") -> tuple[Path, Path]:
    """``reproduce.json`` and ``reproduce.md`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "reproduce.json", folder / "reproduce.md"
    json_path.write_text(json.dumps({"device": device, "results": results}, indent=2) + "\n")
    rows = [results_row(r, device) for r in results if r["verdict"] != "error" and r["mean"] is not None]
    md_path.write_text("# zoo reproduce\n\n" + table(results) + "\n\n## docs/results.md rows\n\n" + "\n".join(rows) + "\n")
    return json_path, md_path


def failed(results: list[dict[str, Any]]) -> bool:
    """Whether a result is outside its tolerance or could not run (exit 1)."""
    return any(r["verdict"] in ("fail", "error") for r in results)
