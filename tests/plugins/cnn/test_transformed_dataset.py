"""fashion-mnist-transformed: the affine maths, determinism, options."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from zoo.plugins.cnn.datasets import TransformedOptions, random_affines, transform_images


def test_no_rotation_scale_or_shift_on_a_28_canvas_is_the_identity():
    options = TransformedOptions(canvas=28, max_rotation=0, min_scale=1, max_scale=1, max_shift=0)
    theta = random_affines(4, options, torch.Generator().manual_seed(0))
    assert torch.allclose(theta, torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(4, 2, 3), atol=1e-6)
    images = torch.rand(4, 1, 28, 28)
    assert torch.allclose(transform_images(images, theta, 28, torch.device("cpu")), images, atol=1e-5)


def test_a_bigger_canvas_centres_the_image():
    options = TransformedOptions(canvas=40, max_rotation=0, min_scale=1, max_scale=1, max_shift=0)
    theta = random_affines(1, options, torch.Generator().manual_seed(0))
    image = torch.rand(1, 1, 28, 28)
    out = transform_images(image, theta, 40, torch.device("cpu"))
    assert torch.allclose(out[0, 0, 6:34, 6:34], image[0, 0], atol=1e-5)
    assert out[0, 0, :6].abs().max() == 0 and out[0, 0, :, 34:].abs().max() == 0


def test_a_shift_moves_the_image_by_that_many_pixels():
    options = TransformedOptions(canvas=40, max_rotation=0, min_scale=1, max_scale=1, max_shift=5)
    theta = random_affines(1, options, torch.Generator().manual_seed(3))
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 14, 14] = 1.0
    out = transform_images(image, theta, 40, torch.device("cpu"))[0, 0]
    row, col = divmod(int(out.argmax()), 40)
    # the pixel's centre sits at 20 on the canvas plus the drawn shift (within ±5, rounding to pixels)
    assert abs(row - 20) <= 5 and abs(col - 20) <= 5 and (row, col) != (20, 20)


def test_parameters_are_seeded_and_ranges_respected():
    options = TransformedOptions()
    a = random_affines(100, options, torch.Generator().manual_seed(1))
    b = random_affines(100, options, torch.Generator().manual_seed(1))
    c = random_affines(100, options, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # |det| of the linear part = (C/2 / (s·14))², so s is recoverable: within [0.7, 1.2]
    det = torch.linalg.det(a[:, :, :2]).abs()
    scale = (options.canvas / 2 / 14) / det.sqrt()
    assert scale.min() >= 0.7 - 1e-5 and scale.max() <= 1.2 + 1e-5


def test_bad_options_are_rejected():
    with pytest.raises(ValidationError, match="min_scale"):
        TransformedOptions(min_scale=1.5, max_scale=1.0)
    with pytest.raises(ValidationError):
        TransformedOptions(canvas=20)


def test_loader_is_deterministic_and_shaped(fashion_mnist):
    from zoo.plugins.cnn.datasets import load_fashion_mnist_transformed

    options = TransformedOptions(n_train=32, n_test=8, device="cpu")
    one = load_fashion_mnist_transformed(options, None)
    two = load_fashion_mnist_transformed(options, None)
    x = one.train.tensors["x"]
    assert x.shape == (32, 1, 40, 40) and one.test.tensors["x"].shape == (8, 1, 40, 40)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x, two.train.tensors["x"])
    assert one.info.input_shape == (1, 40, 40) and one.info.num_classes == 10
