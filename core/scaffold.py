"""``zoo new-plugin NAME``: write a pip-installable plugin package that works out of the box.

The generated package follows the project's own style: a manifest (``zoo.toml``) that makes its
model show in ``zoo list`` without importing it, a pydantic config with descriptions and bounds,
a builder with a docstring and shapes, a dataset hook example, and tests that pass as generated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zoo.core.contract.errors import ZooError

# Lower-case words joined by single '-' or '_': `shapes`, `my-family`, `my_family2`.
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginNames:
    """Every name ``zoo new-plugin NAME`` derives from NAME.

    ``zoo new-plugin my-family`` gives the plugin (entry-point) name ``my-family``, the
    distribution ``zoo-my-family`` (what ``pip install`` and PyPI call it), the import package
    ``zoo_my_family``, the model ``my-family-mlp`` and the dataset ``my-family-blobs``.
    """

    plugin: str
    distribution: str
    module: str
    model: str
    dataset: str

    @classmethod
    def derive(cls, name: str) -> PluginNames:
        if not _NAME.match(name):
            raise ZooError(f"plugin name {name!r} must be lower-case letters and digits, words joined by '-' "
                           f"or '_', starting with a letter (e.g. my-family: distribution zoo-my-family, "
                           f"module zoo_my_family)")
        dashed = name.replace("_", "-")
        return cls(plugin=name, distribution=f"zoo-{dashed}", module=f"zoo_{name.replace('-', '_')}",
                   model=f"{dashed}-mlp", dataset=f"{dashed}-blobs")


def _files(names: PluginNames, zoo_version: str) -> dict[str, str]:
    name, module, model, dataset = names.plugin, names.module, names.model, names.dataset
    return {
        "pyproject.toml": f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{names.distribution}"
version = "0.1.0"
description = "A zoo plugin: {name} models"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["zoo-ml>={zoo_version}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The entry point is how zoo finds the plugin; zoo.toml next to the module declares its models.
[project.entry-points.zoo]
"{name}" = "{module}"

[tool.setuptools]
packages = ["{module}"]

[tool.setuptools.package-data]
{module} = ["zoo.toml"]
''',
        f"{module}/zoo.toml": f'''# Declarations read by `zoo list` / `zoo info` without importing this package.
# Same schema as zoo's own registry.toml.

[datasets.{dataset}]
plugin = "{name}"
task = "classification"
summary = "Gaussian blobs in the plane, one per class (generated)"

[models.{model}]
plugin = "{name}"
task = "classification"
dataset = "{dataset}"
summary = "A small multi-layer perceptron (the {name} plugin's example model)"
paper = "https://en.wikipedia.org/wiki/Multilayer_perceptron"
tags = ["example", "onnx"]
reference = {{ metric = "test_accuracy", value = 0.9, source = "separable blobs" }}

[models.{model}.defaults]
model = {{ hidden = 32 }}
optim = {{ name = "adam", lr = 0.01 }}
train = {{ epochs = 20, batch_size = 32 }}

[models.{model}.smoke]
train = {{ epochs = 1 }}
''',
        f"{module}/__init__.py": f'''"""The {name} plugin for zoo: registers its models and datasets through zoo's hooks."""

from __future__ import annotations

from zoo import hookimpl
from {module}.datasets import BlobsOptions, load_blobs
from {module}.models import MLPConfig, build_mlp


@hookimpl
def register_models(register):
    register("{model}", build_mlp, MLPConfig)


@hookimpl
def register_datasets(register):
    register("{dataset}", load_blobs, BlobsOptions)
''',
        f"{module}/models.py": f'''"""The {name} plugin's model: a one-hidden-layer perceptron."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from zoo import DataInfo, ModelConfig


class MLPConfig(ModelConfig):
    hidden: int = Field(32, ge=1, le=65536, description="Width of the hidden layer.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after the hidden layer.")


class MLP(nn.Module):
    """logits = W₂ · relu(W₁ x + b₁) + b₂.

    Shapes: ``x [B, F] → logits [B, C]``.
    """

    def __init__(self, in_features: int, hidden: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(1), nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_mlp(config: MLPConfig, info: DataInfo) -> nn.Module:
    return MLP(info.input_size, config.hidden, info.num_classes, config.dropout)
''',
        f"{module}/datasets.py": '''"""A generated dataset: one Gaussian blob per class, split 80/20."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from zoo import DataInfo, Dataset, TensorSplit


class BlobsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(500, ge=10, le=1_000_000, description="Number of samples.")
    classes: int = Field(3, ge=2, le=100, description="Number of blobs (classes).")
    spread: float = Field(0.5, gt=0.0, description="Standard deviation of each blob.")
    seed: int = Field(0, ge=0, description="Generator seed.")


def load_blobs(options: BlobsOptions | None, data_dir) -> Dataset:
    o = options or BlobsOptions()
    generator = torch.Generator().manual_seed(o.seed)
    centres = torch.randn(o.classes, 2, generator=generator) * 3
    y = torch.randint(0, o.classes, (o.n,), generator=generator)
    x = centres[y] + o.spread * torch.randn(o.n, 2, generator=generator)
    cut = int(0.8 * o.n)
    info = DataInfo(input_shape=(2,), num_classes=o.classes,
                    class_names=[f"blob-{k}" for k in range(o.classes)])
    return Dataset(train=TensorSplit(x=x[:cut], y=y[:cut]), test=TensorSplit(x=x[cut:], y=y[cut:]), info=info)
''',
        "tests/test_plugin.py": f'''"""The plugin is discovered, declared == registered, and its model trains and exports.

``zoo.testing`` is zoo's test API for plugins (see zoo's docs/plugins.md, "Testing a plugin").
"""

from __future__ import annotations

from zoo import testing


def test_plugin_is_loaded_and_declarations_match():
    testing.check_plugin("{name}")  # what `zoo doctor` checks, for this plugin


def test_model_trains_and_exports(tmp_path):
    summary = testing.train("{model}", epochs=5, out=tmp_path / "run")
    assert summary["status"] == "finished"
    assert summary["metrics"]["accuracy"] > 0.5
    assert summary["parity"] <= 1e-4


def test_a_fresh_model_exports_with_parity():
    assert testing.check_parity("{model}")["parity"] <= 1e-4
''',
        "README.md": f'''# {names.distribution}

A [zoo](https://pypi.org/project/zoo-ml/) plugin. Install it next to zoo and its models appear in
`zoo list` and train with `zoo train`:

```bash
pip install -e .
zoo list --plugin {name}
zoo train {model} --out runs/{model}
echo '[[0.5, -1.0], [2.0, 3.0]]' > sample.json   # two points of the plane: x [B, 2]
zoo predict runs/{model} --input sample.json
```

- `{module}/zoo.toml` declares the models and datasets (read without importing the package).
- `{module}/__init__.py` registers them through zoo's hooks (`register_models`, `register_datasets`).
- `tests/` checks discovery, declarations and a short training run: `pytest tests`.
''',
    }


def new_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the package of plugin ``name`` (see :class:`PluginNames`) into ``directory``.

    Returns:
        The package's folder, ``directory/zoo-NAME`` (dashes for underscores).
    """
    from zoo import __version__

    names = PluginNames.derive(name)
    root = Path(directory) / names.distribution
    if root.exists() and any(root.iterdir()):
        raise ZooError(f"{root} already exists and is not empty")
    for relative, text in _files(names, __version__).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
