"""Public datasets: each loader on tiny files in the real format, the search order of the data
roots, and bad files as one-line errors naming the file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import declare_system_roots
from zoo.core.contract.errors import DataNotFound, ZooError
from zoo.plugins.datasets import cifar10, fashion_mnist, idx, mnist, text

IDX_FILES = idx.FILES


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def idx_set(root: Path, subdir: str, n_train: int = 6, n_test: int = 4, fill: int | None = None) -> Path:
    """Four IDX files under ``root/subdir``; ``fill`` sets every pixel (to tell roots apart)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        pixels = np.full((n, 28, 28), fill) if fill is not None else rng.integers(0, 256, (n, 28, 28))
        write_idx(root / subdir / f"{prefix}-images-idx3-ubyte.gz", pixels)
        write_idx(root / subdir / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """Empty data roots: a --data-dir, $ZOO_DATA_DIR, the cache and a system root, searched in
    that order; nothing else (the Debian folder of this machine is patched out)."""
    made = {name: tmp_path / name for name in ("data_dir", "env", "cache", "system")}
    for folder in made.values():
        folder.mkdir()
    monkeypatch.setenv("ZOO_DATA_DIR", str(made["env"]))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(made["cache"]))
    declare_system_roots(monkeypatch, "fashion-mnist", [made["system"]])
    return made


# -- IDX: MNIST, Fashion-MNIST ------------------------------------------------------------------

@pytest.mark.slow
def test_mnist_reads_idx_files(roots):
    idx_set(roots["cache"], "mnist")
    data = mnist.load_mnist(None, None)
    assert data.train.tensors["x"].shape == (6, 1, 28, 28) and data.test.tensors["y"].tolist() == [0, 1, 2, 3]
    assert data.info.class_names == [str(d) for d in range(10)] and data.info.num_classes == 10
    x = data.train.tensors["x"]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.allclose(data.info.input_mean, x.mean().reshape(1, 1, 1))
    flat = mnist.load_mnist(idx.IDXOptions(flatten=True), None)
    assert flat.train.tensors["x"].shape == (6, 784) and flat.info.input_shape == (784,)


@pytest.mark.slow
def test_search_order_data_dir_env_cache_system(roots):
    """Each root beats the later ones; a root without the files does not hide the next."""
    for value, name in enumerate(("system", "cache", "env", "data_dir")):
        idx_set(roots[name], "fashion-mnist", fill=value)
    pixel = lambda data_dir=None: round(float(fashion_mnist.load_fashion_mnist(None, data_dir)  # noqa: E731
                                              .train.tensors["x"][0, 0, 0, 0]) * 255)
    assert pixel(str(roots["data_dir"])) == 3   # --data-dir first
    assert pixel() == 2                          # then $ZOO_DATA_DIR
    (roots["env"] / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert pixel() == 1                          # an incomplete $ZOO_DATA_DIR: the cache
    assert pixel(str(roots["env"])) == 1         # an incomplete --data-dir does not hide it either
    (roots["cache"] / "fashion-mnist" / "train-images-idx3-ubyte.gz").unlink()
    assert pixel() == 0                          # then the system root (Debian's package)


@pytest.mark.slow
def test_zoo_data_dir_does_not_hide_the_debian_files(roots):
    """The issue's bug: ZOO_DATA_DIR=/some/dir hid /usr/share/datasets/fashion-mnist."""
    idx_set(roots["system"], "fashion-mnist")
    assert len(fashion_mnist.load_fashion_mnist(None, None).train) == 6


def test_missing_files_name_the_dataset_and_the_fix(roots):
    with pytest.raises(DataNotFound) as err:
        mnist.load_mnist(None, None)
    assert err.value.dataset == "mnist" and "mnist/train-images-idx3-ubyte.gz" in err.value.files
    assert "zoo data fetch mnist" in str(err.value) and "\n" not in str(err.value)
    assert str(roots["env"]) in err.value.looked and str(roots["cache"]) in err.value.looked


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    ("not-gzip", "not a readable gzip file"),
    ("magic", "not an unsigned-byte IDX file"),
    ("truncated", "truncated: the header declares"),
    ("label", "label 12 of item 0 is not a class"),
    ("count", "5 labels for the 6 images"),
])
def test_bad_idx_files_are_one_line_errors_naming_the_file(roots, damage, message):
    idx_set(roots["cache"], "mnist")
    path = roots["cache"] / "mnist" / "train-labels-idx1-ubyte.gz"
    if damage == "not-gzip":
        path.write_bytes(b"<html>404</html>")
    elif damage == "magic":
        with gzip.open(path, "wb") as fh:
            fh.write(b"\x00\x00\x0d\x01" + struct.pack(">I", 6) + bytes(24))
    elif damage == "truncated":
        with gzip.open(path, "wb") as fh:
            fh.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + b"\x01\x02")
    elif damage == "label":
        write_idx(path, np.array([12, 0, 1, 2, 3, 4]))
    else:
        write_idx(path, np.arange(5))
    with pytest.raises(ZooError) as err:
        mnist.load_mnist(None, None)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_bad_file_exits_2_with_one_line(roots, cli, tmp_path):
    idx_set(roots["cache"], "mnist")
    (roots["cache"] / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    result = cli("train", "softmax", "--dataset", "mnist", "--out", str(tmp_path / "run"),
                 "--set", "train.epochs=1", env={"ZOO_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "t10k-images-idx3-ubyte.gz" in lines[0] and "Traceback" not in result.stderr


# -- CIFAR-10 binary ----------------------------------------------------------------------------

def cifar_set(root: Path, per_batch: int = 3) -> Path:
    """Binary batches of ``per_batch`` records: label i % 10, every pixel of channel c = 10 * c + i."""
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name in (*cifar10.TRAIN_FILES, *cifar10.TEST_FILES):
        records = []
        for i in range(per_batch):
            pixels = np.concatenate([np.full(1024, 10 * c + i) for c in range(3)])
            records.append(np.concatenate([[i % 10], pixels]).astype(np.uint8))
        np.concatenate(records).tofile(folder / name)
    return folder


def test_cifar10_reads_binary_records(roots):
    cifar_set(roots["env"])
    data = cifar10.load_cifar10(None, None)
    x = data.train.tensors["x"]
    assert x.shape == (15, 3, 32, 32) and data.test.tensors["x"].shape == (3, 3, 32, 32)
    assert data.train.tensors["y"].tolist() == [0, 1, 2] * 5
    # channel order R, G, B as stored; pixel value 10 * c + i of record i
    assert [round(float(x[1, c, 5, 7]) * 255) for c in range(3)] == [1, 11, 21]
    assert data.info.input_mean.shape == (3, 1, 1) and data.info.class_names[3] == "cat"
    assert torch.allclose(data.info.input_mean.flatten() * 255, torch.tensor([1.0, 11.0, 21.0]), atol=1e-4)
    flat = cifar10.load_cifar10(cifar10.CIFAR10Options(flatten=True), None)
    assert flat.train.tensors["x"].shape == (15, 3072) and flat.info.input_mean.shape == (3072,)
    assert torch.allclose(flat.train.tensors["x"][1], x[1].reshape(-1))


@pytest.mark.parametrize("damage, message", [
    ("short", "not a whole number of 3073-byte CIFAR-10 records"),
    ("label", "record 1 (byte 3073) has label 200"),
])
def test_bad_cifar_batches_name_the_file_and_record(roots, damage, message):
    folder = cifar_set(roots["cache"])
    path = folder / "data_batch_3.bin"
    raw = bytearray(path.read_bytes())
    if damage == "short":
        raw = raw[:-10]
    else:
        raw[cifar10.RECORD] = 200
    path.write_bytes(bytes(raw))
    with pytest.raises(ZooError) as err:
        cifar10.load_cifar10(None, None)
    assert message in str(err.value) and str(path) in str(err.value)


def test_cifar10_missing_is_data_not_found(roots):
    with pytest.raises(DataNotFound) as err:
        cifar10.load_cifar10(None, None)
    assert err.value.dataset == "cifar10" and "cifar10/cifar-10-batches-bin/data_batch_1.bin" in err.value.files


# -- SST-2 --------------------------------------------------------------------------------------

WORDS = ["good", "great", "fine", "bad", "awful", "poor"]


def sst_tsv(path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel"]
    for i in range(n):
        label = i % 2
        words = rng.choice(WORDS[:3] if label else WORDS[3:], size=3)
        lines.append(f"{' '.join(words)} film {i} \t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sst2_from_the_glue_archive_layout(roots):
    """GLUE's train.tsv is split (seeded) into train/dev; GLUE's dev.tsv is the test split."""
    sst_tsv(roots["cache"] / "sst2" / "SST-2" / "train.tsv", 40)
    sst_tsv(roots["cache"] / "sst2" / "SST-2" / "dev.tsv", 6, seed=1)
    data = text.load_sst2(text.SST2Options(min_freq=1), None)
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 6)
    again = text.load_sst2(text.SST2Options(min_freq=1), None)
    assert torch.equal(data.val.tensors["y"], again.val.tensors["y"])
    other = text.load_sst2(text.SST2Options(min_freq=1, split_seed=1, dev_fraction=0.25), None)
    assert (len(other.train), len(other.val)) == (30, 10)
    assert data.info.class_names == ["negative", "positive"]


@pytest.mark.slow
def test_sst2_local_copy_layout_and_the_earlier_root_wins(roots):
    sst_tsv(roots["cache"] / "sst2" / "SST-2" / "train.tsv", 40)
    sst_tsv(roots["cache"] / "sst2" / "SST-2" / "dev.tsv", 6)
    for name, n in (("train", 10), ("dev", 3), ("test", 5)):
        sst_tsv(roots["env"] / "sst2" / f"{name}.tsv", n)
    data = text.load_sst2(text.SST2Options(min_freq=1), None)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 3, 5)  # $ZOO_DATA_DIR before the cache
    (roots["env"] / "sst2" / "dev.tsv").unlink()
    data = text.load_sst2(text.SST2Options(min_freq=1), None)
    assert (len(data.train), len(data.test)) == (36, 6)                    # incomplete: the cache's GLUE files


def test_sst2_missing_names_the_glue_files(roots):
    with pytest.raises(DataNotFound) as err:
        text.load_sst2(None, None)
    assert err.value.dataset == "sst2" and err.value.files == list(text.SST2_GLUE)


@pytest.mark.parametrize("row, message", [
    ("a fine film\t7", "line 3, column label: expected 0 or 1, got '7'"),
    ("no label column here", "line 3, column label: expected 0 or 1, got nothing"),
])
def test_bad_sst2_rows_name_file_line_column(roots, row, message):
    path = sst_tsv(roots["cache"] / "sst2" / "SST-2" / "train.tsv", 4)
    sst_tsv(roots["cache"] / "sst2" / "SST-2" / "dev.tsv", 2)
    lines = path.read_text().splitlines()
    lines[2] = row
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ZooError) as err:
        text.load_sst2(None, None)
    assert str(path) in str(err.value) and message in str(err.value)


def test_sst2_header_and_empty_file(roots):
    path = roots["cache"] / "sst2" / "SST-2" / "train.tsv"
    sst_tsv(roots["cache"] / "sst2" / "SST-2" / "dev.tsv", 2)
    path.write_text("text\tpolarity\nfine\t1\n")
    with pytest.raises(ZooError, match="line 1: expected columns sentence, label"):
        text.load_sst2(None, None)
    path.write_text("sentence\tlabel\n")
    with pytest.raises(ZooError, match="no sentences"):
        text.load_sst2(None, None)


# -- ATIS ---------------------------------------------------------------------------------------

def atis_set(root: Path) -> Path:
    utterances = [("flights from boston to denver", "O O B-fromloc.city_name O B-toloc.city_name", "flight"),
                  ("fare to dallas", "O O B-toloc.city_name", "airfare")]
    for split in ("train", "dev", "test"):
        folder = root / "atis" / split
        folder.mkdir(parents=True)
        for name, column in (("seq.in", 0), ("seq.out", 1), ("label", 2)):
            (folder / name).write_text("".join(u[column] + "\n" for u in utterances))
    return root / "atis"


@pytest.mark.slow
def test_atis_reads_the_jointbert_layout(roots):
    atis_set(roots["data_dir"])
    data = text.load_atis(text.TextOptions(min_freq=1), str(roots["data_dir"]))
    assert len(data.train) == 2 and data.info.extra["intent_names"] == ["airfare", "flight"]
    assert "B-fromloc.city_name" in data.info.class_names


@pytest.mark.slow
def test_bad_atis_tags_name_file_and_line(roots):
    folder = atis_set(roots["cache"])
    (folder / "dev" / "seq.out").write_text("O O B-fromloc.city_name O B-toloc.city_name\nO O\n")
    with pytest.raises(ZooError) as err:
        text.load_atis(None, None)
    assert f"{folder / 'dev' / 'seq.out'}: line 2: 2 tags for the 3 words" in str(err.value)


def test_atis_missing_is_data_not_found(roots):
    with pytest.raises(DataNotFound, match="zoo data fetch atis"):
        text.load_atis(None, None)


# -- declarations -------------------------------------------------------------------------------

def _declared(name: str) -> dict:
    import tomllib

    from zoo.core.contract.catalogue import REGISTRY_PATH

    return tomllib.loads(REGISTRY_PATH.read_text(encoding="utf-8"))["datasets"][name]


@pytest.mark.parametrize("name, load", [
    ("mnist", lambda: mnist.load_mnist(None, None)),
    ("fashion-mnist", lambda: fashion_mnist.load_fashion_mnist(None, None)),
    ("cifar10", lambda: cifar10.load_cifar10(None, None)),
    ("sst2", lambda: text.load_sst2(None, None)),
    ("atis", lambda: text.load_atis(None, None)),
])
def test_declared_files_provide_what_the_loader_asks_for(roots, name, load):
    """`zoo data fetch NAME` (the registry's files) brings every file the loader then looks for;
    checksums come with the page they were taken from."""
    entry = _declared(name)
    provided = set()
    for f in entry["files"]:
        provided.update(f.get("provides") or [f["path"].removesuffix(".gz") if f.get("unpack") == "gz" else f["path"]])
        assert ("md5" in f or "sha256" in f) <= ("checksum_source" in f), f
    with pytest.raises(DataNotFound) as err:
        load()
    assert err.value.dataset == name and set(err.value.files) <= provided
    assert entry["license"] and entry["citation"] and entry["homepage"]
