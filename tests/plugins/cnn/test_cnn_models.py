"""CNN family models on tiny synthetic inputs: shapes, learning, bad inputs, STN specifics."""

from __future__ import annotations

import pytest
import torch

from zoo.core.train.data import DataInfo, Standardize
from zoo.core.contract.errors import ZooError
from zoo.core.deploy.export import export_onnx
from zoo.core.train.tasks import Classification
from zoo.plugins.cnn.models import CNNConfig, LeNetConfig, ResNetConfig, STNConfig
from zoo.plugins.cnn.models import build_cnn, build_lenet, build_resnet_small, build_stn

SMALL = {
    "lenet": (build_lenet, LeNetConfig(name="lenet", channels=(4, 8), hidden=[16])),
    "cnn": (build_cnn, CNNConfig(name="cnn", channels=[8, 16], hidden=16)),
    "resnet-small": (build_resnet_small, ResNetConfig(name="resnet-small", widths=[8, 16], blocks=[1, 1])),
    "stn": (build_stn, STNConfig(name="stn", channels=[8, 16], hidden=16, loc_channels=(4, 8), loc_hidden=8)),
}


def info(c=1, h=28, w=28, classes=10) -> DataInfo:
    return DataInfo(input_shape=(c, h, w), num_classes=classes)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 40, 40), (3, 32, 32)])
def test_output_shape(name, shape):
    builder, config = SMALL[name]
    model = builder(config, info(*shape, classes=7)).eval()
    assert model(torch.rand(5, *shape)).shape == (5, 7)


@pytest.mark.parametrize("name", ["cnn", "resnet-small"])
def test_small_images_work_for_cnn_and_resnet(name):
    builder, config = SMALL[name]
    assert builder(config, info(1, 8, 8)).eval()(torch.rand(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_train_step_lowers_the_loss(name):
    torch.manual_seed(0)
    builder, config = SMALL[name]
    model = builder(config, info())
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name, shape, match", [
    ("lenet", (1, 8, 8), "too small"),
    ("cnn", (1, 2, 2), "too small"),
    ("resnet-small", (1, 1, 1), "too small"),
    ("stn", (1, 4, 4), "too small"),
])
def test_too_small_images_are_a_clear_error(name, shape, match):
    builder, config = SMALL[name]
    with pytest.raises(ZooError, match=match):
        builder(config, info(*shape))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_flat_inputs_are_a_clear_error(name):
    builder, config = SMALL[name]
    with pytest.raises(ZooError, match=r"needs image inputs \[C, H, W\]"):
        builder(config, DataInfo(input_shape=(784,), num_classes=10))


def test_resnet_widths_and_blocks_must_match():
    with pytest.raises(ZooError, match="same length"):
        build_resnet_small(ResNetConfig(name="r", widths=[8, 16], blocks=[1]), info())


def test_lenet_activation_and_pooling_are_selectable():
    model = build_lenet(LeNetConfig(name="lenet", activation="sigmoid", pool="avg"), info())
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Sigmoid", "AvgPool2d"} <= kinds and "ReLU" not in kinds and "MaxPool2d" not in kinds
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_stn_starts_as_the_identity_transform():
    builder, config = SMALL["stn"]
    model = builder(config, info(1, 40, 40)).eval()
    x = torch.rand(3, 1, 40, 40)
    with torch.no_grad():
        out = model.transformer(x)
        theta = model.transformer.affine(x)
    assert torch.allclose(theta, torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(3, 2, 3))
    assert torch.allclose(out, x, atol=1e-5)


def test_stn_grid_is_affine_grids_for_any_theta():
    """The fixed base grid times θᵀ (one matmul, fast in onnxruntime) is F.affine_grid's grid."""
    from zoo.plugins.cnn.models import affine_base_grid

    torch.manual_seed(0)
    theta = torch.randn(5, 2, 3)
    for size in (1, 7, 28):
        grid = torch.matmul(affine_base_grid(size), theta.transpose(1, 2)).view(5, size, size, 2)
        expected = torch.nn.functional.affine_grid(theta, (5, 1, size, size), align_corners=False)
        torch.testing.assert_close(grid, expected, atol=1e-6, rtol=1e-5)


def test_stn_out_size_changes_what_the_cnn_sees():
    config = SMALL["stn"][1].model_copy(update={"out_size": 24})
    model = build_stn(config, info(1, 40, 40)).eval()
    assert model.transformer(torch.rand(2, 1, 40, 40)).shape == (2, 1, 24, 24)
    assert model(torch.rand(2, 1, 40, 40)).shape == (2, 10)


@pytest.mark.slow
def test_stn_exports_with_a_dynamic_batch_and_parity(tmp_path):
    """affine_grid + grid_sample inside the Standardize wrapper, parity at batch sizes 1 and 9."""
    builder, config = SMALL["stn"]
    data_info = info(1, 40, 40)
    model = Standardize(builder(config, data_info), torch.full((1, 1, 1), 0.2), torch.full((1, 1, 1), 0.3))
    # Train a few steps so θ is not the identity and the parity check means something.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.rand(8, 1, 40, 40), torch.randint(0, 10, (8,))
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    task = Classification()
    examples = [(torch.rand(n, 1, 40, 40),) for n in (3, 1, 9)]
    result = export_onnx(model, task, examples, task.dynamic_axes(data_info), tmp_path / "stn.onnx")
    assert result.parity < 1e-4
    assert [s[0][0] for s in result.checked_shapes] == [3, 1, 9]
