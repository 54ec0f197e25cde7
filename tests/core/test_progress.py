"""The training progress bar: epoch, steps, samples/s and ETA on a terminal; nothing elsewhere."""

from __future__ import annotations

import io
import sys

import pytest

from zoo.core.train.trainer import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_progress_shows_epoch_steps_throughput_and_eta_only_on_a_terminal(monkeypatch, tty):
    stream = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    progress = Progress(True, total_steps=20, batch_size=32)
    progress.start -= 2.0  # two seconds in: 5 steps done → 2.5 steps/s = 80 samples/s, 15 steps left = 6 s
    progress.update(epoch=1, epochs=2, step=5, steps=10, global_step=5)
    shown = stream.getvalue()
    progress.clear()
    if not tty:
        assert stream.getvalue() == ""
        return
    assert "epoch 1/2" in shown and "5/10" in shown
    assert "80 samples/s" in shown or "79 samples/s" in shown
    assert "ETA 0:06" in shown or "ETA 0:05" in shown


def test_progress_disabled_writes_nothing_even_on_a_terminal(monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    progress = Progress(False, total_steps=4, batch_size=8)
    progress.update(1, 1, 1, 4, 1)
    progress.clear()
    assert stream.getvalue() == ""
