"""Exact match by source length for several seq2seq runs: one markdown table and one figure.

Every finished seq2seq run directory holds ``match_by_length.json`` (written by the ``sequence``
plugin); this script puts runs side by side, e.g. no attention vs attention on ``reverse``::

    python scripts/seq2seq_by_length.py runs/noattn runs/additive --out match_by_length.png

Each run's column is labelled ``model (attention)``; rows are source lengths; a cell is the
test exact match (greedy) of that length, with the number of test sequences in the first column.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, help="write the combined PNG here")
    args = parser.parse_args(argv)
    from zoo.plugins.sequence.by_length import JSON_NAME, plot

    series = {}
    for run in args.runs:
        path = run / JSON_NAME
        if not path.is_file():
            print(f"error: {path} does not exist (train the run to the end first)", file=sys.stderr)
            return 2
        report = json.loads(path.read_text())
        label = report["model"] + (f" ({report['attention']})" if report.get("attention") else "")
        series[label] = {int(k): v for k, v in report["by_length"].items()}
    lengths = sorted({k for table in series.values() for k in table})
    first = next(iter(series.values()))
    print("| source length | test sequences | " + " | ".join(series) + " |")
    print("| ---: | ---: | " + " | ".join("---:" for _ in series) + " |")
    for k in lengths:
        cells = [f"{t[k]['exact_match']:.3f}" if k in t else "" for t in series.values()]
        print(f"| {k} | {first.get(k, {}).get('n', '')} | " + " | ".join(cells) + " |")
    if args.out:
        plot(series, args.out, "exact match by source length")
    return 0


if __name__ == "__main__":
    sys.exit(main())
