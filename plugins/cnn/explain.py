"""What did the CNN learn? Labelled pictures for one test image (``zoo explain RUN_DIR --index I``).

Every figure's title names the model, the true class and the predicted class with its
probability; every panel has a title, and panels whose colours stand for numbers a colour bar.

- ``filters.png``: the first conv layer's kernels (mean over input channels), one panel each on
  one shared signed scale (blue < 0 < red), so panels are comparable. First-layer filters of a
  trained CNN look like edge, bar and blob detectors.
- ``saliency.png``: input | saliency | overlay. Saliency (Simonyan et al. 2014) is
  |∂ score_c / ∂ x|, the magnitude of the derivative of the predicted class's logit with respect
  to each input pixel (max over channels): the pixels whose change moves the score most.
- ``occlusion.png``: input | occlusion map (Zeiler & Fergus 2014). A p×p black patch slides over
  the image; each pixel's value is the mean drop of the predicted class's probability over the
  patches covering it. Red: hiding it hurts the prediction; blue: hiding it helps.
- ``stn.png`` (spatial transformer only): the input | what the transformer resampled it to.
- ``explain.json``: the prediction, the true label, the class probabilities and the files.

The pictures need matplotlib (``pip install 'zoo-ml[plots]'``); see :mod:`zoo.plugins.cnn.figures`.
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
from zoo.plugins.cnn.figures import Panel, panel_figure, save


def _image(x: torch.Tensor) -> Panel:
    """``[C, H, W]`` raw image → an "input" panel: RGB for 3 channels in [0, 1], else grey (mean of channels)."""
    arr = x.detach().float().cpu().numpy()
    if arr.shape[0] == 3 and arr.min() >= 0 and arr.max() <= 1:
        return Panel(np.transpose(arr, (1, 2, 0)), "input")
    grey = arr.mean(axis=0)
    in_unit = grey.min() >= 0 and grey.max() <= 1
    return Panel(grey, "input", vmin=0.0 if in_unit else None, vmax=1.0 if in_unit else None)


def _normalise(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (constant input → zeros)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """Weights ``[O, I, k, k]`` of the family model's first convolution."""
    inner = unwrap(model)
    if hasattr(inner, "first_conv"):
        return inner.first_conv().weight.detach().cpu()
    for module in inner.modules():
        if isinstance(module, nn.Conv2d):
            return module.weight.detach().cpu()
    raise ZooError(f"{type(inner).__name__} has no convolution layer to show")


def filters_figure(weight: torch.Tensor, title: str) -> Any:
    """A grid of kernels ``[O, I, k, k]`` (mean over input channels) on one signed colour scale."""
    kernels = weight.float().mean(dim=1).numpy()  # (O, k, k)
    limit = float(np.abs(kernels).max()) or 1.0
    cols = math.ceil(math.sqrt(len(kernels)))
    panels = [Panel(kern, f"filter {k}", cmap="RdBu_r", vmin=-limit, vmax=limit) for k, kern in enumerate(kernels)]
    return panel_figure(panels, title, cols=cols, shared_colorbar="weight", panel_inches=1.3)


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


def _pictures(model: nn.Module, x: torch.Tensor, pred: int, pred_name: str, title: str,
              out_dir: Path) -> tuple[dict[str, str], int]:
    """Write filters, saliency, occlusion (and stn) PNGs; returns the files and the occlusion patch."""
    _, _, h, w = x.shape
    image = _image(x[0])
    files = {"filters": save(filters_figure(first_layer_filters(model), f"{title}\nfirst-layer filters "
                                            "(mean over input channels)"), out_dir / "filters.png")}
    sal = saliency(model, x, pred).numpy()
    files["saliency"] = save(panel_figure([
        image, Panel(sal, f"saliency |∂ logit[{pred_name}] / ∂x|", cmap="hot", vmin=0.0, colorbar="gradient magnitude"),
        Panel(image.image, "overlay: saliency on input", cmap=image.cmap, vmin=image.vmin, vmax=image.vmax,
              overlay=_normalise(sal), colorbar="saliency (scaled to [0, 1])")], title), out_dir / "saliency.png")
    patch = max(2, round(min(h, w) / 7))
    occ = occlusion(model, x, pred, patch=patch, stride=max(1, patch // 2)).numpy()
    limit = float(np.abs(occ).max()) or 1.0
    files["occlusion"] = save(panel_figure([image, Panel(
        occ, f"occlusion ({patch}×{patch} patch)", cmap="RdBu_r", vmin=-limit, vmax=limit,
        colorbar=f"drop of P({pred_name}) when hidden")], title), out_dir / "occlusion.png")
    if hasattr(unwrap(model), "transformer"):
        moved = transformed_input(model, x)[0]
        moved = _image(moved.clamp(0, 1) if x.min() >= 0 and x.max() <= 1 else moved)
        moved.title = "after the spatial transformer"
        files["stn"] = save(panel_figure([image, moved], title), out_dir / "stn.png")
    return {k: str(v) for k, v in files.items()}, patch


def explain(model: nn.Module, model_name: str, sample: dict[str, torch.Tensor], info: DataInfo,
            out_dir: Path) -> dict[str, Any]:
    """Write the pictures for one sample (``x [1, C, H, W]``, ``y [1]``) into ``out_dir``."""
    x = sample["x"].detach().float().cpu()
    if x.dim() != 4 or x.shape[0] != 1:
        raise ZooError(f"explain needs one image [1, C, H, W], got {list(x.shape)}")
    model = model.eval().cpu()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = info.class_names or [str(i) for i in range(info.num_classes or 0)]

    def name(k: int) -> str:
        return names[k] if k < len(names) else str(k)

    with torch.no_grad():
        probs = torch.softmax(model(x), dim=-1)[0]
    pred = int(probs.argmax())
    label = int(sample["y"][0]) if "y" in sample else None
    truth = "" if label is None else f"true {name(label)} · "
    title = f"{model_name}: {truth}predicted {name(pred)} (p = {float(probs[pred]):.2f})"
    files, patch = _pictures(model, x, pred, name(pred), title, out_dir)
    report = {
        "model": model_name,
        "prediction": {"class": pred, "label": name(pred), "probability": round(float(probs[pred]), 6)},
        "true": None if label is None else {"class": label, "label": name(label)},
        "probabilities": {name(k): round(float(p), 6) for k, p in enumerate(probs)},
        "occlusion_patch": patch,
        "title": title,
        "files": files,
    }
    (out_dir / "explain.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
