"""Start-up time of `zoo list` / `zoo info` (fresh interpreters) and whether torch gets imported.

    python benchmarks/cli_startup.py [--repeats 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def timed(args: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="Also write the measurements to this JSON file.")
    args = parser.parse_args()
    rows = [
        ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"]),
        ("zoo list", [sys.executable, "-m", "zoo", "list"]),
        ("zoo list --json", [sys.executable, "-m", "zoo", "list", "--json"]),
        ("zoo info mlp", [sys.executable, "-m", "zoo", "info", "mlp"]),
        ("python -c 'import torch' (for scale)", [sys.executable, "-c", "import torch"]),
    ]
    try:
        import timm  # noqa: F401

        rows.append(("import timm; timm.list_models()",
                     [sys.executable, "-c", "import timm; timm.list_models()"]))
    except ImportError:
        pass
    probe = subprocess.run([sys.executable, "-c", "import sys; from zoo.cli import main\ntry: main(['list'])\n"
                            "except SystemExit: pass\nprint('torch' in sys.modules, file=sys.stderr)"],
                           capture_output=True, text=True)
    imports_torch = probe.stderr.strip().splitlines()[-1]
    print(f"`zoo list` imports torch: {imports_torch}")
    print("| command | median s | min s | max s |")
    print("| --- | --- | --- | --- |")
    results = []
    for label, cmd in rows:
        t = timed(cmd, args.repeats)
        results.append({"command": label, "median": statistics.median(t), "min": min(t), "max": max(t)})
        print(f"| {label} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"imports_torch": imports_torch == "True", "repeats": args.repeats, "rows": results}, fh)


if __name__ == "__main__":
    main()
