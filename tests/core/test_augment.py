"""On-device augmentation of image batches ([data.augment]) and how the trainer applies it."""

from __future__ import annotations

import pytest
import torch

from zoo.core import api
from zoo.core.train.augment import augment, random_hflip, random_shift
from zoo.core.contract.config import AugmentConfig
from zoo.core.contract.errors import ZooError


def test_shift_moves_each_image_by_at_most_s_pixels_with_zero_fill():
    torch.manual_seed(0)
    x = torch.zeros(64, 2, 12, 12)
    x[:, :, 6, 6] = 1.0
    out = random_shift(x, 3)
    assert out.shape == x.shape
    assert torch.equal(out.sum(dim=(2, 3)), x.sum(dim=(2, 3)))        # nothing lost far from the border
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1], (out[:, 0] == 1).nonzero()[:, 2]
    assert (rows - 6).abs().max() <= 3 and (cols - 6).abs().max() <= 3
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) > 10   # offsets differ per image
    assert torch.equal(out[:, 0], out[:, 1])                           # channels move together


def test_hflip_mirrors_about_half_of_the_images():
    torch.manual_seed(0)
    x = torch.rand(200, 1, 5, 5)
    out = random_hflip(x)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert bool((flipped | same).all()) and 60 < int(flipped.sum()) < 140


def test_disabled_augmentation_is_the_identity():
    x = torch.rand(4, 1, 6, 6)
    assert AugmentConfig().enabled is False
    assert augment(x, AugmentConfig()) is x


@pytest.mark.slow
def test_augmenting_non_images_is_a_clear_error(tmp_path):
    pytest.importorskip("sklearn")
    options = {"data": {"augment": {"shift": 2}}, "train": {"epochs": 1, "device": "cpu", "progress": False},
               "export": {"enabled": False}}
    with pytest.raises(ZooError, match=r"data.augment .* needs image inputs"):
        api.train("softmax", options={**options, "data": {**options["data"], "name": "iris"}},
                  out=str(tmp_path / "run"), log=None)


@pytest.mark.slow
def test_trainer_trains_with_augmentation(tmp_path):
    pytest.importorskip("sklearn")
    options = {"data": {"name": "digits", "limit": 128, "augment": {"shift": 1, "hflip": True}},
               "model": {"channels": [8], "hidden": 0},
               "train": {"epochs": 1, "batch_size": 32, "device": "cpu", "progress": False},
               "export": {"enabled": False}}
    summary = api.train("cnn", options=options, out=str(tmp_path / "run"), log=None)
    assert summary["status"] == "finished"
    config = (tmp_path / "run" / "config.toml").read_text()
    assert "[data.augment]" in config and "shift = 1" in config
