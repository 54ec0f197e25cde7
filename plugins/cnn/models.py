"""LeNet, a modern small CNN, a small residual net and the spatial transformer network.

Two properties of images motivate the convolution: a pattern is small (a filter looks at a
k×k patch) and the same pattern appears in different places (the filter's weights are shared
over all positions). Pooling makes the response tolerant to small shifts; flatten and fully
connected layers then classify. A CNN is not invariant to rotation or scale by itself, which is
what the spatial transformer adds: a small network predicts an affine transform θ of the input,
``affine_grid`` + ``grid_sample`` resample the input with it, and the CNN sees the result.

Every builder takes ``(config, info)`` with ``info.input_shape == (C, H, W)`` and raises
:class:`~zoo.core.contract.errors.ZooError` for inputs it cannot handle (too small, not an image).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn

from zoo.core.contract.config import ModelConfig
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def image_shape(info: DataInfo, model: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of the dataset's images, or a ZooError saying what the model needs."""
    if len(info.input_shape) != 3:
        raise ZooError(f"{model} needs image inputs [C, H, W]; the dataset gives samples of shape "
                       f"{list(info.input_shape)} (for fashion-mnist, do not set data.options.flatten)")
    if not info.num_classes:
        raise ZooError(f"{model} is a classifier; the dataset has no classes")
    c, h, w = info.input_shape
    return c, h, w


def _too_small(model: str, shape: tuple[int, int, int], need: int, why: str) -> ZooError:
    return ZooError(f"{model}: images of {shape[1]}×{shape[2]} are too small; it needs at least "
                    f"{need}×{need} ({why})")


# -- LeNet ---------------------------------------------------------------------------------------


class LeNetConfig(ModelConfig):
    activation: Literal["relu", "sigmoid", "tanh", "gelu"] = Field(
        "relu", description="Non-linearity after each conv and hidden fc layer (LeNet-5 used sigmoid-like units).")
    pool: Literal["max", "avg"] = Field("max", description="2×2 pooling after each conv (LeNet-5 used average).")
    channels: tuple[PositiveInt, PositiveInt] = Field((6, 16), description="Filters of the two 5×5 convs.")
    hidden: list[PositiveInt] = Field([120, 84], description="Widths of the fully connected layers.")
    batch_norm: bool = Field(False, description="BatchNorm after each conv and hidden fc (a modern variant).")


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998): conv5(pad 2)-act-pool-conv5-act-pool-fc-act-fc-act-fc.

    Shapes: ``x [B, C, H, W] → conv1 [B, 6, H, W] → pool [B, 6, H/2, W/2] → conv2 [B, 16, H/2−4, W/2−4]
    → pool [B, 16, (H/2−4)/2, (W/2−4)/2] → flatten → fc … → [B, classes]``.
    """

    def __init__(self, shape: tuple[int, int, int], classes: int, config: LeNetConfig) -> None:
        super().__init__()
        c, h, w = shape
        c1, c2 = config.channels
        act, pool = ACTIVATIONS[config.activation], POOLS[config.pool]

        def norm(n: int, one_d: bool = False) -> nn.Module:
            if not config.batch_norm:
                return nn.Identity()
            return nn.BatchNorm1d(n) if one_d else nn.BatchNorm2d(n)

        self.features = nn.Sequential(
            nn.Conv2d(c, c1, 5, padding=2), norm(c1), act(), pool(2),   # (B, c1, H/2, W/2)
            nn.Conv2d(c1, c2, 5), norm(c2), act(), pool(2),             # (B, c2, (H/2-4)/2, ...)
        )
        fh, fw = (h // 2 - 4) // 2, (w // 2 - 4) // 2
        layers: list[nn.Module] = [nn.Flatten(1)]
        width = c2 * fh * fw
        for size in config.hidden:
            layers += [nn.Linear(width, size), norm(size, one_d=True), act()]
            width = size
        layers.append(nn.Linear(width, classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def first_conv(self) -> nn.Conv2d:
        return self.features[0]


def build_lenet(config: LeNetConfig, info: DataInfo) -> nn.Module:
    shape = image_shape(info, "lenet")
    if min(shape[1:]) < 12:
        raise _too_small("lenet", shape, 12, "a padded 5×5 conv, 2×2 pool, an unpadded 5×5 conv and a "
                         "2×2 pool must leave at least 1×1; use the cnn model for small images")
    return LeNet(shape, info.num_classes, config)


# -- a modern small CNN --------------------------------------------------------------------------


class CNNConfig(ModelConfig):
    channels: list[PositiveInt] = Field(
        [32, 64], min_length=1, description="Filters of each block; each block ends with a 2×2 pool.")
    convs_per_block: PositiveInt = Field(1, le=4, description="3×3 conv-BN-ReLU layers per block.")
    pool: Literal["max", "avg"] = Field("max", description="Pooling at the end of each block.")
    batch_norm: bool = Field(True, description="BatchNorm after each conv.")
    hidden: int = Field(128, ge=0, description="Width of the hidden fc layer (0 = none).")
    dropout: float = Field(0.25, ge=0.0, lt=1.0, description="Dropout before each fc layer.")


def conv_bn_relu(c_in: int, c_out: int, batch_norm: bool = True, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(), nn.ReLU(inplace=True)]


class CNN(nn.Module):
    """Blocks of [3×3 conv-BN-ReLU] × n then 2×2 pooling, flatten, dropout, fc-ReLU, dropout, fc.

    Shapes: ``x [B, C, H, W] → block k [B, channels[k], H/2^(k+1), W/2^(k+1)] → flatten
    [B, channels[-1]·H'·W'] → [B, hidden] → [B, classes]``.
    """

    def __init__(self, shape: tuple[int, int, int], classes: int, config: CNNConfig) -> None:
        super().__init__()
        c, h, w = shape
        layers: list[nn.Module] = []
        for width in config.channels:
            for _ in range(config.convs_per_block):
                layers += conv_bn_relu(c, width, config.batch_norm)
                c = width
            layers.append(POOLS[config.pool](2))
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten(1)]
        width = c * h * w
        if config.hidden:
            head += [nn.Dropout(config.dropout), nn.Linear(width, config.hidden), nn.ReLU(inplace=True)]
            width = config.hidden
        head += [nn.Dropout(config.dropout), nn.Linear(width, classes)]
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def first_conv(self) -> nn.Conv2d:
        return self.features[0]


def _check_blocks(model: str, shape: tuple[int, int, int], blocks: int) -> None:
    need = 2 ** blocks
    if min(shape[1:]) < need:
        raise _too_small(model, shape, need, f"{blocks} blocks each halve the size; use fewer channels entries")


def build_cnn(config: CNNConfig, info: DataInfo) -> nn.Module:
    shape = image_shape(info, "cnn")
    _check_blocks("cnn", shape, len(config.channels))
    return CNN(shape, info.num_classes, config)


# -- a small residual network --------------------------------------------------------------------


class ResNetConfig(ModelConfig):
    widths: list[PositiveInt] = Field(
        [16, 32, 64], min_length=1, description="Channels of each stage; stages after the first halve the size.")
    blocks: list[PositiveInt] = Field([1, 1, 1], min_length=1, description="Residual blocks per stage.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the final fc layer.")


class BasicBlock(nn.Module):
    """He et al. 2016: y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)).

    The shortcut is the identity, or a strided 1×1 conv + BN when the shape changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNetSmall(nn.Module):
    """3×3 conv stem, stages of residual blocks (stride 2 at each stage after the first),
    global average pooling, fc.

    Shapes: ``x [B, C, H, W] → stem [B, w0, H, W] → stage k [B, w_k, H/2^k, W/2^k] → pool [B, w_last]
    → [B, classes]``.
    """

    def __init__(self, shape: tuple[int, int, int], classes: int, config: ResNetConfig) -> None:
        super().__init__()
        c = shape[0]
        self.stem = nn.Sequential(*conv_bn_relu(c, config.widths[0]))
        stages: list[nn.Module] = []
        c = config.widths[0]
        for k, (width, n) in enumerate(zip(config.widths, config.blocks)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(c, width, stride=2 if (k > 0 and i == 0) else 1))
                c = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(config.dropout),
                                  nn.Linear(c, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def first_conv(self) -> nn.Conv2d:
        return self.stem[0]


def build_resnet_small(config: ResNetConfig, info: DataInfo) -> nn.Module:
    shape = image_shape(info, "resnet-small")
    if len(config.widths) != len(config.blocks):
        raise ZooError(f"resnet-small: model.widths ({len(config.widths)} stages) and model.blocks "
                       f"({len(config.blocks)} stages) must have the same length")
    _check_blocks("resnet-small", shape, len(config.widths) - 1)
    return ResNetSmall(shape, info.num_classes, config)


# -- spatial transformer network -----------------------------------------------------------------


class STNConfig(CNNConfig):
    loc_channels: tuple[PositiveInt, PositiveInt] = Field(
        (8, 16), description="Filters of the localisation network's two convs.")
    loc_hidden: PositiveInt = Field(32, description="Hidden width of the localisation network's fc.")
    out_size: PositiveInt | None = Field(
        None, description="Side of the resampled image the CNN sees (default: the input's size).")


class SpatialTransformer(nn.Module):
    """Jaderberg et al. 2015: a localisation net predicts θ (2×3 affine), the input is resampled
    on the grid θ·[x, y, 1]ᵀ (``affine_grid``) by bilinear interpolation (``grid_sample``).

    The localisation net looks at a 2×-downsampled input (cheap) and its last layer starts at
    zero weights and the identity bias, so training starts from "no transform".

    Shapes: ``x [B, C, H, W] → θ [B, 2, 3] → grid [B, h, w, 2] → out [B, C, h, w]``.
    """

    def __init__(self, shape: tuple[int, int, int], out_size: int, channels: tuple[int, int],
                 hidden: int) -> None:
        super().__init__()
        c, h, w = shape
        c1, c2 = channels
        self.out_size = out_size
        self.register_buffer("base", affine_base_grid(out_size), persistent=False)   # (h·w, 3)
        self.features = nn.Sequential(
            nn.AvgPool2d(2),                                                # (B, C, H/2, W/2)
            nn.Conv2d(c, c1, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(True),   # (B, c1, H/4, W/4)
            nn.Conv2d(c1, c2, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(True),  # (B, c2, H/8, W/8)
        )
        flat = c2 * (h // 8) * (w // 8)
        self.theta = nn.Sequential(nn.Flatten(1), nn.Linear(flat, hidden), nn.ReLU(True), nn.Linear(hidden, 6))
        nn.init.zeros_(self.theta[-1].weight)
        with torch.no_grad():
            self.theta[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def affine(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta(self.features(x)).view(-1, 2, 3)  # (B, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.affine(x)
        # F.affine_grid(theta, size, align_corners=False) as one batched matmul with a fixed base
        # grid: its exported form (broadcast Mul + ReduceSum over [B, h·w, 2, 3]) was 70 % of
        # onnxruntime's time at batch 64.
        grid = torch.matmul(self.base, theta.transpose(1, 2))            # (B, h·w, 2)
        grid = grid.view(-1, self.out_size, self.out_size, 2)            # (B, h, w, 2) in [-1, 1]
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def affine_base_grid(size: int) -> torch.Tensor:
    """``[size², 3]`` rows ``(x, y, 1)`` at the pixel centres of a ``size × size`` output in
    [-1, 1] (``align_corners=False``: ``x_j = (2j + 1) / size − 1``), row-major (y outer), the
    grid ``F.affine_grid`` multiplies by θᵀ."""
    lin = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], dim=-1).reshape(size * size, 3)


class STN(nn.Module):
    """A spatial transformer in front of a :class:`CNN`: ``cnn(transformer(x))``.

    The transformer works on standardised inputs (it sits inside the zoo's Standardize wrapper),
    so "zeros" padding means the dataset's mean intensity.
    """

    def __init__(self, shape: tuple[int, int, int], classes: int, config: STNConfig) -> None:
        super().__init__()
        c, h, w = shape
        out = config.out_size or min(h, w)
        self.transformer = SpatialTransformer(shape, out, config.loc_channels, config.loc_hidden)
        cnn_config = CNNConfig(**{k: getattr(config, k) for k in CNNConfig.model_fields})
        self.cnn = CNN((c, out, out), classes, cnn_config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(self.transformer(x))

    def first_conv(self) -> nn.Conv2d:
        return self.cnn.first_conv()


def build_stn(config: STNConfig, info: DataInfo) -> nn.Module:
    shape = image_shape(info, "stn")
    if min(shape[1:]) < 8:
        raise _too_small("stn", shape, 8, "the localisation network downsamples by 8")
    out = config.out_size or min(shape[1:])
    _check_blocks("stn", (shape[0], out, out), len(config.channels))
    return STN(shape, info.num_classes, config)
