"""What did the CNN learn? Pictures for one test image (``zoo explain RUN_DIR --index I``).

- ``filters.png``: the first conv layer's kernels, one tile each (blue < 0 < red, one shared
  scale so tiles are comparable). First-layer filters of a trained CNN look like edge, bar and
  blob detectors.
- ``saliency.png``: input | saliency | overlay. Saliency (Simonyan et al. 2014) is
  |∂ score_c / ∂ x|, the magnitude of the derivative of the predicted class's logit with respect
  to each input pixel (max over channels): the pixels whose change moves the score most.
- ``occlusion.png``: input | occlusion map (Zeiler & Fergus 2014). A p×p black patch slides over
  the image; each pixel's value is the mean drop of the predicted class's probability over the
  patches covering it. Red: hiding it hurts the prediction; blue: hiding it helps.
- ``stn.png`` (spatial transformer only): the input | what the transformer resampled it to.
- ``explain.json``: the prediction, the true label, the class probabilities and the files.

Every image panel is upscaled by an integer factor to about 224 px (:func:`png.panel_scale`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.core.train.data import DataInfo, Standardize, unwrap
from zoo.core.contract.errors import ZooError
from zoo.plugins.cnn import png


def _image(x: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` raw image → ``[H, W, 3]`` uint8 (grey, or RGB for 3 channels)."""
    arr = x.detach().float().cpu().numpy()
    if arr.shape[0] == 3:
        return (np.clip(np.transpose(arr, (1, 2, 0)), 0, 1) * 255).round().astype(np.uint8)
    return png.gray(png.normalise(arr.mean(axis=0)) if arr.max() > 1 or arr.min() < 0 else arr.mean(axis=0))


def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """Weights ``[O, I, k, k]`` of the family model's first convolution."""
    inner = unwrap(model)
    if hasattr(inner, "first_conv"):
        return inner.first_conv().weight.detach().cpu()
    for module in inner.modules():
        if isinstance(module, nn.Conv2d):
            return module.weight.detach().cpu()
    raise ZooError(f"{type(inner).__name__} has no convolution layer to show")


def filters_picture(weight: torch.Tensor) -> np.ndarray:
    """A grid of kernels (mean over input channels), ~FILTER_TILE px each, on one signed scale."""
    kernels = weight.float().mean(dim=1).numpy()  # (O, k, k)
    limit = float(np.abs(kernels).max()) or 1.0
    k = kernels.shape[-1]
    factor = max(1, png.FILTER_TILE // k)
    tiles = [png.upscale(png.diverging(png.symmetric(kern, limit)), factor) for kern in kernels]
    return png.tile_grid(tiles, cols=math.ceil(math.sqrt(len(tiles))))


def saliency(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """|∂ logit_target / ∂ x| for one image ``x [1, C, H, W]``, max over channels → ``[H, W]``."""
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    grad, = torch.autograd.grad(logits[0, target], x)
    return grad.abs().amax(dim=1)[0]


@torch.no_grad()
def occlusion(model: nn.Module, x: torch.Tensor, target: int, patch: int, stride: int,
              chunk: int = 256) -> torch.Tensor:
    """Mean drop of P(target) when a ``patch``×``patch`` zero square covers each pixel → ``[H, W]``."""
    _, _, h, w = x.shape
    base = torch.softmax(model(x), dim=-1)[0, target]
    positions = [(i, j) for i in range(0, max(h - patch, 0) + 1, stride)
                 for j in range(0, max(w - patch, 0) + 1, stride)]
    drops = []
    for start in range(0, len(positions), chunk):
        part = positions[start:start + chunk]
        batch = x.repeat(len(part), 1, 1, 1)
        for n, (i, j) in enumerate(part):
            batch[n, :, i:i + patch, j:j + patch] = 0.0
        drops.append(base - torch.softmax(model(batch), dim=-1)[:, target])
    drop = torch.cat(drops)
    total, count = torch.zeros(h, w), torch.zeros(h, w)
    for d, (i, j) in zip(drop.tolist(), positions):
        total[i:i + patch, j:j + patch] += d
        count[i:i + patch, j:j + patch] += 1
    return total / count.clamp_min(1)


@torch.no_grad()
def transformed_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a spatial transformer hands its CNN, back in raw pixel units: ``[1, C, h, w]``."""
    inner = unwrap(model)
    z = x
    if isinstance(model, Standardize) and model.scale_inputs:
        z = (x - model.mean) / model.std
    out = inner.transformer(z)
    if isinstance(model, Standardize) and model.scale_inputs:
        out = out * model.std + model.mean
    return out


def explain(model: nn.Module, model_name: str, sample: dict[str, torch.Tensor], info: DataInfo,
            out_dir: Path) -> dict[str, Any]:
    """Write the pictures for one sample (``x [1, C, H, W]``, ``y [1]``) into ``out_dir``."""
    x = sample["x"].detach().float().cpu()
    if x.dim() != 4 or x.shape[0] != 1:
        raise ZooError(f"explain needs one image [1, C, H, W], got {list(x.shape)}")
    model = model.eval().cpu()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, _, h, w = x.shape
    factor = png.panel_scale(h, w)
    names = info.class_names or [str(i) for i in range(info.num_classes or 0)]

    with torch.no_grad():
        probs = torch.softmax(model(x), dim=-1)[0]
    pred = int(probs.argmax())
    label = int(sample["y"][0]) if "y" in sample else None
    image = png.upscale(_image(x[0]), factor)
    files: dict[str, str] = {}

    files["filters"] = str(png.write_png(out_dir / "filters.png", filters_picture(first_layer_filters(model))))

    sal = saliency(model, x, pred).numpy()
    sal01 = png.normalise(sal)
    alpha = sal01[..., None]
    overlay = ((1 - alpha) * _image(x[0]) + alpha * png.heat(sal01)).round().astype(np.uint8)
    files["saliency"] = str(png.write_png(out_dir / "saliency.png", png.hstack(
        [image, png.upscale(png.heat(sal01), factor), png.upscale(overlay, factor)])))

    patch = max(2, round(min(h, w) / 7))
    occ = occlusion(model, x, pred, patch=patch, stride=max(1, patch // 2)).numpy()
    files["occlusion"] = str(png.write_png(out_dir / "occlusion.png", png.hstack(
        [image, png.upscale(png.diverging(png.symmetric(occ)), factor)])))

    if hasattr(unwrap(model), "transformer"):
        moved = transformed_input(model, x)[0]
        moved_img = _image(moved.clamp(0, 1) if x.min() >= 0 and x.max() <= 1 else moved)
        # The transformer may output another size: scale it to the input panel's height.
        mf = max(1, image.shape[0] // moved_img.shape[0])
        moved_panel = png.upscale(moved_img, mf)
        if moved_panel.shape[0] != image.shape[0]:
            pad = np.full((image.shape[0], moved_panel.shape[1], 3), 255, np.uint8)
            pad[:moved_panel.shape[0]] = moved_panel
            moved_panel = pad
        files["stn"] = str(png.write_png(out_dir / "stn.png", png.hstack([image, moved_panel])))

    report = {
        "model": model_name,
        "prediction": {"class": pred, "label": names[pred] if pred < len(names) else str(pred),
                       "probability": round(float(probs[pred]), 6)},
        "true": None if label is None else {"class": label, "label": names[label] if label < len(names) else str(label)},
        "probabilities": {names[k] if k < len(names) else str(k): round(float(p), 6) for k, p in enumerate(probs)},
        "occlusion_patch": patch,
        "files": files,
    }
    (out_dir / "explain.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
