"""zoo: a declarative model zoo.

Families of models ship as pluggy plugins; ``registry.toml`` declares what exists so the catalogue
is readable without importing torch. The public API for plugin authors is re-exported here; the
heavy pieces (trainer, export, tasks) are imported lazily so that ``import zoo`` stays cheap.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Decorator that marks a function as an implementation of a zoo hook (see ``zoo.core.contract.hookspecs``).
hookimpl = pluggy.HookimplMarker("zoo")

_LAZY = {
    "Task": "zoo.core.contract.task",
    "DataInfo": "zoo.core.train.data",
    "Dataset": "zoo.core.train.data",
    "TensorSplit": "zoo.core.train.data",
    "ModelConfig": "zoo.core.contract.config",
    "ModelSpec": "zoo.core.contract.plugins",
    "DatasetSpec": "zoo.core.contract.plugins",
    "ZooError": "zoo.core.contract.errors",
    "RunContext": "zoo.core.contract.context",
    "pull": "zoo.core.hub.model",  # zoo.pull("NAME[:TAG]"): onnxruntime session and torch module
    "push": "zoo.core.hub.push",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str):
    # Lazy re-exports: `from zoo import Task` works without making `import zoo` import torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
