"""benchmarks/run_all.py knows every benchmark, and the ones it reads rows from write --json."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _script(name: str):
    """benchmarks/NAME.py imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _run_all():
    return _script("run_all")


def test_every_benchmark_is_in_run_all():
    listed = {b.script for b in _run_all().BENCHMARKS}
    scripts = {p.name for p in BENCH.glob("*.py") if p.name != "run_all.py" and not p.name.startswith("_")}
    assert scripts == listed, f"not in benchmarks/run_all.py: {sorted(scripts - listed)}; gone: {sorted(listed - scripts)}"


def test_benchmarks_with_a_renderer_write_json_and_render_a_ratio():
    run_all = _run_all()
    for bench in run_all.BENCHMARKS:
        if bench.render is not None:
            assert '"--json"' in (BENCH / bench.script).read_text(), f"{bench.script} has no --json option"
    # The ratio column is computed, not copied: 2 s vs 4 s is 0.50.
    text = run_all.render_trainer({"model": "mlp", "data": "d", "samples": 1, "batch_size": 1, "steps": 1,
                                   "device": "cpu", "repeats": 1, "zoo_wall": 2.0, "raw_wall": 4.0,
                                   "zoo_cpu": 3.0, "raw_cpu": 2.0})
    assert "| 0.50 | 1.50 |" in text


def test_readme_documents_the_command():
    assert "python benchmarks/run_all.py" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_serve_load_skips_the_peer_with_a_reason_when_mlserver_is_missing(tmp_path):
    """CI has no MLServer: the peer is reported as skipped (with what to install), never a crash."""
    serve_load = _script("serve_load")
    python, why = serve_load.mlserver_python(str(tmp_path / "no-venv" / "bin" / "python"))
    assert python is None and "MLServer is not installed" in why and "benchmarks/mlserver/README.md" in why
    fake = tmp_path / "python"  # an interpreter without mlserver
    fake.symlink_to(sys.executable)
    python, why = serve_load.mlserver_python(str(fake))
    assert python is None and "MLServer is not installed" in why
    text = _run_all().render_serve({"requests": 10, "repeats": 1, "rows": [], "peer": "mlserver",
                                    "peer_skipped": why})
    assert "Peer skipped: MLServer is not installed" in text


def test_memory_rows_compute_both_ratios_and_keep_a_failed_model():
    text = _run_all().render_memory({"epochs": 1, "rows": [
        {"model": "mlp", "task": "classification", "zoo_baseline": 240.0, "hand_baseline": 220.0,
         "zoo_peak": 660.0, "hand_peak": 600.0},
        {"model": "gcn", "error": "data missing"}]})
    assert "| mlp | classification | 240 | 220 | 660 | 600 | 1.10 | 1.11 |" in text  # 420 / 380
    assert "| gcn | failed: data missing |" in text
    assert all(line.count("|") == 9 for line in text.splitlines() if line.startswith("|"))


def test_serve_load_p99_line_gives_the_verdict_and_each_rounds_difference():
    """The paired interval excludes 0 for a consistent gap and holds it for differences of both
    signs; the goal line gives the medians' verdict with each round's difference, and an A/A run
    (two servers at --max-batch 1) compares the two servers it started."""
    serve_load = _script("serve_load")
    low, high = serve_load.paired_interval([0.05, 0.06, 0.04, 0.05, 0.07])
    assert 0.04 <= low < high <= 0.07
    low, high = serve_load.paired_interval([0.05, -0.04, 0.03, -0.06, 0.01])
    assert low < 0 < high

    def row(default, p99, rounds):
        return {"kind": "zoo", "max_batch": 1, "default": default, "concurrency": 1, "p99_ms": p99,
                "round_p99_ms": rounds, "p99_pooled_ms": p99, "pair_ratios": [1.0] * len(rounds)}

    worse = serve_load.goals([row(False, 0.25, [0.25, 0.25, 0.25]), row(True, 0.35, [0.34, 0.35, 0.36])])
    assert any("(goal: no worse): NOT met" in line and "mean +0.100 ms" in line for line in worse)
    better = serve_load.goals([row(False, 0.25, [0.2, 0.3, 0.25]), row(True, 0.24, [0.25, 0.26, 0.24])])
    assert any("(goal: no worse): met" in line and "+0.050, -0.040, -0.010" in line for line in better)
