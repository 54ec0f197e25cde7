"""IDX image sets (LeCun's format): MNIST and Fashion-MNIST share this reader and loader.

An IDX file is a magic number ``0x00 0x00 <dtype> <ndim>``, ``ndim`` big-endian uint32 sizes,
then the values; the image sets use dtype ``0x08`` (unsigned byte) and are distributed gzipped.
Images are ``[N, 28, 28]`` uint8, labels ``[N]`` uint8 in ``0..9``.

Files are found with :func:`zoo.core.train.data.locate` under ``<subdir>/`` of a data root
(``--data-dir``, ``$ZOO_DATA_DIR``, the cache, then per-dataset system folders such as
``/usr/share/datasets`` for Debian's Fashion-MNIST), so ``zoo train`` can fetch what is missing.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.train.data import DataInfo, Dataset, TensorSplit, locate
from zoo.core.contract.errors import ZooError

#: The four files of an IDX image set, as distributed.
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class IDXOptions(BaseModel):
    """``[data.options]`` of the IDX image sets (mnist, fashion-mnist)."""

    model_config = ConfigDict(extra="forbid")
    flatten: bool = Field(False, description="Samples as 784-vectors instead of 1×28×28 images.")


def read_idx(path: Path) -> np.ndarray:
    """Parse an unsigned-byte IDX file (gzipped when its name ends in ``.gz``).

    Returns an array of the shape the header declares. A file that is not gzip, not IDX,
    or shorter than its header says raises :class:`ZooError` naming the file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise ZooError(f"{path}: not a readable gzip file ({err}); delete it and fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ZooError(f"{path}: not an unsigned-byte IDX file (magic bytes {raw[:4].hex() or 'missing'}, "
                       f"expected 000008xx)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ZooError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ZooError(f"{path}: truncated: the header declares {dims} ({int(np.prod(dims))} values), "
                       f"the file holds {data.size}")
    return data.reshape(dims)


def read_pair(images_path: Path, labels_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, H, W]`` and labels ``[N]`` of one split, checked against each other."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise ZooError(f"{images_path}: expected [N, rows, cols] images, the header declares {list(images.shape)}")
    if labels.ndim != 1:
        raise ZooError(f"{labels_path}: expected [N] labels, the header declares {list(labels.shape)}")
    if len(images) != len(labels):
        raise ZooError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path.name}")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise ZooError(f"{labels_path}: label {int(labels[bad[0]])} of item {int(bad[0])} is not a class "
                       f"(0..{num_classes - 1})")
    return images, labels


def load_idx_set(dataset: str, subdir: str, class_names: list[str], options: IDXOptions | None,
                 data_dir: str | None) -> Dataset:
    """The train and test splits of the IDX set ``dataset`` from ``<root>/<subdir>/``.

    Pixels are scaled to ``[0, 1]``; the training pixels' mean and standard deviation go into
    :class:`DataInfo`, so the model (and its ONNX file) normalises raw ``[0, 1]`` inputs itself.
    Shapes: ``x`` is ``[N, 1, 28, 28]`` (``[N, 784]`` with ``flatten``), ``y`` is ``[N]`` int64.
    """
    options = options or IDXOptions()
    root = locate(dataset, [f"{subdir}/{name}" for name in FILES], data_dir)
    folder = root / subdir
    shape = (-1, 784) if options.flatten else (-1, 1, 28, 28)

    def split(images: str, labels: str) -> TensorSplit:
        x, y = read_pair(folder / images, folder / labels, len(class_names))
        # One float copy of the bytes, scaled in place (`astype(...) / 255` would hold two).
        x = torch.from_numpy(x.astype(np.float32)).div_(255.0).reshape(shape)
        return TensorSplit(x=x, y=torch.from_numpy(y.astype(np.int64)))

    train, test = split(FILES[0], FILES[1]), split(FILES[2], FILES[3])
    x = train.tensors["x"]
    stat_shape = (1,) if options.flatten else (1, 1, 1)
    info = DataInfo(input_shape=tuple(x.shape[1:]), num_classes=len(class_names), class_names=class_names,
                    input_mean=x.mean().reshape(stat_shape), input_std=x.std().reshape(stat_shape))
    return Dataset(train=train, test=test, info=info)
