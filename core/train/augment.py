"""Data augmentation on device tensors, applied by the trainer to training batches only.

The data already lives on the device as tensors (see :mod:`zoo.core.train.data`), so augmentation is a
few vectorised tensor operations per batch rather than per-sample Python in DataLoader workers.
It applies to image inputs ``[B, C, H, W]`` (the task's first input) and is configured by the
``[data.augment]`` table; every option is off by default, so nothing changes unless asked.

- ``shift = s``: translate each image by an integer offset drawn uniformly from [−s, s] in x and
  y, filling with zeros: the same as zero-padding by s and taking a random H×W crop.
- ``hflip = true``: mirror each image left-right with probability 1/2.

Randomness comes from the global torch RNG of the batch's device, which the trainer seeds and
stores in its checkpoints, so resumed runs see the same augmentations (on the CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.core.contract.config import AugmentConfig
from zoo.core.contract.errors import ZooError


def check_images(x: torch.Tensor, config: AugmentConfig) -> None:
    """Raise ZooError when ``config`` asks for augmentation that ``x`` cannot take."""
    if config.enabled and x.dim() != 4:
        raise ZooError(f"data.augment (shift/hflip) needs image inputs [B, C, H, W]; this dataset's "
                       f"inputs have shape {list(x.shape)}. Remove the [data.augment] settings.")


def random_shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image moved by its own offset in [−max_shift, max_shift]², zero fill.

    Gathers rows and columns of the zero-padded batch with per-sample index vectors:
    ``padded [B, C, H+2s, W+2s] → rows [B, H], cols [B, W] → out [B, C, H, W]``.
    """
    b, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    offsets = torch.randint(0, 2 * s + 1, (2, b, 1), device=x.device)           # (2, B, 1)
    rows = torch.arange(h, device=x.device) + offsets[0]                          # (B, H)
    cols = torch.arange(w, device=x.device) + offsets[1]                          # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]                       # (B, 1, 1)
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]                    # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()                                   # (B, C, H, W)


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment(x: torch.Tensor, config: AugmentConfig) -> torch.Tensor:
    """``x`` with the configured augmentations applied (a new tensor; ``x`` is left as it is)."""
    if config.shift > 0:
        x = random_shift(x, config.shift)
    if config.hflip:
        x = random_hflip(x)
    return x
