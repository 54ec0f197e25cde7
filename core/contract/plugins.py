"""The plugin manager: load built-in and third-party plugins, collect their registrations.

Built-in families are ordinary plugins named in ``registry.toml``; third-party ones come through
the ``zoo`` entry-point group. Both go through the same path: import the module, register it with
pluggy (which checks hook signatures), reject unknown hooks, then call its registration hooks
with a ``register`` callback bound to the plugin, so every model, dataset and task knows where it
came from. A plugin that fails anywhere on that path is recorded with its error and skipped; the
rest keep working.

"Fails" means anything the plugin's code raises, ``SystemExit`` and ``KeyboardInterrupt``
included: a plugin calling ``sys.exit()`` must not end every zoo command. Only a real Ctrl-C of the
user (a SIGINT that arrived while the plugin's code ran) still interrupts zoo. The same holds for
hooks: ``export_model`` and ``explain_model`` failures become a :class:`PluginError` naming the
plugin; a failing training-event listener is reported once and skipped for the rest of the run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy
from zoo.core.contract import hookspecs
from zoo.core.contract.catalogue import Catalogue, load_catalogue
from zoo.core.contract.errors import RunStopped, ZooError, did_you_mean

CORE_PLUGIN = "core"


class PluginError(ZooError):
    """A plugin's hook raised something other than a ZooError (``SystemExit`` included)."""

    def __init__(self, plugin: str, hook: str, err: BaseException) -> None:
        self.plugin, self.hook, self.reason = plugin, hook, _describe(err)
        super().__init__(f"plugin {plugin!r} failed in {hook}: {self.reason} "
                         f"(run with --debug for the traceback)")


@contextlib.contextmanager
def _watching_ctrl_c() -> Iterator[list[bool]]:
    """While plugin code runs, note whether the user pressed Ctrl-C (the yielded list becomes
    non-empty). A KeyboardInterrupt with no SIGINT behind it was raised by the plugin itself and is
    its failure; one that follows a real SIGINT must still stop zoo. The previous handler keeps
    doing its job (the trainer's graceful stop, Python's KeyboardInterrupt)."""
    pressed: list[bool] = []
    previous = signal.getsignal(signal.SIGINT)
    # Signals reach the main thread only, and SIG_IGN / SIG_DFL never raise KeyboardInterrupt.
    watch = callable(previous) and threading.current_thread() is threading.main_thread()
    if watch:
        def note(signum: int, frame: Any) -> None:
            pressed.append(True)
            previous(signum, frame)

        signal.signal(signal.SIGINT, note)
    try:
        yield pressed
    finally:
        if watch:
            signal.signal(signal.SIGINT, previous)


def _to_stderr() -> contextlib.AbstractContextManager:
    """Plugin code runs with ``print`` going to stderr: stdout is the command's output (``zoo
    train --json``, ``zoo predict --json``), which a hook's chatter must never corrupt."""
    return contextlib.redirect_stdout(sys.stderr)


def _guarded(fn: Callable, plugin: str, hook: str, exceptions_too: bool = True) -> Callable:
    """``fn`` (a plugin's hook, builder or loader) raising a :class:`PluginError` for anything but a
    ZooError (the plugin's message to the user) or the user's own Ctrl-C. With ``exceptions_too``
    false only ``SystemExit`` and the like are converted: the core reports a builder's ordinary
    exceptions itself, saying what it was doing."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _watching_ctrl_c() as pressed, _to_stderr():
            try:
                return fn(*args, **kwargs)
            except ZooError:
                raise
            except BaseException as err:  # noqa: BLE001 - sys.exit() in a hook is the plugin's failure
                if (isinstance(err, KeyboardInterrupt) and pressed) or (
                        isinstance(err, Exception) and not exceptions_too):
                    raise
                raise PluginError(plugin, hook, err) from err

    return call


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``builder(config, info) -> nn.Module`` and its pydantic config."""

    name: str
    builder: Callable[..., Any]
    config_class: type
    plugin: str


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: ``loader(options, data_dir) -> Dataset``."""

    name: str
    loader: Callable[..., Any]
    options_class: type | None
    plugin: str
    #: ``decoder(meta, path_or_payload) -> {input name: array}``: raw input (a file for `zoo predict`,
    #: the items of a request for `zoo serve`) → model inputs, from the run's ``inputs.json``.
    decoder: Callable[..., Any] | None = None
    #: what `zoo serve` hands the decoder per item of the BYTES input ``text``: ``"text"`` (UTF-8
    #: strings: rows, sentences) or ``"bytes"`` (encoded files, e.g. images: base64 in JSON, raw
    #: with the binary extension). Never a path: a request must not name files on the server.
    payload: str = "text"


@dataclass
class PluginStatus:
    """What ``zoo plugins`` shows for one plugin."""

    name: str
    module: str
    source: str
    version: str = ""
    status: str = "not loaded"  # loaded | failed | disabled
    error: str = ""
    problems: list[str] = field(default_factory=list)  # loaded, but something to fix (zoo doctor)
    hooks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Registry:
    """Models, datasets and tasks registered by plugins, with their origin."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)
    _task_plugin: dict[str, str] = field(default_factory=dict, repr=False)

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ZooError(did_you_mean(name, self.models, "registered model"))
        return self.models[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise ZooError(did_you_mean(name, self.datasets, "dataset", listed_by="zoo list --datasets"))
        return self.datasets[name]

    def task(self, name: str):
        if name not in self.tasks:
            raise ZooError(did_you_mean(name, self.tasks, "task", listed_by="zoo plugins"))
        return self.tasks[name]


class _Collector:
    """The ``register`` callbacks handed to one plugin. Validates, then commits all-or-nothing."""

    def __init__(self, registry: Registry, plugin: str, catalogue: Catalogue | None = None) -> None:
        self.registry = registry
        self.plugin = plugin
        self.catalogue = catalogue or Catalogue()  # who declares which name
        self.models: dict[str, ModelSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.tasks: dict[str, Any] = {}

    def _clash(self, kind: str, name: str, existing_plugin: str, hook: str) -> ZooError:
        return ZooError(
            f"plugin {self.plugin!r} ({hook}) registers {kind} {name!r}, "
            f"which plugin {existing_plugin!r} already registered; rename one of them"
        )

    def _check_owner(self, kind: str, name: str, declared: dict, hook: str) -> None:
        """A name declared in a manifest belongs to its declarer: another plugin registering it
        fails on its own, whichever of the two loads first (the declarer never loses its name)."""
        owner = getattr(declared.get(name), "plugin", self.plugin)
        if owner != self.plugin:
            raise ZooError(f"plugin {self.plugin!r} ({hook}) registers {kind} {name!r}, which plugin "
                           f"{owner!r} declares; rename it and declare the new name in the "
                           f"[{kind}s] of {self.plugin!r}'s own manifest")

    def register_model(self, name: str, builder: Callable, config_class: type) -> None:
        from zoo.core.contract.config import ModelConfig

        hook = "register_models"
        if not isinstance(name, str) or not name:
            raise ZooError(f"plugin {self.plugin!r} ({hook}): model name must be a non-empty string")
        if not callable(builder):
            raise ZooError(f"plugin {self.plugin!r} ({hook}): builder for {name!r} is not callable")
        if not (isinstance(config_class, type) and issubclass(config_class, ModelConfig)):
            raise ZooError(
                f"plugin {self.plugin!r} ({hook}): config class for {name!r} must subclass "
                f"zoo.ModelConfig, got {config_class!r}"
            )
        self._check_owner("model", name, self.catalogue.models, hook)
        if name in self.registry.models:
            raise self._clash("model", name, self.registry.models[name].plugin, hook)
        if name in self.models:
            raise ZooError(f"plugin {self.plugin!r} ({hook}) registers model {name!r} twice")
        builder = _guarded(builder, self.plugin, f"the builder of model {name!r}", exceptions_too=False)
        self.models[name] = ModelSpec(name, builder, config_class, self.plugin)

    def register_dataset(self, name: str, loader: Callable, options_class: type | None = None,
                         decoder: Callable | None = None, payload: str = "text") -> None:
        hook = "register_datasets"
        if not isinstance(name, str) or not name:
            raise ZooError(f"plugin {self.plugin!r} ({hook}): dataset name must be a non-empty string")
        if not callable(loader):
            raise ZooError(f"plugin {self.plugin!r} ({hook}): loader for {name!r} is not callable")
        self._check_owner("dataset", name, self.catalogue.datasets, hook)
        if name in self.registry.datasets:
            raise self._clash("dataset", name, self.registry.datasets[name].plugin, hook)
        if name in self.datasets:
            raise ZooError(f"plugin {self.plugin!r} ({hook}) registers dataset {name!r} twice")
        if decoder is not None and not callable(decoder):
            raise ZooError(f"plugin {self.plugin!r} ({hook}): decoder for {name!r} is not callable")
        if payload not in ("text", "bytes"):
            raise ZooError(f"plugin {self.plugin!r} ({hook}): payload for {name!r} is {payload!r}; "
                           f"expected 'text' or 'bytes'")
        loader = _guarded(loader, self.plugin, f"the loader of dataset {name!r}", exceptions_too=False)
        if decoder is not None:
            decoder = _guarded(decoder, self.plugin, f"the raw-input decoder of dataset {name!r}", exceptions_too=False)
        self.datasets[name] = DatasetSpec(name, loader, options_class, self.plugin, decoder, payload)

    def register_task(self, task: Any) -> None:
        from zoo.core.contract.task import Task

        hook = "register_tasks"
        if not isinstance(task, Task):
            raise ZooError(f"plugin {self.plugin!r} ({hook}): expected a zoo.Task instance, got {task!r}")
        if task.name in self.registry.tasks:
            raise self._clash("task", task.name, self.registry._task_plugin[task.name], hook)
        self.tasks[task.name] = task

    def commit(self) -> None:
        self.registry.models.update(self.models)
        self.registry.datasets.update(self.datasets)
        self.registry.tasks.update(self.tasks)
        for name in self.tasks:
            self.registry._task_plugin[name] = self.plugin


class Zoo:
    """The loaded world: catalogue, pluggy manager, registry and per-plugin status."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.status: dict[str, PluginStatus] = {}
        #: (run path, plugin, hook) of event listeners that failed in that run: skipped from then on.
        self._muted: set[tuple[Any, str, str]] = set()

    # -- loading --------------------------------------------------------------------------
    def load(self) -> Zoo:
        from zoo.core.contract import discovery

        disabled = discovery.disabled_plugins()
        strict = os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")

        from zoo import __version__

        # The core's own plugin (the built-in tasks) belongs to training; loaded by its name, so
        # the contract imports nothing above it.
        self._load_one(CORE_PLUGIN, "zoo.core.train.builtins", "built-in", __version__)
        candidates = [(p.name, p.module, p.source, __version__ if p.source == "built-in" else "")
                      for p in self.catalogue.plugins.values()]
        declared = {name for name, *_ in candidates}
        versions = {}
        for ep in discovery.entry_points():
            versions[ep.name] = discovery.dist_version(ep)
            if ep.name not in declared:
                candidates.append((ep.name, ep.value.split(":")[0], discovery._distribution_label(ep), ""))
        for name, module_name, source, version in candidates:
            version = version or versions.get(name, "")
            if name in disabled:
                self.status[name] = PluginStatus(name, module_name, source, version, status="disabled",
                                                 error="disabled by ZOO_DISABLE_PLUGINS")
                continue
            if name in discovery.MANIFEST_ERRORS and source != "built-in":
                # A plugin whose manifest is broken is not imported: its declarations are unknown.
                # (A third-party name clashing with a built-in one must not fail the built-in.)
                self.status[name] = PluginStatus(name, module_name, source, version, status="failed",
                                                 error=f"manifest: {discovery.MANIFEST_ERRORS[name]}")
            else:
                self._load_one(name, module_name, source, version)
            if strict and self.status[name].status == "failed":
                raise ZooError(f"plugin {name!r} failed to load (ZOO_STRICT_PLUGINS=1): "
                               f"{self.status[name].error}")
        for problem_plugin, problem in self._declaration_problems():
            if problem_plugin in self.status:
                self.status[problem_plugin].problems.append(problem)
        if strict:
            problems = [f"{n}: {p}" for n, s in self.status.items() for p in s.problems]
            if problems:
                raise ZooError("plugin problems (ZOO_STRICT_PLUGINS=1):\n  " + "\n  ".join(problems))
        return self

    def _load_one(self, name: str, module_name: str, source: str, version: str = "",
                  module: Any = None) -> None:
        """Import, register and collect one plugin; whatever it raises marks it failed."""
        status = self.status[name] = PluginStatus(name, module_name, source, version)
        with _watching_ctrl_c() as pressed, _to_stderr():
            try:
                module = importlib.import_module(module_name) if module is None else module
                self._register(name, module, status)
            except BaseException as err:  # noqa: BLE001 - a broken plugin must never break the others
                if isinstance(err, KeyboardInterrupt) and pressed:
                    raise  # the user's Ctrl-C, not the plugin's doing
                if module is not None and self.pm.is_registered(module):
                    self.pm.unregister(module)
                status.status = "failed"
                status.error = _describe(err)
                if os.environ.get("ZOO_DEBUG"):
                    traceback.print_exc()

    def _register(self, name: str, module: Any, status: PluginStatus) -> None:
        # pluggy checks each hookimpl's argument names against its spec here, and check_pending
        # finds a hookimpl with no spec at all (a misspelt hook); _load_one unregisters the module.
        self.pm.register(module, name=name)
        callers = self.pm.get_hookcallers(module) or []
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            unknown = sorted(caller.name for caller in callers if not caller.has_spec())
            raise ZooError(
                f"implements unknown hook(s) {unknown}; known hooks: {', '.join(hookspecs.HOOK_NAMES)}"
            ) from None
        status.hooks = sorted(caller.name for caller in callers)
        collector = _Collector(self.registry, name, self.catalogue)
        self._call_registration(module, collector)
        collector.commit()
        for caller in callers:  # from now on, a hook's failure is this plugin's, with its name
            for impl in caller.get_hookimpls():
                if impl.plugin is module and not (impl.hookwrapper or impl.wrapper):
                    impl.function = _guarded(impl.function, name, caller.name)
        status.models = sorted(collector.models)
        status.datasets = sorted(collector.datasets)
        status.tasks = sorted(collector.tasks)
        status.status = "loaded"

    @staticmethod
    def _call_registration(module: Any, collector: _Collector) -> None:
        # Call this plugin's own registration hooks directly (not the broadcast hook) so every
        # registration is attributed to it and a failure is confined to it.
        for hook_name, callback in (
            ("register_tasks", collector.register_task),
            ("register_datasets", collector.register_dataset),
            ("register_models", collector.register_model),
        ):
            impl = getattr(module, hook_name, None)
            if impl is None or not hasattr(impl, "zoo_impl"):
                continue
            try:
                impl(register=callback)
            except ZooError:
                raise
            except BaseException as err:  # noqa: BLE001 - _load_one lets the user's Ctrl-C through
                if isinstance(err, KeyboardInterrupt):
                    raise
                raise ZooError(f"{hook_name} raised {_describe(err)}") from err

    # -- events ---------------------------------------------------------------------------
    def emit(self, hook_name: str, **kwargs: Any) -> None:
        """Call a training-event hook on every plugin; a failing listener never stops training.

        A listener that raises anything (``SystemExit`` and a ``KeyboardInterrupt`` of its own
        included) is reported once, as a warning naming its plugin, and skipped for the rest of the
        run: a tracker's bug must neither end a run silently nor flood its log. The exception is
        :class:`~zoo.core.contract.errors.RunStopped`, raised on purpose to end the run (a pruned trial). The user's Ctrl-C
        goes through to the trainer, which checkpoints and stops. Every event gets ``ctx`` (a
        :class:`zoo.core.contract.context.RunContext`) among its arguments; what a listener prints goes to
        stderr.
        """
        run_key = getattr(kwargs.get("run"), "path", None)
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            key = (run_key, impl.plugin_name, hook_name)
            if key in self._muted:
                continue
            arguments = {k: kwargs[k] for k in impl.argnames}
            with _watching_ctrl_c() as pressed, _to_stderr():
                try:
                    impl.function(**arguments)
                except RunStopped:  # a listener that ends the run on purpose (a sweep's pruner)
                    raise
                except BaseException as err:  # noqa: BLE001 - see the docstring
                    if isinstance(err, KeyboardInterrupt) and pressed:
                        raise
                    self._muted.add(key)
                    reason = err.reason if isinstance(err, PluginError) else _describe(err)
                    warnings.warn(f"plugin {impl.plugin_name!r} failed in {hook_name}: {reason}; "
                                  f"its {hook_name} is skipped for the rest of this run", stacklevel=2)

    # -- checks ---------------------------------------------------------------------------
    def declaration_problems(self) -> list[str]:
        """Declared-but-not-registered and registered-but-not-declared models and datasets."""
        return [problem for _, problem in self._declaration_problems()]

    def _declaration_problems(self) -> list[tuple[str, str]]:
        problems = []
        loaded = {n for n, s in self.status.items() if s.status == "loaded"}
        for kind, declared, registered in (
            ("model", self.catalogue.models, self.registry.models),
            ("dataset", self.catalogue.datasets, self.registry.datasets),
        ):
            for name, entry in declared.items():
                if entry.plugin in loaded and name not in registered:
                    problems.append((entry.plugin, f"{kind} {name!r} is declared in its manifest but "
                                     f"register_{kind}s does not register it"))
                elif name in registered and registered[name].plugin != entry.plugin:
                    problems.append((registered[name].plugin, f"{kind} {name!r} is declared for plugin "
                                     f"{entry.plugin!r} but registered by {registered[name].plugin!r}"))
            for name, spec in registered.items():
                if name not in declared and spec.plugin != CORE_PLUGIN:
                    problems.append((spec.plugin, f"registers {kind} {name!r} that its manifest does not "
                                     f"declare; add [{kind}s.{name}] to the manifest"))
        for entry in self.catalogue.models.values():
            for task in entry.tasks:
                if entry.plugin in loaded and task not in self.registry.tasks:
                    problems.append((entry.plugin, f"model {entry.name!r} declares unknown task {task!r}; "
                                     f"known: {', '.join(sorted(self.registry.tasks))}"))
        return problems


def _describe(err: BaseException) -> str:
    """``Type: message`` on one line (``zoo plugins`` rows and CLI errors are one line each)."""
    try:
        text = " ".join(str(err).splitlines())
    except Exception:  # noqa: BLE001 - a plugin's exception may not even print
        text = "(unprintable error)"
    if isinstance(err, ZooError):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@functools.cache
def get_zoo() -> Zoo:
    """The process-wide loaded zoo (imports every enabled plugin once)."""
    return Zoo(load_catalogue()).load()
