"""Linear, logistic, softmax regression and the multi-layer perceptron.

All four flatten their input, so they also take images (``[B, 1, 28, 28]`` → ``[B, 784]``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn
from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def _outputs(info: DataInfo) -> int:
    """Logits for classification (one per class), one value per target for regression."""
    if info.num_classes:
        return info.num_classes
    return info.output_dim or 1


class LinearModel(nn.Module):
    """ŷ = b + w·x, one affine map from the flattened input.

    Shapes: ``x [B, *input_shape] → [B, out]``.
    """

    def __init__(self, in_features: int, out_features: int, init_std: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        # The classic initialisation: w ~ N(0, σ²) small, b = 0.
        nn.init.normal_(self.linear.weight, std=init_std)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def learned_parameters(self) -> dict[str, list[float] | float]:
        """w and b as plain numbers, reported in the run summary (single-output models)."""
        w = self.linear.weight.detach().cpu()
        if w.shape[0] != 1:
            return {}
        return {"w": [round(v, 6) for v in w[0].tolist()], "b": round(float(self.linear.bias.detach()[0]), 6)}


class LinearConfig(ModelConfig):
    init_std: float = Field(0.01, ge=0.0, description="Std of the normal initialisation of w.")


def build_linear(config: LinearConfig, info: DataInfo) -> nn.Module:
    if info.num_classes:
        raise ZooError("linear is a regression model; use logistic or softmax for classification")
    return LinearModel(info.input_size, _outputs(info), config.init_std)


class LogisticConfig(ModelConfig):
    init_std: float = Field(0.01, ge=0.0, description="Std of the normal initialisation of w.")


def build_logistic(config: LogisticConfig, info: DataInfo) -> nn.Module:
    """P(y = 1 | x) = σ(b + w·x): one logit, trained with binary cross-entropy."""
    if info.num_classes != 2:
        raise ZooError(f"logistic is binary; dataset has {info.num_classes} classes (use softmax)")
    return LinearModel(info.input_size, 1, config.init_std)


class SoftmaxConfig(ModelConfig):
    init_std: float = Field(0.01, ge=0.0, description="Std of the normal initialisation of W.")


def build_softmax(config: SoftmaxConfig, info: DataInfo) -> nn.Module:
    """P(y = k | x) = softmax(Wx + b)_k: C logits, trained with cross-entropy."""
    if not info.num_classes:
        raise ZooError("softmax regression needs a classification dataset")
    return LinearModel(info.input_size, info.num_classes, config.init_std)


class MLPConfig(ModelConfig):
    hidden: list[PositiveInt] = Field([256], description="Width of each hidden layer (empty = linear).")
    activation: Literal["sigmoid", "relu", "tanh", "gelu"] = Field(
        "relu", description="Non-linearity of the hidden units.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after each hidden layer.")


class MLP(nn.Module):
    """y = b + Σᵢ cᵢ·act(bᵢ + Σⱼ wᵢⱼ xⱼ), stacked for every entry of ``hidden``.

    Shapes: ``x [B, *input_shape] → [B, out]``.
    """

    def __init__(self, in_features: int, hidden: list[int], out_features: int, activation: str,
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(1)]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_mlp(config: MLPConfig, info: DataInfo) -> nn.Module:
    if any(h < 1 for h in config.hidden):
        raise ZooError(f"mlp: hidden layer widths must be ≥ 1, got {config.hidden}")
    return MLP(info.input_size, config.hidden, _outputs(info), config.activation, config.dropout)
