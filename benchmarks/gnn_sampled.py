"""Neighbour-sampled GraphSAGE: zoo's sampler + GraphSAGE vs PyG's ``NeighborLoader`` + SAGEConv.

The same graph, fan-outs, batch size, widths (2 layers, 16 hidden, mean aggregator, dropout 0.5),
optimiser (Adam, lr 0.01, weight decay 5e-4) and plain loop on both sides: every epoch a shuffled
pass over the training nodes in mini-batches of seeds (sampling included in the epoch time),
cross-entropy on the seeds; then a full-batch evaluation (not timed); test accuracy at the best
validation accuracy; wall and process CPU time per epoch (the CPU time is steadier on a shared
machine). Graphs: Cora (Planetoid split, ``--data-dir``), or a generated block graph
(``--nodes N``, :func:`gnn_scale.block_graph`)::

    python benchmarks/gnn_sampled.py --epochs 50 --data-dir ../shared/data
    python benchmarks/gnn_sampled.py --nodes 1000000 --epochs 1 --batch-size 1024

PyG's ``NeighborLoader`` needs ``pyg-lib`` or ``torch-sparse`` (compiled extensions). Without
either, the PyG row is PyG's SAGEConv model trained on **zoo's** sampled batches (said in the
table): that compares the models' compute, not the samplers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def PygSAGE(f: int, c: int) -> nn.Module:  # noqa: N802 - used as a model class
    from gnn_scale import PygTwoLayer  # benchmarks/ is on sys.path (above)

    return PygTwoLayer("SAGEConv", f, c)


def load(args) -> dict:
    """``x`` (raw), ``x_pyg`` (row-normalised once for Cora, as PyG's examples), edges, labels, masks."""
    if args.nodes:
        from gnn_scale import block_graph

        g = block_graph(args.nodes, seed=args.seed)
        return {**g, "x_pyg": g["x"], "name": f"block graph, {args.nodes:,} nodes", "row_normalize": False}
    from zoo.plugins.gnn.data import load_planetoid

    d = load_planetoid(None, args.data_dir)
    x = d.train.x
    return {"x": x, "x_pyg": x / x.abs().sum(-1, keepdim=True).clamp_min(1e-12), "edge_index": d.train.edge_index,
            "y": d.train.y, "train": d.train.mask, "val": d.val.mask, "test": d.test.mask, "name": "Cora",
            "row_normalize": True}


def zoo_batches(g: dict, args):
    from zoo.plugins.gnn.sampling import SampledNodeSplit

    split = SampledNodeSplit(g["x"], g["edge_index"], g["y"], g["train"], args.fanouts, args.seed)

    def epoch(generator):
        order = torch.randperm(len(split), generator=generator)
        for begin in range(0, len(split), args.batch_size):
            b = split.batch(order[begin:begin + args.batch_size])
            yield b["x"], b["edge_index"], b["y"], b["mask"]
    return epoch


def pyg_batches(g: dict, args):
    """NeighborLoader when pyg-lib or torch-sparse is there; else None."""
    import torch_geometric.typing as t

    if not (t.WITH_PYG_LIB or t.WITH_TORCH_SPARSE):
        return None
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader

    data = Data(x=g["x_pyg"], edge_index=g["edge_index"], y=g["y"])
    loader = NeighborLoader(data, num_neighbors=args.fanouts, batch_size=args.batch_size,
                            input_nodes=g["train"], shuffle=True)

    def epoch(generator):
        for b in loader:
            mask = torch.arange(b.num_nodes) < b.batch_size
            yield b.x, b.edge_index, b.y, mask
    return epoch


def fit(model: nn.Module, batches, g: dict, x_full: torch.Tensor, args) -> dict:
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    times, cpu, best_val, test_at_best = [], [], -1.0, 0.0
    for _ in range(args.epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        model.train()
        for x, edge_index, y, mask in batches(generator):
            loss = F.cross_entropy(model(x, edge_index)[mask], y[mask])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        model.eval()
        with torch.no_grad():
            pred = model(x_full, g["edge_index"]).argmax(1)
        val = float((pred[g["val"]] == g["y"][g["val"]]).float().mean())
        if val > best_val:
            best_val = val
            test_at_best = float((pred[g["test"]] == g["y"][g["test"]]).float().mean())
    return {"ms": 1000 * statistics.median(times), "cpu_ms": 1000 * statistics.median(cpu), "test_acc": test_at_best, "val_acc": best_val}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="neighbour-sampled GraphSAGE: zoo vs PyG NeighborLoader")
    parser.add_argument("--nodes", type=int, default=None, help="A generated block graph of N nodes (default: Cora).")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[25, 10])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from zoo.core.train.data import DataInfo
    from zoo.plugins.gnn.models import GraphSAGE, GraphSAGEConfig

    g = load(args)
    f, c = g["x"].shape[1], int(g["y"].max()) + 1
    rows = []
    torch.manual_seed(args.seed)
    ours = GraphSAGE(GraphSAGEConfig(name="graphsage-sampled", row_normalize=g["row_normalize"]),
                     DataInfo(input_shape=(f,), num_classes=c, extra={"level": "node"}))
    rows.append({"side": "zoo sampler + zoo GraphSAGE", **fit(ours, zoo_batches(g, args), g, g["x"], args)})
    try:
        import torch_geometric  # noqa: F401
    except ImportError:
        print("PyG side skipped: pip install torch-geometric", file=sys.stderr)
    else:
        loader = pyg_batches(g, args)
        label = "PyG NeighborLoader + PyG SAGEConv"
        if loader is None:
            label = "zoo sampler + PyG SAGEConv (NeighborLoader needs pyg-lib or torch-sparse: not installed)"
            # PyG gets the row-normalised features as batches of zoo's sampler
            loader = zoo_batches({**g, "x": g["x_pyg"]}, args)
        torch.manual_seed(args.seed)
        rows.append({"side": label, **fit(PygSAGE(f, c), loader, g, g["x_pyg"], args)})
    print(f"{g['name']}: {int(g['edge_index'].shape[1]):,} edges, {int(g['train'].sum()):,} training nodes, "
          f"fan-outs {args.fanouts}, {args.batch_size} seeds a batch, {args.epochs} epoch(s), median epoch time, "
          f"{args.threads} thread(s), torch {torch.__version__}\n")
    print("| side | ms/epoch | CPU ms/epoch | test acc (best val) |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['side']} | {r['ms']:.1f} | {r['cpu_ms']:.1f} | {r['test_acc']:.3f} |")
    if len(rows) == 2:
        print(f"\nzoo / PyG epoch time: {rows[0]['ms'] / rows[1]['ms']:.2f} (CPU time: "
              f"{rows[0]['cpu_ms'] / rows[1]['cpu_ms']:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"graph": g["name"], "fanouts": args.fanouts,
                                               "batch_size": args.batch_size, "epochs": args.epochs, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
