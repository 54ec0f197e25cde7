"""image-folder: layouts, splits, one compact array, stats, bad folders (exit 2, one line), predict."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from zoo.cli import main
from zoo.core import api
from zoo.core.contract.plugins import get_zoo
from zoo.plugins.datasets.own.images import (
    ImageDataError,
    ImageFolderOptions,
    channel_stats,
    decode_inputs,
    load_image_folder,
    read_image,
    scan_classes,
)

Image = pytest.importorskip("PIL.Image")


def _pattern(label: int, rng, size=(8, 8)) -> np.ndarray:
    """An RGB image whose class is visible: class 0 bright on the left, class 1 on the right."""
    h, w = size
    pixels = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    if label == 0:
        pixels[:, : w // 2] += 180
    else:
        pixels[:, w // 2:] += 180
    return pixels


def make_folder(root, per_class=5, classes=("ants", "bees"), size=(8, 8), suffix=".png", seed=0):
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(_pattern(label % 2, rng, size)).save(root / name / f"{i:02d}{suffix}")
    return root


def load(path, **options):
    return load_image_folder(ImageFolderOptions(path=str(path), **options), None)


def test_one_uint8_array_split_into_views(tmp_path):
    data = load(make_folder(tmp_path / "f", per_class=10), val_fraction=0.1, test_fraction=0.2)
    train, val, test = (s.tensors["x"] for s in (data.train, data.val, data.test))
    assert (len(train), len(val), len(test)) == (14, 2, 4)  # per class: 7 / 1 / 2
    assert train.dtype == torch.uint8 and train.shape[1:] == (3, 8, 8)
    storage = {t.untyped_storage().data_ptr() for t in (train, val, test)}
    assert len(storage) == 1  # three views of one array, no copy per split
    for split in (data.train, data.val, data.test):  # stratified: both classes everywhere
        assert sorted(set(split.tensors["y"].tolist())) == [0, 1]
    batch = data.train.batch(torch.arange(3))
    assert batch["x"].dtype == torch.float32 and 0.0 <= float(batch["x"].min()) <= float(batch["x"].max()) <= 1.0
    assert torch.equal(batch["x"], train[:3].float() / 255)
    assert data.info.class_names == ["ants", "bees"] and data.info.input_shape == (3, 8, 8)
    assert data.info.extra["raw_inputs"] == {"kind": "image-folder", "size": [8, 8], "channels": 3,
                                             "class_names": ["ants", "bees"], "input": "x",
                                             "scale": "pixel / 255"}


def test_stats_are_the_training_pixels_per_channel(tmp_path):
    data = load(make_folder(tmp_path / "f", per_class=6))
    x = data.train.tensors["x"].double() / 255
    assert torch.allclose(data.info.input_mean.reshape(3).double(), x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(data.info.input_std.reshape(3).double(), x.transpose(0, 1).reshape(3, -1).std(dim=1),
                          atol=1e-6)
    mean, std = channel_stats(np.full((5, 1, 2, 2), 51, dtype=np.uint8), chunk=2)
    assert float(mean) == pytest.approx(0.2) and float(std) == 0.0


def test_split_is_seeded_and_a_subset_subsets(tmp_path):
    folder = make_folder(tmp_path / "f", per_class=10)
    a, b, c = load(folder, seed=1), load(folder, seed=1), load(folder, seed=2)
    assert torch.equal(a.test.tensors["x"], b.test.tensors["x"])
    assert not torch.equal(a.test.tensors["x"], c.test.tensors["x"])
    small = a.train.subset(torch.tensor([0, 2]))
    assert type(small).__name__ == "ImageSplit" and small.batch(torch.arange(2))["x"].dtype == torch.float32


@pytest.mark.slow
def test_train_and_test_folders(tmp_path):
    make_folder(tmp_path / "f" / "train", per_class=6)
    make_folder(tmp_path / "f" / "test", per_class=2, seed=1)
    data = load(tmp_path / "f", val_fraction=0.0)
    assert len(data.train) == 12 and data.val is None and len(data.test) == 4
    assert data.test.tensors["y"].tolist() == [0, 0, 1, 1]


@pytest.mark.slow
def test_a_val_folder_is_the_validation_split(tmp_path):
    """ImageNet's layout, train/ and val/: val/ was silently ignored (validation drawn from train/)."""
    make_folder(tmp_path / "f" / "train", per_class=6)
    make_folder(tmp_path / "f" / "val", per_class=3, seed=1)
    make_folder(tmp_path / "f" / "test", per_class=2, seed=2)
    data = load(tmp_path / "f")
    assert (len(data.train), len(data.val), len(data.test)) == (12, 6, 4)
    assert data.val.tensors["y"].tolist() == [0, 0, 0, 1, 1, 1]
    (tmp_path / "f" / "test").rename(tmp_path / "test-elsewhere")  # train/ + val/: test drawn from train/
    data = load(tmp_path / "f", test_fraction=0.5)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 6, 6)
    make_folder(tmp_path / "f" / "val", per_class=1, classes=("wasps",), seed=3)
    with pytest.raises(ImageDataError, match=r"val/wasps: class 'wasps' has no training sample"):
        load(tmp_path / "f")


def test_a_symlink_loop_is_not_followed_but_a_linked_folder_is(tmp_path):
    """Links are followed (a class folder may live elsewhere), but one pointing back up the tree
    was walked again and again: every class's images were counted as 'ants', 40 levels deep."""
    folder = make_folder(tmp_path / "f", per_class=3)
    (folder / "ants" / "up").symlink_to("..")
    (folder / "bees" / "self").symlink_to(".", target_is_directory=True)
    make_folder(tmp_path / "elsewhere", per_class=2, classes=("wasps",))
    (folder / "wasps").symlink_to(tmp_path / "elsewhere" / "wasps")
    make_folder(folder / "bees" / "a", per_class=1, classes=("x",))  # a cycle of two links: a/x/b -> b, b/a -> a
    (folder / "bees" / "b").mkdir()
    (folder / "bees" / "a" / "x" / "b").symlink_to(folder / "bees" / "b")
    (folder / "bees" / "b" / "a").symlink_to(folder / "bees" / "a")
    assert {name: len(files) for name, files in scan_classes(folder).items()} == {"ants": 3, "bees": 4, "wasps": 2}


def test_grey_resized_jpeg_and_mixed_sizes(tmp_path):
    folder = make_folder(tmp_path / "f", per_class=3, suffix=".jpg")
    Image.fromarray(_pattern(0, np.random.default_rng(0), (12, 20))).save(folder / "ants" / "big.png")
    with pytest.raises(ImageDataError, match=r"big\.png: 12×20 pixels but .*8×8; set data.options.size"):
        load(folder)
    data = load(folder, size=(6, 10), channels=1, test_fraction=0.25)
    assert data.train.tensors["x"].shape[1:] == (1, 6, 10) and data.info.input_mean.shape == (1, 1, 1)


@pytest.mark.parametrize("side", [40, 50])  # 1,600 pixels: Pillow only warned; 2,500: its error
def test_an_image_over_pillows_bomb_limit_is_one_line_naming_it(tmp_path, monkeypatch, recwarn, side):
    """Past PIL.Image.MAX_IMAGE_PIXELS Pillow printed a two-line DecompressionBombWarning and
    decoded the image anyway (a 97 KB PNG of 10,000² took 0.64 s and 760 MB, on zoo serve's event
    loop too); past twice the limit it raised, reported as a 'corrupt' image."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("L", (side, side)).save(tmp_path / "big.png")
    meta = {"kind": "image-folder", "size": [8, 8], "channels": 3, "class_names": ["a", "b"]}
    for source in (tmp_path / "big.png", (tmp_path / "big.png").read_bytes()):
        with pytest.raises(ImageDataError) as err:
            decode_inputs(meta, source)
        message = str(err.value)
        assert "\n" not in message and "corrupt" not in message
        assert "too many pixels for Pillow" in message and f"({side * side} pixels)" in message
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_sixteen_bit_grey_png_keeps_its_levels(tmp_path):
    """A 16-bit greyscale PNG (scans, depth maps) is scaled to 8 bits, not clipped to white."""
    levels = np.arange(0, 256, 4, dtype=np.uint16).reshape(8, 8)
    path = tmp_path / "deep.png"
    Image.fromarray(levels * 257).save(path)  # 0..65535
    assert Image.open(path).mode.startswith("I")
    assert np.array_equal(read_image(path, 1, None, path), levels)
    rgb = read_image(path, 3, None, path)
    assert rgb.shape == (8, 8, 3) and np.array_equal(rgb[..., 1], levels)


@pytest.mark.slow
@pytest.mark.parametrize("case, message", [
    ("corrupt", r"ants/01\.png: unreadable or corrupt image"),
    ("truncated", r"bees/00\.png: unreadable or corrupt image"),
    ("empty class", r"f/wasps: empty class folder"),
    ("no classes", r"f: no class sub-folders"),
    ("no training sample", r"test/wasps: class 'wasps' has no training sample"),
    ("too few to split", r"f/ants: class 'ants' has no training sample \(1 image"),
    ("one class", r"one class folder \('ants'\)"),
    ("missing folder", r"nowhere: no such folder"),
])
def test_bad_folders_exit_2_with_one_line(tmp_path, case, message):
    folder, path = tmp_path / "f", tmp_path / "f"
    if case == "corrupt":
        make_folder(folder)
        (folder / "ants" / "01.png").write_bytes(b"not a png at all")
    elif case == "truncated":
        make_folder(folder)
        raw = (folder / "bees" / "00.png").read_bytes()
        (folder / "bees" / "00.png").write_bytes(raw[: len(raw) // 2])
    elif case == "empty class":
        make_folder(folder)
        (folder / "wasps").mkdir()
        (folder / "wasps" / "notes.txt").write_text("no images here")
    elif case == "no classes":
        folder.mkdir()
        (folder / "loose.png").write_bytes(b"")
    elif case == "no training sample":
        make_folder(folder / "train")
        make_folder(folder / "test", classes=("ants", "wasps"))
    elif case == "too few to split":
        make_folder(folder, per_class=1, classes=("ants",))
        make_folder(folder, per_class=5, classes=("bees",))
    elif case == "one class":
        make_folder(folder, classes=("ants",))
    else:
        path = tmp_path / "nowhere"
    sets = ['data.name="image-folder"', f'data.options.path="{path}"', "data.options.test_fraction=0.5",
            'train.device="cpu"', "train.epochs=1"]
    result = CliRunner().invoke(main, ["train", "cnn", "--out", str(tmp_path / "run"),
                                       *[arg for s in sets for arg in ("--set", s)]])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_decode_inputs_matches_training_pixels(tmp_path):
    folder = make_folder(tmp_path / "f", per_class=2)
    meta = {"kind": "image-folder", "size": [8, 8], "channels": 3, "class_names": ["ants", "bees"]}
    one = decode_inputs(meta, folder / "ants" / "00.png")["x"]
    expected = np.asarray(Image.open(folder / "ants" / "00.png")).transpose(2, 0, 1)[None] / 255
    assert one.dtype == np.float32 and np.allclose(one, expected)
    both = decode_inputs(meta, folder / "ants")["x"]
    assert both.shape == (2, 3, 8, 8) and np.array_equal(both[:1], one)
    raw = io.BytesIO()
    Image.open(folder / "bees" / "01.png").save(raw, format="JPEG", quality=95)
    grey = decode_inputs({**meta, "size": [4, 6], "channels": 1}, [raw.getvalue(), folder / "ants" / "01.png"])
    assert grey["x"].shape == (2, 1, 4, 6)
    with pytest.raises(ImageDataError, match="nothing.png: no such image file or folder"):
        decode_inputs(meta, tmp_path / "nothing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageDataError, match="bad.png: unreadable or corrupt image"):
        decode_inputs(meta, tmp_path / "bad.png")


@pytest.mark.parametrize("model, config", [("mlp", {"hidden": [8]}),
                                           ("vit", {"patch": 4, "dim": 8, "heads": 2, "ff_dim": 16, "layers": 1}),
                                           ("lenet", {})])
def test_image_families_build_on_the_folder(tmp_path, model, config):
    """MLP, ViT and the CNN family take the folder's [C, H, W] samples (one forward pass)."""
    data = load(make_folder(tmp_path / "f", per_class=4, size=(16, 16)))
    spec = get_zoo().registry.models[model]
    net = spec.builder(spec.config_class(name=model, **config), data.info)
    logits = net(data.train.batch(torch.arange(2))["x"])
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


@pytest.mark.slow
def test_cnn_trains_on_a_folder_and_predicts_from_images(tmp_path):
    """One short epoch, ONNX export with parity, then the exported model answers on image files."""
    ort = pytest.importorskip("onnxruntime")
    folder = make_folder(tmp_path / "f", per_class=24, size=(12, 12))
    options = {"data": {"name": "image-folder", "options": {"path": str(folder)}},
               "model": {"channels": [8, 16], "hidden": 16},
               "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False}}
    summary = api.train("cnn", options=options, out=str(tmp_path / "run"), log=None)
    assert summary["metrics"]["accuracy"] >= 0.5 and summary["parity"] < 1e-4
    meta = load(folder).info.extra["raw_inputs"]
    feed = decode_inputs(meta, folder / "bees")
    session = ort.InferenceSession(str(tmp_path / "run" / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, feed)
    assert logits.shape == (24, 2) and np.isfinite(logits).all()
    np.save(tmp_path / "bees.npy", feed["x"])  # the same arrays through `zoo predict`
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), "--input", str(tmp_path / "bees.npy"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)
    assert len(answers) == 24 and {a["label"] for a in answers} <= {"ants", "bees"}
    assert [a["class"] for a in answers] == logits.argmax(axis=1).tolist()
    # The same arrays as JSON, a list for the single input (zoo predict --help): not an image file.
    (tmp_path / "bees.json").write_text(json.dumps(feed["x"].tolist()))
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), "--input", str(tmp_path / "bees.json"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == answers
    # The raw images themselves, as docs/data.md shows: one file, then the whole folder.
    one = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), "--input", str(folder / "bees" / "00.png"),
                                    "--json"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)[0]["class"] == answers[0]["class"]
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), "--input", str(folder / "bees"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == answers
