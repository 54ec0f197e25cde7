"""CNN family: LeNet, a modern small CNN, a small residual net and the spatial transformer.

Also the ``fashion-mnist-transformed`` dataset (the case the spatial transformer is for) and the
"what did it learn" pictures of ``zoo explain``: first-layer filters, saliency and occlusion maps,
and for the spatial transformer its input next to what it resampled.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.cnn.datasets import TransformedOptions, load_fashion_mnist_transformed
from zoo.plugins.cnn.models import (
    CNNConfig,
    LeNetConfig,
    ResNetConfig,
    STNConfig,
    build_cnn,
    build_lenet,
    build_resnet_small,
    build_stn,
)

#: name → (builder, config class): what ``register_models`` registers and ``explain_model`` draws.
MODELS = {
    "lenet": (build_lenet, LeNetConfig),
    "cnn": (build_cnn, CNNConfig),
    "resnet-small": (build_resnet_small, ResNetConfig),
    "stn": (build_stn, STNConfig),
}


@hookimpl
def register_models(register):
    for name, (build, config_class) in MODELS.items():
        register(name, build, config_class)


@hookimpl
def register_datasets(register):
    register("fashion-mnist-transformed", load_fashion_mnist_transformed, TransformedOptions)


@hookimpl
def explain_model(model, model_name, task, sample, info, out_dir):
    if model_name not in MODELS:
        return None
    from zoo.plugins.cnn.explain import explain

    return explain(model, model_name, sample, info, out_dir)
