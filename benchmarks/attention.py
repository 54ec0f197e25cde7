"""Attention benchmarks: (a) our encoder vs ``nn.TransformerEncoder``; (b) naive vs SDPA attention.

(a) **Encoder throughput.** ``zoo.plugins.transformer.layers.Encoder`` and
``nn.TransformerEncoder`` of the same size (width, heads, feed-forward width, layers, dropout,
norm placement, ``batch_first``), same batch, in one run, interleaved over ``--repeats`` rounds
(median). Tokens/s for a training step (forward, backward, AdamW step; ``train()`` mode) and for
inference (``eval()`` + ``torch.inference_mode``), without a mask and with a padding mask (random
lengths between T/2 and T). In inference ``nn.TransformerEncoder`` takes its native "fast path"
(fused kernel; with a padding mask, nested tensors that skip the padding), which our
readable-module encoder does not have; the table says so. Ratio = ours / torch (goal ≥ 0.9).

(b) **Naive vs SDPA attention.** ``softmax(q kᵀ/√d) v`` written out
(:func:`~zoo.plugins.transformer.layers.scaled_dot_product_attention`, which materialises the
``[B, H, T, T]`` weights) vs ``F.scaled_dot_product_attention`` (fused kernels), forward only, at
T = 128 … 2048. Memory:

- on CUDA: ``torch.cuda.max_memory_allocated`` during the call, minus the memory held before it
  (q, k, v) — the extra memory the call needed at its peak;
- on CPU: the peak growth of the current resident set size while the call runs, sampled every
  ~0.2 ms by a thread, in a fresh process that has allocated q, k, v (each measurement in its own
  subprocess). RSS counts pages touched, so read it to ±a page or two, and a peak shorter than
  the sampling interval can be missed (small T); the column "T² matrix" gives the size of one
  ``[B, H, T, T]`` float32 matrix for comparison.

    python benchmarks/attention.py                     # both parts, CPU
    python benchmarks/attention.py --part sdpa --device cuda --attn-batch 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, steps: int) -> float:
    """Seconds per call, after one untimed call."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


# -- (a) encoder vs nn.TransformerEncoder ------------------------------------------------------


def encoder_benchmark(args, device) -> list[dict]:
    import torch
    from torch import nn

    from zoo.plugins.transformer.layers import Encoder, padding_mask

    torch.manual_seed(0)
    ours = Encoder(args.dim, args.heads, args.ff, args.layers, args.dropout, args.norm_first).to(device)
    layer = nn.TransformerEncoderLayer(args.dim, args.heads, args.ff, args.dropout, batch_first=True,
                                       norm_first=args.norm_first)
    theirs = nn.TransformerEncoder(layer, args.layers, norm=nn.LayerNorm(args.dim) if args.norm_first else None,
                                   # torch supports nested tensors for post-LN only (it warns otherwise)
                                   enable_nested_tensor=not args.norm_first).to(device)
    b, t = args.batch, args.length
    x = torch.randn(b, t, args.dim, device=device)
    lengths = torch.randint(t // 2, t + 1, (b,), device=device)
    lengths[0] = t
    ours_mask = padding_mask(lengths, t)                      # True = attend
    theirs_mask = ~ours_mask[:, 0, 0, :]                      # torch: True = ignore
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)

    def train(model, optimizer, forward):
        def step():
            model.train()
            loss = forward().square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    def train_ours(mask):
        return train(ours, opt_ours, lambda: ours(x, mask))

    def train_theirs(mask):
        return train(theirs, opt_theirs, lambda: theirs(x, src_key_padding_mask=mask))

    def infer_ours(mask):
        def step():
            ours.eval()
            with torch.inference_mode():
                ours(x, mask)
        return step

    def infer_theirs(mask):
        def step():
            theirs.eval()
            with torch.inference_mode():
                theirs(x, src_key_padding_mask=mask)
        return step

    cases = [("train step", "none", train_ours(None), train_theirs(None)),
             ("train step", "padding", train_ours(ours_mask), train_theirs(theirs_mask)),
             ("inference", "none", infer_ours(None), infer_theirs(None)),
             ("inference", "padding", infer_ours(ours_mask), infer_theirs(theirs_mask))]
    rows = []
    for mode, mask, mine, ref in cases:
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):  # interleaved, so a busy moment hits both
            t_ours.append(_time(mine, device, args.steps))
            t_theirs.append(_time(ref, device, args.steps))
        tokens = b * t
        ours_tps, theirs_tps = tokens / statistics.median(t_ours), tokens / statistics.median(t_theirs)
        rows.append({"mode": mode, "mask": mask, "ours_tokens_s": ours_tps, "torch_tokens_s": theirs_tps,
                     "ratio": ours_tps / theirs_tps})
    return rows


# -- (b) naive vs SDPA -------------------------------------------------------------------------


def _rss() -> int:
    """Current resident set size in bytes (Linux /proc)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_growth(fn) -> int:
    """Peak of the current RSS while ``fn`` runs, minus the RSS before it.

    A thread samples /proc/self/statm every ~0.2 ms (torch ops release the GIL). glibc serves
    large tensors with mmap and unmaps them on free, so the current RSS follows the big
    allocations; the peak of ``ru_maxrss`` would not (importing torch already set it higher).
    """
    import threading

    base = _rss()
    peak = base
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.0002)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        fn()
        peak = max(peak, _rss())
    finally:
        done.set()
        thread.join()
    return peak - base


def _one_attention(impl: str, length: int, args, device) -> dict:
    """Time and peak extra memory of one attention call (run in its own process on CPU)."""
    import torch
    import torch.nn.functional as F

    from zoo.plugins.transformer.layers import scaled_dot_product_attention

    torch.manual_seed(0)
    shape = (args.attn_batch, args.heads, length, args.dim // args.heads)
    q, k, v = (torch.randn(shape, device=device) for _ in range(3))

    def call():
        with torch.inference_mode():
            if impl == "naive":
                return scaled_dot_product_attention(q, k, v)[0]
            return F.scaled_dot_product_attention(q, k, v)

    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss_growth(call)
    seconds = min(_time(call, device, args.steps) for _ in range(args.repeats))
    return {"impl": impl, "length": length, "ms": seconds * 1e3, "peak_bytes": peak}


def sdpa_benchmark(args, device) -> list[dict]:
    rows = []
    for length in args.lengths:
        for impl in ("naive", "sdpa"):
            if device.type == "cuda":
                rows.append(_one_attention(impl, length, args, device))
                continue
            cmd = [sys.executable, __file__, "--_one", impl, str(length), "--attn-batch", str(args.attn_batch),
                   "--heads", str(args.heads), "--dim", str(args.dim), "--steps", str(args.steps),
                   "--repeats", str(args.repeats), "--device", "cpu"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["encoder", "sdpa", "both"], default="both")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--dim", type=int, default=128, help="model width D (part b: heads × head width)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ff", type=int, default=512, help="feed-forward width")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--norm-first", action="store_true", help="pre-LN blocks (default post-LN)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=128, help="sequence length for part (a)")
    p.add_argument("--attn-batch", type=int, default=2, help="batch for part (b)")
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    p.add_argument("--steps", type=int, default=5, help="timed calls per measurement")
    p.add_argument("--repeats", type=int, default=3, help="measurements (median in a, best in b)")
    p.add_argument("--json", help="Also write the rows of both parts to this JSON file.")
    p.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import warnings

    import torch

    # nn.TransformerEncoder's nested-tensor fast path warns that nested tensors are a prototype.
    warnings.filterwarnings("ignore", message=".*nested tensors is in prototype.*")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if args._one:
        print(json.dumps(_one_attention(args._one[0], int(args._one[1]), args, device)))
        return
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    report = {"device": str(device), "dim": args.dim, "heads": args.heads, "layers": args.layers,
              "batch": args.batch, "length": args.length, "encoder": [], "attention": []}
    if args.part in ("encoder", "both"):
        print(f"\n(a) encoder tokens/s: D={args.dim} H={args.heads} ff={args.ff} layers={args.layers} "
              f"dropout={args.dropout} {'pre' if args.norm_first else 'post'}-LN, batch {args.batch} × "
              f"T {args.length}, median of {args.repeats} × {args.steps} calls")
        print(f"{'mode':<11} {'mask':<8} {'ours tok/s':>11} {'torch tok/s':>12} {'ratio':>6}")
        report["encoder"] = encoder_benchmark(args, device)
        for r in report["encoder"]:
            print(f"{r['mode']:<11} {r['mask']:<8} {r['ours_tokens_s']:>11,.0f} {r['torch_tokens_s']:>12,.0f} "
                  f"{r['ratio']:>6.2f}")
        print("(inference: nn.TransformerEncoder uses its fused fast path; with padding, nested tensors)")
    if args.part in ("sdpa", "both"):
        memory = "peak CUDA memory above q,k,v" if device.type == "cuda" else "peak RSS growth, sampled (fresh process)"
        print(f"\n(b) naive vs SDPA attention, forward: batch {args.attn_batch}, heads {args.heads}, head width "
              f"{args.dim // args.heads}; memory = {memory}; time = best of {args.repeats} × {args.steps} calls")
        print(f"{'T':>5} {'T² matrix':>10} {'naive ms':>9} {'sdpa ms':>8} {'speed-up':>8} "
              f"{'naive MB':>9} {'sdpa MB':>8}")
        rows = sdpa_benchmark(args, device)
        report["attention"] = rows
        for naive, sdpa in zip(rows[::2], rows[1::2]):
            t = naive["length"]
            matrix = args.attn_batch * args.heads * t * t * 4 / 2 ** 20
            print(f"{t:>5} {matrix:>8.1f}MB {naive['ms']:>9.2f} {sdpa['ms']:>8.2f} "
                  f"{naive['ms'] / sdpa['ms']:>7.2f}× {naive['peak_bytes'] / 2 ** 20:>9.1f} "
                  f"{sdpa['peak_bytes'] / 2 ** 20:>8.1f}")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
