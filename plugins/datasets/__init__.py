"""Shared datasets: scikit-learn's bundled sets, the image sets (MNIST, Fashion-MNIST, CIFAR-10)
and the text sets (SST-2, ATIS) of the sequence families, used by several families.

Loaders read local files only, found with :func:`zoo.core.data.locate`; the files of the public
sets are declared (URL, published checksum) in ``registry.toml``, and a missing one raises
:class:`~zoo.core.errors.DataNotFound`, on which ``zoo train`` fetches it into the cache.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.datasets.cifar10 import CIFAR10Options, load_cifar10
from zoo.plugins.datasets.fashion_mnist import load_fashion_mnist
from zoo.plugins.datasets.idx import IDXOptions
from zoo.plugins.datasets.mnist import load_mnist
from zoo.plugins.datasets.text import SST2Options, TextOptions, load_atis, load_sst2
from zoo.plugins.datasets.sklearn_bundles import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
)


@hookimpl
def register_datasets(register):
    register("diabetes", load_diabetes)
    register("breast-cancer", load_breast_cancer)
    register("iris", load_iris)
    register("wine", load_wine)
    register("digits", load_digits)
    register("fashion-mnist", load_fashion_mnist, IDXOptions)
    register("mnist", load_mnist, IDXOptions)
    register("cifar10", load_cifar10, CIFAR10Options)
    register("sst2", load_sst2, SST2Options)
    register("atis", load_atis, TextOptions)
