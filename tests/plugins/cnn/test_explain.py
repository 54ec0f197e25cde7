"""`zoo explain`: labelled pictures (titles, true and predicted class, colour bars), clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from zoo.cli import main
from zoo.core import api
from zoo.core.train.data import DataInfo, Standardize
from zoo.core.contract.errors import ZooError
from zoo.plugins.cnn.explain import explain, filters_figure, occlusion, saliency
from zoo.plugins.cnn.figures import Panel, panel_figure
from zoo.plugins.cnn.models import STNConfig, build_stn

pytest.importorskip("sklearn")  # the run below trains on scikit-learn's digits
pytest.importorskip("matplotlib")  # the pictures are matplotlib figures (the plots extra)
Image = pytest.importorskip("PIL.Image")


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


@pytest.mark.slow
def test_explain_writes_labelled_pngs(digits_run, tmp_path):
    report = api.explain(str(digits_run), index=5, out=str(tmp_path / "ex"))
    files = report["files"]
    assert set(files) == {"filters", "saliency", "occlusion"}
    true, pred = report["true"]["label"], report["prediction"]["label"]
    assert true in [str(i) for i in range(10)] and 0.0 <= report["prediction"]["probability"] <= 1.0
    assert report["title"] == (f"cnn: true {true} · predicted {pred} "
                               f"(p = {report['prediction']['probability']:.2f})")
    for name, path in files.items():
        with Image.open(path) as picture:
            assert picture.format == "PNG" and min(picture.size) >= 200, name
            if name != "filters":  # a row of panels: the input and what the model saw in it
                assert picture.width > 1.5 * picture.height, name
            assert report["title"] in picture.text["Title"], name  # the figure's title, in the PNG too
    assert (tmp_path / "ex" / "explain.json").is_file()


def test_panels_have_titles_and_colour_bars():
    rng = np.random.default_rng(0)
    fig = panel_figure([Panel(rng.random((8, 8)), "input", vmin=0, vmax=1),
                        Panel(rng.random((8, 8)), "saliency", cmap="hot", colorbar="gradient magnitude")],
                       "cnn: true 3 · predicted 3 (p = 0.97)")
    images, bars = fig.axes[:2], fig.axes[2:]
    assert [ax.get_title() for ax in images] == ["input", "saliency"]
    assert [ax.get_ylabel() for ax in bars] == ["gradient magnitude"]  # one colour bar, for the measured panel
    assert fig.get_suptitle() == "cnn: true 3 · predicted 3 (p = 0.97)"


def test_filters_share_one_signed_scale():
    weight = torch.zeros(5, 2, 3, 3)
    weight[0, :, 0, 0], weight[4, :, 2, 2] = 2.0, -1.0
    fig = filters_figure(weight, "filters")
    shown = [ax for ax in fig.axes if ax.get_title().startswith("filter ")]
    assert len(shown) == 5
    for ax in shown:  # blue -2 … red +2 for every filter, so their colours compare
        assert ax.images[0].get_clim() == (-2.0, 2.0) and ax.images[0].get_cmap().name == "RdBu_r"
    assert any(ax.get_ylabel() == "weight" for ax in fig.axes)


@pytest.mark.slow
@pytest.mark.parametrize("index", [-1, 10_000])
def test_index_out_of_range_is_a_clear_error(digits_run, index):
    with pytest.raises(ZooError, match=r"--index .* out of range: the test split of 'digits' has \d+ samples"):
        api.explain(str(digits_run), index=index)


@pytest.mark.slow
def test_cli_explain_reports_errors_in_one_line(digits_run, tmp_path):
    result = CliRunner().invoke(main, ["explain", str(digits_run), "--index", "99999"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "out of range" in result.stderr
    result = CliRunner().invoke(main, ["explain", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a run directory" in result.stderr


@pytest.mark.slow
def test_cli_explain_default_folder(digits_run):
    result = CliRunner().invoke(main, ["explain", str(digits_run), "--index", "0"])
    assert result.exit_code == 0, result.output
    assert "predicted" in result.stdout
    for name in ("filters", "saliency", "occlusion"):
        assert (digits_run / "explain-0" / f"{name}.png").stat().st_size > 0


@pytest.mark.slow
def test_stn_explain_shows_the_input_next_to_the_transformed_input(tmp_path):
    data_info = DataInfo(input_shape=(1, 40, 40), num_classes=10, class_names=[f"c{i}" for i in range(10)])
    config = STNConfig(name="stn", channels=[8, 16], hidden=16, loc_channels=(4, 8), loc_hidden=8)
    model = Standardize(build_stn(config, data_info), torch.full((1, 1, 1), 0.2), torch.full((1, 1, 1), 0.3))
    sample = {"x": torch.rand(1, 1, 40, 40), "y": torch.tensor([3])}
    report = explain(model, "stn", sample, data_info, tmp_path)
    with Image.open(report["files"]["stn"]) as picture:
        assert picture.width > 1.5 * picture.height  # two panels side by side
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


@pytest.mark.slow
def test_models_no_plugin_explains_are_a_clear_error(tmp_path):
    options = {"data": {"name": "iris"}, "train": {"epochs": 1, "device": "cpu", "progress": False},
               "export": {"enabled": False}}
    api.train("softmax", options=options, out=str(tmp_path / "run"), log=None)
    with pytest.raises(ZooError, match="no plugin explains model 'softmax'"):
        api.explain(str(tmp_path / "run"), index=0)
