"""MNIST (LeCun, Bottou, Bengio & Haffner 1998): 60,000 + 10,000 28×28 handwritten digits.

The same IDX files and reader as Fashion-MNIST (:mod:`zoo.plugins.datasets.idx`), under
``mnist/`` of a data root (``--data-dir``, ``$ZOO_DATA_DIR``, the cache).
"""

from __future__ import annotations

from zoo.core.train.data import Dataset
from zoo.plugins.datasets.idx import IDXOptions, load_idx_set

CLASS_NAMES = [str(digit) for digit in range(10)]


def load_mnist(options: IDXOptions | None, data_dir: str | None) -> Dataset:
    """MNIST's train (60,000) and test (10,000) splits; see :func:`load_idx_set`."""
    return load_idx_set("mnist", "mnist", CLASS_NAMES, options, data_dir)
