"""The regression family: the classic results, shapes and builder errors."""

from __future__ import annotations

import pytest
import torch
from zoo.core import api
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.regression.models import (
    MLP,
    LinearConfig,
    LogisticConfig,
    MLPConfig,
    build_linear,
    build_logistic,
    build_mlp,
)

QUIET = {"train": {"progress": False, "device": "cpu"}, "export": {"enabled": False}}


@pytest.mark.slow
def test_linear_recovers_w_and_b_to_1e_3(tmp_path):
    """lr 0.03, batch 10, 3 epochs of minibatch SGD on 1,000 samples: w = [2, -3.4], b = 4.2."""
    summary = api.train("linear", options=QUIET, out=str(tmp_path / "r"), log=None)
    learned = summary["learned"]
    assert max(abs(a - b) for a, b in zip(learned["w"], [2.0, -3.4])) < 1e-3
    assert abs(learned["b"] - 4.2) < 1e-3
    assert summary["metrics"]["r2"] > 0.9999


@pytest.mark.slow
def test_logistic_on_breast_cancer(tmp_path):
    summary = api.train("logistic", options=QUIET, out=str(tmp_path / "r"), log=None)
    assert summary["metrics"]["accuracy"] >= 0.95


@pytest.mark.slow
def test_mlp_regression_on_diabetes_learns(tmp_path):
    options = {**QUIET, "train": {**QUIET["train"], "epochs": 40, "batch_size": 32},
               "model": {"hidden": [32], "dropout": 0.0}, "optim": {"lr": 0.003}, "data": {"name": "diabetes"}}
    summary = api.train("mlp", options=options, out=str(tmp_path / "r"), log=None)
    assert summary["task"] == "regression"
    assert summary["metrics"]["r2"] > 0.3  # linear models reach ~0.45 on this split


def test_mlp_shapes_and_activations():
    for activation in ("sigmoid", "relu", "tanh", "gelu"):
        net = MLP(784, [16, 8], 10, activation, dropout=0.1)
        assert net(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert MLP(3, [], 1, "relu", 0.0)(torch.randn(2, 3)).shape == (2, 1)


def test_mlp_rejects_bad_widths():
    with pytest.raises(ValueError):
        MLPConfig(name="mlp", hidden=[0])


def test_builders_refuse_the_wrong_kind_of_data():
    classes = DataInfo(input_shape=(4,), num_classes=3)
    targets = DataInfo(input_shape=(4,), output_dim=1)
    with pytest.raises(ZooError, match="logistic is binary"):
        build_logistic(LogisticConfig(name="logistic"), classes)
    with pytest.raises(ZooError, match="linear is a regression model"):
        build_linear(LinearConfig(name="linear"), classes)
    assert build_mlp(MLPConfig(name="mlp"), targets)(torch.randn(2, 4)).shape == (2, 1)


def test_synthetic_linear_is_deterministic_and_configurable():
    entry, _, cfg = api.resolve_config("linear", sets=("data.options.n=50", "data.options.w=[1.0, 2.0, 3.0]"))
    a, _ = api.load_data(cfg, entry)
    b, _ = api.load_data(cfg, entry)
    assert torch.equal(a.train.tensors["x"], b.train.tensors["x"])
    assert a.train.tensors["x"].shape == (50, 3) and a.info.input_shape == (3,)
