"""Regression family: linear regression, logistic and softmax regression, and the MLP.

Follows the course material: a linear model y = b + w·x fitted by minibatch SGD, the same model
behind a sigmoid (logistic) or a softmax (multi-class), and a network of sigmoid/ReLU units
y = b + Σᵢ cᵢ·act(bᵢ + Σⱼ wᵢⱼ xⱼ) with any number of hidden layers.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.regression.datasets import (
    SyntheticLinearOptions,
    load_synthetic_linear,
)
from zoo.plugins.regression.models import (
    LinearConfig,
    LogisticConfig,
    MLPConfig,
    SoftmaxConfig,
    build_linear,
    build_logistic,
    build_mlp,
    build_softmax,
)


@hookimpl
def register_models(register):
    register("linear", build_linear, LinearConfig)
    register("logistic", build_logistic, LogisticConfig)
    register("softmax", build_softmax, SoftmaxConfig)
    register("mlp", build_mlp, MLPConfig)


@hookimpl
def register_datasets(register):
    register("synthetic-linear", load_synthetic_linear, SyntheticLinearOptions)
