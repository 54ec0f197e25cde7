"""The run context handed to every training event, so a plugin can tell runs apart.

Training events fire for every run in the process, whatever its model. A plugin that logs,
tracks or post-processes only its own models looks at the context and returns early otherwise;
a logger checks whether the user enabled it (``--log NAME``). The context also carries a
``state`` dict for the objects a plugin keeps between the events of one run (a writer, a
tracking client), so plugins need no module-level dicts keyed by run directory.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunContext:
    """What a training event knows about its run (the ``ctx`` argument of every event hook).

    Example::

        @hookimpl
        def on_epoch_end(ctx, epoch, metrics):
            if ctx.plugin != "shapes":          # a built-in model's run: not ours
                return
            (ctx.path / "my-log.csv").open("a").write(f"{epoch},{metrics['train_loss']}\\n")

    :param run: the run directory object (:class:`zoo.core.train.runs.Run`)
    :param config: the resolved config as a plain dict (the content of ``config.toml``)
    :param model_name: the catalogue name of the model being trained
    :param dataset_name: the dataset it trains on (``data.name``)
    :param plugin: the plugin that registered the model
    :param task: the task's name
    :param rank: this process's rank (events fire on rank 0 only)
    :param world_size: how many processes train the model together (1 without ``torchrun``)
    :param resumed: whether this run continues from a checkpoint (``--resume``)
    :param state: per-run scratch space for plugins; key it by your plugin's name
    """

    run: Any
    config: dict[str, Any]
    model_name: str
    dataset_name: str
    plugin: str
    task: str
    rank: int = 0
    world_size: int = 1
    resumed: bool = False
    state: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def path(self) -> Path:
        """The run directory."""
        return Path(self.run.path)

    @property
    def loggers(self) -> list[str]:
        """The loggers enabled for this run (``train.log``, ``--log NAME``)."""
        return list(self.config.get("train", {}).get("log", []))

    def logs_to(self, name: str) -> bool:
        """Whether the logger ``name`` (declared as ``[loggers.NAME]``) is enabled for this run."""
        return name in self.loggers

    def logger_import(self, name: str, module: str, attr: str, missing: str) -> Any:
        """For a logger's ``on_train_start``: ``module.attr`` (its writer or client class) when
        the logger ``name`` is enabled for this run, else None. Also None, with the warning
        ``missing``, when the package is not installed: the run goes on without that logger."""
        if not self.logs_to(name):
            return None
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError:
            warnings.warn(missing, stacklevel=3)
            return None
