"""Our GCN and GAT against PyTorch Geometric's GCNConv / GATConv models of the same size on Cora.

Same data (our Planetoid loader), same hyper-parameters, same plain training loop for both
(one full-batch Adam step + one evaluation forward per epoch, test accuracy at the best validation
accuracy), same machine, one run each, interleaved in blocks so both see the same load. Features
are row-normalised once for PyG (its examples' ``T.NormalizeFeatures``); ours get the raw features
and normalise them in the model (``row_normalize``), which finds the non-zeros once per input and
feeds the first layer a sparse matrix::

    pip install torch-geometric          # pure Python; uses torch's own scatter ops here
    python benchmarks/gnn_vs_pyg.py [--epochs 200] [--threads 1]

Prints a Markdown table: ms per epoch, the ratio ours / PyG (goal ≤ 1.0) and test accuracy.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def row_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.abs().sum(-1, keepdim=True).clamp_min(1e-12)


def input_dropout(sparse: bool):
    """PyG's examples use dense F.dropout on the features; ``sparse`` gives PyG our sparse dropout
    too, so the comparison isolates message passing."""
    if sparse:
        from zoo.plugins.gnn.graph import sparse_dropout

        return sparse_dropout
    return lambda x, p, training: F.dropout(x, p, training)


class PygGCN(nn.Module):
    def __init__(self, f: int, hidden: int, c: int, dropout: float, sparse: bool) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.conv1, self.conv2, self.dropout = GCNConv(f, hidden), GCNConv(hidden, c), dropout
        self.input_dropout = input_dropout(sparse)

    def forward(self, x, edge_index):
        x = self.input_dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))
        return self.conv2(F.dropout(x, self.dropout, self.training), edge_index)


class PygGAT(nn.Module):
    def __init__(self, f: int, hidden: int, heads: int, c: int, dropout: float, sparse: bool) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        self.input_dropout = input_dropout(sparse)
        self.conv1 = GATConv(f, hidden, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden * heads, c, heads=1, concat=False, dropout=dropout)
        self.dropout = dropout

    def forward(self, x, edge_index):
        x = self.input_dropout(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, edge_index))
        return self.conv2(F.dropout(x, self.dropout, self.training), edge_index)


WARMUP = 5


def fit(model: nn.Module, data, x: torch.Tensor, lr: float, weight_decay: float, epochs: int,
        warmup: int = WARMUP) -> tuple[float, float, float]:
    """(wall ms per epoch, test accuracy at the best validation accuracy, CPU ms per epoch).

    CPU time (``time.process_time``) is the steadier figure when other work shares the cores.
    A throw-away copy of the model first trains ``warmup`` untimed epochs (allocator, caches and
    kernels warm for whichever implementation runs first); the RNG is restored afterwards, so
    the timed run draws the same dropout masks as without it.
    """
    if warmup:
        rng = torch.get_rng_state()
        fit(copy.deepcopy(model), data, x, lr, weight_decay, warmup, warmup=0)
        torch.set_rng_state(rng)
    g = data.train
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best_val, test_at_best, seconds, cpu = -1.0, 0.0, 0.0, 0.0
    for _ in range(epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        model.train()
        out = model(x, g.edge_index)
        loss = F.cross_entropy(out[data.train.mask], g.y[data.train.mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(x, g.edge_index).argmax(1)
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        val = (pred[data.val.mask] == g.y[data.val.mask]).float().mean().item()
        if val > best_val:
            best_val = val
            test_at_best = (pred[data.test.mask] == g.y[data.test.mask]).float().mean().item()
    return 1000 * seconds / epochs, test_at_best, 1000 * cpu / epochs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="epoch time and accuracy: ours vs PyG on Cora")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each implementation, in alternating order; median times reported")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import torch_geometric
    except ImportError:
        print("pip install torch-geometric", file=sys.stderr)
        return 2
    from zoo.core import api
    from zoo.plugins.gnn.data import load_planetoid

    data = load_planetoid(None, args.data_dir)
    f, c = data.info.input_size, data.info.num_classes
    pyg_x = row_normalize(data.train.x)
    rows, records = [], []
    for name in ("gcn", "gat"):
        _, spec, config = api.resolve_config(name)
        m, o = config.model, config.optim
        runs: dict[str, list] = {"ours": [], "pyg": [], "pyg+sparse": []}
        order = list(runs)
        for repeat in range(args.repeats):
            # The order alternates between repeats so slow drifts of the machine (frequency,
            # other jobs) do not always fall on the same implementation.
            for impl in (order if repeat % 2 == 0 else order[::-1]):
                torch.manual_seed(args.seed)
                if impl == "ours":
                    model = api.build_model(spec, config, data.info)
                elif name == "gcn":
                    model = PygGCN(f, m.hidden, c, m.dropout, sparse=impl == "pyg+sparse")
                else:
                    model = PygGAT(f, m.hidden, m.heads, c, m.dropout, sparse=impl == "pyg+sparse")
                n_params = sum(p.numel() for p in model.parameters())
                # ours normalises inside the model (config row_normalize, found once per input);
                # PyG's examples normalise once at load (T.NormalizeFeatures): so does its side here
                x = data.train.x if impl == "ours" else pyg_x
                runs[impl].append((*fit(model, data, x, o.lr, o.weight_decay, args.epochs), n_params))
        # Median times; the accuracy is that of the first repeat (same seed: the same on the CPU).
        results = {impl: (statistics.median(r[0] for r in rs), rs[0][1], statistics.median(r[2] for r in rs), rs[0][3])
                   for impl, rs in runs.items()}
        for pyg in ("pyg", "pyg+sparse"):
            ratio = results["ours"][0] / results[pyg][0]
            cpu_ratio = results["ours"][2] / results[pyg][2]
            label = "PyG (dense input dropout, as in its examples)" if pyg == "pyg" else "PyG + our sparse input dropout"
            rows.append(f"| {name} | {label} | {results['ours'][0]:.1f} | {results[pyg][0]:.1f} | {ratio:.2f} | "
                        f"{results['ours'][2]:.1f} | {results[pyg][2]:.1f} | {cpu_ratio:.2f} | "
                        f"{results['ours'][1]:.3f} | {results[pyg][1]:.3f} | {results['ours'][3]:,} / {results[pyg][3]:,} |")
            print(rows[-1], file=sys.stderr, flush=True)
            records.append({"model": name, "peer": label, "ours_ms": results["ours"][0],
                            "peer_ms": results[pyg][0], "ours_acc": results["ours"][1],
                            "peer_acc": results[pyg][1]})
    print(f"Cora, {args.epochs} epochs, seed {args.seed}, median of {args.repeats} run(s) each, torch {torch.__version__}, torch-geometric "
          f"{torch_geometric.__version__}, {args.threads} thread(s)\n")
    print("| model | peer | ours ms/epoch | peer ms/epoch | ratio ours/peer | ours CPU ms/epoch | peer CPU ms/epoch | "
          "CPU ratio | ours test acc | peer test acc | parameters ours / peer |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump({"epochs": args.epochs, "threads": args.threads,
                       "pyg_version": torch_geometric.__version__, "rows": records}, fh)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    sys.exit(main())
