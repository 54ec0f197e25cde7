"""Datasets of unaligned sequences for CTC: an input of ``W`` frames (image columns or audio
frames) and a label string whose length is not given by ``W``.

A split (:class:`RecognitionSplit`) holds

* ``x [N, H, W]`` float: ``H`` features per frame (image rows, mel bins), padded with 0 at the end
  of the frame axis to the split's widest sample;
* ``lengths [N]`` int64: the real frames of each sample;
* ``target [N, S]`` int64: label ids ``1..K-1`` (0 = blank is never a label), padded with 0;
* ``target_lengths [N]`` int64.

A batch is cut to its widest input and longest target. ``DataInfo.extra`` carries
``input_height`` (H), ``num_symbols`` (K − 1), ``onnx_alphabet`` (the symbol of label ``k`` is
``alphabet[k - 1]``; written into the ONNX metadata so ``zoo predict`` prints strings) and
``onnx_input_height``.

``digit-strings`` (generated, seeded): strings of 1–8 digits drawn with scikit-learn's 8×8 digit
images (``load_digits``), each glyph resized to a random width, shifted up or down by a random
offset on a 12-row canvas and separated by a random gap, so ``W`` says little about the string's
length. Glyph images are split between train and test (the test strings are drawn with glyphs
no training string uses), and the two splits are generated independently.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from zoo.core.train.data import DataInfo, Dataset, TensorSplit, to_device
from zoo.core.train.options import DataOptions, n_field, n_test_field, seed_field
from zoo.core.contract.errors import DataUnavailable

DIGITS = "0123456789"


class RecognitionSplit(TensorSplit):
    """Inputs ``x [N, H, W]`` with ``lengths`` and label strings ``target [N, S]`` with
    ``target_lengths``; a batch is cut to its widest input and longest target (one host sync)."""

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().batch(index)
        if index.numel():
            width, labels = torch.stack([out["lengths"].max(), out["target_lengths"].max()]).tolist()
            out["x"] = out["x"][:, :, :max(width, 1)]
            out["target"] = out["target"][:, :max(labels, 1)]
        return out

    def to(self, device) -> RecognitionSplit:
        return RecognitionSplit(**{k: to_device(t, device) for k, t in self.tensors.items()})

    def subset(self, index: torch.Tensor) -> RecognitionSplit:
        index = index.to(self.device)
        return RecognitionSplit(**{k: t.index_select(0, index) for k, t in self.tensors.items()})


def make_split(inputs: list[torch.Tensor], labels: list[list[int]]) -> RecognitionSplit:
    """Pad ``[H, W_i]`` inputs along W and label lists along S into a split."""
    height = inputs[0].shape[0]
    lengths = torch.tensor([t.shape[1] for t in inputs], dtype=torch.long)
    x = torch.zeros(len(inputs), height, int(lengths.max()))
    for i, t in enumerate(inputs):
        x[i, :, :t.shape[1]] = t
    target_lengths = torch.tensor([len(s) for s in labels], dtype=torch.long)
    target = torch.zeros(len(labels), max(int(target_lengths.max()), 1), dtype=torch.long)
    for i, s in enumerate(labels):
        target[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return RecognitionSplit(x=x, lengths=lengths, target=target, target_lengths=target_lengths)


def recognition_info(height: int, alphabet: str, **extra) -> DataInfo:
    """The DataInfo every CTC dataset gives (see the module docstring)."""
    return DataInfo(input_shape=(height, 0), num_classes=len(alphabet) + 1, extra={
        "input_height": height, "num_symbols": len(alphabet), "onnx_alphabet": alphabet,
        "onnx_input_height": height, **extra})


# -- digit-strings ----------------------------------------------------------------------------

class DigitStringOptions(DataOptions):
    """Options of ``digit-strings``: rendered strings of scikit-learn digit glyphs."""

    ordered = (("min_digits", "max_digits"), ("min_glyph_width", "max_glyph_width"))
    n: int = n_field(20_000, 1_000_000, "strings")
    n_test: int = n_test_field(2_000, 200_000, "strings")
    min_digits: int = Field(1, ge=1, le=32, description="Shortest string.")
    max_digits: int = Field(8, ge=1, le=32, description="Longest string.")
    min_glyph_width: int = Field(5, ge=2, le=32, description="Narrowest glyph after resizing (px; the source is 8).")
    max_glyph_width: int = Field(11, ge=2, le=32, description="Widest glyph after resizing (px).")
    max_gap: int = Field(3, ge=0, le=32, description="Largest gap between glyphs and at each end (px).")
    jitter: int = Field(4, ge=0, le=16, description="Vertical jitter: the canvas is 8 + jitter rows and "
                        "each glyph is shifted down by 0..jitter rows.")
    test_glyphs: float = Field(0.2, gt=0.0, lt=1.0, description="Share of the 1,797 glyph images "
                               "kept for the test strings (never drawn in training strings).")
    seed: int = seed_field()


def _glyphs() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digit images ``[1797, 8, 8]`` scaled to 0..1, and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DataUnavailable(f"digit-strings draws scikit-learn's digits: pip install scikit-learn ({err})") from None
    bunch = load_digits()
    return torch.tensor(bunch.images, dtype=torch.float32) / 16.0, torch.tensor(bunch.target, dtype=torch.long)


def _resized(images: torch.Tensor, widths: range) -> dict[int, torch.Tensor]:
    """Every glyph at every width: ``{w: [G, 8, w]}`` (bilinear, one call per width)."""
    return {w: F.interpolate(images[:, None], size=(8, w), mode="bilinear", align_corners=False)[:, 0]
            for w in widths}


def _render(o: DigitStringOptions, pool: torch.Tensor, labels: torch.Tensor, n: int,
            rng: np.random.Generator) -> RecognitionSplit:
    widths = range(o.min_glyph_width, o.max_glyph_width + 1)
    sized = {w: t.numpy() for w, t in _resized(pool, widths).items()}
    by_digit = [torch.nonzero(labels == d).flatten().numpy() for d in range(10)]
    height = 8 + o.jitter
    inputs, strings = [], []
    for _ in range(n):
        digits = rng.integers(0, 10, rng.integers(o.min_digits, o.max_digits + 1))
        w = rng.integers(o.min_glyph_width, o.max_glyph_width + 1, len(digits))
        gaps = rng.integers(0, o.max_gap + 1, len(digits) + 1)
        canvas = np.zeros((height, int(w.sum() + gaps.sum())), dtype=np.float32)
        col = int(gaps[0])
        for d, width, gap in zip(digits, w, gaps[1:]):
            glyph = sized[int(width)][int(rng.choice(by_digit[d]))]
            top = int(rng.integers(0, o.jitter + 1))
            canvas[top:top + 8, col:col + width] = glyph
            col += int(width + gap)
        inputs.append(torch.from_numpy(canvas))
        strings.append([int(d) + 1 for d in digits])  # label k = digit k - 1 (0 is the blank)
    return make_split(inputs, strings)


def load_digit_strings(options: DigitStringOptions | None, data_dir) -> Dataset:
    """``digit-strings``: see the module docstring."""
    o = options or DigitStringOptions()
    images, labels = _glyphs()
    rng = np.random.default_rng(o.seed)
    order = torch.from_numpy(rng.permutation(len(images)))
    cut = int(round(len(images) * (1 - o.test_glyphs)))
    train_glyphs, test_glyphs = order[:cut], order[cut:]
    train = _render(o, images[train_glyphs], labels[train_glyphs], o.n, rng)
    test = _render(o, images[test_glyphs], labels[test_glyphs], o.n_test, rng)
    return Dataset(train=train, test=test, info=recognition_info(8 + o.jitter, DIGITS))
