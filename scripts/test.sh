#!/usr/bin/env bash
# The test suite, from a fresh machine: set up, then run every test on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
