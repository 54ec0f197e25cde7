"""Run directories lose nothing: one writer at a time, resumes that apply or refuse changes, failed
resumes and exports that keep a finished run's results, damaged files that do not break listings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from zoo.core import api
from zoo.core.contract.errors import TrainingInterrupted, ZooError
from zoo.core.train.runs import Run, RunLock, describe

QUICK = {"train": {"progress": False, "device": "cpu", "epochs": 2}, "export": {"enabled": False}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "linear"
    api.train("linear", options=QUICK, out=str(out), log=None)
    return out


@pytest.fixture
def run_copy(finished, tmp_path):
    return shutil.copytree(finished, tmp_path / "run")


@pytest.mark.slow
def test_out_into_a_folder_with_user_files_is_refused_unless_forced(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ZooError, match="non-empty folder that is not a run.*--force"):
        api.train("linear", options=QUICK, out=str(folder), log=None)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    api.train("linear", options=QUICK, out=str(folder), log=None, force=True)
    assert (folder / "notes.txt").read_text() == "keep me" and (folder / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_out_where_nothing_can_be_written_is_one_clear_error(tmp_path, where):
    target = {"under_a_file": tmp_path / "file.txt" / "run", "proc": "/proc/zoo-run"}[where]
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ZooError, match="cannot create the run directory"):
        api.train("linear", options=QUICK, out=str(target), log=None)


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(run_copy):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_copy / RunLock.NAME).write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
        with pytest.raises(ZooError, match=f"being written by process {holder.pid}"):
            api.train(resume=str(run_copy), options={"train": {"epochs": 3}}, log=None)
    finally:
        holder.kill()
        holder.wait()
    (run_copy / ".checkpoint-last.pt.abc.tmp").write_bytes(b"left by a kill")
    summary = api.train(resume=str(run_copy), options={"train": {"epochs": 3}}, log=None)
    assert summary["epochs"] == 3
    assert not (run_copy / RunLock.NAME).exists()          # released
    assert not list(run_copy.glob(".*.tmp"))                # the stale temporary was removed


def test_lock_is_exclusive_in_one_process_too(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(ZooError, match="being written"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire()  # free again


@pytest.mark.slow
def test_resume_applies_a_new_learning_rate(run_copy):
    api.train(resume=str(run_copy), sets=("optim.lr=1e-5", "train.epochs=3"), log=None)
    last = torch.load(run_copy / "checkpoint-last.pt", weights_only=True)
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)
    assert json.loads((run_copy / "metrics.jsonl").read_text().splitlines()[-1])["lr"] == pytest.approx(1e-5)
    assert Run(run_copy).read_config()["optim"]["lr"] == pytest.approx(1e-5)


@pytest.mark.slow
def test_resume_refuses_what_the_checkpoint_cannot_follow_and_keeps_the_results(run_copy):
    before = (run_copy / "summary.json").read_text()
    for options in ({"data": {"name": "diabetes"}}, {"train": {"batch_size": 7}}, {"optim": {"name": "rmsprop"}}):
        with pytest.raises(ZooError, match="cannot change"):
            api.train(resume=str(run_copy), options={"train": {"epochs": 3}, **options}, log=None)
    with pytest.raises(ZooError, match="cannot change model.init_std"):
        api.train(resume=str(run_copy), sets=("model.init_std=0.123",), log=None)
    assert (run_copy / "summary.json").read_text() == before


@pytest.mark.slow
def test_a_failed_resume_keeps_the_finished_summary(run_copy):
    before = json.loads((run_copy / "summary.json").read_text())
    with pytest.raises(ZooError, match="non-finite"):
        api.train(resume=str(run_copy), options={"train": {"epochs": 4}, "optim": {"lr": 1e3}}, log=None)
    after = json.loads((run_copy / "summary.json").read_text())
    assert after["status"] == "finished" and after["metrics"] == before["metrics"]
    assert after["last_resume"]["status"] == "failed" and "non-finite" in after["last_resume"]["error"]


@pytest.mark.slow
def test_the_nan_advice_works(tmp_path):
    """After a NaN stop, the advised `--resume --lr` really trains with the lower lr."""
    with pytest.raises(ZooError, match="non-finite"):
        api.train("linear", options={**QUICK, "optim": {"lr": 1e3}}, out=str(tmp_path / "r"), log=None)
    summary = api.train(resume=str(tmp_path / "r"), options={"optim": {"lr": 1e-2}}, log=None)
    assert summary["status"] == "finished"


@pytest.mark.slow
def test_interrupted_during_export_then_resume_finishes_it(tmp_path, monkeypatch):
    options = {**QUICK, "export": {"enabled": True}}

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "export_model", interrupt)
    with pytest.raises(TrainingInterrupted, match="during the export.*--resume"):
        api.train("linear", options=options, out=str(tmp_path / "r"), log=None)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["phase"] == "export"
    assert "metrics" in summary  # the test metrics were kept
    monkeypatch.undo()
    summary = api.train(resume=str(tmp_path / "r"), log=None)
    assert summary["status"] == "finished" and (tmp_path / "r" / "model.onnx").exists()


@pytest.mark.slow
def test_a_cut_off_metrics_line_and_a_damaged_summary_do_not_break_listings(run_copy):
    with open(run_copy / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "train_lo')              # a write cut off by a kill
    assert [r["epoch"] for r in Run(run_copy).read_metrics()] == [1, 2]
    (run_copy / "summary.json").write_text("{not json")
    row = describe(Run(run_copy))
    assert row["status"] == "damaged" and "summary.json" in row["error"]
    summary = api.train(resume=str(run_copy), options={"train": {"epochs": 3}}, log=None)
    assert summary["status"] == "finished"
    assert [r["epoch"] for r in Run(run_copy).read_metrics()] == [1, 2, 3]


@pytest.mark.slow
def test_cli_runs_table_survives_a_damaged_summary(run_copy, cli, tmp_path):
    (run_copy / "summary.json").write_text("\x00\x00")
    result = cli("runs", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stdout


@pytest.mark.slow
def test_weights_that_do_not_fit_the_config_are_one_clear_error(run_copy):
    from zoo.core.train import checkpoint

    path = run_copy / "checkpoint-best.pt"
    payload = checkpoint.load(path)
    payload["model"] = {k: v[..., :1] if v.dim() else v for k, v in payload["model"].items()}
    path.write_bytes(checkpoint.dumps(payload))
    with pytest.raises(ZooError, match="do not fit the model.*in the file"):
        api.load_run(str(run_copy))
