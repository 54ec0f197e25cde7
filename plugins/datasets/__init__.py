"""Shared datasets: scikit-learn's bundled sets, the image sets (MNIST, Fashion-MNIST, CIFAR-10)
and the text sets (SST-2, ATIS) of the sequence families, used by several families.

Loaders read local files only, found with :func:`zoo.core.train.data.locate`; the files of the public
sets are declared (URL, published checksum) in ``registry.toml``, and a missing one raises
:class:`~zoo.core.contract.errors.DataNotFound`, on which ``zoo train`` fetches it into the cache.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.datasets.own import decode_inputs
from zoo.plugins.datasets.own.pairs import PairsOptions, load_pairs
from zoo.plugins.datasets.own.table import TableOptions, load_table_dataset
from zoo.plugins.datasets.own.text import OwnTextOptions, TaggedTextOptions, load_tagged_text, load_text
from zoo.plugins.datasets.own.images import ImageFolderOptions, load_image_folder
from zoo.plugins.datasets.own.images import decode_inputs as decode_images
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
    # The user's own data (own/): their runs take raw rows and text in zoo predict / zoo serve.
    register("table", load_table_dataset, TableOptions, decoder=decode_inputs)
    register("text", load_text, OwnTextOptions, decoder=decode_inputs)
    register("tagged-text", load_tagged_text, TaggedTextOptions, decoder=decode_inputs)
    register("pairs", load_pairs, PairsOptions, decoder=decode_inputs)
    # zoo serve: each item of `text` is an encoded image (bytes), never a path on the server.
    register("image-folder", load_image_folder, ImageFolderOptions, decoder=decode_images, payload="bytes")
