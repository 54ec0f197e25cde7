"""zoo reproduce: the reference recipe over seeds or folds, compared with the catalogue."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from zoo.cli import main
from zoo.core.tune import reproduce as rep
from zoo.core.contract.catalogue import load_catalogue

# logistic on breast-cancer (scikit-learn's bundle, offline): 5 epochs take a second or two
FAST = ("--set", "train.epochs=5")


def test_reproduce_passes_within_the_declared_tolerance(tmp_path):
    result = CliRunner().invoke(main, ["reproduce", "logistic", "--seeds", "2", *FAST, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "reproduce.json").read_text())["results"][0]
    assert saved["verdict"] == "pass" and saved["protocol"] == "seeds" and len(saved["runs"]) == 2
    assert [r["seed"] for r in saved["runs"]] == [0, 1]
    assert saved["mean"] >= saved["reference"] - saved["tolerance"]
    assert abs(saved["mean"] - sum(r["value"] for r in saved["runs"]) / 2) < 1e-12
    markdown = (tmp_path / "reproduce.md").read_text()
    assert "| logistic | breast-cancer | test_accuracy | seeds (2) |" in markdown and "| pass |" in markdown
    assert "`zoo reproduce logistic --seeds 2 --set train.epochs=5`" in markdown  # the docs/results.md row
    for seed in (0, 1):  # ordinary run directories
        summary = json.loads((tmp_path / "logistic" / f"seed-{seed}" / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["export"] == "disabled"


def test_a_wrong_reference_fails_with_exit_1_and_the_table(tmp_path, monkeypatch):
    reference = load_catalogue().models["logistic"].reference
    monkeypatch.setitem(reference, "value", 0.999)
    monkeypatch.setitem(reference, "tolerance", 0.001)
    result = CliRunner().invoke(main, ["reproduce", "logistic", "--seeds", "1", *FAST, "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "| logistic | breast-cancer | test_accuracy |" in result.output
    assert "0.999 (typical for linear models on WDBC) | 0.001 (≥ 0.998) | fail |" in result.output
    assert json.loads((tmp_path / "reproduce.json").read_text())["results"][0]["verdict"] == "fail"


def test_quick_runs_folds_and_seeds_and_reports_errors(tmp_path):
    """--all --quick in small: gin's folds protocol (from its reference), logistic's seeds, and
    a model whose recipe cannot run, reported as an error row without stopping the others."""
    results = rep.reproduce_many(["gin", "logistic", "no-such-model"], tmp_path, quick=True)
    gin, logistic, missing = results
    assert gin["protocol"] == "folds" and gin["count"] == 10 and gin["runs"][0]["fold"] == 0
    assert gin["verdict"] == logistic["verdict"] == "ran (quick)" and len(logistic["runs"]) == 1
    assert 0.0 <= gin["mean"] <= 1.0
    assert missing["verdict"] == "error" and "unknown model" in missing["error"]
    assert rep.failed(results) and not rep.failed([gin, logistic])
    assert "error: unknown model" in rep.table(results)


@pytest.mark.parametrize("mean, verdict", [(0.80, "pass"), (0.799, "fail"), (0.95, "pass")])
def test_verdict_is_one_sided(mean, verdict):
    reference = {"value": 0.81, "tolerance": 0.01}
    assert rep.verdict(mean, reference, maximize=True, quick=False) == verdict
    lower = {"value": 0.167, "tolerance": 0.01}  # an error (MSE): lower is better
    assert rep.verdict(0.17, lower, maximize=False, quick=False) == "pass"
    assert rep.verdict(0.18, lower, maximize=False, quick=False) == "fail"
    assert rep.verdict(mean, {"value": 0.81}, maximize=True, quick=False) == "no tolerance declared"


@pytest.mark.parametrize("args, needle", [
    (["reproduce"], "name one MODEL or pass --all"),
    (["reproduce", "logistic", "--seeds", "2", "--folds", "3"], "not both"),
    (["reproduce", "mpl", "--quick"], "did you mean: mlp"),
])
def test_reproduce_user_errors(tmp_path, args, needle):
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2 and needle in result.output, result.output
