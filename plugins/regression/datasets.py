"""``synthetic-linear``: y = Xw + b + ε with X ~ N(0, 1), ε ~ N(0, σ²) — the classic first model."""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from zoo.core.train.data import DataInfo, Dataset, TensorSplit
from zoo.core.train.options import DataOptions, n_field, n_test_field, seed_field


class SyntheticLinearOptions(DataOptions):
    n: int = n_field(1000, 10_000_000, "samples")
    n_test: int = n_test_field(200, 10_000_000, "samples (drawn separately)")
    w: list[float] = Field([2.0, -3.4], min_length=1, description="True weights (one per feature).")
    b: float = Field(4.2, description="True bias.")
    noise: float = Field(0.01, ge=0.0, description="Standard deviation σ of the label noise.")
    seed: int = seed_field()

    @model_validator(mode="after")
    def _finite(self):
        if any(v != v or abs(v) == float("inf") for v in [*self.w, self.b]):
            raise ValueError("w and b must be finite")
        return self


def load_synthetic_linear(options: SyntheticLinearOptions | None, data_dir) -> Dataset:
    o = options or SyntheticLinearOptions()
    generator = torch.Generator().manual_seed(o.seed)
    w = torch.tensor(o.w)

    def draw(n: int) -> TensorSplit:
        x = torch.randn(n, len(o.w), generator=generator)
        y = x @ w + o.b + o.noise * torch.randn(n, generator=generator)
        return TensorSplit(x=x, y=y)

    train, test = draw(o.n), draw(o.n_test)
    info = DataInfo(input_shape=(len(o.w),), output_dim=1, extra={"true_w": list(o.w), "true_b": o.b})
    return Dataset(train=train, test=test, info=info)
