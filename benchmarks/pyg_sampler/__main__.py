"""``python benchmarks/pyg_sampler [--build-dir DIR]``: build (or reuse) the sampler and check it."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/, for ``import pyg_sampler``
import pyg_sampler  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--build-dir", default=None, help="Build folder (default: the user cache).")
args = parser.parse_args()
why = pyg_sampler.build(args.build_dir, verbose=True)
if why:
    print(f"not built: {why}", file=sys.stderr)
    sys.exit(1)
print(f"built; {pyg_sampler.check()} sampled edges checked")
