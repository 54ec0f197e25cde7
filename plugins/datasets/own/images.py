"""``image-folder``: the user's own images, one sub-folder per class, for the image families.

Layout (the one torchvision's ``ImageFolder`` reads)::

    PATH/cat/0001.png            PATH/train/cat/0001.png
    PATH/cat/0002.jpg     or     PATH/train/dog/...
    PATH/dog/...                 PATH/val/cat/...       (val/ optional)
                                 PATH/test/cat/...      (test/ optional)

Class names are the sub-folder names, sorted; images are PNG or JPEG files anywhere below a class
folder, read with Pillow and converted to ``channels`` (1: grey, 3: RGB). Without ``train/``, the
test and validation splits are drawn per class (stratified, seeded by ``data.options.seed``);
with ``train/``, ``val/`` and ``test/`` are those splits, each drawn from ``train/`` when absent.

Memory: every image is decoded straight into one preallocated ``uint8`` array
``[N, C, H, W]`` ordered train | val | test, so the three splits are views of it and 10,000
images of 64×64×3 cost 123 MB once, not a float copy per split. Batches become ``float32`` in
[0, 1] (pixel / 255) on the device (:class:`ImageSplit`); the per-channel mean and std of the
training pixels go into :class:`~zoo.core.train.data.DataInfo`, so the exported ONNX takes raw
``pixel / 255`` inputs and :func:`decode_inputs` needs nothing but the image.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.train.data import DataInfo, Dataset, TensorSplit, to_device
from zoo.core.contract.errors import DataUnavailable, ZooError

KIND = "image-folder"
SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("PNG", "JPEG")  # Pillow tries only these decoders (faster open; other formats are refused)
Side = Annotated[int, Field(ge=1, le=4096)]


class ImageDataError(ZooError):
    """A folder of images that cannot be used: one line naming the file or folder (exit 2)."""


class ImageFolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, pattern=r"^[^\x00]*$",
                      description="Folder with one sub-folder of PNG/JPEG images per class (or train/ "
                      "and test/ folders laid out that way).")
    size: tuple[Side, Side] | None = Field(
        None, description="Resize every image to [height, width] (bilinear). Unset: all images must "
        "have the size of the first one.")
    channels: Literal[1, 3] = Field(3, description="1: greyscale, 3: RGB (Pillow converts any mode).")
    val_fraction: float = Field(
        0.1, ge=0.0, le=0.5, description="Share of each class's training images held out for "
        "validation (stratified, seeded); replaces data.val_fraction for this dataset.")
    test_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of each class's images held out for testing when "
        "there is no test/ folder (stratified, seeded).")
    seed: int = Field(0, ge=0, description="Seed of the stratified split (fixed, so test numbers are "
                      "comparable across train.seed values).")


class ImageSplit(TensorSplit):
    """Images kept as ``uint8 [N, C, H, W]``; a batch's ``x`` is ``float32`` pixel / 255.

    Converting per batch on the device keeps the stored split at one byte per pixel (a quarter
    of float32), on the host and on the GPU alike.
    """

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().batch(index)
        out["x"] = out["x"].float().div_(255.0)
        return out

    def to(self, device: torch.device | str) -> ImageSplit:
        return ImageSplit(**{name: to_device(t, device) for name, t in self.tensors.items()})

    def subset(self, index: torch.Tensor) -> ImageSplit:
        index = index.to(self.device)
        return ImageSplit(**{name: t.index_select(0, index) for name, t in self.tensors.items()})


# -- finding the files --------------------------------------------------------------------------


def _images_in(folder: Path) -> list[str]:
    """PNG/JPEG files anywhere below ``folder``, sorted (hidden files and folders skipped).

    ``os.walk`` rather than ``Path.rglob``: a third of the load time of 10,000 small PNGs went to
    pathlib before.
    """
    found = []
    seen = {os.path.realpath(folder)}
    for parent, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".") and _new_folder(parent, d, seen)]
        found += [os.path.join(parent, n) for n in names
                  if not n.startswith(".") and n.lower().endswith(SUFFIXES)]
    return sorted(found)  # strings: 10,000 Path objects cost megabytes


def _new_folder(parent: str, name: str, seen: set[str]) -> bool:
    """Whether to walk ``parent/name``: not through a link back up the tree (it would reach
    other classes' images) nor into a folder walked already (links make cycles, which
    ``os.walk(followlinks=True)`` follows until the OS gives up)."""
    path = os.path.join(parent, name)
    real = os.path.realpath(path)
    if real in seen or (os.path.islink(path) and os.path.realpath(parent).startswith(real.rstrip(os.sep) + os.sep)):
        return False
    seen.add(real)
    return True


def scan_classes(folder: Path) -> dict[str, list[str]]:
    """``{class name: its image files}`` for the class sub-folders of ``folder``, sorted by name.

    Raises :class:`ImageDataError` when ``folder`` has no class sub-folders or a class folder
    holds no image.
    """
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ImageDataError(f"{folder}: no class sub-folders (expected one folder of PNG/JPEG images "
                             f"per class, e.g. {folder / 'cat' / '0001.png'})")
    found = {c.name: _images_in(c) for c in classes}
    for name, files in found.items():
        if not files:
            raise ImageDataError(f"{folder / name}: empty class folder (no .png/.jpg/.jpeg file in it); "
                                 f"add images or remove the folder")
    return found


def _stratified(files: dict[str, list[str]], fractions: tuple[float, ...], seed: int,
                where: Path) -> list[list[tuple[str, int]]]:
    """Each class's files cut into ``1 + len(fractions)`` parts (train first), seeded."""
    rng = np.random.default_rng(seed)
    parts: list[list[tuple[str, int]]] = [[] for _ in range(len(fractions) + 1)]
    for label, (name, paths) in enumerate(files.items()):
        order = rng.permutation(len(paths))
        sizes = [int(len(paths) * f + 0.5) for f in fractions]  # rounded half up
        n_train = len(paths) - sum(sizes)
        if n_train < 1:
            raise ImageDataError(f"{where / name}: class {name!r} has no training sample ({len(paths)} "
                                 f"image(s), all held out by val_fraction/test_fraction); add images "
                                 f"or lower the fractions")
        bounds = np.cumsum([0, n_train, *sizes])
        for k in range(len(parts)):
            parts[k] += [(paths[i], label) for i in order[bounds[k]:bounds[k + 1]]]
    return parts


def plan_splits(options: ImageFolderOptions) -> tuple[list[str], list[list[tuple[str, int]]]]:
    """Class names and the (file, label) lists of train, val and test.

    Without ``train/`` every split is drawn from the class folders. With ``train/``, a ``val/``
    and a ``test/`` folder beside it are those splits, and a split without its folder is drawn
    from ``train/``.
    """
    root = Path(options.path).expanduser()
    if not root.is_dir():
        raise DataUnavailable(f"{options.path}: no such folder (data.options.path of image-folder)")
    if not (root / "train").is_dir():
        classes = scan_classes(root)
        train, val, test = _stratified(classes, (options.val_fraction, options.test_fraction),
                                       options.seed, root)
        return list(classes), [train, val, test]
    classes = scan_classes(root / "train")
    index = {name: i for i, name in enumerate(classes)}
    given = {split: _held_out(root, split, index) for split in ("val", "test") if (root / split).is_dir()}
    fractions = {"val": options.val_fraction, "test": options.test_fraction}
    drawn = [split for split in ("val", "test") if split not in given]
    train, *parts = _stratified(classes, tuple(fractions[s] for s in drawn), options.seed, root / "train")
    given.update(zip(drawn, parts))
    return list(classes), [train, given["val"], given["test"]]


def _held_out(root: Path, split: str, index: dict[str, int]) -> list[tuple[str, int]]:
    """The (file, label) pairs of ``root/split``, whose classes must be ``train/``'s."""
    pairs: list[tuple[str, int]] = []
    for name, paths in scan_classes(root / split).items():
        if name not in index:
            raise ImageDataError(f"{root / split / name}: class {name!r} has no training sample "
                                 f"({root / 'train' / name} does not exist)")
        pairs += [(p, index[name]) for p in paths]
    return pairs


# -- decoding -----------------------------------------------------------------------------------


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataUnavailable("image-folder reads images with Pillow, which is not installed: "
                              "pip install 'zoo-ml[images]' (or pip install Pillow)") from None
    return Image


def read_image(source: str | Path | bytes, channels: int, size: tuple[int, int] | None,
               name: str | Path) -> np.ndarray:
    """One image as ``uint8 [H, W, C]`` (``[H, W]`` for one channel), resized to ``size`` (H, W).

    ``source`` is a file or its encoded bytes; ``name`` is what an error calls it. A JPEG is
    decoded at the smallest power-of-two reduction still at least ``size`` (Pillow's ``draft``),
    which makes large photos several times faster to read.
    """
    Image = _pillow()
    mode = "L" if channels == 1 else "RGB"
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():  # over MAX_IMAGE_PIXELS Pillow warns (2 lines) and decodes anyway
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(opened, formats=FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageDataError(f"{name}: too many pixels for Pillow ({' '.join(str(err).split())}); downscale "
                             f"it, or raise PIL.Image.MAX_IMAGE_PIXELS") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise _unreadable(name, err, opened) from None
    try:
        with img:
            if size is not None and img.format == "JPEG":
                img.draft(mode, (size[1], size[0]))
            if img.mode.startswith("I"):  # 16-bit grey PNG: keep the top 8 bits (convert() clips at 255)
                img = Image.fromarray((np.asarray(img).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
            if img.mode != mode:  # convert() copies even when the mode already matches
                img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise _unreadable(name, err, opened) from None


def _unreadable(name: str | Path, err: Exception, opened: Any) -> ImageDataError:
    reason = " ".join(str(err).replace(f" {opened!r}", "").split()) or type(err).__name__  # no <BytesIO at 0x..>
    return ImageDataError(f"{name}: unreadable or corrupt image ({reason})")


def decode_images(files: list[str], channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """All ``files`` decoded into one preallocated ``uint8 [N, C, H, W]`` array.

    Without ``size`` every image must have the first one's height and width. Only one decoded
    image exists beside the array at any time, so peak memory is the array plus one image.
    """
    first = read_image(files[0], channels, size, files[0])
    h, w = first.shape[:2]
    out = np.empty((len(files), channels, h, w), dtype=np.uint8)
    for i, path in enumerate(files):
        pixels = first if i == 0 else read_image(path, channels, size, path)
        if pixels.shape[:2] != (h, w):
            raise ImageDataError(f"{path}: {pixels.shape[0]}×{pixels.shape[1]} pixels but {files[0]} is "
                                 f"{h}×{w}; set data.options.size=[H, W] to resize every image")
        out[i] = pixels.reshape(h, w, channels).transpose(2, 0, 1)
    return out


def channel_stats(x: np.ndarray, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of each channel of ``uint8 [N, C, H, W]`` as pixel / 255, shaped ``[C, 1, 1]``.

    Exact, from per-channel histograms of the 256 byte values, counted ``chunk`` images at a time
    (no float copy of the whole array).
    """
    c = x.shape[1]
    counts = np.zeros((c, 256), dtype=np.int64)
    for start in range(0, len(x), chunk):
        for k in range(c):
            counts[k] += np.bincount(x[start:start + chunk, k].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum(axis=1)
    mean = counts @ values / n
    var = (counts @ values**2 / n - mean**2) * n / np.maximum(n - 1, 1)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32).reshape(c, 1, 1)  # noqa: E731
    return as_tensor(mean), as_tensor(np.sqrt(np.maximum(var, 0.0)))


# -- the loader and the predict-time decoder ----------------------------------------------------


def load_image_folder(options: ImageFolderOptions | None, data_dir: str | None) -> Dataset:
    """The ``image-folder`` dataset: train | val | test views of one ``uint8`` image array."""
    if options is None:
        raise ImageDataError("image-folder needs data.options.path: a folder with one sub-folder of "
                             "images per class")
    classes, (train, val, test) = plan_splits(options)
    if len(classes) < 2:
        raise ImageDataError(f"{options.path}: one class folder ({classes[0]!r}); classification needs "
                             f"at least two")
    if not test:
        raise ImageDataError(f"{options.path}: no test images (classes too small for test_fraction "
                             f"{options.test_fraction}); add images, raise it, or add a test/ folder")
    pairs = train + val + test
    x = decode_images([path for path, _ in pairs], options.channels, options.size)
    y = torch.tensor([label for _, label in pairs], dtype=torch.int64)
    images = torch.from_numpy(x)
    a, b = len(train), len(train) + len(val)
    mean, std = channel_stats(x[:a])
    info = DataInfo(input_shape=tuple(x.shape[1:]), num_classes=len(classes), class_names=classes,
                    input_mean=mean, input_std=std,
                    extra={"raw_inputs": {"kind": KIND, "size": list(x.shape[2:]),
                                          "channels": options.channels, "class_names": classes,
                                          "input": "x", "scale": "pixel / 255"}})
    return Dataset(train=ImageSplit(x=images[:a], y=y[:a]), test=ImageSplit(x=images[b:], y=y[b:]),
                   val=ImageSplit(x=images[a:b], y=y[a:b]) if val else None, info=info)


def decode_inputs(meta: dict[str, Any], path_or_payload: Any) -> dict[str, np.ndarray]:
    """Model inputs for ``zoo predict`` / ``zoo serve`` from raw images.

    :param meta: the run's ``raw_inputs`` (``size`` [H, W], ``channels``, ``class_names``)
    :param path_or_payload: an image file, a folder of them (sorted by name), the encoded bytes
        of one image, or a list of files / bytes; a ``.json`` file is not an image but the model
        input itself (a nested list, as for any model: ``zoo predict --input x.json``)
    :returns: ``{"x": float32 [N, C, H, W]}`` of pixel / 255, every image resized to ``size``
    """
    size, channels = tuple(meta["size"]), int(meta["channels"])
    if isinstance(path_or_payload, (str, Path)) and Path(path_or_payload).suffix.lower() == ".json":
        from zoo.core.deploy.runtime import load_inputs

        return load_inputs(path_or_payload, [meta.get("input", "x")])
    sources: list[tuple[str | Path | bytes, str | Path]] = []
    items = path_or_payload if isinstance(path_or_payload, list) else [path_or_payload]
    for item in items:
        if isinstance(item, (bytes, bytearray)):
            sources.append((bytes(item), f"image #{len(sources)}"))
            continue
        path = Path(item)
        if path.is_dir():
            found = _images_in(path)
            if not found:
                raise ImageDataError(f"{path}: no .png/.jpg/.jpeg image in this folder")
            sources += [(p, p) for p in found]
        elif path.is_file():
            sources.append((path, path))
        else:
            raise ImageDataError(f"{path}: no such image file or folder")
    if not sources:
        raise ImageDataError("no image given")
    x = np.empty((len(sources), channels, *size), dtype=np.float32)
    for i, (source, name) in enumerate(sources):
        pixels = read_image(source, channels, size, name)
        x[i] = pixels.reshape(*size, channels).transpose(2, 0, 1)
    x /= 255.0
    return {meta.get("input", "x"): x}
