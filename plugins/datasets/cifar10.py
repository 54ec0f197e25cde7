"""CIFAR-10 (Krizhevsky 2009): 50,000 + 10,000 32×32 colour images, 10 classes.

Read from the *binary* version (``cifar-10-binary.tar.gz``, unpacked under ``cifar10/``), never
the Python version: its batches are pickles, and unpickling a downloaded file runs whatever code
it names. A binary batch is a run of 3,073-byte records: one label byte (0..9), then the
1,024 red, 1,024 green and 1,024 blue pixel values of a 32×32 image, row-major.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.train.data import DataInfo, Dataset, TensorSplit, locate
from zoo.core.contract.errors import ZooError

FOLDER = "cifar10/cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
RECORD = 1 + 3 * 32 * 32
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class CIFAR10Options(BaseModel):
    """``[data.options]`` of cifar10."""

    model_config = ConfigDict(extra="forbid")
    flatten: bool = Field(False, description="Samples as 3,072-vectors instead of 3×32×32 images.")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` uint8.

    A size that is not a whole number of records, or a label byte above 9, raises
    :class:`ZooError` naming the file and the record.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise ZooError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
                       f"(truncated or not the binary version); delete it and fetch it again")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0]
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ZooError(f"{path}: record {int(bad[0])} (byte {int(bad[0]) * RECORD}) has label "
                       f"{int(labels[bad[0]])}, not a class 0..9 (not a CIFAR-10 binary batch?)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(options: CIFAR10Options | None, data_dir: str | None) -> Dataset:
    """CIFAR-10's train (data_batch_1..5) and test (test_batch) splits.

    Pixels are scaled to ``[0, 1]``; per-channel means and standard deviations of the training
    images go into :class:`DataInfo`, so the exported model normalises raw inputs itself.
    Shapes: ``x`` is ``[N, 3, 32, 32]`` (``[N, 3072]`` with ``flatten``), ``y`` is ``[N]`` int64.
    """
    options = options or CIFAR10Options()
    names = [*TRAIN_FILES, *TEST_FILES]
    folder = locate("cifar10", [f"{FOLDER}/{name}" for name in names], data_dir) / FOLDER

    def split(files: tuple[str, ...]) -> TensorSplit:
        parts = [read_batch(folder / name) for name in files]
        x = np.concatenate([images for images, _ in parts])
        y = np.concatenate([labels for _, labels in parts])
        return TensorSplit(x=torch.from_numpy(x).float().div_(255.0), y=torch.from_numpy(y.astype(np.int64)))

    train, test = split(TRAIN_FILES), split(TEST_FILES)
    x = train.tensors["x"]
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    if options.flatten:
        train = TensorSplit(x=x.reshape(len(x), -1), y=train.tensors["y"])
        test = TensorSplit(x=test.tensors["x"].reshape(len(test), -1), y=test.tensors["y"])
        mean, std = mean.repeat_interleave(1024), std.repeat_interleave(1024)
    else:
        mean, std = mean.reshape(3, 1, 1), std.reshape(3, 1, 1)
    info = DataInfo(input_shape=tuple(train.tensors["x"].shape[1:]), num_classes=10, class_names=CLASS_NAMES,
                    input_mean=mean, input_std=std)
    return Dataset(train=train, test=test, info=info)
