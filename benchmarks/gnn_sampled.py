"""Neighbour-sampled GraphSAGE: zoo's sampler + GraphSAGE vs PyG's ``NeighborLoader`` + SAGEConv.

The same graph, fan-outs, batch size, widths (2 layers, 16 hidden, mean aggregator, dropout 0.5),
optimiser (Adam, lr 0.01, weight decay 5e-4) and plain loop on every side: every epoch a shuffled
pass over the training nodes in mini-batches of seeds (sampling included in the epoch time),
cross-entropy on the seeds; then a full-batch evaluation (not timed); test accuracy at the best
validation accuracy; wall and process CPU time per epoch (the CPU time is steadier on a shared
machine), each split into the time spent getting batches (sampler, feature gather) and the rest
(forward, backward, step). Graphs: Cora (Planetoid split, ``--data-dir``), or a generated block
graph (``--nodes N``, :func:`gnn_scale.block_graph`)::

    python benchmarks/gnn_sampled.py --epochs 50 --data-dir ../shared/data
    python benchmarks/gnn_sampled.py --nodes 1000000 --epochs 1 --batch-size 1024

Three sides: zoo's sampler + zoo's GraphSAGE; PyG's real ``NeighborLoader`` + PyG's SAGEConv
(samplers and models compared); zoo's sampler + PyG's SAGEConv (models only). PyG's
``NeighborLoader`` needs ``pyg-lib`` or ``torch-sparse``; without either, torch-sparse's CPU
sampler is compiled from ``benchmarks/pyg_sampler/`` (g++ and ninja; the build folder is kept,
so only the first run compiles) and PyG's sampler alone is pointed at it. When that cannot be
built, the ``NeighborLoader`` row is left out with a one-line reason.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
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
    """PyG's ``NeighborLoader`` (directed, without replacement, shuffled seeds from the training
    mask); ``(epoch, how)``, or ``(None, why not)`` when no sampler for it can be had."""
    import torch_geometric.typing as t

    how = "pyg-lib" if t.WITH_PYG_LIB else "torch-sparse" if t.WITH_TORCH_SPARSE else None
    if how is None:
        import pyg_sampler  # benchmarks/ is on sys.path (above)

        why = "not built (--no-build)" if args.no_build else pyg_sampler.build(args.build_dir)
        if why:
            return None, why
        edges = pyg_sampler.check()                     # the op's output is a valid neighbour sample
        print(f"PyG's NeighborLoader runs on torch-sparse's sampler built from benchmarks/pyg_sampler "
              f"({edges} sampled edges of a random graph checked)", file=sys.stderr)
        pyg_sampler.pyg_uses_it()
        how = "torch-sparse's sampler, vendored"
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader

    data = Data(x=g["x_pyg"], edge_index=g["edge_index"], y=g["y"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*without a 'pyg-lib' installation is deprecated")
        loader = NeighborLoader(data, num_neighbors=args.fanouts, batch_size=args.batch_size,
                                input_nodes=g["train"], shuffle=True)

    def epoch(generator):
        for b in loader:
            mask = torch.arange(b.num_nodes) < b.batch_size
            yield b.x, b.edge_index, b.y, mask
    epoch.node_sampler = loader.node_sampler            # PyG's CSC arrays (samplers_alone)
    return epoch, how


def samplers_alone(g: dict, args, node_sampler) -> dict:
    """One epoch's shuffled seed batches through each sampler alone (no loader, no feature or
    label gather): zoo's ``NeighbourSampler.sample`` vs ``torch_sparse::neighbor_sample`` on the
    CSC arrays PyG built. Total wall and CPU ms of the epoch."""
    from zoo.plugins.gnn.sampling import NeighbourSampler

    seeds = g["train"].nonzero().view(-1)
    batches = seeds[torch.randperm(seeds.shape[0], generator=torch.Generator().manual_seed(args.seed))]
    batches = batches.split(args.batch_size)
    ours = NeighbourSampler(g["edge_index"], g["x"].shape[0], args.fanouts, args.seed)
    colptr, row = node_sampler.colptr, node_sampler.row
    out = {}
    for side, draw in [("zoo", ours.sample), ("torch_sparse", lambda b: torch.ops.torch_sparse.neighbor_sample(
            colptr, row, b, list(args.fanouts), False, True))]:
        wall, cpu = time.perf_counter(), time.process_time()
        for b in batches:
            draw(b)
        out[f"{side}_ms"], out[f"{side}_cpu_ms"] = 1000 * (time.perf_counter() - wall), 1000 * (time.process_time() - cpu)
    return out


def fit(model: nn.Module, batches, g: dict, x_full: torch.Tensor, args) -> dict:
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    times, cpu, sample_times, sample_cpu, best_val, test_at_best = [], [], [], [], -1.0, 0.0
    clock = lambda: (time.perf_counter(), time.process_time())  # noqa: E731
    for _ in range(args.epochs):
        (started, cpu_started), waited, waited_cpu = clock(), 0.0, 0.0
        model.train()
        batch_iter = iter(batches(generator))
        while True:
            wall0, cpu0 = clock()
            batch = next(batch_iter, None)                 # sampling and feature gather
            wall1, cpu1 = clock()
            waited, waited_cpu = waited + wall1 - wall0, waited_cpu + cpu1 - cpu0
            if batch is None:
                break
            x, edge_index, y, mask = batch
            loss = F.cross_entropy(model(x, edge_index)[mask], y[mask])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        wall, cpu_now = clock()
        times.append(wall - started)
        cpu.append(cpu_now - cpu_started)
        sample_times.append(waited)
        sample_cpu.append(waited_cpu)
        model.eval()
        with torch.no_grad():
            pred = model(x_full, g["edge_index"]).argmax(1)
        val = float((pred[g["val"]] == g["y"][g["val"]]).float().mean())
        if val > best_val:
            best_val = val
            test_at_best = float((pred[g["test"]] == g["y"][g["test"]]).float().mean())
    ms = lambda values: 1000 * statistics.median(values)  # noqa: E731
    return {"ms": ms(times), "cpu_ms": ms(cpu), "sample_ms": ms(sample_times), "sample_cpu_ms": ms(sample_cpu),
            "test_acc": test_at_best, "val_acc": best_val}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="neighbour-sampled GraphSAGE: zoo vs PyG NeighborLoader")
    parser.add_argument("--nodes", type=int, default=None, help="A generated block graph of N nodes (default: Cora).")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[25, 10])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--build-dir", default=None,
                        help="Build folder of PyG's sampler from benchmarks/pyg_sampler (default: the user cache).")
    parser.add_argument("--no-build", action="store_true",
                        help="Do not compile PyG's sampler: without pyg-lib or torch-sparse, no NeighborLoader row.")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from zoo.core.train.data import DataInfo
    from zoo.plugins.gnn.models import GraphSAGE, GraphSAGEConfig

    g = load(args)
    f, c = g["x"].shape[1], int(g["y"].max()) + 1
    rows, alone = [], None
    torch.manual_seed(args.seed)
    ours = GraphSAGE(GraphSAGEConfig(name="graphsage-sampled", row_normalize=g["row_normalize"]),
                     DataInfo(input_shape=(f,), num_classes=c, extra={"level": "node"}))
    rows.append({"side": "zoo sampler + zoo GraphSAGE", **fit(ours, zoo_batches(g, args), g, g["x"], args)})
    try:
        import torch_geometric  # noqa: F401
    except ImportError:
        print("PyG side skipped: pip install torch-geometric", file=sys.stderr)
    else:
        loader, how = pyg_batches(g, args)
        if loader is None:
            print(f"PyG NeighborLoader row skipped: it needs pyg-lib or torch-sparse, and torch-sparse's "
                  f"sampler was {how if how.startswith('not built') else 'not built: ' + how}", file=sys.stderr)
        else:
            torch.manual_seed(args.seed)
            rows.append({"side": f"PyG NeighborLoader ({how}) + PyG SAGEConv",
                         **fit(PygSAGE(f, c), loader, g, g["x_pyg"], args)})
            if how != "pyg-lib":
                alone = samplers_alone(g, args, loader.node_sampler)
        torch.manual_seed(args.seed)  # PyG's model on zoo's batches of the row-normalised features
        rows.append({"side": "zoo sampler + PyG SAGEConv (models only)",
                     **fit(PygSAGE(f, c), zoo_batches({**g, "x": g["x_pyg"]}, args), g, g["x_pyg"], args)})
    print(f"{g['name']}: {int(g['edge_index'].shape[1]):,} edges, {int(g['train'].sum()):,} training nodes, "
          f"fan-outs {args.fanouts}, {args.batch_size} seeds a batch, {args.epochs} epoch(s), median epoch time, "
          f"{args.threads} thread(s), torch {torch.__version__}\n")
    print("| side | ms/epoch | CPU ms/epoch | batches ms (CPU ms) | model ms (CPU ms) | test acc (best val) |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['side']} | {r['ms']:.1f} | {r['cpu_ms']:.1f} | {r['sample_ms']:.1f} ({r['sample_cpu_ms']:.1f}) | "
              f"{r['ms'] - r['sample_ms']:.1f} ({r['cpu_ms'] - r['sample_cpu_ms']:.1f}) | {r['test_acc']:.3f} |")
    if alone:
        ratio = alone["zoo_ms"] / alone["torch_sparse_ms"]
        print(f"\nsamplers alone, one epoch's seed batches: zoo {alone['zoo_ms']:.1f} ms (CPU "
              f"{alone['zoo_cpu_ms']:.1f}), torch_sparse::neighbor_sample {alone['torch_sparse_ms']:.1f} ms "
              f"(CPU {alone['torch_sparse_cpu_ms']:.1f}); zoo / torch-sparse {ratio:.2f}")
    for r in rows[1:]:
        print(f"\nzoo / {r['side']}: epoch time {rows[0]['ms'] / r['ms']:.2f} (CPU time "
              f"{rows[0]['cpu_ms'] / r['cpu_ms']:.2f}), batches {rows[0]['sample_ms'] / r['sample_ms']:.2f} "
              f"(CPU {rows[0]['sample_cpu_ms'] / r['sample_cpu_ms']:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"graph": g["name"], "fanouts": args.fanouts,
                                               "batch_size": args.batch_size, "epochs": args.epochs, "rows": rows,
                                               "samplers_alone": alone}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
