"""The zoo plugin contract: every hook a plugin may implement.

Hooks are grouped by phase. Registration hooks receive a ``register`` callback rather than
returning values, so the core can validate each registration (and reject duplicates naming both
sources) without plugins changing. Training events are fire-and-forget notifications for loggers
and trackers. ``export_model`` is ``firstresult``: the first plugin that returns a path wins.

A hook that raises fails its own plugin, never zoo: anything raised (``SystemExit`` and
``KeyboardInterrupt`` included) by a registration hook marks the plugin failed (``zoo plugins``);
by a training-event hook, it is reported once as a warning naming the plugin and that hook is
skipped for the rest of the run, which goes on; by ``export_model`` or ``explain_model``, the
command ends with exit 2 and ``plugin 'NAME' failed in HOOK: ...``. Raise
:class:`zoo.core.contract.errors.ZooError` for a problem the user can fix: its message is shown as is.

Implement a hook with :data:`zoo.hookimpl`::

    from zoo import hookimpl

    @hookimpl
    def register_models(register):
        register("my-model", build_my_model, MyModelConfig)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from pathlib import Path

    import click
    import torch
    from zoo.core.contract.context import RunContext
    from zoo.core.train.runs import Run
    from zoo.core.contract.task import Task

hookspec = pluggy.HookspecMarker("zoo")


# -- registration ---------------------------------------------------------------------------


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model builders.

    Call ``register(name, builder, config_class)`` once per model. ``builder`` is called as
    ``builder(config, info)`` with the validated ``config_class`` instance (a
    :class:`zoo.ModelConfig` subclass, ``extra="forbid"``) and the dataset's
    :class:`zoo.DataInfo`; it returns a ``torch.nn.Module`` whose ``forward`` takes the task's
    ONNX inputs in order. Every name must also be declared under ``[models.NAME]`` in the
    plugin's manifest (``registry.toml`` for built-ins).

    :param register: ``register(name: str, builder: Callable, config_class: type[ModelConfig])``

    Example::

        @hookimpl
        def register_models(register):
            register("linear", build_linear, LinearConfig)
            register("my-net", build_my_net, MyNetConfig)  # one call per model
    """


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register dataset loaders.

    Call ``register(name, loader, options_class=None)``. ``loader(options, data_dir)`` returns a
    :class:`zoo.Dataset` (train/val/test splits as CPU tensors plus a :class:`zoo.DataInfo`);
    ``options`` is the validated ``options_class`` instance (or ``None``) built from the
    ``[data.options]`` table; ``data_dir`` is the ``--data-dir`` / ``ZOO_DATA_DIR`` folder or
    ``None``. A loader whose files or packages are missing raises
    :class:`zoo.core.contract.errors.DataUnavailable` naming what to install or where to put the files.

    A dataset of the user's own files can also give ``decoder(meta, path_or_payload) -> {input
    name: np.ndarray}``: its loader puts what it learned (columns, categories, vocabulary) in
    ``info.extra["raw_inputs"]``, the run keeps that as ``inputs.json`` (with the dataset's name),
    and `zoo predict` (a file path) and `zoo serve` (the request's items) call the decoder with it,
    so deployed models take raw rows, images or text. ``payload="bytes"`` makes `zoo serve` hand
    the decoder each item as ``bytes`` (an encoded file, e.g. an image: base64 in JSON, raw with
    the binary extension) instead of a UTF-8 string; a request never names a file on the server.

    :param register: ``register(name: str, loader: Callable, options_class: type | None = None,
        decoder: Callable | None = None, payload: str = "text")``

    Example::

        @hookimpl
        def register_datasets(register):
            register("synthetic-linear", load_synthetic_linear, SyntheticLinearOptions)
    """


@hookspec
def register_tasks(register: Callable[..., None]) -> None:
    """Register tasks: the loss, the metrics and the ONNX signature of a kind of problem.

    Call ``register(task)`` with a :class:`zoo.Task` instance; its ``name`` is the key that
    manifests use in ``task = ...``.

    :param register: ``register(task: Task)``

    Example::

        @hookimpl
        def register_tasks(register):
            register(NodeClassification())
    """


# -- training events ------------------------------------------------------------------------
#
# Every event fires for every run in the process, whatever its model, on rank 0 only. Each gets
# ``ctx`` (a :class:`zoo.core.contract.context.RunContext`: run directory, resolved config, model, dataset,
# plugin, task, rank, world size, enabled loggers, a per-run ``state`` dict): a plugin that acts
# on its own models checks ``ctx.plugin`` or ``ctx.model_name``, a logger ``ctx.logs_to(NAME)``.
# pluggy passes only the arguments an implementation names, so older ones without ``ctx`` work.
# Whatever a hook prints goes to stderr: stdout belongs to the command (``zoo train --json``).


@hookspec
def on_train_start(run: Run, model: torch.nn.Module, config: dict[str, Any],
                   optimizer: torch.optim.Optimizer, ctx: RunContext) -> None:
    """Training is about to start (or resume).

    :param run: the run directory and its metadata (``run.path``, ``run.name``)
    :param model: the model being trained
    :param config: the resolved config as a plain dict (the content of ``config.toml``)
    :param optimizer: the optimizer that will step it (its param groups carry the scheduled
        lr; an implementation that does not need it leaves the argument out, as pluggy allows)
    :param ctx: the run context (which run this is, and a ``state`` dict for the plugin)

    Example::

        @hookimpl
        def on_train_start(ctx, model):
            if ctx.plugin == "shapes":
                print(f"training {ctx.model_name} on {ctx.dataset_name} into {ctx.path}")
    """


@hookspec
def on_epoch_end(run: Run, epoch: int, metrics: dict[str, float], ctx: RunContext) -> None:
    """An epoch finished and was evaluated.

    Like every training event, a listener that raises is reported once and skipped from then on;
    the run goes on (``sys.exit()`` here does not end training). To end the run on purpose (a
    sweep pruning a trial), raise :class:`zoo.core.contract.errors.RunStopped`: the epoch's checkpoint and
    metrics are written, the summary's status becomes ``RunStopped.status`` (``pruned``).

    :param run: the run
    :param epoch: the 1-based epoch number
    :param metrics: the epoch's line of ``metrics.jsonl`` (``train_loss``, ``lr``, ``steps``,
        ``epoch_seconds``, ``val_*``, ...; every key is in docs/plugins.md)
    :param ctx: the run context

    Example::

        @hookimpl
        def on_epoch_end(ctx, epoch, metrics):
            if ctx.logs_to("my-logger"):
                ctx.state["my-logger"].add_scalar("val/loss", metrics["val_loss"], epoch)
    """


@hookspec
def on_checkpoint_saved(run: Run, path: Path, epoch: int, best: bool, ctx: RunContext) -> None:
    """A checkpoint was written atomically.

    :param run: the run
    :param path: the checkpoint file (``checkpoint-last.pt`` or ``checkpoint-best.pt``)
    :param epoch: the epoch it holds (completed epochs)
    :param best: whether it is the best so far on the monitored validation metric
    :param ctx: the run context

    Example::

        @hookimpl
        def on_checkpoint_saved(run, path, epoch, best):
            if best:
                shutil.copy(path, backup_dir)
    """


@hookspec
def on_train_end(run: Run, summary: dict[str, Any], ctx: RunContext) -> None:
    """The run ended; ``summary`` is what ``summary.json`` holds (``status`` says how it ended).

    :param run: the run
    :param summary: ``model``, ``dataset``, ``status``, ``metrics`` (test), ``onnx``, ``parity``, ...
    :param ctx: the run context (``ctx.state`` still holds what the plugin kept in it)

    Example::

        @hookimpl
        def on_train_end(run, summary):
            print(summary["status"], summary["metrics"])
    """


# -- commands -------------------------------------------------------------------------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add a plugin's own subcommands to ``zoo`` (as simonw/llm's hook of the same name).

    ``cli`` is a :class:`click.Group`; add commands with ``@cli.command()`` or
    ``cli.add_command``. Each command's name must be declared in the plugin's manifest under
    ``[commands.NAME]`` (``plugin`` and a one-line ``summary``): ``zoo --help`` lists the declared
    commands from the manifest without importing any plugin, and only ``zoo NAME ...`` loads the
    plugins and calls this hook. A name of a core command (``train``, ``list``, ...) is refused.
    Raise :class:`zoo.core.contract.errors.ZooError` for the user's mistakes (one line, exit 2).

    :param cli: the group to add commands to

    Example::

        @hookimpl
        def register_commands(cli):
            @cli.command()
            @click.argument("run_dir")
            def hello(run_dir):
                # a docstring here is the command's --help
                click.echo(f"hello {run_dir}")
    """


# -- export ---------------------------------------------------------------------------------


@hookspec(firstresult=True)
def export_model(
    model: torch.nn.Module, task: Task, model_name: str, path: Path, opset: int
) -> Path | None:
    """Override the ONNX export for models whose deployable form differs from ``forward``.

    Return ``None`` to leave the model to the default exporter, or write the ONNX file to ``path``
    and return it. The core still runs ``onnx.checker`` and the parity check on whatever is
    returned, using ``task.export_inputs``.

    :param model: the trained model (eval mode, on the CPU)
    :param task: the task the model was trained for
    :param model_name: the catalogue name (dispatch on it)
    :param path: where to write the file
    :param opset: the requested ONNX opset

    Example::

        @hookimpl
        def export_model(model, task, model_name, path, opset):
            if model_name != "my-embedding":
                return None
            torch.onnx.export(model.lookup, ..., path, dynamo=True)
            return path
    """


# -- inspection -----------------------------------------------------------------------------


@hookspec(firstresult=True)
def explain_model(
    model: torch.nn.Module, model_name: str, task: Task, sample: dict[str, torch.Tensor],
    info: Any, out_dir: Path,
) -> dict[str, Any] | None:
    """Write pictures that show what a trained model learned, for one sample (``zoo explain``).

    Return ``None`` for models the plugin does not explain (the next plugin is asked), or write
    files into ``out_dir`` and return a report: a JSON-able dict with at least ``files``
    (name → path). The CLI prints the report; user errors raise :class:`zoo.core.contract.errors.ZooError`.

    :param model: the trained model with its best weights (eval mode, on the CPU, wrapped in
        ``Standardize`` when the dataset has input statistics: feed it raw inputs and use
        ``zoo.core.train.data.unwrap`` to reach the family's module)
    :param model_name: the catalogue name (dispatch on it)
    :param task: the task the model was trained for
    :param sample: one test sample as a batch of size 1 (e.g. ``{"x": [1, C, H, W], "y": [1]}``)
    :param info: the dataset's :class:`zoo.DataInfo` (class names, input shape)
    :param out_dir: the folder to write into (created by the core)

    Example::

        @hookimpl
        def explain_model(model, model_name, task, sample, info, out_dir):
            if model_name not in MY_MODELS:
                return None
            path = write_saliency_png(model, sample["x"], out_dir / "saliency.png")
            return {"files": {"saliency": str(path)}}
    """


#: Every hook's name, in the order of this module: derived from the ``@hookspec`` marks, never kept by hand.
HOOK_NAMES = tuple(name for name, value in list(globals().items()) if hasattr(value, "zoo_spec"))
