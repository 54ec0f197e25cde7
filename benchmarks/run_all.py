"""Every benchmark of the project in one command, written to ``benchmarks/RESULTS.md``.

    python benchmarks/run_all.py                 # quick mode: minutes on a small CPU
    python benchmarks/run_all.py --full          # the sizes each benchmark documents
    python benchmarks/run_all.py --only compile --only trainer --out /tmp/R.md

Each benchmark runs in its own interpreter (its thread settings, memory and failures stay its
own) with ``--json FILE``; this script reads those rows (no scraping of printed tables) and
writes one Markdown report: the machine (CPU, cores, GPU, library versions, load average, date),
then a table per benchmark where every figure stands next to its peer measured in the same run
and their ratio. A benchmark whose peer library is missing (timm, torch_geometric, gensim) is
listed as skipped with the reason. Benchmarks that are studies rather than speed claims
(GNN accuracy over seeds, scatter formulations, GNN-sized ONNX latency) run with ``--full`` only
and their printed table is included as is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# -- rendering of each benchmark's rows ---------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b not in (None, 0) and a == a and b == b else "-"


def render_startup(d: dict) -> str:
    by = {r["command"]: r["median"] for r in d["rows"]}
    zoo = by["zoo list"]
    rows = [[r["command"], f"{r['median']:.3f}", f"{r['min']:.3f}", _ratio(zoo, r["median"])]
            for r in d["rows"]]
    note = "" if any(k.startswith("import timm") for k in by) else \
        "\n\ntimm is not installed: its `timm.list_models()` peer was not measured (pip install timm)."
    return (f"Fresh interpreters, median of {d['repeats']}; `zoo list` imports torch: {d['imports_torch']}.\n\n"
            + _table(["command", "median s", "min s", "`zoo list` / this"], rows) + note)


def render_trainer(d: dict) -> str:
    rows = [["hand-written PyTorch loop", f"{d['raw_wall']:.3f}", f"{d['raw_cpu']:.3f}", "1.00 (peer)", "1.00 (peer)"],
            ["zoo Trainer.fit", f"{d['zoo_wall']:.3f}", f"{d['zoo_cpu']:.3f}", _ratio(d["zoo_wall"], d["raw_wall"]),
             _ratio(d["zoo_cpu"], d["raw_cpu"])]]
    return (f"{d['model']} on {d['data']}, {d['samples']} samples, batch {d['batch_size']}, {d['steps']} steps, "
            f"device {d['device']}, median of {d['repeats']} (goal ≤ 1.05).\n\n"
            + _table(["loop", "wall s", "CPU s", "wall ratio zoo / raw", "CPU ratio zoo / raw"], rows))


def render_cnn(d: dict) -> str:
    rows = [["torch DataLoader loop", f"{d['dataloader_images_per_s']:,.0f}", "1.00 (peer)"],
            ["zoo trainer", f"{d['zoo_images_per_s']:,.0f}",
             _ratio(d["zoo_images_per_s"], d["dataloader_images_per_s"])]]
    return (f"{d['model']} on {d['dataset']}, {d['steps']} steps × batch {d['batch_size']}, device {d['device']} "
            f"(goal ≥ 1.0 on CPU, ≥ 1.5 on GPU).\n\n" + _table(["engine", "images/s", "ratio zoo / DataLoader"], rows))


def render_onnx(d: dict) -> str:
    rows = [[r["model"], r["dataset"], r["batch"], f"{r['torch_ms']:.3f}", f"{r['ort_ms']:.3f}",
             f"{r['ratio']:.2f}"] for r in d["rows"]]
    text = (f"Median of {d['reps']} calls (best of {d.get('rounds', 1)} alternating rounds), {d['threads']} torch "
            f"thread(s), random weights (goal ORT / torch ≤ 1 at batch 64, ≤ 0.5 at batch 1).\n\n"
            + _table(["model", "dataset", "batch", "torch eager ms", "onnxruntime ms", "ORT / torch"], rows))
    if d["failures"]:
        text += "\n\nNot measured: " + "; ".join(d["failures"])
    return text


def render_pyg(d: dict) -> str:
    rows = [[r["model"], r["peer"], f"{r['ours_ms']:.1f}", f"{r['peer_ms']:.1f}", _ratio(r["ours_ms"], r["peer_ms"]),
             f"{r['ours_acc']:.3f}", f"{r['peer_acc']:.3f}"] for r in d["rows"]]
    return (f"Cora, {d['epochs']} epochs, torch-geometric {d['pyg_version']}, {d['threads']} thread(s) "
            f"(goal ours / PyG ≤ 1.0).\n\n"
            + _table(["model", "peer", "ours ms/epoch", "peer ms/epoch", "ours / peer", "ours test acc",
                      "peer test acc"], rows))


def render_word2vec(d: list) -> str:
    rows = []
    for r in d:
        for key, label in (("words_per_s", "training words/s"), ("seconds", "training seconds"),
                           ("ws353", "WordSim353 Spearman"), ("analogy", "analogy accuracy")):
            a, b = r["ours"].get(key), r["gensim"].get(key)
            fmt = (lambda v: f"{v:,.0f}") if key == "words_per_s" else (lambda v: f"{v:.3f}")
            rows.append([r["model"], r["dataset"], label, fmt(a) if a is not None else "-",
                         fmt(b) if b is not None else "-", _ratio(a, b)])
    first = d[0] if d else {}
    return (f"{first.get('epochs')} epoch(s), {first.get('threads')} thread(s), same settings on both sides.\n\n"
            + _table(["model", "dataset", "metric", "ours", "gensim", "ours / gensim"], rows))


def render_attention(d: dict) -> str:
    encoder = [[r["mode"], r["mask"], f"{r['ours_tokens_s']:,.0f}", f"{r['torch_tokens_s']:,.0f}",
                _ratio(r["ours_tokens_s"], r["torch_tokens_s"])] for r in d["encoder"]]
    pairs = zip(d["attention"][::2], d["attention"][1::2])
    attention = [[naive["length"], f"{naive['ms']:.2f}", f"{sdpa['ms']:.2f}", _ratio(sdpa["ms"], naive["ms"]),
                  f"{naive['peak_bytes'] / 2 ** 20:.1f}", f"{sdpa['peak_bytes'] / 2 ** 20:.1f}"]
                 for naive, sdpa in pairs]
    return (f"(a) Our encoder vs `nn.TransformerEncoder` of the same size (D {d['dim']}, {d['heads']} heads, "
            f"{d['layers']} layers, batch {d['batch']} × T {d['length']}; goal ours / torch ≥ 0.9).\n\n"
            + _table(["mode", "mask", "ours tokens/s", "torch tokens/s", "ours / torch"], encoder)
            + "\n\n(b) Written-out (naive) vs fused `F.scaled_dot_product_attention`, forward.\n\n"
            + _table(["T", "naive ms", "SDPA ms", "SDPA / naive time", "naive MB", "SDPA MB"], attention))


def render_serve(d: dict) -> str:
    rows = []
    for r in d["rows"]:
        label = r.get("label") or ("off (--max-batch 1)" if r["max_batch"] == 1
                                   else f"--max-batch {r['max_batch']} --max-delay-ms {r.get('max_delay_ms', 2):g}")
        cpu, batch = r.get("server_cpu_ms"), r.get("mean_batch", 1.0)
        ratios = r.get("pair_ratios") or []
        rows.append([r["concurrency"], label, f"{r['requests_per_s']:,.0f}", f"{r['p50_ms']:.2f}",
                     f"{r['p99_ms']:.2f}", f"{cpu:.3f}" if cpu is not None else "n/a",
                     f"{batch:.1f}" if batch is not None else "n/a", r["errors"], r["wrong"],
                     f"{sorted(ratios)[len(ratios) // 2]:.2f}" if ratios else "-"])  # the median round
    load = ", ".join(f"{x:.2f}" for x in d.get("loadavg", []))
    peer = (f"\n\nPeer skipped: {d['peer_skipped']}" if d.get("peer_skipped") else "")
    return (f"{d['requests']} requests per run on loopback, model {d.get('model', 'mlp')}, client "
            f"{d.get('client', 'raw')} ({d.get('body', 'binary')} tensors), {d['repeats']} alternating rounds "
            f"(medians); server and client share the cores (load average {load or 'n/a'}). Goals: default "
            f"within 10 % of off at 1 client, >= 1.8x off at 32, p99 no worse than off"
            f"{'; >= 1.5x the peer at equal or lower p99' if d.get('peer') else ''}.{peer}\n\n"
            + _table(["clients", "server", "requests/s", "p50 ms", "p99 ms", "server CPU ms/request",
                      "mean batch", "errors", "wrong answers", "throughput / zoo off"], rows)
            + "".join(f"\n- {line}" for line in d.get("goals", [])))


def render_compile(d: dict) -> str:
    rows = [[r["model"], r["mode"], f"{r['ms_per_step']:.3f}",
             f"{r['speedup_vs_eager']:.2f}" if r["speedup_vs_eager"] else "-", f"{r['warmup_s']:.1f}",
             r["error"] or ""] for r in d["rows"]]
    device = d["device"] + (f" ({d['cuda_name']})" if d.get("cuda_name") else "")
    note = "" if d["device"].startswith("cuda") else (
        "\n\nNo GPU here: the CUDA rows (compile and reduce-overhead/CUDA graphs vs eager, goal ≥ 2×) "
        "are produced by the same command on a machine with CUDA.")
    return (f"Training step (forward, loss, backward, Adam) on {device}, {d['threads']} thread(s), median of "
            f"3 blocks of {d['steps']} steps; compilation is in the untimed warm-up.\n\n"
            + _table(["model", "mode", "ms / step", "eager / this (speed-up)", "warm-up s", "note"], rows) + note)


def render_data_loading(d: dict) -> str:
    from data_loading import render  # benchmarks/ is on sys.path: run_all.py runs as a script

    return render(d)


def render_sweep(d: dict) -> str:
    plain = d["rows"][0]
    rows = [[r["pruner"], r.get("complete", 1), r.get("pruned", 0), r["epochs_trained"],
             _ratio(r["epochs_trained"], plain["epochs_trained"]), f"{r['best_val_accuracy']:.4f}",
             f"{r['best_test_accuracy']:.4f}", r["wall_seconds"]] for r in d["rows"]]
    return (f"mlp on {d['dataset']}, {d['trials']} trials of up to {d['epochs']} epochs (TPE); goal: pruning "
            f"saves ≥ 40 % of the epochs (saved {d['epochs_saved']:.0%}) with the same or a better best "
            f"validation accuracy ({d['pruned_not_worse']}), and the best trial beats the catalogue default "
            f"({d['beats_default']}).\n\n"
            + _table(["study", "complete", "pruned", "epochs trained", "epochs / unpruned", "best val accuracy",
                      "its test accuracy", "wall s"], rows))


# -- the benchmarks ---------------------------------------------------------------------------


def render_memory(d: dict) -> str:
    export = any("zoo_export_peak" in r for r in d["rows"])
    rows = []
    for r in d["rows"]:
        if "error" in r:
            rows.append([r["model"], f"failed: {r['error']}"] + [""] * (6 + export))
            continue
        work = (r["zoo_peak"] - r["zoo_baseline"], r["hand_peak"] - r["hand_baseline"])
        rows.append([r["model"], r["task"], f"{r['zoo_baseline']:.0f}", f"{r['hand_baseline']:.0f}",
                     f"{r['zoo_peak']:.0f}", f"{r['hand_peak']:.0f}", _ratio(r["zoo_peak"], r["hand_peak"]),
                     _ratio(*work)] + ([f"{r['zoo_export_peak']:.0f}"] if export else []))
    header = ["model", "task", "zoo after imports MiB", "hand after imports MiB", "`zoo train --no-export` peak MiB",
              "hand loop peak MiB", "ratio zoo / hand", "ratio (peak − imports)"]
    return (f"Peak RSS (`ru_maxrss`) of fresh processes, {d['epochs']} epoch(s), the same model, splits, batch "
            f"sizes and optimizer; the hand loop reads ready tensors (goal ratio ≤ 1.1).\n\n"
            + _table(header + (["zoo train with export, peak MiB"] if export else []), rows))


@dataclass
class Bench:
    key: str
    title: str
    script: str
    quick: list[str] | None          # None: --full only
    full: list[str]
    render: Callable | None = None   # None: the benchmark's own printed table is included
    needs: list[str] = field(default_factory=list)   # importable modules (the peer library)
    device: bool = False             # takes --device


def onnx_quick_models() -> list[str]:
    """One model per family for the quick mode: the first of each plugin in the catalogue."""
    from zoo.core.contract.catalogue import load_catalogue

    first: dict[str, str] = {}
    for entry in load_catalogue().models.values():
        first.setdefault(entry.plugin, entry.name)
    args = []
    for name in first.values():
        args += ["--model", name]
    return args


BENCHMARKS = [
    Bench("startup", "CLI start-up: `zoo list` vs `timm.list_models()`", "cli_startup.py",
          ["--repeats", "3"], ["--repeats", "10"], render_startup),
    Bench("trainer", "Trainer overhead vs a hand-written loop", "trainer_overhead.py",
          ["--epochs", "1", "--repeats", "1"], [], render_trainer, device=True),
    Bench("memory", "Peak RSS of `zoo train` vs a hand-written loop, one model per family", "train_memory.py",
          ["--epochs", "1", "--models", "mlp,gcn,skipgram"], ["--epochs", "2", "--export"], render_memory),
    Bench("cnn", "CNN training throughput vs a DataLoader loop", "cnn_throughput.py",
          ["--steps", "30", "--batch-size", "64", "--warmup", "3"], [], render_cnn, device=True),
    Bench("onnx", "onnxruntime vs torch eager latency, per family", "onnx_latency.py",
          ["--reps", "10", "--warmup", "2", "--batch", "1", "--batch", "64", "@onnx_quick_models"],
          ["--all", "--reps", "20", "--warmup", "3", "--rounds", "3", "--threads", "2"], render_onnx, device=True),
    Bench("pyg", "GNN vs PyTorch Geometric (Cora)", "gnn_vs_pyg.py",
          ["--epochs", "20"], [], render_pyg, needs=["torch_geometric"]),
    Bench("gnn-scale", "Full-batch GCN/GAT vs PyG on generated graphs (time, memory vs size)", "gnn_scale.py",
          ["--sizes", "2000", "10000", "--epochs", "2"], ["--sizes", "10000", "100000", "1000000"],
          needs=["torch_geometric"]),
    Bench("gnn-sampled", "Neighbour-sampled GraphSAGE vs PyG's NeighborLoader (torch-sparse's sampler, "
          "built at run time), Cora", "gnn_sampled.py",
          ["--epochs", "20"], ["--epochs", "100"], needs=["torch_geometric"]),
    Bench("word2vec", "word2vec vs gensim", "word2vec_vs_gensim.py",
          ["--epochs", "1", "--threads", "1"], [], render_word2vec,
          needs=["gensim"], device=True),
    Bench("serve", "`zoo serve` load: dynamic batching on vs off", "serve_load.py",
          ["--requests", "2000", "--repeats", "1"], [], render_serve),
    # MLServer lives in its own virtual environment (benchmarks/mlserver/README.md): without it the
    # zoo rows are measured and the peer is reported as skipped, with the reason.
    Bench("serve-peer", "`zoo serve` vs MLServer: the same ONNX model, JSON tensors", "serve_load.py",
          ["--requests", "2000", "--repeats", "1", "--peer", "mlserver"], ["--peer", "mlserver"], render_serve),
    Bench("attention", "Transformer encoder vs nn.TransformerEncoder; naive vs SDPA attention", "attention.py",
          ["--steps", "2", "--repeats", "1", "--lengths", "128", "512"], [], render_attention, device=True),
    Bench("compile", "Training step: eager vs torch.compile (vs CUDA graphs on GPU)", "compile_speed.py",
          ["--steps", "10", "--warmup", "3", "--batch-size", "64"], [], render_compile, device=True),
    Bench("data", "Own data loading: zoo table / image-folder vs pandas.read_csv / ImageFolder + DataLoader",
          "data_loading.py", ["--quick"], [], render_data_loading, needs=["pandas", "PIL"]),
    Bench("sweep", "`zoo sweep`: 20 trials with vs without pruning (MLP)", "sweep.py",
          [], ["--full"], render_sweep, needs=["optuna"]),
    Bench("onnx-gnn", "GNN-sized inputs: onnxruntime vs torch eager", "onnx_latency_gnn.py", None, []),
    Bench("onnx-opset", "Transformers in onnxruntime: opset 18 vs opset 23 (fused Attention) vs torch eager",
          "onnx_opset_compare.py", None, ["--model", "transformer-classifier", "--model", "vit", "--model",
                                          "transformer-seq2seq", "--rounds", "3"]),
    Bench("onnx-options", "onnxruntime session options (denormal flush, SkipLayerNormFusion, optimisation level) "
          "vs torch eager, transformers", "onnx_session_options.py", None,
          ["--model", "transformer-classifier", "--model", "transformer-tagger", "--model", "local-transformer",
           "--rounds", "3"]),
    Bench("tf32", "onnxruntime CUDA with and without TF32 vs float32 torch (GPU and onnxruntime-gpu only)",
          "ort_tf32_parity.py", None, []),
    Bench("scatter", "Sum-aggregation formulations (design study)", "gnn_scatter_formulations.py", None, []),
    Bench("gnn-accuracy", "GNN accuracy over seeds/folds", "gnn_results.py", None, []),
    Bench("ctc-beam", "CTC: greedy vs prefix beam search on a crnn-ctc run (needs RUN_DIR)", "ctc_beam.py", None, []),
]


# -- machine ------------------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    import importlib

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = [("date (UTC)", time.strftime("%Y-%m-%d %H:%M", time.gmtime())),
            ("CPU", f"{cpu}, {os.cpu_count()} logical cores ({usable} usable by this process)"),
            ("OS", f"{platform.system()} {platform.release()}"),
            ("python", platform.python_version()),
            ("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "unset"))]
    import torch

    gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
    rows.append(("GPU", gpu + (f" (CUDA {torch.version.cuda})" if torch.cuda.is_available() else "")))
    for name in ("torch", "onnxruntime", "onnx", "numpy", "torch_geometric", "gensim", "timm"):
        try:
            rows.append((name, getattr(importlib.import_module(name), "__version__", "?")))
        except ImportError:
            rows.append((name, "not installed"))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        rows.append(("zoo commit", (commit or "unknown") + (" (with local changes)" if dirty else "")))
    except (OSError, subprocess.SubprocessError):
        pass
    if hasattr(os, "getloadavg"):
        rows.append(("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())))
    return rows


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_one(bench: Bench, full: bool, device: str, timeout: float, workdir: Path) -> tuple[str, str, float]:
    """(status, Markdown body, seconds) of one benchmark."""
    missing = [m for m in bench.needs if not _available(m)]
    if missing:
        return "skipped", f"Skipped: {', '.join(missing)} is not installed (`pip install {' '.join(missing)}`).", 0.0
    args = bench.full if full else bench.quick
    if args is None:
        return "skipped", f"Not run in quick mode (a long study); `python benchmarks/run_all.py --full` runs " \
                          f"`python benchmarks/{bench.script}`.", 0.0
    expanded: list[str] = []
    for arg in args:
        expanded += globals()[arg[1:]]() if arg.startswith("@") else [arg]
    if bench.device:  # "auto" is resolved here: onnx_latency and word2vec take cpu or cuda only
        expanded += ["--device", _resolve_device(device)]
    out = workdir / f"{bench.key}.json"
    cmd = [sys.executable, str(HERE / bench.script), *expanded]
    if bench.render is not None:
        cmd += ["--json", str(out)]
    print(f"[run_all] {bench.key}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "failed", f"Timed out after {timeout:.0f} s.", time.perf_counter() - started
    seconds = time.perf_counter() - started
    shown = "python benchmarks/" + " ".join([bench.script, *expanded])
    if proc.returncode != 0 and not (bench.render is not None and out.exists()):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return "failed", f"`{shown}` failed (exit code {proc.returncode}):\n\n```\n" + "\n".join(tail) + "\n```", seconds
    if bench.render is None:
        body = proc.stdout.strip()
    else:
        body = bench.render(json.loads(out.read_text()))
    return "ok", f"`{shown}` ({seconds:.0f} s)\n\n{body}", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="The documented sizes (slow) and the studies.")
    parser.add_argument("--only", action="append", choices=[b.key for b in BENCHMARKS],
                        help="Run only these benchmarks (repeatable).")
    parser.add_argument("--device", default="auto", help="For the training benchmarks: auto, cpu, cuda.")
    parser.add_argument("--timeout", type=float, default=1800, help="Seconds allowed per benchmark.")
    parser.add_argument("--note", default="", help="A line about the machine for the report (e.g. shared).")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)

    started = time.time()
    details = machine()
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for bench in BENCHMARKS:
            if args.only and bench.key not in args.only:
                continue
            status, body, seconds = run_one(bench, args.full, args.device, args.timeout, Path(tmp))
            print(f"[run_all] {bench.key}: {status} ({seconds:.0f} s)", file=sys.stderr, flush=True)
            sections.append(f"## {bench.title}\n\n{body}\n")
    if hasattr(os, "getloadavg"):
        details.append(("load average at end (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())))
    mode = "full" if args.full else "quick"
    command = "python benchmarks/run_all.py" + (" --full" if args.full else "") + \
        "".join(f" --only {k}" for k in args.only or [])
    header = [
        "# Benchmark results\n",
        f"Generated by `{command}` ({mode} mode, {(time.time() - started) / 60:.1f} min). Every figure is "
        "next to its peer measured in the same run, on the same machine, and the ratio of the two is what "
        "to compare between machines; absolute times depend on the machine and its load.\n",
    ]
    if args.note:
        header.append(f"**Note:** {args.note}\n")
    header.append(_table(["machine", ""], [[k, v] for k, v in details]) + "\n")
    args.out.write_text("\n".join(header + sections))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
