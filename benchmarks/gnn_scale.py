"""Full-batch GCN and GAT as the graph grows: zoo's models vs PyTorch Geometric's GCNConv / GATConv.

Generated graphs (a seeded stochastic block model, :func:`block_graph`): ``N`` nodes in ``C``
classes, mean degree ~``D`` (both directions stored), a share ``--homophily`` of each node's
edges inside its class, and Gaussian features around a class mean, so accuracy means something.
For every (side, model, size) a **fresh subprocess** builds the graph and the model, resets the
kernel's peak-RSS counter (``/proc/self/clear_refs``), trains ``--epochs`` full-batch epochs
(forward on the whole graph, cross-entropy on the training nodes, backward, Adam step) after one
untimed warm-up epoch, and reports the median epoch time, the peak RSS over the baseline
(``VmHWM − VmRSS`` before training: the memory training adds, graph and model excluded) and the
test accuracy after the epochs. The process CPU time per epoch is reported too: on a shared
machine it is steadier than the wall time. The parent kills a child whose RSS passes ``--max-rss-gb`` or that
runs past ``--timeout`` and then stops that (side, model) series: the largest size each handles::

    python benchmarks/gnn_scale.py --sizes 10000 100000 1000000 --plot gnn_scale.png

Same widths on both sides (GCN 16 hidden, GAT 8 × 8 heads, 2 layers, dropout as in the catalogue);
features are not row-normalised (dense Gaussian features: no sparse path either side).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent


# -- the graph ----------------------------------------------------------------------------------


def block_graph(n: int, degree: float = 10.0, classes: int = 8, features: int = 64, homophily: float = 0.8,
                seed: int = 0) -> dict[str, torch.Tensor]:
    """A stochastic-block-model-like graph with class-correlated features, vectorised.

    Each node draws ``degree / 2`` partners: with probability ``homophily`` a uniform node of its
    own class, else a uniform node; the pairs are stored in both directions, duplicates and loops
    dropped (mean degree ≈ ``degree``). Features ``x_i = μ_{y_i} + ε``, ``μ_c ~ N(0, 0.3² I)``,
    ``ε ~ N(0, I)``. Splits: 20 % train, 10 % val, the rest test (random, seeded).
    Returns ``x [N, F]``, ``edge_index [2, E]``, ``y [N]`` and the three masks.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    by_class = torch.argsort(y)
    counts = torch.bincount(y, minlength=classes)
    starts = torch.cumsum(counts, 0) - counts
    half = max(1, int(round(degree / 2)))
    src = torch.arange(n).repeat_interleave(half)
    inside = torch.rand(src.shape[0], generator=g) < homophily
    cls = y[src]
    pick = (torch.rand(src.shape[0], generator=g) * counts[cls]).long().clamp_max(counts[cls] - 1)
    dst = torch.where(inside, by_class[starts[cls] + pick], torch.randint(0, n, (src.shape[0],), generator=g))
    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = torch.unique(torch.cat([dst * n + src, src * n + dst]))     # both directions, no duplicates
    edge_index = torch.stack([key % n, key // n])
    mu = torch.randn(classes, features, generator=g) * 0.3
    x = mu[y] + torch.randn(n, features, generator=g)
    order = torch.randperm(n, generator=g)
    masks = {}
    for name, (lo, hi) in {"train": (0.0, 0.2), "val": (0.2, 0.3), "test": (0.3, 1.0)}.items():
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[int(lo * n):int(hi * n)]] = True
        masks[name] = mask
    return {"x": x, "edge_index": edge_index, "y": y, **masks}


# -- the models ---------------------------------------------------------------------------------


def zoo_model(name: str, features: int, classes: int) -> nn.Module:
    from zoo.core.train.data import DataInfo
    from zoo.plugins.gnn.models import MODELS

    cls, config_class = MODELS[name]
    info = DataInfo(input_shape=(features,), num_classes=classes, extra={"level": "node"})
    dropout = {"gcn": 0.5, "gat": 0.6}[name]            # the catalogue's, and PygGCN's / PygGAT's
    return cls(config_class(name=name, row_normalize=False, dropout=dropout), info)


class PygTwoLayer(nn.Module):
    """Two PyG convolutions ``conv`` (a torch_geometric.nn class name) with ReLU and dropout between."""

    def __init__(self, conv: str, f: int, c: int, hidden: int = 16, dropout: float = 0.5) -> None:
        super().__init__()
        import torch_geometric.nn as pyg

        layer = getattr(pyg, conv)
        self.conv1, self.conv2, self.dropout = layer(f, hidden), layer(hidden, c), dropout

    def forward(self, x, edge_index):
        x = F.relu(self.conv1(F.dropout(x, self.dropout, self.training), edge_index))
        return self.conv2(F.dropout(x, self.dropout, self.training), edge_index)


def PygGCN(f: int, c: int) -> PygTwoLayer:  # noqa: N802 - used as a model class
    return PygTwoLayer("GCNConv", f, c)


class PygGAT(nn.Module):
    def __init__(self, f: int, c: int, hidden: int = 8, heads: int = 8, dropout: float = 0.6) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        self.conv1 = GATConv(f, hidden, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden * heads, c, heads=1, concat=False, dropout=dropout)
        self.dropout = dropout

    def forward(self, x, edge_index):
        x = F.elu(self.conv1(F.dropout(x, self.dropout, self.training), edge_index))
        return self.conv2(F.dropout(x, self.dropout, self.training), edge_index)


# -- one measurement (child process) ------------------------------------------------------------


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(side: str, model_name: str, n: int, args) -> dict:
    torch.manual_seed(args.seed)
    graph = block_graph(n, args.degree, args.classes, args.features, args.homophily, args.seed)
    x, edge_index, y = graph["x"], graph["edge_index"], graph["y"]
    if side == "zoo":
        model = zoo_model(model_name, args.features, args.classes)
    else:
        model = (PygGCN if model_name == "gcn" else PygGAT)(args.features, args.classes)
    lr = 0.01 if model_name == "gcn" else 0.005
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    train = graph["train"]

    def epoch() -> tuple[float, float]:
        started, cpu_started = time.perf_counter(), time.process_time()
        model.train()
        loss = F.cross_entropy(model(x, edge_index)[train], y[train])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started, time.process_time() - cpu_started

    import gc

    gc.collect()
    baseline = _status("VmRSS")
    reset = _reset_peak()
    times = [epoch() for _ in range(args.warmup + args.epochs)][args.warmup:]
    peak = _status("VmHWM")
    model.eval()
    with torch.no_grad():
        pred = model(x, edge_index).argmax(1)
    test = graph["test"]
    return {"side": side, "model": model_name, "nodes": n, "edges": int(edge_index.shape[1]),
            "ms": 1000 * statistics.median(t for t, _ in times),
            "cpu_ms": 1000 * statistics.median(c for _, c in times), "peak_mb": (peak - baseline) / 2**20,
            "peak_reset": reset, "test_acc": float((pred[test] == y[test]).float().mean()),
            "epochs": args.epochs}


# -- the parent: one subprocess per measurement, RSS watchdog ----------------------------------


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(side: str, model: str, n: int, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, model, str(n),
           "--degree", str(args.degree), "--classes", str(args.classes), "--features", str(args.features),
           "--homophily", str(args.homophily), "--epochs", str(args.epochs), "--warmup", str(args.warmup),
           "--seed", str(args.seed), "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    started, limit, worst = time.monotonic(), args.max_rss_gb * 2**30, 0
    failure = None
    while proc.poll() is None:
        rss = _rss(proc.pid)
        worst = max(worst, rss)
        if rss > limit:
            failure = f"over {args.max_rss_gb:g} GB RSS"
        elif time.monotonic() - started > args.timeout:
            failure = f"over {args.timeout:.0f} s"
        if failure:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    base = {"side": side, "model": model, "nodes": n, "max_rss_mb": worst / 2**20}
    if failure is None and proc.returncode != 0:
        failure = (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:200]
        if proc.returncode < 0:
            failure = f"killed by signal {-proc.returncode} (out of memory?)"
    if failure:
        return {**base, "failed": failure}
    return {**base, **json.loads(out.strip().splitlines()[-1])}


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (side, model) in sorted({(r["side"], r["model"]) for r in rows}):
        ok = [r for r in rows if r["side"] == side and r["model"] == model and "failed" not in r]
        if not ok:
            continue
        style = "-o" if side == "zoo" else "--s"
        for ax, key in zip(axes, ("ms", "peak_mb")):
            ax.plot([r["nodes"] for r in ok], [max(r[key], 1e-3) for r in ok], style, label=f"{side} {model}")
    for ax, label in zip(axes, ("epoch time (ms)", "peak RSS added by training (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes (mean degree ~10)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Full-batch GCN / GAT: zoo vs PyG")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(rows: list[dict]) -> str:
    """Markdown: one line per (model, size), zoo and PyG side by side (a failed run says why)."""
    lines = ["| model | nodes | edges | zoo ms/epoch | PyG ms/epoch | zoo / PyG time | zoo / PyG CPU time | "
             "zoo peak MiB | PyG peak MiB | zoo / PyG memory | zoo test acc | PyG test acc |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(r, key, fmt):
        if r is None:
            return "not run"
        return r["failed"] if "failed" in r else format(r[key], fmt)

    for model in sorted({r["model"] for r in rows}):
        for n in sorted({r["nodes"] for r in rows if r["model"] == model}):
            z, p = ({r["side"]: r for r in rows if r["model"] == model and r["nodes"] == n}.get(side)
                    for side in ("zoo", "pyg"))
            both = bool(z and p and "failed" not in z and "failed" not in p)
            edges = next((f"{r['edges']:,}" for r in (z, p) if r and "edges" in r), "?")
            time_ratio = f"{z['ms'] / p['ms']:.2f} | {z['cpu_ms'] / p['cpu_ms']:.2f}" if both else "– | –"
            memory_ratio = f"{z['peak_mb'] / max(p['peak_mb'], 1e-9):.2f}" if both else "–"
            lines.append(f"| {model} | {n:,} | {edges} | {cell(z, 'ms', '.1f')} | {cell(p, 'ms', '.1f')} | "
                         f"{time_ratio} | {cell(z, 'peak_mb', '.0f')} | {cell(p, 'peak_mb', '.0f')} | "
                         f"{memory_ratio} | {cell(z, 'test_acc', '.3f')} | {cell(p, 'test_acc', '.3f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="full-batch GCN/GAT epoch time and memory vs graph size: zoo vs PyG")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--models", nargs="+", default=["gcn", "gat"], choices=["gcn", "gat"])
    parser.add_argument("--sides", nargs="+", default=["zoo", "pyg"], choices=["zoo", "pyg"])
    parser.add_argument("--degree", type=float, default=10.0, help="Mean degree (both directions counted).")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--homophily", type=float, default=0.8)
    parser.add_argument("--epochs", type=int, default=3, help="Timed epochs (after --warmup untimed ones).")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-rss-gb", type=float, default=10.0, help="Kill a run whose RSS passes this.")
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds allowed per run.")
    parser.add_argument("--plot", help="Save the log-log plot (PNG) here.")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "MODEL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        side, model, n = args.child
        print(json.dumps(measure(side, model, int(n), args)))
        return 0
    if "pyg" in args.sides:
        try:
            import torch_geometric  # noqa: F401
        except ImportError:
            print("PyG side skipped: pip install torch-geometric", file=sys.stderr)
            args.sides = [s for s in args.sides if s != "pyg"]
    rows = []
    for model in args.models:
        for side in args.sides:
            failed_at = None
            for n in sorted(args.sizes):
                if failed_at is not None:
                    rows.append({"side": side, "model": model, "nodes": n, "failed": f"not run (failed at {failed_at:,})"})
                    continue
                row = run_child(side, model, n, args)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                if "failed" in row:
                    failed_at = n
    largest = {f"{side} {model}": max((r["nodes"] for r in rows if r["side"] == side and r["model"] == model
                                       and "failed" not in r), default=None)
               for model in args.models for side in args.sides}
    print(f"Generated block graphs (mean degree ~{args.degree:g}, {args.classes} classes, {args.features} features), "
          f"median of {args.epochs} epoch(s) after {args.warmup} warm-up, {args.threads} thread(s), "
          f"RSS limit {args.max_rss_gb:g} GB, torch {torch.__version__}\n")
    print(table(rows))
    print("\nLargest graph handled: " + ", ".join(f"{k} {v:,}" if v else f"{k} none" for k, v in largest.items()))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "largest": largest, "threads": args.threads,
                                               "epochs": args.epochs, "max_rss_gb": args.max_rss_gb}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
