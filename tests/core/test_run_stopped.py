"""An on_epoch_end listener may end a run on purpose with RunStopped (what a sweep's pruner does);
any other exception from a listener is swallowed and the run goes on."""

from __future__ import annotations

import json

import pytest
from zoo import hookimpl, testing
from zoo.core.contract.errors import RunStopped
from zoo.core.contract.plugins import get_zoo
from zoo.core.train.runs import Run, run_status


class StopAt:
    def __init__(self, epoch: int, error: type[BaseException]) -> None:
        self.epoch, self.error = epoch, error

    @hookimpl
    def on_epoch_end(self, epoch):
        if epoch == self.epoch:
            raise self.error("stop here")


@pytest.fixture
def listener():
    zoo = get_zoo()
    registered = []

    def register(epoch: int, error: type[BaseException]) -> None:
        zoo.pm.register(StopAt(epoch, error), name=f"test-stop-{len(registered)}")
        registered.append(f"test-stop-{len(registered)}")

    yield register
    for name in registered:
        zoo.pm.unregister(name=name)


def test_run_stopped_ends_the_run_as_pruned_after_the_epoch_is_written(tmp_path, listener):
    listener(2, RunStopped)
    with pytest.raises(RunStopped, match="stop here"):
        testing.train("logistic", epochs=4, limit=64, out=tmp_path / "r", export=False)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "pruned" and summary["error"] == "stop here"
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "r" / "checkpoint-last.pt").exists()
    assert run_status(Run(tmp_path / "r")) == "pruned"  # what `zoo runs` shows


def test_any_other_listener_error_is_swallowed(tmp_path, listener):
    listener(2, ValueError)
    with pytest.warns(UserWarning, match="failed in on_epoch_end"):
        summary = testing.train("logistic", epochs=3, limit=64, out=tmp_path / "r", export=False)
    assert summary["status"] == "finished" and summary["epochs"] == 3
