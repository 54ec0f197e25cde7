"""Greedy vs prefix beam search on a crnn-ctc run's test split, decoding the ONNX model's output.

Runs the run's ``model.onnx`` in onnxruntime on the test split of the run's dataset (rebuilt from
its config, so the same seeded strings) and prints CER and exact match per beam width, and the
decoding time per string.

Usage::

    python benchmarks/ctc_beam.py RUN_DIR [--beams 1 4 16] [--batch 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    from zoo.core import api
    from zoo.core.deploy.runtime import make_session
    from zoo.plugins.ctc.decode import decode, edit_distance

    _, _, _, _, dataset, _, _ = api.load_run(args.run)
    session = make_session(f"{args.run}/model.onnx")
    test = dataset.test
    outputs, refs = [], []
    for start in range(0, len(test), args.batch):
        batch = test.batch(torch.arange(start, min(start + args.batch, len(test))))
        log_probs, frames = session.run(None, {"x": batch["x"].numpy(), "lengths": batch["lengths"].numpy()})
        outputs.append((log_probs, frames))
        refs += [row[:n] for row, n in zip(batch["target"].tolist(), batch["target_lengths"].tolist())]
    print("| beam width | test CER | exact match | decode ms/string |")
    print("| --- | --- | --- | --- |")
    for beam in args.beams:
        started = time.perf_counter()
        hyps = [h for log_probs, frames in outputs for h in decode(log_probs, frames, beam)]
        ms = (time.perf_counter() - started) * 1000 / len(hyps)
        edits = [edit_distance(h, r) for h, r in zip(hyps, refs)]
        cer = sum(edits) / sum(len(r) for r in refs)
        exact = float(np.mean([e == 0 for e in edits]))
        print(f"| {beam} | {cer:.4f} | {exact:.4f} | {ms:.2f} |")


if __name__ == "__main__":
    main()
