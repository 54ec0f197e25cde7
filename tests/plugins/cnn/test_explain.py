"""`zoo explain`: pictures of the right size for a trained run, clear errors for bad requests."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from zoo.cli import main
from zoo.core import api
from zoo.core.train.data import DataInfo, Standardize
from zoo.core.contract.errors import ZooError
from zoo.plugins.cnn import png
from zoo.plugins.cnn.explain import explain, occlusion, saliency
from zoo.plugins.cnn.models import STNConfig, build_stn

pytest.importorskip("sklearn")  # the run below trains on scikit-learn's digits


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A cnn trained for one short epoch on 8×8 digits (seconds)."""
    out = tmp_path_factory.mktemp("runs") / "cnn-digits"
    options = {"data": {"name": "digits", "limit": 128},
               "model": {"channels": [8, 16], "hidden": 16},
               "train": {"epochs": 1, "batch_size": 32, "device": "cpu", "progress": False},
               "export": {"enabled": False}}
    api.train("cnn", options=options, out=str(out), log=None)
    return out


def test_explain_writes_pngs_of_the_right_size(digits_run, tmp_path):
    report = api.explain(str(digits_run), index=5, out=str(tmp_path / "ex"))
    files = report["files"]
    assert set(files) == {"filters", "saliency", "occlusion"}
    side = 8 * png.panel_scale(8, 8)  # 8×8 digits upscaled to 224 px
    assert side == 224
    tile = 3 * (png.FILTER_TILE // 3)  # 3×3 kernels upscaled ×13 = 39 px; 8 filters in a 3×3 grid
    expected = {
        "filters": (3 * tile + 2 * png.GAP, 3 * tile + 2 * png.GAP),
        "saliency": (3 * side + 2 * png.GAP, side),
        "occlusion": (2 * side + png.GAP, side),
    }
    for name, path in files.items():
        assert png.read_png_size(path) == expected[name], name
        assert (tmp_path / "ex" / f"{name}.png").stat().st_size > 200
    assert report["true"]["label"] in [str(i) for i in range(10)]
    assert 0.0 <= report["prediction"]["probability"] <= 1.0
    assert (tmp_path / "ex" / "explain.json").is_file()


@pytest.mark.parametrize("index", [-1, 10_000])
def test_index_out_of_range_is_a_clear_error(digits_run, index):
    with pytest.raises(ZooError, match=r"--index .* out of range: the test split of 'digits' has \d+ samples"):
        api.explain(str(digits_run), index=index)


def test_cli_explain_reports_errors_in_one_line(digits_run, tmp_path):
    result = CliRunner().invoke(main, ["explain", str(digits_run), "--index", "99999"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "out of range" in result.stderr
    result = CliRunner().invoke(main, ["explain", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a run directory" in result.stderr


def test_cli_explain_default_folder(digits_run):
    result = CliRunner().invoke(main, ["explain", str(digits_run), "--index", "0"])
    assert result.exit_code == 0, result.output
    assert "predicted" in result.stdout
    for name in ("filters", "saliency", "occlusion"):
        assert (digits_run / "explain-0" / f"{name}.png").stat().st_size > 0


def test_stn_explain_shows_the_input_next_to_the_transformed_input(tmp_path):
    data_info = DataInfo(input_shape=(1, 40, 40), num_classes=10, class_names=[f"c{i}" for i in range(10)])
    config = STNConfig(name="stn", channels=[8, 16], hidden=16, loc_channels=(4, 8), loc_hidden=8)
    model = Standardize(build_stn(config, data_info), torch.full((1, 1, 1), 0.2), torch.full((1, 1, 1), 0.3))
    sample = {"x": torch.rand(1, 1, 40, 40), "y": torch.tensor([3])}
    report = explain(model, "stn", sample, data_info, tmp_path)
    side = 40 * png.panel_scale(40, 40)
    assert png.read_png_size(report["files"]["stn"]) == (2 * side + png.GAP, side)
    assert report["true"] == {"class": 3, "label": "c3"}


def test_saliency_is_the_gradient_magnitude_of_a_linear_model():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(1, 1, 4, 4)
    sal = saliency(model, x, target=2)
    assert torch.allclose(sal, model[1].weight[2].abs().reshape(4, 4))


def test_occlusion_finds_the_only_informative_pixel():
    # class 1's logit is 10× the pixel at (5, 5): covering that pixel is the only thing that hurts
    class OnePixel(torch.nn.Module):
        def forward(self, x):
            v = x[:, 0, 5, 5] * 10
            return torch.stack([torch.zeros_like(v), v], dim=-1)

    x = torch.ones(1, 1, 12, 12)
    occ = occlusion(OnePixel(), x, target=1, patch=2, stride=1)
    assert occ.shape == (12, 12)
    assert occ[5, 5] > 0.4 and occ[0, 0] == 0 and occ[11, 11] == 0


def test_png_writer_round_trips_pixels(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = png.write_png(tmp_path / "x.png", rgb)
    data = path.read_bytes()
    assert png.read_png_size(path) == (7, 5)
    length = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    raw = np.frombuffer(zlib.decompress(data[41:41 + length]), np.uint8).reshape(5, 1 + 7 * 3)
    assert (raw[:, 0] == 0).all() and np.array_equal(raw[:, 1:].reshape(5, 7, 3), rgb)


def test_models_no_plugin_explains_are_a_clear_error(tmp_path):
    options = {"data": {"name": "iris"}, "train": {"epochs": 1, "device": "cpu", "progress": False},
               "export": {"enabled": False}}
    api.train("softmax", options=options, out=str(tmp_path / "run"), log=None)
    with pytest.raises(ZooError, match="no plugin explains model 'softmax'"):
        api.explain(str(tmp_path / "run"), index=0)
