"""The one Markdown table of ``scripts/gpu-check.sh``, from the files its steps left in a folder.

    python scripts/gpu_check_report.py WORK --mode quick|full --device cuda|cpu [--out FILE]

``WORK`` holds ``steps.tsv`` (one line per step: key, exit status or ``skipped``, seconds, the
step's time limit, a note), ``env.json`` (the machine, from the chosen interpreter), each step's
log (``KEY.log``) and the benchmarks' ``--json`` files. Standard library only: the table must be
written even when the environment the steps needed could not be installed. Every step has a row;
one that failed, timed out or was skipped says why instead of a figure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

TIMED_OUT = {124, 137}  # timeout's status for SIGTERM, and for the SIGKILL of --kill-after


def read_steps(work: Path) -> dict[str, dict]:
    steps = {}
    path = work / "steps.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        key, status, seconds, cap, note = (line.split("\t") + [""] * 5)[:5]
        steps[key] = {"status": status, "seconds": seconds, "cap": cap, "note": note}
    return steps


def cell(text: str) -> str:
    """One table cell: no newlines, no column breaks, not a screenful of traceback."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= 300 else text[:297] + "..."


def log_tail(work: Path, key: str) -> str:
    """The last meaningful line of a step's log: where Python and pip put the error."""
    path = work / f"{key}.log"
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.exists() else []
    errors = [ln for ln in lines if re.match(r"^\w*(Error|Exception)\b|^ERROR|^FAILED|^E ", ln.strip())]
    return (errors or lines or ["(no output)"])[-1].strip()


def failure(work: Path, key: str, step: dict | None, result: Path | None = None) -> str | None:
    """Why a step gave no figures, or None when it ran (a benchmark that wrote its JSON counts as
    run even with a non-zero status: its own rows say what failed inside it)."""
    if step is None:
        return "not run"
    if step["status"] == "skipped":
        return f"skipped: {step['note']}"
    status = int(step["status"])
    if status in TIMED_OUT:
        return f"timed out after {step['cap']} s (log: {key}.log)"
    if result is not None and result.exists():
        return None
    if status != 0 or result is not None:
        return f"exit {status}: {log_tail(work, key)}"
    return None


def step_result(steps: dict, work: Path, key: str, check: str, goal: str) -> tuple[dict | None, Any, list | None]:
    """``(step, parsed KEY.json, None)`` for a benchmark that ran, or ``(step, None, [its failure row])``."""
    step, result = steps.get(key), work / f"{key}.json"
    why = failure(work, key, step, result)
    if why:
        return step, None, [row(check, "-", goal, cell(why), step["seconds"] if step else "")]
    return step, json.loads(result.read_text()), None


def row(check: str, measured: str, goal: str, verdict: str, seconds: str = "") -> list[str]:
    return [check, measured, goal, verdict, seconds]


def verdict(value: float | None, goal: float, higher: bool = True) -> str:
    if value is None:
        return "not measured"
    met = value >= goal if higher else value <= goal
    return "met" if met else "NOT met"


def install_rows(steps: dict, work: Path) -> list[list[str]]:
    step = steps.get("install")
    if step is None:
        return [row("install", "-", "zoo, test tools, onnxruntime-gpu importable", "not run")]
    # The install step's note already says what failed (pip's error line, what is still missing).
    verdict_ = "ok" if step["status"] == "0" else "FAILED (see measured; log: install.log)"
    return [row("install", cell(step["note"]), "zoo, test tools, onnxruntime-gpu importable", verdict_,
                step["seconds"])]


def test_rows(steps: dict, work: Path) -> list[list[str]]:
    step = steps.get("tests")
    why = failure(work, "tests", step)
    log = (work / "tests.log").read_text(errors="replace") if (work / "tests.log").exists() else ""
    summary = re.findall(r"^=*\s*((?:\d+ \w+(?:, )?)+|no tests ran) in [\d.]+s", log, re.M)
    measured = summary[-1] if summary else "-"
    skips = re.findall(r"^SKIPPED \[\d+\] [^:]+(?::\d+)?: (.*)$", log, re.M)
    if skips:
        measured += f" (skip reason: {sorted(set(skips))[0]})"
    ok = why is None and not re.search(r"\d+ (failed|errors?)", measured)
    return [row("`pytest -m cuda tests/cuda`", cell(measured), "all pass", "ok" if ok else cell(why or "FAILED"),
                step["seconds"] if step else "")]


def cnn_rows(steps: dict, work: Path) -> list[list[str]]:
    step, d, failed = step_result(steps, work, "cnn", "trainer vs DataLoader loop (images/s)", "≥ 1.5×")
    if failed:
        return failed
    ratio = d["zoo_images_per_s"] / d["dataloader_images_per_s"]
    measured = (f"{d['model']} on {d['dataset']}, {d['device']}, {d['steps']} steps × {d['batch_size']}: "
                f"zoo {d['zoo_images_per_s']:,.0f} vs DataLoader {d['dataloader_images_per_s']:,.0f} images/s "
                f"= **{ratio:.2f}×**")
    return [row("trainer vs DataLoader loop (images/s)", measured, "≥ 1.5×", verdict(ratio, 1.5), step["seconds"])]


def onnx_rows(steps: dict, work: Path) -> list[list[str]]:
    step, d, failed = step_result(steps, work, "onnx", "onnxruntime vs torch latency", "reported")
    if failed:
        return failed
    rows = [_onnx_row(r, d.get("device", "cpu"), d["reps"]) for r in d["rows"]]
    rows += [row("onnxruntime vs torch latency", "-", "reported", cell(f"FAILED {f}")) for f in d["failures"]]
    if rows:
        rows[0][4] = step["seconds"]
    return rows


def _onnx_row(r: dict, device: str, reps: int) -> list[str]:
    check = f"onnxruntime vs torch latency, {r['model']} batch {r['batch']}"
    provider = r["provider"].replace("ExecutionProvider", "")
    if r["ort_ms"] is None:
        return row(check, cell(f"torch {device} {r['torch_ms']:.3f} ms; {r.get('note')}"), "reported",
                   "CUDA EP unavailable")
    measured = (f"ORT {provider} {r['ort_ms']:.3f} ms vs torch {device} {r['torch_ms']:.3f} ms "
                f"(median of {reps}) = **{r['ratio']:.2f}**")
    return row(check, measured, "reported (ORT / torch)", "ok")


def word2vec_rows(steps: dict, work: Path) -> list[list[str]]:
    step, d, failed = step_result(steps, work, "word2vec", "word2vec torch path vs gensim (words/s)", "≥ 2×")
    if failed:
        return failed
    rows = [_word2vec_row(r) for r in d]
    if rows:
        rows[0][4] = step["seconds"]
    return rows


def _word2vec_row(r: dict) -> list[str]:
    ours, gensim = r["ours"], r["gensim"]
    ratio = ours["words_per_s"] / gensim["words_per_s"]
    quality = ", ".join(f"{label} {ours[k]:.3f} vs {gensim[k]:.3f}" for k, label in
                        (("ws353", "WordSim353"), ("analogy", "analogies")) if ours[k] is not None and gensim[k] is not None)
    measured = (f"{r['model']} on {r['dataset']}, {r['epochs']} epoch(s), ours on {r.get('device', 'cpu')} "
                f"(kernel {r.get('kernel', 'auto')}) {ours['words_per_s']:,.0f} vs gensim ({r['threads']} threads) "
                f"{gensim['words_per_s']:,.0f} words/s = **{ratio:.2f}×**; {quality}")
    return row(f"word2vec torch path vs gensim, {r['model']} (words/s)", measured, "≥ 2×", verdict(ratio, 2.0))


def machine_line(work: Path) -> str:
    path = work / "env.json"
    if not path.exists():
        return "Machine: unknown (the interpreter could not be probed; see install)."
    env = json.loads(path.read_text())
    gpu = env.get("gpu") or "no CUDA device visible to torch"
    return (f"Machine: {gpu}; python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), "
            f"onnxruntime {env.get('onnxruntime')} (built for CUDA {env.get('ort_cuda')}; providers: "
            f"{env.get('ort_providers')}), "
            f"gensim {env.get('gensim')}; {env.get('cpus')} CPU cores.")


def render(work: Path, mode: str, device: str) -> str:
    steps = read_steps(work)
    rows = (install_rows(steps, work) + test_rows(steps, work) + cnn_rows(steps, work)
            + onnx_rows(steps, work) + word2vec_rows(steps, work))
    title = {"cuda": "GPU check", "cpu": "GPU check — CPU FAKE (ZOO_GPU_CHECK_ALLOW_CPU=1): not GPU figures"}.get(
        device, "GPU check — no CUDA device was visible: the benchmarks did not run")
    lines = [f"# {title}", "",
             f"`bash scripts/gpu-check.sh{' --quick' if mode == 'quick' else ''}`, {mode} mode, device {device}, "
             f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC. {machine_line(work)}", "",
             "| check | measured | goal | verdict | seconds |", "| --- | --- | --- | --- | ---: |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--mode", choices=("quick", "full"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = render(args.work, args.mode, args.device)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
