#!/usr/bin/env bash
# Set up zoo on a fresh machine: a virtual environment in .venv with zoo installed (editable),
# the test tools, and the Fashion-MNIST files from Debian's dataset-fashion-mnist package.
# Idempotent: a second run only checks. TORCH_SPEC picks the torch build (default: the CPU
# build that is quick to install here; use TORCH_SPEC=torch for the CUDA build from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian package dataset-fashion-mnist"
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
  else
    echo "setup: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, or set ZOO_DATA_DIR)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "$TORCH_SPEC"
fi
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -c "import zoo, torch, onnxruntime; print(f'setup: zoo {zoo.__version__}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}')"
