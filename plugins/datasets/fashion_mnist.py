"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60,000 + 10,000 28×28 grey images, 10 classes.

Read from the four IDX files, gzipped as distributed, under ``fashion-mnist/`` of a data root:
``--data-dir``, ``$ZOO_DATA_DIR``, the cache (where ``zoo data fetch fashion-mnist`` puts them),
then ``/usr/share/datasets`` where the Debian package ``dataset-fashion-mnist`` installs them
(declared as ``system`` in ``registry.toml``, which :func:`~zoo.core.train.data.locate` reads).
None hides the next: a ``$ZOO_DATA_DIR`` without the files leaves the Debian copy visible.
"""

from __future__ import annotations

from zoo.core.train.data import Dataset
from zoo.plugins.datasets.idx import FILES, IDXOptions, load_idx_set, read_idx

__all__ = ["FILES", "FashionMNISTOptions", "load_fashion_mnist", "read_idx"]

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

FashionMNISTOptions = IDXOptions


def load_fashion_mnist(options: IDXOptions | None, data_dir: str | None) -> Dataset:
    """Fashion-MNIST's train (60,000) and test (10,000) splits; see :func:`load_idx_set`."""
    return load_idx_set("fashion-mnist", "fashion-mnist", CLASS_NAMES, options, data_dir)
