"""``zoo sweep``: hyperparameter search on Optuna, one ordinary run directory per trial.

The study lives in Optuna's SQL storage: SQLite in the sweep folder by default (``study.db``;
running the same command again continues the study), or any SQLAlchemy URL (PostgreSQL, MySQL):
the same command on several machines joins one study. ``workers`` processes on this machine
share the storage the same way.

A trial is ``zoo train MODEL`` with the sampled values merged over the config (the space, see
:mod:`zoo.core.tune.space`), written to ``FOLDER/trial-NNNN`` (``zoo runs --root FOLDER`` lists
them; the best one exports and pushes like any run). Its value is the best per-epoch validation
value of the monitored metric (the one the best checkpoint follows), maximised or minimised as
the task says (:func:`zoo.core.tune.objective.higher_is_better`). The pruner sees that value after
every epoch through an ``on_epoch_end`` listener registered for the trial: an unpromising trial
ends with :class:`~zoo.core.contract.errors.RunStopped` after its epoch is checkpointed, its run's status
is ``pruned`` and the trial is told PRUNED.

The study stays consistent whatever happens: every trial asked is told COMPLETE, PRUNED or
FAIL. A trial whose run fails is FAIL (``user_attrs["error"]``) and the sweep goes on; Ctrl-C
tells the trial in progress FAIL (``user_attrs["interrupted"]``), queues its values to be tried
first by the next command, and stops. ``trials`` counts finished trials (complete, pruned and
failed, not interrupted) over the whole study, so a rerun does only what is missing.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from zoo import hookimpl
from zoo.core.contract.errors import RunStopped, TrainingInterrupted, ZooError

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")


@dataclass(frozen=True)
class SweepSettings:
    """Everything a worker process needs (picklable: sent to ``--workers`` processes)."""

    model: str
    space: dict[str, Any]                 # the raw space table (re-parsed in each worker)
    folder: str
    trials: int
    storage: str | None = None            # SQLAlchemy URL; None = sqlite:///FOLDER/study.db
    study: str | None = None              # None = the model's name
    sampler: str = "tpe"
    pruner: str = "median"
    prune_after: int = 1                  # epochs before the pruner may stop a trial
    seed: int | None = None
    sets: tuple[str, ...] = ()
    config_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    space_source: str = "--space"         # the space file's name, for error messages

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.folder).resolve() / 'study.db'}"

    @property
    def study_name(self) -> str:
        return self.study or self.model


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ZooError("zoo sweep needs Optuna: pip install 'zoo-ml[sweep]' (optuna, sqlalchemy)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage(url: str):
    """Optuna's RDB storage at ``url``; SQLite waits for the lock instead of failing (workers)."""
    optuna = _optuna()
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as err:  # noqa: BLE001 - a bad URL, a missing driver, an unreachable server
        raise ZooError(f"--storage {url}: {type(err).__name__}: {str(err).splitlines()[0]}") from None


def make_sampler(name: str, seed: int | None):
    optuna = _optuna()
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, prune_after: int):
    """``median``: stop a trial whose value is worse than the median of earlier trials at the same
    epoch; ``halving``: asynchronous successive halving; ``none``."""
    optuna = _optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=prune_after)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(prune_after, 1))
    return optuna.pruners.NopPruner()


def prepare(settings: SweepSettings) -> dict[str, Any]:
    """Check the space against the model and create (or find) the study; returns the study's
    record ``{direction, monitor, ...}``. Everything a user can get wrong is exit 2 here."""
    from zoo.core import api
    from zoo.core.tune import objective, space

    parsed = space.parse(settings.space, where=settings.space_source)
    space.check_against(parsed, settings.model, settings.space_source, settings.sets, settings.config_file)
    config = api.show_config(settings.model, config_file=settings.config_file, sets=settings.sets)
    task = objective.task_of(settings.model, config["data"]["name"])
    monitor = objective.monitored(task, config)
    direction = "maximize" if objective.higher_is_better(task, monitor) else "minimize"
    Path(settings.folder).mkdir(parents=True, exist_ok=True)
    optuna = _optuna()
    study = optuna.create_study(storage=storage(settings.storage_url), study_name=settings.study_name,
                                direction=direction, load_if_exists=True)
    attrs = study.user_attrs
    if attrs.get("model", settings.model) != settings.model:
        raise ZooError(f"study {settings.study_name!r} in {settings.storage_url} is a sweep of "
                       f"{attrs['model']!r}, not {settings.model!r}; choose another --study")
    if study.direction.name.lower() != direction:
        raise ZooError(f"study {settings.study_name!r} {study.direction.name.lower()}s, but "
                       f"{monitor} of {settings.model} must be {direction}d; choose another --study")
    record = {"model": settings.model, "monitor": monitor, "space": settings.space}
    for key, value in record.items():
        study.set_user_attr(key, value)
    return {**record, "direction": direction}


class EpochWatch:
    """The trial's ``on_epoch_end`` listener: reports the monitored value to Optuna each epoch and
    ends the run (:class:`RunStopped`) when the pruner says so. Registered with the plugin
    manager for one trial; it answers only its own run's events."""

    def __init__(self, trial: Any, run_dir: Path, monitor: str, maximize: bool) -> None:
        self.trial, self.run_dir, self.monitor, self.maximize = trial, run_dir.resolve(), monitor, maximize
        self.values: list[float] = []
        self.epochs = 0

    @hookimpl
    def on_epoch_end(self, ctx, epoch: int, metrics: dict[str, Any]) -> None:
        if ctx.path.resolve() != self.run_dir:
            return
        self.epochs = epoch
        value = metrics.get(self.monitor)
        if value is None:
            return
        self.values.append(float(value))
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            raise RunStopped(f"pruned at epoch {epoch} ({self.monitor} {value:.4g})")

    @property
    def best(self) -> float | None:
        if not self.values:
            return None
        return max(self.values) if self.maximize else min(self.values)


def _watch(zoo, watcher: EpochWatch, name: str):
    """Register ``watcher`` with the plugin manager for one trial; returns its unregistration."""
    zoo.pm.register(watcher, name=name)
    return lambda: zoo.pm.unregister(name=name)


def run_trial(settings: SweepSettings, trial: Any, study_info: dict[str, Any], log) -> float:
    """Train one trial's run; returns its value. Raises RunStopped (pruned) or the run's error."""
    from zoo.core import api
    from zoo.core.tune import space
    from zoo.core.contract.config import deep_merge
    from zoo.core.contract.plugins import get_zoo

    parsed = space.parse(settings.space, where="--space")
    values = {key: param.suggest(trial, key) for key, param in parsed.items()}
    run_dir = Path(settings.folder) / f"{settings.study_name}-{trial.number:04d}"
    trial.set_user_attr("run", str(run_dir))
    trial.set_user_attr("values", json.dumps(values))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    watcher = EpochWatch(trial, run_dir, study_info["monitor"], study_info["direction"] == "maximize")
    options = deep_merge(deep_merge({"train": {"progress": False}}, settings.options), space.nest(values))
    release = _watch(get_zoo(), watcher, f"zoo-sweep-trial-{os.getpid()}-{trial.number}")
    try:
        summary = api.train(settings.model, config_file=settings.config_file, sets=settings.sets,
                            options=options, out=str(run_dir), log=None)
    finally:
        release()
        trial.set_user_attr("epochs", watcher.epochs)
    trial.set_user_attr("test", summary.get("metrics", {}))
    if watcher.best is None:
        raise ZooError(f"the run reports no {study_info['monitor']} (no validation split?): set "
                       f"data.val_fraction > 0 so that trials can be compared")
    return watcher.best


def _format_values(values: str) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in json.loads(values).items())


def _one_trial(study, settings: SweepSettings, info: dict[str, Any], log) -> None:
    """Ask, run and tell one trial: the study never keeps a trial RUNNING, whatever happens."""
    optuna = _optuna()
    trial = study.ask()
    started = time.time()
    try:
        value = run_trial(settings, trial, info, log)
    except RunStopped as err:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        log(f"trial {trial.number}: {err} [{_format_values(trial.user_attrs['values'])}]")
    except (TrainingInterrupted, KeyboardInterrupt):
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if trial.params:  # the next command tries these values first
            study.enqueue_trial(trial.params)
        raise
    except Exception as err:  # noqa: BLE001 - a failed trial is recorded and the sweep goes on
        trial.set_user_attr("error", str(err) if isinstance(err, ZooError) else f"{type(err).__name__}: {err}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log(f"trial {trial.number}: failed: {trial.user_attrs['error']}")
    else:
        study.tell(trial, value)
        log(f"trial {trial.number}: {info['monitor']} {value:.4f} after {trial.user_attrs['epochs']} epochs "
            f"({time.time() - started:.1f} s) [{_format_values(trial.user_attrs['values'])}]")


def finished(study) -> int:
    """Trials that count towards ``--trials``: complete, pruned, and failed unless interrupted."""
    states = _optuna().trial.TrialState
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (states.COMPLETE, states.PRUNED)
               or (t.state == states.FAIL and not t.user_attrs.get("interrupted")))


def work(settings: SweepSettings, info: dict[str, Any], worker: int = 0,
         log: Callable[[str], None] | None = None) -> int:
    """One worker: trials until the study has ``settings.trials`` finished ones; returns how many
    this worker ran. Another worker (process or machine) may run trials of the same study."""
    optuna = _optuna()
    log = log or (lambda line: None)
    seed = None if settings.seed is None else settings.seed + worker
    study = optuna.load_study(study_name=settings.study_name, storage=storage(settings.storage_url),
                              sampler=make_sampler(settings.sampler, seed),
                              pruner=make_pruner(settings.pruner, settings.prune_after))
    done = 0
    while finished(study) < settings.trials:
        _one_trial(study, settings, info, log)
        done += 1
    return done


def _worker_main(settings: SweepSettings, info: dict[str, Any], worker: int, threads: int) -> None:
    """The entry point of a ``--workers`` process (spawned: a fresh interpreter)."""
    import torch

    torch.set_num_threads(threads)
    try:
        work(settings, info, worker, log=lambda line: print(f"[worker {worker}] {line}", file=sys.stderr, flush=True))
    except (TrainingInterrupted, KeyboardInterrupt):
        sys.exit(130)


def run_workers(settings: SweepSettings, info: dict[str, Any], workers: int) -> list[int]:
    """``workers`` processes on this machine against the same study; returns their exit codes.
    Ctrl-C reaches every process of the terminal's group: each ends its trial, then all stop."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [context.Process(target=_worker_main, args=(settings, info, i, threads)) for i in range(workers)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            process.join()
        raise
    return [p.exitcode for p in processes]


def sweep(settings: SweepSettings, workers: int = 1, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or continue) the sweep; returns :func:`summary` of the study afterwards."""
    log = log or (lambda line: None)
    info = prepare(settings)
    log(f"sweep of {settings.model}: {settings.trials} trials, {info['direction']} {info['monitor']}, "
        f"study {settings.study_name!r} in {settings.storage_url}")
    try:
        if workers > 1:
            codes = run_workers(settings, info, workers)
            if any(code == 130 for code in codes):
                raise KeyboardInterrupt
            if any(codes):
                raise ZooError(f"sweep worker processes ended with exit codes {codes}; see their messages above")
        else:
            work(settings, info, 0, log)
    except (TrainingInterrupted, KeyboardInterrupt):
        raise TrainingInterrupted(f"sweep interrupted; the study is consistent (the trial in progress is "
                                  f"marked failed and will be retried): run the same command to continue") from None
    return summary(settings.storage_url, settings.study_name)


def summary(url: str, study_name: str | None = None, top: int = 5) -> dict[str, Any]:
    """The study's counts, best trials and the best run directory (``zoo sweep show``)."""
    optuna = _optuna()
    store = storage(url)
    names = [s.study_name for s in store.get_all_studies()]
    study_name = study_name or (names[0] if len(names) == 1 else None)
    if study_name not in names:
        raise ZooError(f"no study {study_name!r} in {url} (studies: {', '.join(names) or 'none'}); pass --study")
    study = optuna.load_study(study_name=study_name, storage=store)
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    complete.sort(key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    rows = [{"trial": t.number, "value": t.value, "epochs": t.user_attrs.get("epochs"),
             "values": json.loads(t.user_attrs.get("values", "{}")), "run": t.user_attrs.get("run"),
             "test": t.user_attrs.get("test", {})} for t in complete[:top]]
    return {"study": study_name, "storage": url, "model": study.user_attrs.get("model"),
            "monitor": study.user_attrs.get("monitor"), "direction": study.direction.name.lower(),
            "counts": counts, "epochs_trained": sum(t.user_attrs.get("epochs", 0) for t in trials),
            "best": rows[0] if rows else None, "top": rows}


def plots(url: str, study_name: str, folder: str | Path) -> list[Path]:
    """Optimisation history, parameter importance and parallel coordinates as PNGs in ``folder``
    (optuna.visualization.matplotlib); a plot that needs more finished trials is skipped."""
    import warnings

    optuna = _optuna()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as vis
    except ImportError:
        return []
    study = optuna.load_study(study_name=study_name, storage=storage(url))
    written = []
    for name, draw in (("history", vis.plot_optimization_history), ("importance", vis.plot_param_importances),
                       ("parallel", vis.plot_parallel_coordinate)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.set_size_inches(9, 5)
            path = Path(folder) / f"sweep-{name}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
        except Exception:  # noqa: BLE001 - too few trials (or parameters) for this plot
            plt.close("all")
    return written

