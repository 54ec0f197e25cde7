"""The flow behind the CLI: catalogue entry → config → plugin → data → model → trainer → export.

Each function takes plain arguments and returns plain data, so the CLI stays a thin layer of
parsing and rendering and the same flow is usable from Python::

    from zoo.core import api
    summary = api.train("linear", out="runs/linear")
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import platform
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

from zoo.core.contract.catalogue import ModelEntry, load_catalogue
from zoo.core.contract.toml_io import flatten
from zoo.core.contract.errors import (
    ExportError,
    NonFiniteLoss,
    RunStopped,
    TrainingInterrupted,
    ZooError,
    first_non_utf8_line,
)
from zoo.core.hub.model import init_weights


def _loaded_zoo(entry: ModelEntry | None = None):
    from zoo.core.contract.plugins import get_zoo

    zoo = get_zoo()
    if entry is not None:
        status = zoo.status.get(entry.plugin)
        if status is None or status.status != "loaded":
            reason = status.error if status else "not installed"
            raise ZooError(f"model {entry.name!r} needs plugin {entry.plugin!r}, which is "
                           f"{status.status if status else 'missing'}: {reason}")
    return zoo


def resolve_config(model: str, config_file: str | None = None, sets: tuple[str, ...] = (),
                   options: dict | None = None):
    """(catalogue entry, model spec, validated RunConfig) for ``zoo train MODEL``/``zoo config``."""
    from zoo.core.contract import config as cfg

    entry = load_catalogue().resolve_trainable(model)
    zoo = _loaded_zoo(entry)
    spec = zoo.registry.model(entry.name)
    option_classes = {name: d.options_class for name, d in zoo.registry.datasets.items()}
    run_config = cfg.resolve(entry.name, spec.config_class, entry.defaults, entry.dataset,
                             config_file=config_file, sets=sets, options=options,
                             recipes=entry.recipes, option_classes=option_classes)
    return entry, spec, run_config


def check_loggers(names, zoo=None) -> None:
    """Each ``train.log`` name (``--log NAME``) must be a declared logger (``[loggers.NAME]``)
    whose plugin is loaded: a typo is exit 2 with the valid names, never silently ignored."""
    catalogue = load_catalogue()
    for name in names:
        entry = catalogue.logger(name)
        status = zoo.status.get(entry.plugin) if zoo is not None else None
        if zoo is not None and (status is None or status.status != "loaded"):
            reason = f"{status.status}: {status.error}" if status else "not installed"
            raise ZooError(f"logger {name!r} needs plugin {entry.plugin!r}, which is {reason}")


def show_config(model: str, config_file: str | None = None, sets: tuple[str, ...] = (),
                options: dict | None = None) -> dict[str, Any]:
    """``zoo config MODEL``: the resolved config, its ``[data.options]`` validated by the dataset
    and filled with the dataset's defaults. ``options``: overrides as ``zoo train``'s flags give
    them (``{"data": {"name": ...}}`` for ``--dataset``)."""
    from zoo.core.contract.config import with_dataset_options

    _, _, run_config = resolve_config(model, config_file=config_file, sets=sets, options=options)
    dataset = _config_dataset(run_config.data.name)
    config = run_config.model_dump(mode="json")
    return config if dataset is None else with_dataset_options(config, dataset.options_class)


def _config_dataset(name: str):
    """The registered dataset ``name``, or None when its plugin is not loaded; a name that no
    manifest declares is a did-you-mean error, as ``zoo train`` gives."""
    load_catalogue().dataset(name)
    return _loaded_zoo().registry.datasets.get(name)


def config_schema(model: str, config_file: str | None = None, sets: tuple[str, ...] = (),
                  options: dict | None = None) -> dict[str, Any]:
    """The JSON schema of MODEL's config, with the options of its dataset (the default one, or
    ``data.name`` as set)."""
    from zoo.core.contract.config import run_config_schema

    _, spec, run_config = resolve_config(model, config_file=config_file, sets=sets, options=options)
    dataset = _config_dataset(run_config.data.name)
    return run_config_schema(spec.config_class, dataset.options_class if dataset else None,
                             run_config.data.name)


def load_data(run_config, entry: ModelEntry):
    """The dataset of a run, prepared (limit, validation split) and checked against the task."""
    from zoo.core.contract.config import validate

    zoo = _loaded_zoo()
    catalogue = load_catalogue()
    name = run_config.data.name
    if name not in zoo.registry.datasets:
        declared = catalogue.datasets.get(name)
        if declared is not None:
            status = zoo.status.get(declared.plugin)
            raise ZooError(f"dataset {name!r} comes from plugin {declared.plugin!r}, which is "
                           f"{status.status if status else 'missing'}: {status.error if status else ''}")
    dataset_spec = zoo.registry.dataset(name)
    declared = catalogue.datasets.get(name)
    task_name = declared.task if declared is not None else entry.tasks[0]
    # A dataset whose options class lists several `tasks` (a user's table) lets its data choose
    # one (DataInfo.extra["task"]); the check then waits until the data has loaded.
    serves = getattr(dataset_spec.options_class, "tasks", None) or (task_name,)
    if not set(serves) & set(entry.tasks):
        raise ZooError(f"model {entry.name!r} is for task(s) {', '.join(entry.tasks)}; dataset {name!r} "
                       f"is a {task_name} dataset")
    options = None
    if dataset_spec.options_class is not None:
        options = validate(dataset_spec.options_class, run_config.data.options,
                           what=f"data.options for {name!r}")
    elif run_config.data.options:
        raise ZooError(f"dataset {name!r} takes no options, got data.options = {run_config.data.options}")
    dataset = _load_fetching(dataset_spec, options, run_config.data.data_dir)
    task_name = dataset.info.extra.get("task", task_name)
    if task_name not in entry.tasks:
        raise ZooError(f"model {entry.name!r} is for task(s) {', '.join(entry.tasks)}; the data of "
                       f"dataset {name!r} is for {task_name} ({_task_hint(options, entry.tasks)})")
    task = zoo.registry.task(task_name)
    dataset = dataset.prepare(run_config.data.val_fraction, run_config.data.limit, run_config.train.seed)
    task.check_info(dataset.info)
    return dataset, task


def _task_hint(options, tasks) -> str:
    """How the data could serve one of ``tasks``: its ``task`` option where that offers one (a
    table of 0/1 labels reads as regression until told otherwise), else where its options are."""
    import typing

    field = type(options).model_fields.get("task") if options is not None else None
    fit = [t for t in tasks if field is not None and t in typing.get_args(field.annotation)]
    if fit:
        return f"--set data.options.task={fit[0]} makes it {fit[0]} data"
    return "see its options: `zoo config` / docs/data.md"


def _load_fetching(dataset_spec, options, data_dir):
    """The loader's dataset; a public dataset missing from every data root (``DataNotFound``) is
    fetched into the cache (progress on stderr) and loaded again, unless offline (``--offline``,
    ``ZOO_OFFLINE=1``) or not declared with files. Each dataset is fetched at most once."""
    from zoo.core.train import fetch
    from zoo.core.contract.errors import DataNotFound

    fetched: set[str] = set()
    while True:
        try:
            return _call_plugin(dataset_spec.plugin, f"loading dataset {dataset_spec.name!r}",
                                dataset_spec.loader, options, data_dir)
        except DataNotFound as err:
            if err.dataset in fetched or not fetch.fetchable(err.dataset) or fetch.is_offline():
                raise
            fetch.fetch(err.dataset)
            fetched.add(err.dataset)


def _call_plugin(plugin: str, what: str, fn, *args):
    """Call plugin code; its bugs become one clear error naming the plugin (user errors pass)."""
    try:
        return fn(*args)
    except ZooError:
        raise
    except Exception as err:
        raise ZooError(f"plugin {plugin!r} failed {what}: {type(err).__name__}: {err} "
                       f"(run with --debug for the traceback)") from err


def build_model(spec, run_config, info):
    import torch
    from zoo.core.train.data import Standardize

    model = _call_plugin(spec.plugin, f"building model {spec.name!r}", spec.builder, run_config.model, info)
    if not isinstance(model, torch.nn.Module):
        raise ZooError(f"plugin {spec.plugin!r}: the builder of {spec.name!r} returned "
                       f"{type(model).__name__}, not a torch.nn.Module")
    if Standardize.needed(info):
        model = Standardize.around(model, info)
    return model


def _seed(seed: int, deterministic: bool) -> None:
    """Seed every generator; ``train.deterministic`` also makes CUDA deterministic for real:
    cuBLAS needs a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS starts) and an
    op without a deterministic CUDA kernel raises (``warn_only`` would only warn and run it)."""
    import os

    import torch

    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=not torch.cuda.is_available())
        torch.backends.cudnn.benchmark = False


def train(model: str | None = None, *, config_file: str | None = None, sets: tuple[str, ...] = (),
          options: dict | None = None, out: str | None = None, resume: str | None = None,
          log: Callable[[str], None] | None = print, force: bool = False) -> dict[str, Any]:
    """Train a model (or resume a run) and export it; returns the run summary.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this; they train one model
    data-parallel (:mod:`zoo.core.train.distributed`) and rank 0 alone writes the run directory, logs,
    tests and exports. The other ranks return a summary without test metrics.
    """
    from zoo.core.train import distributed

    dist = distributed.context_from_env()
    if not dist.enabled:
        return _train(model, config_file=config_file, sets=sets, options=options, out=out,
                      resume=resume, log=log, dist=dist, force=force)
    try:
        summary = _train(model, config_file=config_file, sets=sets, options=options, out=out,
                         resume=resume, log=log if dist.is_main else None, dist=dist, force=force)
        # Every rank leaves together: a rank that tore gloo down and exited while rank 0 was
        # still testing and exporting aborted at exit now and then ("terminate called without
        # an active exception"), which torchrun reports as a failed job.
        dist.barrier()
        return summary
    except ZooError as err:
        if dist.rank > 0 and not isinstance(err, TrainingInterrupted):
            err.args = (f"[rank {dist.rank}] {err}",)
        raise
    except Exception as err:
        if distributed.lost_peer(err):  # the cause is another rank's error, printed by that rank
            first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise ZooError(f"[rank {dist.rank}] lost contact with the other ranks ({first}); another rank "
                           f"failed or was stopped: see its message") from err
        raise
    finally:
        distributed.shutdown()


# Keys a resume cannot change: they shape the model, its data or the replay of the interrupted
# epoch, so the checkpoint would not fit them (data_dir only says where the same files are).
FROZEN_ON_RESUME = ("model.", "data.", "optim.name", "train.batch_size", "train.seed")


def _check_resume_changes(saved: dict, resolved: dict, run_dir) -> None:
    """Refuse ``--set``/options on ``--resume`` that the checkpoint cannot follow (exit 2)."""
    before, after = flatten(saved, keep_empty=True), flatten(resolved, keep_empty=True)
    frozen = sorted(k for k, v in after.items() if k in before and before[k] != v
                    and k.startswith(FROZEN_ON_RESUME) and not k.endswith("data_dir"))
    if frozen:
        raise ZooError(
            f"--resume {run_dir} cannot change {', '.join(frozen)} (the checkpoint was trained with "
            f"the saved values); a resume can change train.epochs, optim.* values other than its "
            f"name (lr, weight_decay, ...), schedule.*, train.* other than seed and batch_size, and "
            f"export.*. Start a new run (--out) to change the rest")


def _open_resume(run, model, config_file, sets, options, dist, log):
    """Everything a resume needs, checked before anything is written:
    ``(entry, spec, run_config, checkpoint, previous_summary)``."""
    from zoo.core.train import checkpoint as checkpoint_file
    from zoo.core.contract.config import deep_merge, parse_set
    from zoo.core.train.runs import Run
    from zoo.core.contract.toml_io import read_toml

    saved = run.read_config()
    model_name = saved.get("model", {}).get("name") if isinstance(saved.get("model"), dict) else None
    if not isinstance(model_name, str):
        raise ZooError(f"{run.file(Run.CONFIG)} names no model ([model] name = ...): not a zoo run")
    if model is not None and load_catalogue().resolve_trainable(model).name != model_name:
        raise ZooError(f"{run.path} is a run of {model_name!r}, not {model!r}")
    # The saved config, then what this command says: --config < --set < options (as for a new run).
    changes = read_toml(config_file) if config_file else {}
    for item in sets:
        changes = deep_merge(changes, parse_set(item))
    changes = deep_merge(changes, options or {})
    entry, spec, run_config = resolve_config(model_name, options=deep_merge(saved, changes))
    resolved = run_config.model_dump(mode="json")
    _check_resume_changes(saved, resolved, run.path)
    try:
        previous = run.read_summary()
    except ZooError:
        previous = {}  # damaged: the resume writes a new one
    if not run.file(Run.LAST).exists():
        if previous:
            raise ZooError(f"{run.path} has no {Run.LAST} to resume from")
        # Stopped between writing its config and its first checkpoint: start it from the beginning.
        log(f"{run.path} has no checkpoint yet: training {model_name} from the start")
        if dist.is_main and resolved != saved:
            run.write_config(resolved)
        return entry, spec, run_config, None, previous
    checkpoint = checkpoint_file.load(run.file(Run.LAST))
    done, step = checkpoint["state"]["epoch"], checkpoint["state"]["step"]
    if previous.get("status") == "finished" and done >= run_config.train.epochs and step == 0:
        raise ZooError(f"{run.path} already completed {done} epochs; pass --epochs N (> {done}) to train longer")
    if dist.is_main:
        if resolved != saved:
            run.write_config(resolved)
        run.truncate_metrics(done)
    log(f"resuming {model_name} from epoch {done}, step {step} in {run.path}")
    return entry, spec, run_config, checkpoint, previous


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does) so that a run stopped outside the
    training loop (test, export) still writes its summary; the loop installs its own handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(model, *, config_file, sets, options, out, resume, log, dist, force=False) -> dict[str, Any]:
    from zoo.core.train.runs import Run

    log = log or (lambda line: None)
    with contextlib.ExitStack() as stack:
        checkpoint, previous = None, {}
        if resume is not None:
            run = Run.open(resume)
            if dist.is_main:  # one writer per run directory
                stack.enter_context(run.lock())
            entry, spec, run_config, checkpoint, previous = _open_resume(
                run, model, config_file, sets, options, dist, log)
        else:
            if model is None:
                raise ZooError("name a model or plugin to train (see `zoo list`), or --resume RUN_DIR")
            entry, spec, run_config = resolve_config(model, sets=sets, options=options,
                                                     config_file=config_file)
            run = None
        check_loggers(run_config.train.log, _loaded_zoo())
        return _run_training(entry, spec, run_config, run, checkpoint, previous, out, force, log, dist, stack)


@dataclasses.dataclass
class _Session:
    """One training run being carried out: what its steps (open, fit, write) share."""

    entry: ModelEntry
    run_config: Any
    dist: Any
    zoo: Any
    device: Any
    dataset: Any
    task: Any
    net: Any
    log: Callable[[str], None]
    started: float
    run: Any = None
    data_on_device: Any = None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    ctx: Any = None
    emit: Callable[..., Any] = lambda *a, **k: None


def _run_training(entry, spec, run_config, run, checkpoint, previous, out, force, log, dist, stack):
    """Data, model and run directory set up, then fit, test, export; the summary written whatever happens."""
    from zoo.core.train.trainer import Trainer

    session = _prepare(entry, spec, run_config, checkpoint, run, dist, log)
    _open_run(session, run, checkpoint is not None, out, force, stack)
    trainer = Trainer(session.net, session.task, session.data_on_device, run_config, session.run,
                      session.device, emit=session.emit, log=log, dist=dist)
    try:
        with _sigterm_as_interrupt():
            result = trainer.fit(checkpoint)
            del trainer  # it holds the training data, released before the export (_finish)
            if dist.enabled:
                session.summary["rank_weights_sha256"] = result["rank_weights_sha256"]
            if not dist.is_main:  # rank 0 tests, exports and writes the summary
                return {**session.summary, "status": "finished", "rank": dist.rank, "epochs": result["epochs"]}
            session.summary["train_seconds"] = round(time.time() - session.started, 3)
            _finish(session, result)
    except BaseException as err:
        if not dist.is_main:  # rank 0 owns the run directory
            raise
        _record_failure(session, previous, err)
    return _write_summary(session)


def _prepare(entry, spec, run_config, checkpoint, run, dist, log) -> _Session:
    """Device, seeds, data and model, checked before anything is written."""
    from zoo.core.train import distributed
    from zoo.core.train.precision import Precision
    from zoo.core.train.runs import Run
    from zoo.core.train.trainer import resolve_device

    started = time.time()
    tc = run_config.train
    device = distributed.init(dist, tc.device) if dist.enabled else resolve_device(tc.device)
    Precision(tc.precision, device)                     # (fp16 needs CUDA, bf16 support)
    _seed(tc.seed, tc.deterministic)
    dataset, task = load_data(run_config, entry)
    net = build_model(spec, run_config, dataset.info)
    if checkpoint is not None:
        _check_fits(net, checkpoint, run.file(Run.LAST))
    elif tc.init is not None:  # fine-tuning; hub:NAME is saved in config.toml resolved to its tag
        tc.init = init_weights(net, tc.init, log)
    # Shuffling/dropout streams independent of the model's size; one dropout stream per rank
    # (rank 0's is the single-process one). The shuffling generator is seeded in the trainer,
    # the same on every rank.
    _seed(tc.seed + 1_000_003 * dist.rank, tc.deterministic)
    # What data parallelism cannot do is refused before anything is written.
    distributed.check_trainable(dist, net, len(dataset.train))
    distributed.check_batch_size(dist, tc.batch_size)
    return _Session(entry, run_config, dist, _loaded_zoo(entry), device, dataset, task, net, log, started)


def _open_run(session: _Session, run, resumed: bool, out, force, stack) -> None:
    """The run directory (created by rank 0 for a new run), the model and data on the device,
    the summary begun and the run context that every event gets."""
    from zoo.core.contract.context import RunContext
    from zoo.core.train.runs import Run

    entry, run_config, dist, dataset = session.entry, session.run_config, session.dist, session.dataset
    if run is None:
        path = None
        if dist.is_main:
            run = Run.create(out, entry.name, force=force)
            stack.enter_context(run.lock())
            run.write_config(run_config.model_dump(mode="json"))
            if "raw_inputs" in dataset.info.extra:  # how raw input becomes model input (zoo predict)
                run.write_inputs({"dataset": run_config.data.name, **dataset.info.extra["raw_inputs"]})
            path = str(run.path)
        run = Run(dist.broadcast_object(path))  # only rank 0 writes into it
    session.run = run
    session.net = session.net.to(session.device)
    session.data_on_device = dataset.to(session.device)
    session.summary = _start_summary(entry, session.task, run_config, session.device, session.net, dist)
    session.log(f"{entry.name} ({entry.plugin}) on {run_config.data.name}: {len(dataset.train)} train / "
                f"{len(dataset.val) if dataset.val is not None else 0} val / {len(dataset.test)} test, "
                f"{session.summary['parameters']:,} parameters, device {session.device}, run {run.path}")
    session.ctx = RunContext(run, run_config.model_dump(mode="json"), entry.name, run_config.data.name,
                             entry.plugin, session.task.name, dist.rank, dist.world_size, resumed=resumed)
    session.emit = functools.partial(session.zoo.emit, ctx=session.ctx)  # every event knows its run


def _write_summary(session: _Session) -> dict[str, Any]:
    """The finished run's summary written and announced (``on_train_end``); exit 4 if its export failed."""
    summary, run = session.summary, session.run
    summary.pop("phase", None)
    summary["wall_seconds"] = round(time.time() - session.started, 3)
    run.write_summary(summary)
    session.emit("on_train_end", run=run, summary=summary)
    if summary.get("export") == "failed":
        raise _export_failed(summary, run)
    return summary


def _record_failure(session: _Session, previous: dict, err: BaseException) -> NoReturn:
    """Write the summary of a run that failed or was interrupted, then raise what the user sees."""
    summary, run = session.summary, session.run
    status = "failed" if isinstance(err, (NonFiniteLoss, ExportError)) or not isinstance(
        err, (TrainingInterrupted, KeyboardInterrupt)) else "interrupted"
    status = err.status if isinstance(err, RunStopped) else status  # e.g. a pruned sweep trial
    if isinstance(err, KeyboardInterrupt):
        err = TrainingInterrupted(
            f"interrupted during the {summary.get('phase', 'run')}; the trained weights are kept: "
            f"`zoo train --resume {run.path}` finishes the test and export")
    summary.update(wall_seconds=round(time.time() - session.started, 3))
    _record_end(run, summary, previous, status, err, session.emit)
    if isinstance(err, TrainingInterrupted):
        raise err from None
    if isinstance(err, SystemExit):  # zoo never exits mid-run: a plugin's code called sys.exit
        raise ZooError(f"the {session.entry.plugin} plugin's code exited (SystemExit {err.code!r}) during "
                       f"the {summary.get('phase', 'run')}; the run is marked failed in {run.path}") from None
    if isinstance(err, RuntimeError) and "deterministic implementation" in str(err):
        raise ZooError(f"train.deterministic: {str(err).splitlines()[0]}; set train.deterministic = "
                       f"false to train with it") from err
    raise err



def _check_fits(net, checkpoint: dict, path) -> None:
    """The checkpoint's weights must fit the model built from the config (same names, same
    shapes): exit 2 before anything is written, instead of a size-mismatch traceback later.
    Compares without copying; the caller (or the trainer) loads the weights once."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    saved = checkpoint.get("model")
    got = {k: tuple(v.shape) for k, v in saved.items()} if isinstance(saved, dict) else {}
    problems = [f"missing {k}" for k in expected if k not in got]
    problems += [f"unexpected {k}" for k in got if k not in expected]
    problems += [f"{k}: {got[k]} in the file, {shape} in the model" for k, shape in expected.items()
                 if k in got and got[k] != shape]
    if problems:
        raise ZooError(f"the weights in {path} do not fit the model built from the run's config "
                       f"({'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''})")


def _start_summary(entry, task, run_config, device, net, dist) -> dict[str, Any]:
    import torch
    from zoo import __version__

    summary: dict[str, Any] = {
        "model": entry.name, "plugin": entry.plugin, "task": task.name, "dataset": run_config.data.name,
        "status": "running", "phase": "training", "device": str(device),
        "parameters": sum(p.numel() for p in net.parameters()),
        "zoo_version": __version__, "torch_version": torch.__version__,
        "python": platform.python_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if dist.enabled:
        summary.update(world_size=dist.world_size, batch_size_per_rank=run_config.train.batch_size // dist.world_size)
    return summary


def _finish(session: _Session, result: dict[str, Any]) -> None:
    """After training: record the test metrics, export the ONNX file, draw the plots and let the
    task write its own files (:meth:`Task.write_artifacts <zoo.core.contract.task.Task.write_artifacts>`)."""
    from zoo.core.train.runs import write_plots

    summary, run, net, task, dataset = session.summary, session.run, session.net, session.task, session.dataset
    run_config, log = session.run_config, session.log
    result["test"].update(task.evaluate_model(net, dataset))  # e.g. a generative model's samples
    # Training is over: let the training and validation samples go before the export and the
    # plots import and allocate (onnx, onnxruntime, matplotlib), so that the run's peak memory
    # is not the whole dataset plus the exporter.
    session.dataset = dataset = dataset.test_only()
    session.data_on_device = session.data_on_device.test_only()
    summary.update({
        "status": "finished", "phase": "export", "metrics": result["test"], "epochs": result["epochs"],
        "best_epoch": result["best_epoch"], "stopped_early": result["stopped_early"],
        "monitor": result["monitor"],
    })
    log("test " + "  ".join(f"{k} {v:.4f}" for k, v in result["test"].items()))
    if run_config.export.enabled:
        _export_into(summary, run, net, task, dataset, run_config, session.entry, session.zoo, log)
    else:
        summary.update({"onnx": None, "parity": None, "export": "disabled"})
    summary["phase"] = "plots"
    plots = write_plots(run)
    plots += task.write_artifacts(session.ctx, net.to(session.device), session.data_on_device.test,
                                  dataset.info, summary)
    summary["plots"] = [p.name for p in plots]
    if not plots:
        log("note: plots skipped (pip install matplotlib to get loss/metric/lr PNGs in the run)")


def _export_into(summary, run, net, task, dataset, run_config, entry, zoo, log) -> None:
    """Export the trained model and record the outcome in ``summary`` (``export``: ok | failed).

    A failed export is recorded, not raised: the run trained and tested, and its summary keeps
    the metrics with ``export: failed`` and the reason in one line (the exporter's console
    output and traceback are in ``RUN/export.log``). :func:`_export_failed` raises it once the
    summary is written. A Ctrl-C still interrupts the run (resumable).
    """
    from zoo.core.deploy.export import failure_reason

    try:
        exported = export_model(run, net.cpu(), task, dataset, run_config, entry, zoo)
    except TrainingInterrupted:
        raise
    except Exception as err:  # noqa: BLE001 - the exporter's or a plugin's: the run's results stay
        reason = str(err) if isinstance(err, ZooError) else f"ONNX export failed: {failure_reason(err)}"
        summary.update({"onnx": None, "parity": None, "export": "failed", "export_error": reason})
        return
    summary.update({"onnx": str(exported.path), "parity": exported.parity, "export": "ok",
                    "parity_shapes": exported.checked_shapes, "parity_provider": exported.provider})
    log(f"exported {exported.path} (parity max |Δ| {exported.parity:.2e} at shapes "
        f"{exported.checked_shapes})")


def _export_failed(summary, run) -> ExportError:
    """The error (exit 4) of a run whose training and test finished but whose export failed;
    ``err.summary`` is the run's summary, metrics included."""
    from zoo.core.train.runs import Run

    err = ExportError(
        f"{summary['model']} trained and tested (metrics in {run.file(Run.SUMMARY)}), but its export "
        f"failed: {summary['export_error']}; the exporter's output is in {run.file(Run.EXPORT_LOG)}. "
        f"Make forward exportable or give the model an `export_model` hook (docs/plugins.md), then "
        f"`zoo export {run.path}`; or train with --set export.enabled=false")
    err.summary = summary
    return err


def _record_end(run, summary, previous, status, err, emit) -> None:
    """Write the summary of a run that did not finish, without destroying earlier results: a
    resume of a finished run that fails keeps the finished summary and notes the failure."""
    error = str(err) or type(err).__name__
    if not isinstance(err, ZooError):
        error = f"{type(err).__name__}: {error}"
    if previous.get("status") == "finished":
        record = {**previous, "last_resume": {"status": status, "error": error,
                                              "at": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    else:
        record = {**summary, "status": status, "error": error}
    try:
        run.write_summary(record)
        emit("on_train_end", run=run, summary=record)
    except Exception:  # noqa: BLE001 - the original error is what the user must see
        pass


def export_model(run, net, task, dataset, run_config, entry, zoo, opset: int | None = None):
    """Export a trained model into ``run`` with metadata, checker and parity check."""
    from zoo import __version__
    from zoo.core.deploy.export import export_onnx

    ec = run_config.export
    opset = opset or ec.opset
    info = dataset.info
    metadata = {
        "model": entry.name, "plugin": entry.plugin, "task": task.name, "zoo_version": __version__,
        "dataset": run_config.data.name, "config": run_config.model_dump(mode="json"),
        "class_names": info.class_names or [], "input_names": list(task.input_names),
        "output_names": list(task.output_names),
    }
    metadata.update({k: v for k, v in info.extra.items() if k.startswith("onnx_")})

    def override(model, path):
        return zoo.pm.hook.export_model(model=model, task=task, model_name=entry.name, path=path,
                                        opset=opset)

    examples = task.export_examples(net, dataset.test.to("cpu"))
    return export_onnx(net, task, examples, task.dynamic_axes(info), run.file(run.ONNX), opset=opset,
                       atol=ec.atol, rtol=ec.rtol, metadata=metadata, log=run.file(run.EXPORT_LOG),
                       override=override if zoo.pm.hook.export_model.get_hookimpls() else None)


def load_run(run_dir: str):
    """A finished (or interrupted) run rebuilt on the CPU: its model with the best weights (eval
    mode), dataset and task. Returns ``(run, entry, run_config, net, dataset, task, zoo)``."""
    from zoo.core.train import checkpoint as checkpoint_file
    from zoo.core.train.runs import Run

    run = Run.open(run_dir)
    saved = run.read_config()
    if not isinstance(saved.get("model"), dict) or not isinstance(saved["model"].get("name"), str):
        raise ZooError(f"{run.file(Run.CONFIG)} names no model ([model] name = ...): not a zoo run")
    entry, spec, run_config = resolve_config(saved["model"]["name"], options=saved)
    zoo = _loaded_zoo(entry)
    dataset, task = load_data(run_config, entry)
    net = build_model(spec, run_config, dataset.info)
    path = run.file(Run.BEST) if run.file(Run.BEST).exists() else run.file(Run.LAST)
    if not path.exists():
        raise ZooError(f"{run_dir} has no checkpoint (train it first)")
    checkpoint = checkpoint_file.load(path)
    _check_fits(net, checkpoint, path)
    net.load_state_dict(checkpoint["model"])
    return run, entry, run_config, net.eval(), dataset, task, zoo


def reexport(run_dir: str, opset: int | None = None) -> dict[str, Any]:
    """``zoo export RUN_DIR``: rebuild the model from the best checkpoint and export it again."""
    run, entry, run_config, net, dataset, task, zoo = load_run(run_dir)
    with run.lock():
        try:
            result = export_model(run, net, task, dataset, run_config, entry, zoo, opset=opset)
        except ExportError as err:
            raise ExportError(f"{err}; the exporter's output is in {run.file(run.EXPORT_LOG)}") from err
        try:
            summary = run.read_summary()
        except ZooError:
            summary = {"model": entry.name, "dataset": run_config.data.name}  # damaged: rebuilt
        summary.pop("export_error", None)
        summary.update({"onnx": str(result.path), "parity": result.parity, "export": "ok",
                        "parity_shapes": result.checked_shapes, "parity_provider": result.provider})
        run.write_summary(summary)
    return summary


def explain(run_dir: str, index: int = 0, out: str | None = None) -> dict[str, Any]:
    """``zoo explain RUN_DIR --index I``: pictures of what the run's model learned, for test sample I.

    The model's plugin writes them through the ``explain_model`` hook into ``out`` (default
    ``RUN_DIR/explain-I``); returns the plugin's report (``files``: name → path, ...).
    """
    import torch

    run, entry, run_config, net, dataset, task, zoo = load_run(run_dir)
    n = len(dataset.test)
    if not 0 <= index < n:
        raise ZooError(f"--index {index} is out of range: the test split of {run_config.data.name!r} "
                       f"has {n} samples (0..{n - 1})")
    sample = dataset.test.batch(torch.tensor([index], device=dataset.test.device))
    out_dir = Path(out) if out is not None else run.path / f"explain-{index}"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = zoo.pm.hook.explain_model(model=net, model_name=entry.name, task=task, sample=sample,
                                       info=dataset.info, out_dir=out_dir)
    if report is None:
        raise ZooError(f"no plugin explains model {entry.name!r} (plugin {entry.plugin!r} does not "
                       f"implement the explain_model hook for it)")
    return report


def predict(target: str, input_file: str) -> tuple[list[Any], dict[str, Any]]:
    """``zoo predict RUN_DIR|model.onnx --input FILE``: (predictions, metadata).

    Every bad input (unreadable file, arrays that do not fit the model, values the model cannot
    run on) is a one-line ZooError; predictions may hold NaN/inf floats (``json_safe`` them).
    """
    from zoo.core.deploy.runtime import load_inputs, make_session, read_metadata

    path = Path(target)
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise ZooError(f"{target}: no model.onnx there (train or `zoo export` first)")
    session = make_session(path)
    # `provider`: what really ran (onnxruntime falls back to the CPU silently; the CLI reports it).
    metadata = {**read_metadata(session), "provider": session.get_providers()[0]}
    names = [i.name for i in session.get_inputs()]
    task_name = metadata.get("task")
    task = _loaded_zoo().registry.tasks.get(task_name) if task_name else None
    # Raw input (text for token models) is turned into arrays by the task, from the metadata;
    # given arrays, the task checks what the signature cannot (token ids, a graph's edges).
    raw_meta = read_raw_meta(path)
    source = Path(input_file)  # a Path: a file (even without a suffix) or a folder to the decoders
    if source.is_dir():  # a folder of images: only a dataset's decoder knows folders
        if raw_meta is None:
            raise ZooError(f"{input_file} is a folder; this model takes a .npy or .json file")
        return _answer(session, task, metadata, decode_raw(raw_meta, source))
    data = _read_raw(input_file)
    arrays = source.suffix == ".npy" or (isinstance(data, dict) and data and set(data) <= set(names))
    if raw_meta is not None and not arrays:  # model arrays (.npy, {input: list}) need no decoding
        raw = decode_raw(raw_meta, source)  # raw rows/text as the run learned to read them
    else:
        raw = task.raw_inputs(data, metadata) if task is not None else None
    return _answer(session, task, metadata, raw if raw is not None else load_inputs(input_file, names, data))


def _answer(session, task, metadata: dict[str, Any], inputs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Run ``inputs`` (checked and cast to the model's signature); the task's answers, else the
    first output as nested lists."""
    from zoo.core.deploy.runtime import check_and_cast, run_model

    feed = check_and_cast(session, inputs)
    outputs = dict(zip([o.name for o in session.get_outputs()], run_model(session, feed)))
    if task is not None:
        return task.postprocess(outputs, {**metadata, "_inputs": feed}), metadata
    first = next(iter(outputs.values()))
    return json.loads(json.dumps(first.tolist())), metadata


def load_task(name: str):
    """The registered task ``name`` (what turns raw input into arrays and outputs into answers),
    loading the plugins; None when no plugin registers it."""
    return _loaded_zoo().registry.tasks.get(name)


def read_raw_meta(model_path: Path) -> dict[str, Any] | None:
    """The run's ``inputs.json`` next to ``model.onnx`` (how its dataset read raw input), or None."""
    from zoo.core.train.runs import Run
    from zoo.core.deploy.runtime import read_json

    path = model_path.parent / Run.INPUTS
    if not path.is_file():
        return None
    meta = read_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise ZooError(f"{path}: not a zoo inputs.json (no \"kind\")")
    return meta


def decode_raw(meta: dict[str, Any], path_or_payload: Any):
    """Raw input → model arrays through the decoder that the run's dataset registered
    (``register(name, loader, options, decoder=...)``); core knows no data format."""
    name = meta.get("dataset")
    spec = _loaded_zoo().registry.datasets.get(name) if isinstance(name, str) else None
    if spec is None or spec.decoder is None:
        raise ZooError(f"the run's inputs.json is for dataset {name!r}, and no installed plugin decodes "
                       f"raw input for it (pass arrays as .npy or JSON instead)")
    return spec.decoder(meta, path_or_payload)


def raw_payload(meta: dict[str, Any]) -> str:
    """What the decoder of the run's dataset takes per served item: ``"text"`` or ``"bytes"``."""
    name = meta.get("dataset")
    spec = _loaded_zoo().registry.datasets.get(name) if isinstance(name, str) else None
    return spec.payload if spec is not None else "text"


def _read_raw(input_file: str) -> Any:
    """A ``.json`` input parsed, a ``.txt`` input as its non-empty lines, else ``None``."""
    from zoo.core.deploy.runtime import read_json

    path = Path(input_file)
    if not path.is_file():
        raise ZooError(f"input file {input_file!r} does not exist")
    if path.suffix == ".json":
        return read_json(path)
    if path.suffix == ".txt":
        try:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as err:
            raise ZooError(f"{input_file} line {first_non_utf8_line(path)}: not UTF-8 text ({err.reason})") from None
        except OSError as err:
            raise ZooError(f"{input_file}: cannot read it: {err.strerror or err}") from None
        return lines or [""]
    return None
