#!/usr/bin/env bash
# GPU check (issue 19): on a machine with an NVIDIA GPU, one command installs what zoo needs, runs
# the `cuda`-marked tests and the GPU rows of three benchmarks, and writes one Markdown table to
# stdout and to benchmarks/GPU_RESULTS.md, in under 8 minutes:
#   - trainer images/s vs a DataLoader loop (benchmarks/cnn_throughput.py --device cuda; goal ≥ 1.5×)
#   - onnxruntime CUDA provider vs torch CUDA latency, batch 1 and 64 (benchmarks/onnx_latency.py)
#   - the word2vec torch path on CUDA vs gensim (benchmarks/word2vec_vs_gensim.py; goal ≥ 2×)
#
#   bash scripts/gpu-check.sh              # full sizes
#   bash scripts/gpu-check.sh --quick      # small step counts
#   ZOO_GPU_CHECK_ALLOW_CPU=1 bash scripts/gpu-check.sh --quick
#       # no GPU here: every step on the CPU, to check this script; the table goes to
#       # $TMPDIR/GPU_RESULTS.cpu-fake.md, never over real GPU figures
#
# Every step runs under `timeout`, inside one budget (ZOO_GPU_CHECK_BUDGET seconds, default 450);
# a step that fails, times out or cannot run becomes a row with its reason and the next one runs.
# Exit status 0 when every step ran and passed, 1 otherwise; the table is written either way (a
# goal not met is a verdict in the table, not a failed step). Data: Fashion-MNIST from the Debian
# package (scripts/setup.sh) or any data root; wiki-sample (no public download) from a data root:
# ZOO_DATA_DIR=DIR with DIR/text/wiki-sample.txt.
# Interpreter: ZOO_GPU_CHECK_PYTHON if set, else .venv-gpu or .venv when its torch sees CUDA, else
# a new .venv-gpu on PYTHON (default python3) with --system-site-packages, so that the system's
# CUDA build of torch is used as it is rather than downloaded again. Logs stay in $WORK (printed).
set -uo pipefail   # not -e: a failing step is reported in the table, not fatal
cd "$(dirname "$0")/.." || exit 2

MODE=full
for arg in "$@"; do
  case "$arg" in
    --quick) MODE=quick ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $arg (use --quick)" >&2; exit 2 ;;
  esac
done
ALLOW_CPU=${ZOO_GPU_CHECK_ALLOW_CPU:-0}
BUDGET=${ZOO_GPU_CHECK_BUDGET:-450}
RESERVE=20                      # kept back for timeout's --kill-after grace and the report
DEADLINE=$((SECONDS + BUDGET))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zoo-gpu-check.XXXXXX")
PY=${PYTHON:-python3}
INSTALL_NOTE=""

if [ "$MODE" = quick ]; then
  CNN_ARGS=(--steps 30 --batch-size 64 --warmup 3)
  ONNX_ARGS=(--model mlp --model cnn --reps 10 --warmup 2)
  W2V_ARGS=(--epochs 1 --models skipgram)
  CAP_TESTS=120; CAP_CNN=90; CAP_ONNX=90; CAP_W2V=120
else
  # 400 × 128 images fit Fashion-MNIST's 60,000 training images; enough steps to time a GPU.
  CNN_ARGS=(--steps 400 --batch-size 128 --warmup 20 --workers 4)
  ONNX_ARGS=(--model mlp --model cnn --model resnet-small --reps 100 --warmup 10)
  W2V_ARGS=(--epochs 3 --models "skipgram,cbow")
  CAP_TESTS=150; CAP_CNN=60; CAP_ONNX=90; CAP_W2V=150
fi

record() {  # record KEY STATUS SECONDS CAP NOTE: one line of steps.tsv for the report
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5//$'\t'/ }" >>"$WORK/steps.tsv"
}

step_limit() {  # step_limit CAP: the step's own cap, or what the overall budget has left
  local left=$((DEADLINE - SECONDS - RESERVE)) limit
  limit=$(( $1 < left ? $1 : left ))
  echo $(( limit < 1 ? 1 : limit ))  # never 0: `timeout 0` means no limit at all
}

run_step() {  # run_step KEY CAP CMD...: CMD under timeout, output to KEY.log, status to steps.tsv
  local key=$1 limit started=$SECONDS status=0
  limit=$(step_limit "$2"); shift 2
  if [ "$limit" -lt 15 ]; then
    record "$key" skipped 0 0 "the ${BUDGET} s budget is spent"; return 1
  fi
  echo "gpu-check: $key (at most ${limit} s): $*" >&2
  timeout -k 10 "$limit" "$@" >"$WORK/$key.log" 2>&1 || status=$?
  record "$key" "$status" $((SECONDS - started)) "$limit" ""
  return "$status"
}

torch_ready() {  # torch_ready PY: PY imports torch and torch sees CUDA (any torch in the CPU fake)
  "$1" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() or '$ALLOW_CPU' == '1' else 1)" \
    >/dev/null 2>&1
}

choose_python() {  # sets PY; fails when no interpreter with a usable torch can be found or made
  local py base=""
  if [ -n "${ZOO_GPU_CHECK_PYTHON:-}" ]; then PY=$ZOO_GPU_CHECK_PYTHON; INSTALL_NOTE="$PY (ZOO_GPU_CHECK_PYTHON)"; return 0; fi
  for py in .venv-gpu/bin/python .venv/bin/python; do
    if [ -x "$py" ] && torch_ready "$py"; then PY=$py; INSTALL_NOTE="reused ${py%/bin/python}"; return 0; fi
  done
  for py in ${PYTHON:-} python3 python; do  # GPU images install torch for one of these
    if torch_ready "$py"; then base=$py; break; fi
  done
  if [ -z "$base" ]; then
    PY=${PYTHON:-python3}
    INSTALL_NOTE="no interpreter whose torch sees CUDA (\$PYTHON, python3, python, .venv-gpu, .venv); set ZOO_GPU_CHECK_PYTHON"
    return 1
  fi
  # The venv sees the system's site-packages: pip finds torch there and does not reinstall it.
  # Where it does not (a base that is itself a venv or conda env), pip would download torch
  # again: install into the base instead.
  if timeout "$(step_limit 120)" "$base" -m venv --system-site-packages .venv-gpu >"$WORK/venv.log" 2>&1 \
      && torch_ready .venv-gpu/bin/python; then
    PY=.venv-gpu/bin/python; INSTALL_NOTE="new .venv-gpu on $base (its torch)"
  else
    local why; why=$(tail -n 1 "$WORK/venv.log"); why=${why:-a venv on it does not see its torch}
    PY=$base; INSTALL_NOTE="no .venv-gpu sharing $base's torch ($why): installing into $base"
  fi
}

missing_modules() {  # what the steps import that $PY lacks
  "$PY" -c "import importlib.util as u; print(' '.join(m for m in ('zoo', 'pydantic', 'pluggy', 'click', 'onnx',
    'onnxscript', 'onnxruntime', 'pytest', 'hypothesis', 'sklearn', 'gensim', 'numba') if u.find_spec(m) is None))" \
    2>/dev/null || echo "python"
}

ort_spec() {  # the onnxruntime-gpu builds for torch's CUDA major; empty for a torch without CUDA
  # onnxruntime-gpu 1.27 and later on PyPI are built for CUDA 13, 1.19 to 1.26 for CUDA 12 (their
  # [cuda] extras require nvidia-cuda-runtime 13 / nvidia-cuda-runtime-cu12): the newest wheel
  # that `pip install -e .` picks would not load next to a CUDA 12 torch.
  "$PY" -c "import torch; print({'12': 'onnxruntime-gpu>=1.23,<1.27', '13': 'onnxruntime-gpu>=1.27'}.get(
    (torch.version.cuda or '').split('.')[0], '') if torch.cuda.is_available() else '')" 2>/dev/null
}

ort_cuda_mismatch() {  # the onnxruntime-gpu present is built for another CUDA major than torch
  "$PY" -c "import sys, torch; from onnxruntime.capi import build_and_package_info as b
sys.exit(getattr(b, 'cuda_version', '').split('.')[0] == (torch.version.cuda or '').split('.')[0])" 2>/dev/null
}

cuda_provider_missing() {  # onnxruntime without its CUDA provider: the CPU wheel shadows the GPU one
  ! "$PY" -c "import sys, onnxruntime as o; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" \
    >/dev/null 2>&1
}

pip_step() {  # pip_step WHAT ARGS...: one pip install under the install budget; notes the outcome
  local limit; limit=$(step_limit 150)
  if [ "$limit" -lt 15 ]; then INSTALL_NOTE+="; $1: no time left"; return 1; fi
  if timeout -k 10 "$limit" "$PY" -m pip install -q "${@:2}" >>"$WORK/install.log" 2>&1; then
    INSTALL_NOTE+="; $1: ok"
  else
    INSTALL_NOTE+="; $1 failed: $(grep -E '^ERROR' "$WORK/install.log" | tail -n 1)"; return 1
  fi
}

fashion_mnist() {  # as scripts/setup.sh: the Debian package, when missing and apt-get can run
  [ -d /usr/share/datasets/fashion-mnist ] || [ -d "${ZOO_DATA_DIR:-/nonexistent}/fashion-mnist" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # A fresh image has empty package lists: update once when the first try fails, as setup.sh does.
    { timeout "$(step_limit 90)" apt-get install -y -qq dataset-fashion-mnist \
      || { timeout "$(step_limit 90)" apt-get update -qq \
           && timeout "$(step_limit 90)" apt-get install -y -qq dataset-fashion-mnist; }; } >>"$WORK/install.log" 2>&1 \
      && { INSTALL_NOTE+="; apt-get install dataset-fashion-mnist: ok"; return 0; }
  fi
  INSTALL_NOTE+="; Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): the cnn and onnx rows will fail"
  return 1
}

install_step() {  # pip only where something is missing: a second run only checks
  local started=$SECONDS status=0 missing ran=0 spec
  choose_python || { record install 1 $((SECONDS - started)) 0 "$INSTALL_NOTE"; return 1; }
  fashion_mnist || status=1
  spec=$(ort_spec)
  missing=$(missing_modules)
  if [ -n "$missing" ]; then
    INSTALL_NOTE+="; missing: $missing"; ran=1
    pip_step "pip install -e \".[test]\" ${spec:-}" -e ".[test]" ${spec:+"$spec"} || status=1
  fi
  if [ -n "$spec" ] && ort_cuda_mismatch; then  # pip moves onnxruntime-gpu only, the rest is satisfied
    ran=1; pip_step "pip install '$spec' (torch's CUDA major)" "$spec" || status=1
  fi
  if [ -n "$spec" ] && cuda_provider_missing; then
    ran=1; pip_step "pip install --force-reinstall --no-deps '$spec'" --force-reinstall --no-deps "$spec" || status=1
  fi
  missing=$(missing_modules)
  [ -z "$missing" ] || { INSTALL_NOTE+="; still missing: $missing"; status=1; }
  [ "$ran" = 1 ] || INSTALL_NOTE+="; nothing to install"
  record install "$status" $((SECONDS - started)) 0 "python $PY: $INSTALL_NOTE"
  return "$status"
}

probe() {  # the machine, for the table; prints the device the benchmarks use: cuda, cpu (fake) or none
  "$PY" - "$WORK/env.json" "$ALLOW_CPU" <<'EOF' 2>>"$WORK/probe.log" || echo none
import importlib, json, os, platform, sys
env = {"python": platform.python_version(), "cpus": os.cpu_count()}
for name in ("torch", "onnxruntime", "gensim"):
    try:
        env[name] = importlib.import_module(name).__version__
    except Exception as err:  # noqa: BLE001 - reported, not fatal
        env[name] = f"not importable ({type(err).__name__})"
try:
    import onnxruntime
    env["ort_providers"] = ", ".join(onnxruntime.get_available_providers())
    from onnxruntime.capi import build_and_package_info
    env["ort_cuda"] = getattr(build_and_package_info, "cuda_version", None)
except Exception:  # noqa: BLE001
    env["ort_providers"] = "-"
try:
    import torch
    env["torch_cuda"] = torch.version.cuda
    env["gpu"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
except Exception:  # noqa: BLE001
    env["gpu"] = ""
json.dump(env, open(sys.argv[1], "w"))
print("cuda" if env["gpu"] else "cpu" if sys.argv[2] == "1" else "none")
EOF
}

benchmarks() {  # benchmarks DEVICE: the three GPU rows, each with --json for the report
  run_step cnn "$CAP_CNN" "$PY" benchmarks/cnn_throughput.py --device "$1" "${CNN_ARGS[@]}" \
    --json "$WORK/cnn.json"
  run_step onnx "$CAP_ONNX" "$PY" benchmarks/onnx_latency.py --device "$1" --batch 1 --batch 64 \
    "${ONNX_ARGS[@]}" --json "$WORK/onnx.json"
  # --kernel torch: the path that runs on CUDA, also in the CPU fake (numba would run there).
  run_step word2vec "$CAP_W2V" "$PY" benchmarks/word2vec_vs_gensim.py --device "$1" \
    --kernel torch "${W2V_ARGS[@]}" --json "$WORK/word2vec.json"
}

skip_benchmarks() {  # skip_benchmarks REASON
  local key
  for key in cnn onnx word2vec; do record "$key" skipped 0 0 "$1"; done
}

main() {
  local device out ok=0
  install_step || ok=1
  device=$(probe)
  # Four at a time where pytest-xdist is there: each test trains in its own process, one GPU holds them.
  local parallel=(); "$PY" -c "import xdist" 2>/dev/null && parallel=(-n 4)
  run_step tests "$CAP_TESTS" "$PY" -m pytest -m cuda tests/cuda -q -rs "${parallel[@]}" || ok=1
  case "$device" in
    cuda|cpu) benchmarks "$device" ;;
    *) skip_benchmarks "torch sees no CUDA device (set ZOO_GPU_CHECK_ALLOW_CPU=1 for the CPU fake)"; ok=1 ;;
  esac
  awk -F'\t' '$2 != "0" { bad = 1 } END { exit !bad }' "$WORK/steps.tsv" && ok=1
  # Only a run on a GPU may replace the committed table; the CPU fake and a GPU-less run go to $TMPDIR.
  if [ "$device" = cuda ]; then out=${ZOO_GPU_CHECK_OUT:-benchmarks/GPU_RESULTS.md}
  else out=${ZOO_GPU_CHECK_OUT:-${TMPDIR:-/tmp}/GPU_RESULTS.$([ "$device" = cpu ] && echo cpu-fake || echo no-gpu).md}; fi
  local report=python3
  "$PY" -c "" 2>/dev/null && report=$PY   # stdlib only: any interpreter renders it
  "$report" scripts/gpu_check_report.py "$WORK" --mode "$MODE" --device "$device" --out "$out" || ok=1
  echo "gpu-check: table written to $out; logs in $WORK ($((SECONDS)) s)" >&2
  return "$ok"
}

main
