"""The declarative catalogue: what plugins, models and datasets exist, read from TOML only.

``registry.toml`` (shipped inside the package) declares the built-in plugins, their models and
their datasets as data. ``zoo list`` and ``zoo info`` read it without importing torch, onnx or
any plugin code, which keeps them well under a second. Plugin code later *registers* the
builders for these declarations; ``tests/core/test_catalogue.py`` checks the two match one to one.

This module must stay light: standard library only.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.core.errors import ZooError, did_you_mean

REGISTRY_PATH = Path(__file__).resolve().parent.parent / "registry.toml"


@dataclass(frozen=True)
class PluginEntry:
    """A plugin declared in a manifest: ``[plugins.NAME]``."""

    name: str
    module: str
    summary: str = ""
    source: str = "built-in"


@dataclass(frozen=True)
class ModelEntry:
    """A model declared in a manifest: ``[models.NAME]``.

    ``defaults`` holds per-model overrides of the config sections (``model``, ``data``, ``optim``,
    ``schedule``, ``train``, ``export``); ``reference`` the published result we compare against;
    ``smoke`` further overrides (tiny sizes) used by the per-model tests in ``tests/``.
    """

    name: str
    plugin: str
    tasks: tuple[str, ...]
    dataset: str
    summary: str = ""
    paper: str = ""
    tags: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    source: str = "built-in"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "tasks": list(self.tasks),
            "dataset": self.dataset,
            "summary": self.summary,
            "paper": self.paper,
            "tags": list(self.tags),
            "defaults": self.defaults,
            "reference": self.reference,
            "source": self.source,
        }


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset declared in a manifest: ``[datasets.NAME]``."""

    name: str
    plugin: str
    task: str
    summary: str = ""
    source: str = "built-in"


_PLUGIN_KEYS = {"module", "summary"}
_MODEL_KEYS = {"plugin", "task", "tasks", "dataset", "summary", "paper", "tags", "defaults", "reference", "smoke"}
_DATASET_KEYS = {"plugin", "task", "summary"}


def _check_keys(kind: str, name: str, table: dict, allowed: set[str], origin: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ZooError(
            f"{origin}: [{kind}.{name}] has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


class Catalogue:
    """Plugins, models and datasets declared by one or more manifests."""

    def __init__(self) -> None:
        self.plugins: dict[str, PluginEntry] = {}
        self.models: dict[str, ModelEntry] = {}
        self.datasets: dict[str, DatasetEntry] = {}

    # -- building -------------------------------------------------------------------------
    def add_manifest(self, data: dict[str, Any], origin: str, source: str = "built-in") -> None:
        """Add the declarations of one parsed manifest; ``origin`` names it in error messages."""
        unknown = set(data) - {"plugins", "models", "datasets"}
        if unknown:
            raise ZooError(f"{origin}: unknown top-level table(s) {sorted(unknown)}")
        for name, table in data.get("plugins", {}).items():
            _check_keys("plugins", name, table, _PLUGIN_KEYS, origin)
            if "module" not in table:
                raise ZooError(f"{origin}: [plugins.{name}] needs a 'module' (the import path)")
            self._add(self.plugins, "plugin", name, PluginEntry(name=name, source=source, **table), origin)
        for name, table in data.get("models", {}).items():
            _check_keys("models", name, table, _MODEL_KEYS, origin)
            tasks = table.get("tasks", table.get("task"))
            missing = [k for k, v in (("plugin", table.get("plugin")), ("task", tasks),
                                      ("dataset", table.get("dataset"))) if not v]
            if missing:
                raise ZooError(f"{origin}: [models.{name}] is missing {', '.join(missing)}")
            entry = ModelEntry(
                name=name,
                plugin=table["plugin"],
                tasks=(tasks,) if isinstance(tasks, str) else tuple(tasks),
                dataset=table["dataset"],
                summary=table.get("summary", ""),
                paper=table.get("paper", ""),
                tags=tuple(table.get("tags", ())),
                defaults=table.get("defaults", {}),
                reference=table.get("reference", {}),
                smoke=table.get("smoke", {}),
                source=source,
            )
            self._add(self.models, "model", name, entry, origin)
        for name, table in data.get("datasets", {}).items():
            _check_keys("datasets", name, table, _DATASET_KEYS, origin)
            self._add(self.datasets, "dataset", name, DatasetEntry(name=name, source=source, **table), origin)

    @staticmethod
    def _add(table: dict, kind: str, name: str, entry: Any, origin: str) -> None:
        if name in table:
            raise ZooError(
                f"{kind} {name!r} is declared twice: by {table[name].source} and by {origin}"
            )
        table[name] = entry

    # -- queries --------------------------------------------------------------------------
    def model(self, name: str) -> ModelEntry:
        """The entry for ``name``; accepts ``plugin/model`` too. Unknown → ZooError with suggestions."""
        if "/" in name:
            plugin, _, name = name.partition("/")
            entry = self.models.get(name)
            if entry is not None and entry.plugin != plugin:
                raise ZooError(f"model {name!r} belongs to plugin {entry.plugin!r}, not {plugin!r}")
        if name not in self.models:
            raise ZooError(did_you_mean(name, self.models, "model"))
        return self.models[name]

    def resolve_trainable(self, name: str) -> ModelEntry:
        """``zoo train NAME``: a model name, ``plugin/model``, or a plugin name (its first model)."""
        if name in self.models or "/" in name:
            return self.model(name)
        if name in self.plugins:
            models = self.models_of(name)
            if not models:
                raise ZooError(f"plugin {name!r} declares no models")
            return models[0]
        with_models = {m.plugin for m in self.models.values()}
        raise ZooError(did_you_mean(name, [*self.models, *with_models], "model or plugin"))

    def dataset(self, name: str) -> DatasetEntry:
        if name not in self.datasets:
            raise ZooError(did_you_mean(name, self.datasets, "dataset"))
        return self.datasets[name]

    def models_of(self, plugin: str) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.plugin == plugin]

    def filter(self, pattern: str | None = None, plugin: str | None = None, task: str | None = None,
               tag: str | None = None) -> list[ModelEntry]:
        """Models matching all given filters; ``pattern`` is a glob or a substring of the name."""
        import fnmatch

        def keep(m: ModelEntry) -> bool:
            if pattern and not (fnmatch.fnmatch(m.name, pattern) or pattern in m.name):
                return False
            if plugin and m.plugin != plugin:
                return False
            if task and task not in m.tasks:
                return False
            return not (tag and tag not in m.tags)

        return [m for m in self.models.values() if keep(m)]


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ZooError(f"{path}: not valid TOML: {err}") from None


@functools.cache
def load_catalogue() -> Catalogue:
    """The built-in registry plus the manifests of installed third-party plugins (entry points)."""
    from zoo.core import discovery

    catalogue = Catalogue()
    catalogue.add_manifest(read_manifest(REGISTRY_PATH), origin=str(REGISTRY_PATH))
    for manifest in discovery.third_party_manifests():
        try:
            catalogue.add_manifest(manifest.data, origin=manifest.origin, source=manifest.source)
        except ZooError as err:
            discovery.record_manifest_error(manifest, str(err))
    return catalogue
