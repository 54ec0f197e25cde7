"""Peak memory (RSS) of `zoo train` vs a hand-written PyTorch loop doing the same work.

For one model of each family, three fresh interpreters are measured, each by the kernel's
``ru_maxrss`` of that child alone (``os.wait4``):

1. ``zoo train MODEL --epochs E --no-export -q``: the command a user runs (checkpoints, metrics log,
   validation each epoch, best-checkpoint test, plots and the task's files). The ONNX export is
   off so both sides do the same work; ``--export`` adds a column with the export on (onnx,
   onnxruntime and the parity check in the same process), which the hand loop does not do.
2. The hand-written loop: the same model object (built, seeded, by the catalogue's builder and
   saved with ``torch.save``), the same split objects (their own ``batches``: the family's
   batching, e.g. sequences cut to each batch's length), the same epochs, batch sizes,
   optimizer, learning-rate schedule and gradient clipping; validation every epoch and the test
   at the end, with the task's loss written out by hand. No run directory, no checkpoints.
   Its data arrive as ready tensors (``torch.load``), the cheapest possible loading: whatever
   zoo's dataset loader holds while decoding the files counts against zoo. A short run of it
   (two steps) first fills the on-disk caches of compiled kernels (word2vec's numba kernels),
   so that neither side pays for compiling them.
3. Baselines after imports: ``import torch`` plus what each side imports before any work
   (zoo: the CLI, the catalogue and the model's plugin via ``resolve_config``; hand: the
   modules of the model and split classes), so the difference of the peaks can be told
   apart into imports and work.

    ZOO_DATA_DIR=../shared/data python benchmarks/train_memory.py [--models mlp,lenet] [--epochs 2]
        [--export] [--json FILE]

RSS hardly depends on CPU contention (unlike time), so a busy machine changes these figures
little; allocator behaviour still makes them vary by a few MiB between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: One model of each family (regression, cnn, rnn, transformer, gnn, word2vec).
MODELS = ("mlp", "lenet", "lstm", "transformer-classifier", "gcn", "skipgram")


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``args`` in a fresh process; its own peak RSS in MiB and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(args[:6])}... exited {proc.returncode}: {' / '.join(tail)}")
        return usage.ru_maxrss / 1024, out.read().decode()


# -- the children -------------------------------------------------------------------------------


def child_zoo_baseline(model: str) -> None:
    """What `zoo train` has imported before it loads data: torch, the CLI, the config models and
    the model's plugin (``resolve_config`` loads it)."""
    import torch  # noqa: F401
    import zoo.cli  # noqa: F401
    from zoo.core import api

    api.resolve_config(model)
    print(json.dumps({"baseline": _rss_mib()}))


def child_prepare(model: str, epochs: int, path: str) -> None:
    """Build the run's model and data as `zoo train` does (same seeds) and save them for the hand loop."""
    import torch
    from zoo.core import api

    entry, spec, cfg = api.resolve_config(model, options={"train": {"epochs": epochs}})
    api._seed(cfg.train.seed, False)
    dataset, task = api.load_data(cfg, entry)
    net = api.build_model(spec, cfg, dataset.info)
    api._seed(cfg.train.seed, False)
    kind = {"node-classification": "masked-ce", "embedding": "pairs"}.get(task.name, "ce")
    tc, oc, sc = cfg.train, cfg.optim, cfg.schedule
    recipe = {"inputs": list(task.input_names), "loss": kind, "epochs": tc.epochs, "batch_size": tc.batch_size,
              "eval_batch_size": tc.eval_batch_size, "grad_clip": tc.grad_clip, "seed": tc.seed,
              "optim": oc.model_dump(mode="json"), "schedule": sc.model_dump(mode="json"),
              "self_updating": {"grad_clip": tc.grad_clip, "precision": tc.precision, "compile": tc.compile,
                                "loss": tc.loss}}
    modules = sorted({type(obj).__module__ for obj in (net, dataset.train, dataset.test)})
    torch.save({"model": net, "train": dataset.train, "val": dataset.val, "test": dataset.test,
                "recipe": recipe, "modules": modules}, path)
    print(json.dumps({"modules": modules, "task": task.name}))


def child_hand(path: str, modules: list[str], warm: bool = False) -> None:
    """The hand-written loop (see the module docstring); ``warm``: two steps and one evaluation
    batch only, so that compiled kernels (numba's on-disk cache) exist before either side is measured."""
    import importlib
    import math
    import types

    import torch
    import torch.nn.functional as F

    for name in modules:  # the model's and the splits' classes: imports, counted in the baseline
        importlib.import_module(name)
    baseline = _rss_mib()
    saved = torch.load(path, weights_only=False, mmap=True)  # no read buffer next to the tensors
    model, train, val, test, recipe = (saved[k] for k in ("model", "train", "val", "test", "recipe"))
    del saved
    o, s = recipe["optim"], recipe["schedule"]
    params = list(model.parameters())
    if o["name"] == "sgd":
        optimizer = torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    else:
        cls = torch.optim.Adam if o["name"] == "adam" else torch.optim.AdamW
        optimizer = cls(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"])
    steps = math.ceil(len(train) / recipe["batch_size"])
    total, warmup = max(recipe["epochs"] * steps, 1), int(round(s["warmup_epochs"] * steps))
    floor = s["min_lr"] / o["lr"]

    def factor(step: int) -> float:  # warm-up, then cosine / linear decay to min_lr
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        if s["name"] == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - (1.0 - floor) * progress if s["name"] == "linear" else 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if hasattr(model, "attach_optimizer"):  # a model that applies its own sparse update (word2vec)
        model.attach_optimizer(optimizer, types.SimpleNamespace(**recipe["self_updating"]), 1)

    def args(batch):  # the model's inputs in a batch (word2vec's windows: centres, contexts, mask)
        keys = ("centre", "context", "mask") if "centre" in batch else recipe["inputs"]
        return [batch[k] for k in keys]

    def loss_of(output, batch, reduction="mean"):
        if recipe["loss"] == "pairs":
            loss_sum, count = output
            return loss_sum.sum() / count.sum().clamp(min=1.0)
        if recipe["loss"] == "masked-ce":
            mask = batch["mask"]
            return F.cross_entropy(output[mask], batch["y"][mask], reduction=reduction)
        return F.cross_entropy(output, batch["y"], reduction=reduction)

    @torch.no_grad()
    def evaluate(split) -> float:
        model.eval()
        total_loss = torch.zeros(())
        for batch in split.batches(recipe["eval_batch_size"]):
            output = model(*args(batch))
            total_loss += loss_of(output, batch, "sum").float()
            if warm:
                break
        return float(total_loss)

    torch.manual_seed(recipe["seed"])
    generator = torch.Generator().manual_seed(recipe["seed"])
    for _ in range(recipe["epochs"]):
        model.train()
        epoch_loss = torch.zeros(())
        for batch in train.batches(recipe["batch_size"], torch.randperm(len(train), generator=generator)):
            loss = loss_of(model(*args(batch)), batch)
            if loss.requires_grad:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if recipe["grad_clip"] is not None:
                    torch.nn.utils.clip_grad_norm_(params, recipe["grad_clip"])
            optimizer.step()
            scheduler.step()
            epoch_loss += loss.detach().float()
            if warm and scheduler.last_epoch >= 2:
                break
        float(epoch_loss)
        if val is not None:
            evaluate(val)
    evaluate(test)
    print(json.dumps({"baseline": baseline}))


# -- the parent ---------------------------------------------------------------------------------


def measure_model(model: str, epochs: int, export: bool, env: dict[str, str], tmp: Path) -> dict:
    py, me = sys.executable, str(Path(__file__).resolve())
    saved = tmp / f"{model}.pt"
    _, out = _measure([py, me, "--child", "prepare", model, str(epochs), str(saved)], env)
    prepared = json.loads(out.strip().splitlines()[-1])
    hand = [py, me, "--child", "hand", str(saved), ",".join(prepared["modules"])]
    _measure(hand[:3] + ["hand-warm"] + hand[4:], env)  # kernels compiled and cached, for both sides
    zoo_base = json.loads(_measure([py, me, "--child", "zoo-baseline", model], env)[1].splitlines()[-1])["baseline"]
    train = [py, "-m", "zoo", "train", model, "--epochs", str(epochs), "-q", "--force"]
    zoo_peak, _ = _measure(train + ["--no-export", "--out", str(tmp / f"run-{model}")], env)
    hand_peak, out = _measure(hand, env)
    hand_base = json.loads(out.strip().splitlines()[-1])["baseline"]
    row = {"model": model, "task": prepared["task"], "epochs": epochs, "zoo_peak": zoo_peak, "hand_peak": hand_peak,
           "zoo_baseline": zoo_base, "hand_baseline": hand_base, "ratio": zoo_peak / hand_peak,
           "work_ratio": (zoo_peak - zoo_base) / max(hand_peak - hand_base, 1e-9)}
    if export:
        row["zoo_export_peak"], _ = _measure(train + ["--out", str(tmp / f"run-{model}-onnx")], env)
    saved.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated catalogue models.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--export", action="store_true",
                        help="Also measure `zoo train` with its ONNX export (a column apart).")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        if kind == "prepare":
            return child_prepare(rest[0], int(rest[1]), rest[2])
        if kind == "zoo-baseline":
            return child_zoo_baseline(rest[0])
        return child_hand(rest[0], rest[1].split(","), warm=kind == "hand-warm")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            try:
                rows.append(measure_model(model, args.epochs, args.export, env, Path(tmp)))
            except RuntimeError as err:
                rows.append({"model": model, "error": str(err)})
            print(_format_row(rows[-1], args.export), flush=True)
    print(f"peak RSS (MiB) of `zoo train --no-export` vs a hand-written loop, {args.epochs} epochs, "
          f"fresh process each, ZOO_DATA_DIR={os.environ.get('ZOO_DATA_DIR', '(unset)')} (goal ratio <= 1.1)")
    print(render(rows, args.export))
    if args.json:
        Path(args.json).write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1))


def _format_row(row: dict, export: bool) -> str:
    if "error" in row:
        return f"| {row['model']} | failed: {row['error']} |"
    cells = [row["model"], row["task"], f"{row['zoo_baseline']:.0f}", f"{row['hand_baseline']:.0f}",
             f"{row['zoo_peak']:.0f}", f"{row['hand_peak']:.0f}", f"{row['ratio']:.2f}", f"{row['work_ratio']:.2f}"]
    if export:
        cells.append(f"{row['zoo_export_peak']:.0f}")
    return "| " + " | ".join(cells) + " |"


def render(rows: list[dict], export: bool) -> str:
    header = ["model", "task", "zoo after imports", "hand after imports", "zoo train peak", "hand loop peak",
              "ratio zoo / hand", "ratio of (peak − imports)"] + (["zoo train with export, peak"] if export else [])
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + [_format_row(r, export) for r in rows])


if __name__ == "__main__":
    main()
