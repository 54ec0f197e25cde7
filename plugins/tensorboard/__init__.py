"""TensorBoard logging, built only on zoo's public training-event hooks.

Enabled per run with ``zoo train ... --log tensorboard`` (``train.log = ["tensorboard"]``). Writes
event files into ``RUN_DIR/tensorboard``: every epoch metric as a scalar (``train/loss``,
``val/accuracy``, ``lr``, ...) and, at the end, the hyper-parameters with the test metrics.
View with ``tensorboard --logdir runs``. Needs the ``tensorboard`` package (``zoo-ml[tensorboard]``).
"""

from __future__ import annotations

import warnings
from typing import Any

from zoo import hookimpl
from zoo.core.toml_io import flatten

NAME = "tensorboard"
_writers: dict[str, Any] = {}
_configs: dict[str, dict] = {}


def _enabled(config: dict) -> bool:
    return NAME in config.get("train", {}).get("log", [])


@hookimpl
def on_train_start(run, model, config):
    if not _enabled(config):
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("--log tensorboard needs the tensorboard package: pip install 'zoo-ml[tensorboard]'",
                      stacklevel=2)
        return
    key = str(run.path)
    _writers[key] = SummaryWriter(log_dir=str(run.path / "tensorboard"))
    _configs[key] = config


@hookimpl
def on_epoch_end(run, epoch, metrics):
    writer = _writers.get(str(run.path))
    if writer is None:
        return
    for name, value in metrics.items():
        if name == "epoch" or not isinstance(value, (int, float)):
            continue
        tag = name.replace("train_", "train/").replace("val_", "val/")
        writer.add_scalar(tag, value, epoch)
    writer.flush()


@hookimpl
def on_train_end(run, summary):
    key = str(run.path)
    writer = _writers.pop(key, None)
    config = _configs.pop(key, {})
    if writer is None:
        return
    metrics = {f"test/{k}": v for k, v in (summary.get("metrics") or {}).items() if isinstance(v, (int, float))}
    sections = flatten({k: config.get(k, {}) for k in ("model", "optim", "schedule", "train")})
    hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in sections.items()}
    if metrics:
        writer.add_hparams(hparams, metrics, run_name=".")
    writer.close()
