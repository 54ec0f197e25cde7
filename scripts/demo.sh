#!/usr/bin/env bash
# The main job on embedded data: install, list the catalogue, train the regression family's
# default model (linear regression on generated data), then serve its ONNX file with `zoo predict`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ZOO=.venv/bin/zoo
RUN=${RUN:-runs/demo-linear}
rm -rf "$RUN"
echo "== zoo list"
$ZOO list
echo "== zoo train regression --out $RUN"
$ZOO train regression --out "$RUN"
echo "== zoo predict $RUN (x = [1, 1] and [0, 0]; true y = 2.8 and 4.2)"
printf '[[1.0, 1.0], [0.0, 0.0]]' > "$RUN/example.json"
$ZOO predict "$RUN" --input "$RUN/example.json"
echo "== summary: $RUN/summary.json"
