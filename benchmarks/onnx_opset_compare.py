"""One model exported at two opsets, both onnxruntime sessions and torch eager timed side by side.

Built for the transformers' fused attention (ONNX's ``Attention`` exists from opset 23; below it
the exporter writes attention as a dozen unfused nodes): on a shared, loaded machine two
separate ``onnx_latency.py`` runs see different loads, while here the three engines alternate
in blocks within one process (best block median of each kept), so load hits them alike.

    python benchmarks/onnx_opset_compare.py --model transformer-classifier --opset 18 --opset 23

Same model (random weights, default config and dataset), same inputs (test split, sequences of
32 tokens) and the same verified export as ``onnx_latency.py``. Prints one row per batch size:
torch ms, onnxruntime ms per opset, each ratio to torch and the last opset's over the first's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import onnx_latency as ol  # noqa: E402


def compare(name: str, opsets: list[int], batches: list[int], rounds: int, reps: int, threads: int,
            folder: Path) -> list[str]:
    import torch

    prepared = ol.random_model(name, batches)
    model, examples, sizes = prepared.model, prepared.examples, prepared.sizes
    sessions = {}
    for opset in opsets:
        sessions[opset], _ = ol.ort_session(prepared.export(folder / f"{name}-{opset}.onnx", opset), "cpu", threads)
    names = [i.name for i in sessions[opsets[0]].get_inputs()]
    rows = []
    for size, args in zip(sizes, examples[1:]):
        feed = {n: t.numpy() for n, t in zip(names, args)}
        times: dict = {"torch": [], **{o: [] for o in opsets}}
        for _ in range(rounds):
            with torch.no_grad():
                times["torch"].append(ol.median_ms(model, reps, 2, args))
            for o in opsets:
                times[o].append(ol.median_ms(lambda o=o: sessions[o].run(None, feed), reps, 2))
        best = {k: min(v) for k, v in times.items()}
        cells = [f"{best[o]:.3f}" for o in opsets] + [f"{best[o] / best['torch']:.2f}" for o in opsets]
        shape = "×".join(map(str, args[0].shape))
        rows.append(f"| {name} | {size} | {shape} | {best['torch']:.3f} | " + " | ".join(cells) +
                    f" | {best[opsets[-1]] / best[opsets[0]]:.2f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="Catalogue models.")
    parser.add_argument("--opset", action="append", type=int, help="Opsets to compare (default: 18 and 23).")
    parser.add_argument("--batch", action="append", type=int, help="Batch sizes (default: 1 and 64).")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating blocks; best block median kept.")
    parser.add_argument("--reps", type=int, default=10, help="Timed calls per block.")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads.")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    opsets = args.opset or [18, 23]
    print("| model | batch | input | torch ms | " + " | ".join(f"ORT opset {o} ms" for o in opsets) + " | " +
          " | ".join(f"opset {o} / torch" for o in opsets) + f" | {opsets[-1]} / {opsets[0]} |")
    print("| --- | ---: | --- | ---: | " + " | ".join("---:" for _ in range(2 * len(opsets) + 1)) + " |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.model:
            for row in compare(name, opsets, args.batch or [1, 64], args.rounds, args.reps, args.threads,
                               Path(tmp)):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
