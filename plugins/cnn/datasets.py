"""``fashion-mnist-transformed``: Fashion-MNIST rotated, scaled and moved on a larger canvas.

The case a plain CNN handles badly and a spatial transformer is for. Each 28×28 image is placed
on a ``canvas``×``canvas`` background, rotated by an angle in ±``max_rotation`` degrees, scaled
by a factor in [``min_scale``, ``max_scale``] and shifted by up to ``max_shift`` pixels in x and y.

Determinism: the transform parameters are drawn on the CPU from a ``torch.Generator`` seeded with
``seed`` (train and test from separate streams), so they are the same on every machine; the
resampling itself (``affine_grid`` + ``grid_sample``, bilinear) runs in chunks on ``device``
(the GPU when there is one) and the result comes back to the CPU as the hook contract asks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from zoo.core.train.data import DataInfo, Dataset, TensorSplit
from zoo.core.train.options import DataOptions, seed_field
from zoo.core.contract.errors import ZooError

SOURCE = "fashion-mnist"


class TransformedOptions(DataOptions):
    ordered = (("min_scale", "max_scale"),)
    canvas: int = Field(40, ge=28, le=256, description="Side of the output images in pixels.")
    max_rotation: float = Field(45.0, ge=0.0, le=180.0, description="Rotation drawn from ±this, degrees.")
    min_scale: float = Field(0.7, gt=0.0, le=4.0, description="Smallest scale factor.")
    max_scale: float = Field(1.2, gt=0.0, le=4.0, description="Largest scale factor.")
    max_shift: float = Field(6.0, ge=0.0, description="Translation drawn from ±this, pixels (x and y).")
    seed: int = seed_field("the transform parameters")
    n_train: int | None = Field(None, ge=1, description="Use only the first N training images (tests).")
    n_test: int | None = Field(None, ge=1, description="Use only the first N test images (tests).")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="Where the images are resampled (auto = cuda when available).")


def random_affines(n: int, options: TransformedOptions, generator: torch.Generator) -> torch.Tensor:
    """θ [n, 2, 3] mapping output (canvas) coordinates to source (28×28) coordinates.

    ``affine_grid`` works in normalised coordinates ([-1, 1] across each image). A canvas point
    u (in canvas-normalised units) is at pixel u·C/2; undoing a shift t, a rotation R(α) and a
    scale s gives the source pixel R(−α)(u·C/2 − t)/s, i.e. normalised R(−α)(u·C/2 − t)/(s·14).
    """
    o = options
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(o.max_rotation)
    scale = o.min_scale + torch.rand(n, generator=generator) * (o.max_scale - o.min_scale)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * o.max_shift  # pixels
    cos, sin = torch.cos(angle), torch.sin(angle)
    half_src = 14.0
    k = (o.canvas / 2) / (scale * half_src)                      # canvas-normalised → source-normalised
    inv = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # R(−α) (n, 2, 2)
    linear = inv * k[:, None, None]
    offset = -(inv @ shift[:, :, None]).squeeze(-1) / (scale[:, None] * half_src)  # (n, 2)
    return torch.cat([linear, offset[:, :, None]], dim=2)       # (n, 2, 3)


def transform_images(images: torch.Tensor, theta: torch.Tensor, canvas: int, device: torch.device,
                     chunk: int = 8192) -> torch.Tensor:
    """Resample ``images`` [n, 1, 28, 28] onto [n, 1, canvas, canvas] with ``theta``, in chunks."""
    out = torch.empty(images.shape[0], images.shape[1], canvas, canvas)
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].to(device)
        t = theta[start:start + chunk].to(device)
        grid = F.affine_grid(t, [x.shape[0], x.shape[1], canvas, canvas], align_corners=False)
        warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[start:start + chunk] = warped.clamp_(0.0, 1.0).cpu()
    return out


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ZooError(f"data.options.device {name!r}: CUDA is not available (use auto or cpu)")
    return torch.device(name)


def load_fashion_mnist_transformed(options: TransformedOptions | None, data_dir: str | None) -> Dataset:
    from zoo.core.contract.plugins import get_zoo

    o = options or TransformedOptions()
    # The plain dataset comes through the registry (whichever plugin provides it), not by import.
    source = get_zoo().registry.dataset(SOURCE).loader(None, data_dir)
    device = _device(o.device)

    def make(split: TensorSplit, n: int | None, stream: int) -> TensorSplit:
        x, y = split.tensors["x"], split.tensors["y"]
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ZooError(f"{SOURCE} must provide [N, 1, 28, 28] images, got {list(x.shape)}")
        if n is not None:
            x, y = x[:n], y[:n]
        generator = torch.Generator().manual_seed(o.seed * 1000 + stream)
        theta = random_affines(x.shape[0], o, generator)
        return TensorSplit(x=transform_images(x, theta, o.canvas, device), y=y.clone())

    train = make(source.train, o.n_train, 0)
    test = make(source.test, o.n_test, 1)
    x = train.tensors["x"]
    info = DataInfo(input_shape=(1, o.canvas, o.canvas), num_classes=source.info.num_classes,
                    class_names=source.info.class_names,
                    input_mean=x.mean().reshape(1, 1, 1), input_std=x.std().reshape(1, 1, 1),
                    extra={"transform": o.model_dump(exclude={"device", "n_train", "n_test"})})
    return Dataset(train=train, test=test, info=info)
