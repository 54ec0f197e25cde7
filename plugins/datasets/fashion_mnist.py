"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60,000 + 10,000 28×28 grey images, 10 classes.

Read from the IDX files, gzipped as distributed. Looked for in ``data.data_dir`` (or
``$ZOO_DATA_DIR``)``/fashion-mnist``, then in ``/usr/share/datasets/fashion-mnist`` where the Debian
package ``dataset-fashion-mnist`` installs them. With ``data.options.download = true`` the files
are fetched from the canonical source and checked against the published MD5 sums.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.data import DataInfo, Dataset, TensorSplit
from zoo.core.data import data_dir as find_data_dir
from zoo.core.errors import DataUnavailable

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CANONICAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# MD5 sums published in the zalandoresearch/fashion-mnist README for the canonical .gz files.
FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class FashionMNISTOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    download: bool = Field(False, description="Fetch the files from the canonical source when missing "
                           "(needs internet; checked against the published MD5 sums).")
    flatten: bool = Field(False, description="Samples as 784-vectors instead of 1×28×28 images.")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzipped or not): magic (0, 0, dtype=0x08 ubyte, ndim), sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataUnavailable(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataUnavailable(f"{path} is truncated: expected {dims}, found {data.size} values")
    return data.reshape(dims)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(dest: Path, base_url: str = CANONICAL_URL, checksums: dict[str, str] = FILES) -> Path:
    """Fetch the four files into ``dest`` and verify their MD5; a mismatch deletes the file."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, expected in checksums.items():
        target = dest / name
        if target.exists() and md5(target) == expected:
            continue
        tmp = target.with_suffix(".part")
        try:
            urllib.request.urlretrieve(base_url + name, tmp)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise DataUnavailable(f"could not download {base_url + name}: {err}") from None
        got = md5(tmp)
        if got != expected:
            tmp.unlink(missing_ok=True)
            raise DataUnavailable(f"checksum mismatch for {name}: expected md5 {expected}, got {got}")
        os.replace(tmp, target)
    return dest


def locate(configured: str | None) -> Path | None:
    folder = find_data_dir(configured, "fashion-mnist", DEBIAN_DIR)
    if folder is not None and all((folder / name).is_file() for name in FILES):
        return folder
    return None


def load_fashion_mnist(options: FashionMNISTOptions | None, data_dir: str | None) -> Dataset:
    options = options or FashionMNISTOptions()
    folder = locate(data_dir)
    if folder is None and options.download:
        base = Path(data_dir or os.environ.get("ZOO_DATA_DIR") or Path.home() / ".cache" / "zoo")
        folder = download(base / "fashion-mnist")
    if folder is None:
        raise DataUnavailable(
            "Fashion-MNIST files not found (looked in data.data_dir or $ZOO_DATA_DIR/fashion-mnist and "
            f"{DEBIAN_DIR}); install them with `apt-get install dataset-fashion-mnist`, point "
            "--data-dir at a folder holding the four *-ubyte.gz files, or allow a download with "
            "--set data.options.download=true")
    shape = (-1, 784) if options.flatten else (-1, 1, 28, 28)

    def images(name: str) -> torch.Tensor:
        return torch.from_numpy(read_idx(folder / name).astype(np.float32) / 255.0).reshape(shape)

    def labels(name: str) -> torch.Tensor:
        return torch.from_numpy(read_idx(folder / name).astype(np.int64))

    train = TensorSplit(x=images("train-images-idx3-ubyte.gz"), y=labels("train-labels-idx1-ubyte.gz"))
    test = TensorSplit(x=images("t10k-images-idx3-ubyte.gz"), y=labels("t10k-labels-idx1-ubyte.gz"))
    # Per-channel statistics (one channel): the usual Fashion-MNIST normalisation, baked into the model.
    x = train.tensors["x"]
    stat_shape = (1,) if options.flatten else (1, 1, 1)
    info = DataInfo(input_shape=tuple(x.shape[1:]), num_classes=10, class_names=CLASS_NAMES,
                    input_mean=x.mean().reshape(stat_shape), input_std=x.std().reshape(stat_shape))
    return Dataset(train=train, test=test, info=info)
