"""The ``linear`` learning-rate schedule added to the core for word2vec's decay (usable by all)."""

from __future__ import annotations

import pytest

from zoo.core.contract.config import ScheduleConfig
from zoo.core.train.trainer import lr_factor


def test_linear_decays_from_one_to_the_floor():
    factor = lr_factor(ScheduleConfig(name="linear", min_lr=0.0001), peak_lr=0.025,
                       steps_per_epoch=10, total_epochs=5)
    assert factor(0) == 1.0
    assert factor(25) == pytest.approx(1 - (1 - 0.004) * 0.5)
    assert factor(50) == pytest.approx(0.004)
    assert factor(80) == pytest.approx(0.004)           # stays at the floor past the end
    values = [factor(s) for s in range(50)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_linear_after_warmup():
    factor = lr_factor(ScheduleConfig(name="linear", warmup_epochs=1), peak_lr=1.0,
                       steps_per_epoch=10, total_epochs=3)
    assert factor(4) == pytest.approx(0.5)
    assert factor(10) == pytest.approx(1.0)
    assert factor(20) == pytest.approx(0.5)
