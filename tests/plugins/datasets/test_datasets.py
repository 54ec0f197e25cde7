"""Shared datasets: Fashion-MNIST shapes and statistics, scikit-learn bundles (the public sets' search
order and bad files: test_public.py)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from helpers import declare_system_roots
from zoo.plugins.datasets import fashion_mnist as fm
from zoo.plugins.datasets.sklearn_bundles import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
)


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    """A 6 + 4 sample stand-in with the real file names and format (no other root searched)."""
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    declare_system_roots(monkeypatch, "fashion-mnist", ())
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    _write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (6, 28, 28)))
    _write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(6) % 10)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (4, 28, 28)))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(4))
    return tmp_path


def test_fashion_mnist_from_a_data_dir(tiny_fashion):
    data = fm.load_fashion_mnist(None, str(tiny_fashion))
    assert data.train.tensors["x"].shape == (6, 1, 28, 28) and data.test.tensors["y"].tolist() == [0, 1, 2, 3]
    assert 0.0 <= float(data.train.tensors["x"].min()) and float(data.train.tensors["x"].max()) <= 1.0
    assert data.info.class_names[9] == "Ankle boot" and data.info.input_mean.shape == (1, 1, 1)
    flat = fm.load_fashion_mnist(fm.FashionMNISTOptions(flatten=True), str(tiny_fashion))
    assert flat.train.tensors["x"].shape == (6, 784)


def test_sklearn_bundles_have_a_fixed_test_split():
    a, b = load_breast_cancer(None, None), load_breast_cancer(None, None)
    assert torch.equal(a.test.tensors["x"], b.test.tensors["x"])
    assert len(a.train) + len(a.test) == 569 and a.info.num_classes == 2
    diabetes = load_diabetes(None, None)
    assert diabetes.info.output_dim == 1 and diabetes.info.target_std > 0
    digits = load_digits(None, None)
    assert digits.info.input_shape == (1, 8, 8) and float(digits.train.tensors["x"].max()) <= 1.0
