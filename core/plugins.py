"""The plugin manager: load built-in and third-party plugins, collect their registrations.

Built-in families are ordinary plugins named in ``registry.toml``; third-party ones come through
the ``zoo`` entry-point group. Both go through the same path: import the module, register it with
pluggy (which checks hook signatures), reject unknown hooks, then call its registration hooks
with a ``register`` callback bound to the plugin, so every model, dataset and task knows where it
came from. A plugin that fails anywhere on that path is recorded with its error and skipped; the
rest keep working.
"""

from __future__ import annotations

import functools
import importlib
import os
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy
from zoo.core import hookspecs
from zoo.core.catalogue import Catalogue, load_catalogue
from zoo.core.errors import ZooError, did_you_mean

CORE_PLUGIN = "core"


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


class Registry:
    """Models, datasets and tasks registered by plugins, with their origin."""

    def __init__(self) -> None:
        self.models: dict[str, ModelSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.tasks: dict[str, Any] = {}
        self._task_plugin: dict[str, str] = {}

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ZooError(did_you_mean(name, self.models, "registered model"))
        return self.models[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise ZooError(did_you_mean(name, self.datasets, "dataset"))
        return self.datasets[name]

    def task(self, name: str):
        if name not in self.tasks:
            raise ZooError(did_you_mean(name, self.tasks, "task"))
        return self.tasks[name]


class _Collector:
    """The ``register`` callbacks handed to one plugin. Validates, then commits all-or-nothing."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self.registry = registry
        self.plugin = plugin
        self.models: dict[str, ModelSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.tasks: dict[str, Any] = {}

    def _clash(self, kind: str, name: str, existing_plugin: str, hook: str) -> ZooError:
        return ZooError(
            f"plugin {self.plugin!r} ({hook}) registers {kind} {name!r}, "
            f"which plugin {existing_plugin!r} already registered; rename one of them"
        )

    def register_model(self, name: str, builder: Callable, config_class: type) -> None:
        from zoo.core.config import ModelConfig

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
        if name in self.registry.models:
            raise self._clash("model", name, self.registry.models[name].plugin, hook)
        if name in self.models:
            raise ZooError(f"plugin {self.plugin!r} ({hook}) registers model {name!r} twice")
        self.models[name] = ModelSpec(name, builder, config_class, self.plugin)

    def register_dataset(self, name: str, loader: Callable, options_class: type | None = None) -> None:
        hook = "register_datasets"
        if not callable(loader):
            raise ZooError(f"plugin {self.plugin!r} ({hook}): loader for {name!r} is not callable")
        if name in self.registry.datasets:
            raise self._clash("dataset", name, self.registry.datasets[name].plugin, hook)
        if name in self.datasets:
            raise ZooError(f"plugin {self.plugin!r} ({hook}) registers dataset {name!r} twice")
        self.datasets[name] = DatasetSpec(name, loader, options_class, self.plugin)

    def register_task(self, task: Any) -> None:
        from zoo.core.tasks import Task

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

    # -- loading --------------------------------------------------------------------------
    def load(self) -> Zoo:
        from zoo.core import builtins, discovery

        disabled = {p.strip() for p in os.environ.get("ZOO_DISABLE_PLUGINS", "").split(",") if p.strip()}
        strict = os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")

        from zoo import __version__

        self._load_one(CORE_PLUGIN, "zoo.core.builtins", "built-in", __version__, module=builtins)
        candidates = [(p.name, p.module, p.source, __version__ if p.source == "built-in" else "")
                      for p in self.catalogue.plugins.values()]
        declared = {name for name, *_ in candidates}
        versions = {}
        for ep in discovery.entry_points():
            versions[ep.name] = ep.dist.version if ep.dist is not None else ""
            if ep.name not in declared:
                candidates.append((ep.name, ep.value.split(":")[0], discovery._distribution_label(ep), ""))
        for name, module_name, source, version in candidates:
            version = version or versions.get(name, "")
            if name in disabled:
                self.status[name] = PluginStatus(name, module_name, source, version, status="disabled",
                                                 error="disabled by ZOO_DISABLE_PLUGINS")
                continue
            if name in discovery.MANIFEST_ERRORS:
                # A plugin whose manifest is broken is not imported: its declarations are unknown.
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
        status = self.status[name] = PluginStatus(name, module_name, source, version)
        try:
            if module is None:
                module = importlib.import_module(module_name)
            unknown = [
                attr for attr in dir(module)
                if hasattr(getattr(module, attr, None), "zoo_impl") and attr not in hookspecs.HOOK_NAMES
            ]
            if unknown:
                raise ZooError(
                    f"implements unknown hook(s) {unknown}; known hooks: {', '.join(hookspecs.HOOK_NAMES)}"
                )
            # pluggy checks each hookimpl's argument names against its spec here.
            self.pm.register(module, name=name)
            status.hooks = sorted(
                impl.name for impl in self.pm.get_hookcallers(module) or []
            )
            collector = _Collector(self.registry, name)
            self._call_registration(module, collector)
            collector.commit()
            status.models = sorted(collector.models)
            status.datasets = sorted(collector.datasets)
            status.tasks = sorted(collector.tasks)
            status.status = "loaded"
        except Exception as err:  # noqa: BLE001 - a broken plugin must never break the others
            if module is not None and self.pm.is_registered(module):
                self.pm.unregister(module)
            status.status = "failed"
            status.error = _describe(err)
            if os.environ.get("ZOO_DEBUG"):
                traceback.print_exc()

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
            except Exception as err:
                raise ZooError(f"{hook_name} raised {type(err).__name__}: {err}") from err

    # -- events ---------------------------------------------------------------------------
    def emit(self, hook_name: str, **kwargs: Any) -> None:
        """Call a training-event hook on every plugin; a failing listener warns, never stops training."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as err:  # noqa: BLE001
                warnings.warn(f"plugin {impl.plugin_name!r} failed in {hook_name}: {_describe(err)}",
                              stacklevel=2)

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
    return str(err) if isinstance(err, ZooError) else f"{type(err).__name__}: {err}"


@functools.cache
def get_zoo() -> Zoo:
    """The process-wide loaded zoo (imports every enabled plugin once)."""
    return Zoo(load_catalogue()).load()
