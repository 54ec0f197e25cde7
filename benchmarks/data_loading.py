"""Loading the user's own data: zoo's loaders next to pandas and torchvision, time and peak memory.

    python benchmarks/data_loading.py                  # 1,000,000-row CSV, 10,000 PNGs of 32×32
    python benchmarks/data_loading.py --quick          # 100,000 rows, 2,000 PNGs
    python benchmarks/data_loading.py --workdir /tmp/dl --json out.json

The files are generated (seeded) into ``--workdir`` (a temporary folder by default) and reused when
already there: a CSV with 8 numeric columns, a categorical one (5 levels) and a 3-class target,
and a folder of RGB PNGs, one sub-folder per class (10 classes). Each loader then runs in a fresh
interpreter so its peak RSS (``resource.getrusage(...).ru_maxrss``) is its own; the table shows
the seconds of the load call (wall, and CPU over all threads: steadier on a shared machine), the
peak RSS of the process, and the peak growth over the RSS after imports (what loading itself
cost, without torch's, pandas' or pyarrow's import).
``--threads N`` sets ``OMP_NUM_THREADS`` in the children, which also caps pyarrow's threads; by
default each side uses the threads it uses on a user's machine.

Loaders compared (goal: zoo ≤ 1.2× the peer's time and memory):

- zoo ``table`` (``load_table_dataset``: parse, split, one-hot, standardise; the target read as
  classes) vs ``pandas.read_csv`` (parse only: the issue's peer) and vs ``pandas-prepared``
  (the same work as zoo's written with pandas and numpy, for context); ``zoo-table`` parses with
  pyarrow where it is installed, ``zoo-table-csv`` with the csv module (zoo without the
  ``parquet`` extra);
- zoo ``image-folder`` (all images decoded into one uint8 array) vs torchvision's
  ``ImageFolder`` + ``ToTensor`` through a ``DataLoader`` (batch 256, one pass; the torchvision
  recipe). Where torchvision cannot be imported (its PyPI wheels are built against CUDA torch),
  an equivalent written here is used (the same ``find_classes`` order, ``PIL.Image.open(...)
  .convert("RGB")`` and ``ToTensor``'s uint8 → float / 255), and the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
CLASSES = 10
BATCH = 256


# -- data ---------------------------------------------------------------------------------------


def make_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """``rows`` rows of ``x0..x7`` (floats), ``colour`` (5 levels) and ``target`` (3 classes)."""
    import numpy as np

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    levels = np.array(["red", "green", "blue", "amber", "violet"])
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(",".join([f"x{i}" for i in range(8)] + ["colour", "target"]) + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            x = rng.normal(size=(n, 8)).round(5)
            colour = levels[rng.integers(0, 5, n)]
            target = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)
            fh.writelines(",".join(map(repr, row.tolist())) + f",{c},{t}\n" for row, c, t in zip(x, colour, target))
    tmp.replace(path)
    return path


def make_images(folder: Path, count: int, side: int, seed: int = 0) -> Path:
    """``count`` RGB PNGs of ``side``×``side`` in ``CLASSES`` class folders (noise plus a class-coloured square)."""
    import numpy as np
    from PIL import Image

    done = folder / ".complete"
    if done.exists() and done.read_text() == f"{count} {side}":
        return folder
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % CLASSES
        pixels = rng.integers(0, 120, (side, side, 3), dtype=np.uint8)
        pixels[side // 4: 3 * side // 4, side // 4: 3 * side // 4, label % 3] = 120 + 12 * label
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"class{label}" / f"{i:06d}.png")
    done.write_text(f"{count} {side}")
    return folder


# -- the loaders (each run in its own interpreter by `--measure`) -------------------------------


def load_zoo_table(path: str) -> str:
    """The whole `table` dataset: parse, split, one-hot and standardise (pandas only parses);
    says which parser ran (pyarrow's, or the csv module where pyarrow is missing)."""
    from zoo.plugins.datasets.own import table

    parsers, load = [], table.load_table

    def load_table(*args, **kwargs):
        t = load(*args, **kwargs)
        parsers.append(t.parser)
        return t

    table.load_table = load_table
    data = table.load_table_dataset(table.TableOptions(path=path, target="target", task="classification"))
    n = len(data.train) + len(data.test) + (len(data.val) if data.val is not None else 0)
    return f"{n} rows, parsed by {', '.join(parsers)}"


def load_zoo_table_csv(path: str) -> str:
    """The same with pyarrow's reader turned off: the csv-module path (zoo without the extra)."""
    from zoo.plugins.datasets.own import table

    table.FAST_CSV = False
    return load_zoo_table(path)


def load_pandas(path: str) -> str:
    import pandas

    frame = pandas.read_csv(path)
    return f"{len(frame)} rows"


def load_pandas_prepared(path: str) -> str:
    """What zoo's ``table`` does, written with pandas and numpy: parse, the same seeded split
    (10 % validation, 20 % test), ``colour`` one-hot over the training rows' categories, the
    float32 matrix in split order, the training rows' mean and std, the labels as codes."""
    import numpy as np
    import pandas

    frame = pandas.read_csv(path)
    n = len(frame)
    order = np.random.default_rng(0).permutation(n)
    n_test, n_val = max(1, round(n * 0.2)), round(n * 0.1)
    order = np.concatenate([order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]])
    frame = frame.take(order)
    train = frame.iloc[:n - n_test - n_val]
    numeric = [c for c in frame.columns if c not in ("colour", "target")]
    levels = sorted(train["colour"].unique())
    onehot = pandas.get_dummies(pandas.Categorical(frame["colour"], categories=levels), dtype=np.float32)
    x = np.concatenate([frame[numeric].to_numpy(np.float32), onehot.to_numpy()], axis=1)
    mean, std = train[numeric].mean().to_numpy(), train[numeric].std(ddof=0).to_numpy()
    y = pandas.Categorical(frame["target"].astype(str)).codes
    return f"{len(x)} rows × {x.shape[1]} columns, {len(set(y.tolist()))} classes, {len(mean) + len(std)} statistics"


def load_zoo_images(path: str) -> str:
    from zoo.plugins.datasets.own.images import ImageFolderOptions, load_image_folder

    data = load_image_folder(ImageFolderOptions(path=path), None)
    n = len(data.train) + len(data.test) + (len(data.val) if data.val is not None else 0)
    return f"{n} images"


def _image_folder(path: str):
    """torchvision's ImageFolder with ToTensor, or the equivalent written here (and which)."""
    try:
        from torchvision import datasets, transforms

        return datasets.ImageFolder(path, transform=transforms.ToTensor()), "torchvision"
    except Exception:  # noqa: BLE001 - not installed, or a wheel built against another torch
        pass
    import numpy as np
    import torch
    from PIL import Image

    class ImageFolder(torch.utils.data.Dataset):
        def __init__(self, root: str) -> None:
            classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
            self.samples = [(os.path.join(root, c, f), k) for k, c in enumerate(classes)
                            for f in sorted(os.listdir(os.path.join(root, c)))
                            if f.lower().endswith((".png", ".jpg", ".jpeg"))]

        def __len__(self) -> int:
            return len(self.samples)

        def __getitem__(self, i: int):
            path, target = self.samples[i]
            with open(path, "rb") as fh:
                img = Image.open(fh).convert("RGB")
            x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()
            return x.float().div(255), target

    return ImageFolder(path), "PIL replica of torchvision ImageFolder (torchvision not importable)"


def load_torchvision(path: str, keep: bool = False) -> str:
    """One pass of the DataLoader; ``keep``: the batches are kept, i.e. the data held in memory
    as torchvision hands it over (float32), which is what zoo's loader does in uint8."""
    import torch

    dataset, which = _image_folder(path)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=False, num_workers=0)
    kept, n = [], 0
    for x, y in loader:
        n += x.shape[0]
        if keep:
            kept.append((x, y))
    return f"{n} images, one pass{', batches kept' if keep else ''}; {which}"


LOADERS = {"zoo-table": load_zoo_table, "zoo-table-csv": load_zoo_table_csv, "pandas": load_pandas,
           "pandas-prepared": load_pandas_prepared,
           "zoo-images": load_zoo_images, "torchvision": load_torchvision,
           "torchvision-kept": lambda path: load_torchvision(path, keep=True)}
IMPORTS = {"zoo-table": ["torch", "zoo.plugins.datasets.own.table", "pyarrow.csv?"],
           "zoo-table-csv": ["torch", "zoo.plugins.datasets.own.table"], "pandas": ["pandas"],
           "pandas-prepared": ["pandas"],
           "zoo-images": ["torch", "PIL.Image", "zoo.plugins.datasets.own.images"],
           "torchvision": ["torch", "PIL.Image"], "torchvision-kept": ["torch", "PIL.Image"]}
PAIRS = (("zoo-table", ("pandas", "pandas-prepared")), ("zoo-table-csv", ("pandas",)),
         ("zoo-images", ("torchvision", "torchvision-kept")))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure(kind: str, path: str) -> dict:
    """Import, then time one load; runs inside the child interpreter."""
    import importlib

    for module in IMPORTS[kind]:  # "name?": imported where installed (pyarrow: zoo's fast CSV path)
        try:
            importlib.import_module(module.rstrip("?"))
        except ImportError:
            if not module.endswith("?"):
                raise
    before = _peak_mb()
    start, cpu = time.perf_counter(), time.process_time()
    what = LOADERS[kind](path)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = _peak_mb()
    return {"loader": kind, "seconds": seconds, "cpu_s": cpu, "peak_mb": peak, "load_mb": peak - before,
            "what": what}


def run_child(kind: str, path: Path, timeout: float, threads: int | None = None) -> dict:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    proc = subprocess.run([sys.executable, str(HERE), "--measure", kind, str(path)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"loader": kind, "error": reason}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows and 2,000 images")
    parser.add_argument("--rows", type=int, help="CSV rows (default 1,000,000; --quick 100,000)")
    parser.add_argument("--images", type=int, help="PNG files (default 10,000; --quick 2,000)")
    parser.add_argument("--side", type=int, default=32, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=1, help="runs per loader (the fastest is kept)")
    parser.add_argument("--workdir", type=Path, help="where the files are generated (kept)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the loaders (caps pyarrow's threads; "
                        "default: unset, every core)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--measure", nargs=2, metavar=("LOADER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    images = args.images or (2_000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        csv_path = make_csv(work / f"table-{rows}.csv", rows)
        folder = make_images(work / f"images-{images}-{args.side}", images, args.side)
        print(f"data ready in {time.perf_counter() - started:.1f} s: {csv_path} "
              f"({csv_path.stat().st_size / 1e6:.0f} MB), {folder}", file=sys.stderr)
        loaders = (("zoo-table", csv_path), ("zoo-table-csv", csv_path), ("pandas", csv_path),
                   ("pandas-prepared", csv_path),
                   ("zoo-images", folder), ("torchvision", folder), ("torchvision-kept", folder))
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):  # rounds over every loader: a busy spell hits both sides alike
            for kind, path in loaders:
                runs.setdefault(kind, []).append(run_child(kind, path, args.timeout, args.threads))
        results = []
        for kind, _ in loaders:
            ok = [r for r in runs[kind] if "error" not in r]
            results.append(min(ok, key=lambda r: r["seconds"]) if ok else runs[kind][0])
    report = {"rows": rows, "images": images, "side": args.side, "results": results,
              "threads": str(args.threads or os.environ.get("OMP_NUM_THREADS") or f"unset ({os.cpu_count()} cores)")}
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def render(report: dict) -> str:
    """The Markdown table: each zoo loader next to its peer, with zoo / peer ratios."""
    by = {r["loader"]: r for r in report["results"]}
    lines = [f"{report['rows']:,}-row CSV; {report['images']:,} PNGs of {report['side']}×{report['side']}×3; "
             f"fresh interpreter per loader, OMP_NUM_THREADS={report.get('threads', '1')} "
             "(goal zoo / peer ≤ 1.2).", "",
             "| loader | seconds | CPU s | peak RSS MB | load MB (peak − after imports) "
             "| zoo / peer: time, load MB (CPU) | what |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    shown = set()
    for ours, peers in PAIRS:
        for kind in (ours, *peers):
            if kind in shown or kind not in by:  # a peer shown once; a report from before a loader existed
                continue
            shown.add(kind)
            r = by[kind]
            if "error" in r:
                lines.append(f"| {kind} | - | - | - | - | - | not measured: {r['error']} |")
                continue
            ratio = "peer"
            if kind == ours:
                ratio = "; ".join(f"vs {p}: {r['seconds'] / by[p]['seconds']:.2f}, "
                                  f"{r['load_mb'] / max(by[p]['load_mb'], 1e-9):.2f}" + _cpu_ratio(r, by[p])
                                  for p in peers if "error" not in by[p]) or "-"
            cpu = f"{r['cpu_s']:.2f}" if "cpu_s" in r else "-"
            lines.append(f"| {kind} | {r['seconds']:.2f} | {cpu} | {r['peak_mb']:.0f} | {r['load_mb']:.0f} "
                         f"| {ratio} | {r['what']} |")
    return "\n".join(lines)



def _cpu_ratio(ours: dict, peer: dict) -> str:
    """`` (CPU 1.10)``: the ratio of CPU seconds (all threads), steadier than the wall time on a
    shared machine, but not the goal: a loader on several cores spends more CPU than wall time."""
    if "cpu_s" not in ours or "cpu_s" not in peer:
        return ""
    return f" (CPU {ours['cpu_s'] / max(peer['cpu_s'], 1e-9):.2f})"


if __name__ == "__main__":
    sys.exit(main())
