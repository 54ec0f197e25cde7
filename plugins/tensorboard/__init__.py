"""TensorBoard logging, built only on zoo's public training-event hooks.

A declared logger (``[loggers.tensorboard]`` in ``registry.toml``), enabled per run with
``zoo train ... --log tensorboard`` (``train.log = ["tensorboard"]``): each hook returns at once
unless ``ctx.logs_to("tensorboard")``, and the writer lives in the run's ``ctx.state``. Writes
event files into ``RUN_DIR/tensorboard``: every epoch metric as a scalar (``train/loss``,
``val/accuracy``, ``lr``, ...) and, at the end, the hyper-parameters with the test metrics.
View with ``tensorboard --logdir runs``. Needs the ``tensorboard`` package (``zoo-ml[tensorboard]``).
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.core.contract.toml_io import flatten

NAME = "tensorboard"


@hookimpl
def on_train_start(ctx):
    missing = "--log tensorboard needs the tensorboard package: pip install 'zoo-ml[tensorboard]'"
    SummaryWriter = ctx.logger_import(NAME, "torch.utils.tensorboard", "SummaryWriter", missing)
    if SummaryWriter is None:
        return
    ctx.state[NAME] = SummaryWriter(log_dir=str(ctx.path / "tensorboard"))


@hookimpl
def on_epoch_end(ctx, epoch, metrics):
    writer = ctx.state.get(NAME)
    if writer is None:
        return
    for name, value in metrics.items():
        if name == "epoch" or not isinstance(value, (int, float)):
            continue
        tag = name.replace("train_", "train/").replace("val_", "val/")
        writer.add_scalar(tag, value, epoch)
    writer.flush()


@hookimpl
def on_train_end(ctx, summary):
    writer = ctx.state.pop(NAME, None)
    if writer is None:
        return
    metrics = {f"test/{k}": v for k, v in (summary.get("metrics") or {}).items() if isinstance(v, (int, float))}
    sections = flatten({k: ctx.config.get(k, {}) for k in ("model", "optim", "schedule", "train")})
    hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in sections.items()}
    if metrics:
        writer.add_hparams(hparams, metrics, run_name=".")
    writer.close()
