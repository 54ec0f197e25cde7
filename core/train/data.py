"""In-memory datasets: splits of tensors that live on the device and are batched by index.

Small datasets fit on the GPU whole, so instead of a DataLoader (worker processes, per-batch host
to device copies, Python collation) a split is a dict of tensors with a shared leading dimension,
and a batch is ``tensor.index_select(0, idx)`` with ``idx`` a slice of a permutation that also
lives on the device. Families whose samples are not fixed-size rows (graphs, say) subclass
:class:`Split` and override :meth:`Split.batch`.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from zoo.core.contract.errors import ZooError


@dataclass
class DataInfo:
    """What a model builder needs to know about the data.

    :param input_shape: shape of one sample of the main input, e.g. ``(784,)`` or ``(1, 28, 28)``
    :param num_classes: number of classes for classification (2 for binary), else ``None``
    :param output_dim: number of regression targets, else ``None``
    :param class_names: display names of the classes, index-aligned
    :param input_mean, input_std: per-feature statistics of the training inputs; when set, the
        model is wrapped in :class:`Standardize` so the exported ONNX takes raw inputs
    :param target_mean, target_std: regression target statistics; when set, the model learns
        standardised targets and the wrapper maps its output back to the original scale
    :param extra: anything family-specific (vocabulary size, number of node features, ...)
    """

    input_shape: tuple[int, ...]
    num_classes: int | None = None
    output_dim: int | None = None
    class_names: list[str] | None = None
    input_mean: torch.Tensor | None = None
    input_std: torch.Tensor | None = None
    target_mean: float | None = None
    target_std: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        """Number of input features once a sample is flattened."""
        size = 1
        for dim in self.input_shape:
            size *= dim
        return size


#: While :meth:`Dataset.to` runs: the tensors moved so far, ``id → (tensor, its copy)``.
_MOVED: ContextVar[dict[int, tuple[torch.Tensor, torch.Tensor]] | None] = ContextVar("zoo_moved", default=None)


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor.to(device)``, made once per distinct tensor while a :meth:`Dataset.to` runs.

    Splits that share a tensor (the node-classification splits of one graph, a validation split
    that is the test split) then share its device copy too: one copy in device memory instead of
    one per split, and caches keyed by tensor identity hit across splits. ``Split.to``
    implementations call it instead of ``tensor.to``; outside ``Dataset.to`` it is ``tensor.to``.
    """
    moved = _MOVED.get()
    if moved is None:
        return tensor.to(device)
    entry = moved.get(id(tensor))
    if entry is None or entry[0] is not tensor:  # the entry keeps `tensor` alive, so its id stays its own
        entry = moved[id(tensor)] = (tensor, tensor.to(device))
    return entry[1]


class Split:
    """A split of a dataset; subclasses hold tensors and know how to gather a batch."""

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The samples at ``index`` (an int64 tensor on the split's device) as named tensors."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Split:
        """This split on ``device``, its tensors moved with :func:`to_device`."""
        raise NotImplementedError

    def subset(self, index: torch.Tensor) -> Split:
        """A new split holding the samples at ``index`` (used for validation hold-out and limits)."""
        raise NotImplementedError

    def batches(self, batch_size: int, order: torch.Tensor | None = None, start: int = 0):
        """Yield batches following ``order`` (indices on the device: a permutation, or one rank's
        share of it in distributed training) from batch ``start``."""
        if order is None:
            order = torch.arange(len(self), device=self.device)
        n = order.shape[0]
        for begin in range(start * batch_size, n, batch_size):
            yield self.batch(order[begin:begin + batch_size])

    def num_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    @property
    def device(self) -> torch.device:
        raise NotImplementedError


class TensorSplit(Split):
    """Named tensors sharing their first dimension: ``TensorSplit(x=X, y=Y)``."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        if not tensors:
            raise ValueError("TensorSplit needs at least one tensor")
        sizes = {name: t.shape[0] for name, t in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"tensors of a split must share their first dimension, got {sizes}")
        self.tensors = tensors

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: t.index_select(0, index) for name, t in self.tensors.items()}

    def to(self, device: torch.device | str) -> TensorSplit:
        return TensorSplit(**{name: to_device(t, device) for name, t in self.tensors.items()})

    def subset(self, index: torch.Tensor) -> TensorSplit:
        index = index.to(self.device)
        return TensorSplit(**{name: t.index_select(0, index) for name, t in self.tensors.items()})

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}:{str(v.dtype).removeprefix('torch.')}"
                           for k, v in self.tensors.items())
        return f"TensorSplit({shapes})"


@dataclass
class Dataset:
    """Train/validation/test splits plus the :class:`DataInfo` the model builder sees."""

    train: Split
    test: Split
    info: DataInfo
    val: Split | None = None

    def prepare(self, val_fraction: float, limit: int | None, seed: int) -> Dataset:
        """Apply ``limit`` and carve a validation split out of train when there is none (seeded)."""
        train, val = self.train, self.val
        generator = torch.Generator().manual_seed(seed)
        if limit is not None and limit < len(train):
            train = train.subset(torch.randperm(len(train), generator=generator)[:limit])
        if val is None:
            n_val = int(round(len(train) * val_fraction))
            if n_val > 0:
                if len(train) - n_val < 1:
                    raise ZooError(f"val_fraction {val_fraction} leaves no training samples")
                perm = torch.randperm(len(train), generator=generator)
                train, val = train.subset(perm[n_val:]), train.subset(perm[:n_val])
        elif limit is not None and limit < len(val):
            val = val.subset(torch.arange(limit))
        test = self.test
        if limit is not None and limit < len(test):
            test = test.subset(torch.arange(limit))
        return Dataset(train=train, val=val, test=test, info=self.info)

    def test_only(self) -> Dataset:
        """This dataset without its training and validation samples, for the work after training
        (test-time metrics, export, plots): ``train`` is the test split itself, ``val`` is dropped.
        Once nothing else holds the full dataset its training tensors (usually most of the data)
        are freed, so that work adds its own memory (onnx, onnxruntime, matplotlib) to the model
        and the test split rather than to the whole dataset."""
        return Dataset(train=self.test, test=self.test, info=self.info)

    def to(self, device: torch.device | str) -> Dataset:
        """The splits on ``device``; a tensor that several splits share is moved once (:func:`to_device`)."""
        token = _MOVED.set({})
        try:
            return Dataset(train=self.train.to(device), test=self.test.to(device), info=self.info,
                           val=None if self.val is None else self.val.to(device))
        finally:
            _MOVED.reset(token)


class Standardize(nn.Module):
    """Wraps a model so it takes raw inputs and returns raw-scale outputs.

    ``y = inner((x - mean) / std) * target_std + target_mean`` (the target part only for
    regression datasets that provide target statistics). The statistics are buffers: they travel
    with the checkpoint and are baked into the ONNX graph, so deployed models need no separate
    pre- or post-processing.
    """

    def __init__(self, inner: nn.Module, mean: torch.Tensor | None, std: torch.Tensor | None,
                 target_mean: float | None = None, target_std: float | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.scale_inputs = mean is not None and std is not None
        self.scale_targets = target_mean is not None and target_std is not None
        if self.scale_inputs:
            self.register_buffer("mean", mean.detach().clone().float())
            self.register_buffer("std", std.detach().clone().float().clamp_min(1e-8))
        if self.scale_targets:
            self.register_buffer("target_mean", torch.tensor(float(target_mean)))
            self.register_buffer("target_std", torch.tensor(max(float(target_std), 1e-8)))

    @classmethod
    def needed(cls, info: DataInfo) -> bool:
        return (info.input_mean is not None and info.input_std is not None) or (
            info.target_mean is not None and info.target_std is not None)

    @classmethod
    def around(cls, inner: nn.Module, info: DataInfo) -> Standardize:
        return cls(inner, info.input_mean, info.input_std, info.target_mean, info.target_std)

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        if self.scale_inputs:
            x = (x - self.mean) / self.std
        out = self.inner(x, *rest)
        if self.scale_targets:
            out = out * self.target_std + self.target_mean
        return out


def unwrap(model: nn.Module) -> nn.Module:
    """The family's own module inside any zoo wrappers (for inspection, e.g. first-layer filters)."""
    while isinstance(model, Standardize):
        model = model.inner
    return model


from zoo.core.train.roots import cache_root, data_roots, locate  # noqa: E402,F401 - re-exported (torch-free module)


def data_dir(configured: str | None, subdir: str, default: str | Path | None = None) -> Path | None:
    """Where a dataset's files are.

    An explicit ``--data-dir`` / ``data.data_dir`` is the only place looked at (``DIR/subdir``,
    then ``DIR``), and must exist. Otherwise ``$ZOO_DATA_DIR/subdir``, ``$ZOO_DATA_DIR`` and the
    dataset's standard location are tried in turn. Returns the first folder that exists, or ``None``.
    """
    from zoo.core.contract.errors import DataUnavailable

    if configured:
        base = Path(configured).expanduser()
        if not base.is_dir():
            raise DataUnavailable(f"data directory {configured!r} does not exist")
        return base / subdir if (base / subdir).is_dir() else base
    candidates: list[Path] = []
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        candidates += [Path(env) / subdir, Path(env)]
    if default is not None:
        candidates.append(Path(default))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None
