"""Which way a metric is better, and which task a model's run has: what a sweep optimises and
what ``zoo reproduce`` compares with.

Both read the direction through :func:`higher_is_better` alone, which asks the task
(:meth:`Task.prefers_higher <zoo.core.contract.task.Task.prefers_higher>`, as the trainer does).
"""

from __future__ import annotations

from typing import Any


def higher_is_better(task: Any, metric: str) -> bool:
    """Whether larger values of ``metric`` (a metric name of ``task``, with or without a ``val_``
    or ``test_`` prefix) are better; the same rule the trainer uses for its best checkpoint."""
    return task.prefers_higher(metric.removeprefix("val_").removeprefix("test_"))


def task_of(model: str, dataset: str) -> Any:
    """The :class:`~zoo.core.train.tasks.Task` a run of ``model`` on ``dataset`` has: the dataset's
    declared task, else the model's first (a user's table may choose its task when it loads)."""
    from zoo.core.contract.catalogue import load_catalogue
    from zoo.core.contract.plugins import get_zoo

    catalogue = load_catalogue()
    declared = catalogue.datasets.get(dataset)
    name = declared.task if declared is not None else catalogue.models[model].tasks[0]
    return get_zoo().registry.task(name)


def monitored(task: Any, config: dict[str, Any]) -> str:
    """The per-epoch validation key a run's best checkpoint follows: ``val_`` + ``train.monitor``
    (or the task's main metric), as in ``metrics.jsonl``."""
    return "val_" + (config.get("train", {}).get("monitor") or task.main_metric)
