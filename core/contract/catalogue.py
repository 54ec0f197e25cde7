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

from zoo.core.contract import discovery
from zoo.core.contract.errors import ZooError, did_you_mean

REGISTRY_PATH = Path(__file__).resolve().parents[2] / "registry.toml"


@dataclass(frozen=True)
class PluginEntry:
    """A plugin declared in a manifest: ``[plugins.NAME]``."""

    name: str
    module: str
    summary: str = ""
    source: str = "built-in"


@dataclass(frozen=True)
class NamedEntry:
    """A command or a logger declared in a manifest: ``[commands.NAME]``, ``[loggers.NAME]``.

    Declared as data so that ``zoo --help`` lists a plugin's commands and ``zoo train --log NAME``
    is checked without importing any plugin (nor torch); the plugin's code provides the behaviour
    (``register_commands``, its training-event hooks).
    """

    name: str
    plugin: str
    summary: str = ""
    source: str = "built-in"


@dataclass(frozen=True)
class ModelEntry:
    """A model declared in a manifest: ``[models.NAME]``.

    ``defaults`` holds per-model overrides of the config sections (``model``, ``data``, ``optim``,
    ``schedule``, ``train``, ``export``); ``reference`` the published result we compare against;
    ``smoke`` further overrides (tiny sizes) used by the per-model tests in ``tests/``.
    ``recipes`` maps a dataset to overrides of the same shape as ``defaults``, merged over them
    when that dataset is chosen (``[models.NAME.recipes.DATASET]``; see :mod:`zoo.core.contract.config`).
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
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
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
            "recipes": self.recipes,
            "source": self.source,
        }


@dataclass(frozen=True)
class DataFile:
    """One downloadable file of a public dataset: ``[[datasets.NAME.files]]``.

    ``path`` is where it lands under a data root (the cache has the roots' layout); an archive
    with ``unpack`` is unpacked into the folder of ``path``, and ``provides`` lists the files the
    loader needs from it. ``sha256``/``md5`` are checksums as published at ``checksum_source``
    (never computed by us); with neither, the file is fetched *unverified*.
    """

    url: str
    path: str
    sha256: str = ""
    md5: str = ""
    checksum_source: str = ""
    size: int | None = None
    unpack: str = ""
    provides: tuple[str, ...] = ()

    @property
    def known_hash(self) -> str | None:
        """pooch's ``known_hash``: ``"sha256:..."``, ``"md5:..."`` or ``None`` (unverified)."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        return f"md5:{self.md5}" if self.md5 else None

    @property
    def needed(self) -> tuple[str, ...]:
        """The files a loader reads from this entry (paths relative to a data root)."""
        if self.provides:
            return self.provides
        if self.unpack == "gz":
            return (self.path.removesuffix(".gz"),)
        return (self.path,)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items() if v not in ("", (), None)}


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset declared in a manifest: ``[datasets.NAME]``; ``files`` are what ``zoo data
    fetch`` downloads (none for generated data and package bundles)."""

    name: str
    plugin: str
    task: str
    summary: str = ""
    source: str = "built-in"
    license: str = ""
    citation: str = ""
    homepage: str = ""
    files: tuple[DataFile, ...] = ()
    #: folders a system package installs the files into (Debian's ``/usr/share/datasets``),
    #: searched after the cache by the loaders and by ``zoo data path``
    system: tuple[str, ...] = ()
    #: the published result on it: ``{model, metric, value, source}`` (``zoo data info`` shows it)
    reference: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "files"}
        data["files"] = [f.as_dict() for f in self.files]
        return data


_PLUGIN_KEYS = {"module", "summary"}
_MODEL_KEYS = {"plugin", "task", "tasks", "dataset", "summary", "paper", "tags", "defaults", "reference", "smoke",
               "recipes"}
#: The config sections a model's ``defaults`` and recipes may override.
_SECTIONS = {"model", "data", "optim", "schedule", "train", "export"}
# reference: the published result on this dataset, {model, metric, value, source} (or a list of them).
_DATASET_KEYS = {"plugin", "task", "summary", "license", "citation", "homepage", "files", "system", "reference"}
_FILE_KEYS = {"url", "path", "sha256", "md5", "checksum_source", "size", "unpack", "provides"}
_UNPACK = ("zip", "tar.gz", "tar", "gz")
_HEX = {"sha256": 64, "md5": 32}
#: Plugin names a manifest may not declare: the core's own tasks are registered under "core".
_RESERVED_PLUGINS = {"core"}


def _table_name(kind: str, name: str) -> str:
    """``[models.NAME]``, with the name quoted when it is not a bare TOML key (one line always)."""
    bare = name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return f"[{kind}.{name if bare else repr(name)}]"


def _recipe_name(model: str, dataset: str) -> str:
    """``[models.my-model.recipes.my-data]`` (names quoted as in :func:`_table_name`)."""
    return f"{_table_name('models', model)[:-1]}.recipes.{_table_name('_', dataset)[3:]}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _tables(data: dict, kind: str, origin: str) -> dict[str, dict]:
    """``data[kind]`` checked to be a table of tables (``[kind.NAME]``), so a manifest's wrong
    types end in a message naming the file rather than in a TypeError somewhere later."""
    tables = data.get(kind, {})
    if not isinstance(tables, dict):
        raise ZooError(f"{origin}: {kind!r} must be a table of [{kind}.NAME] tables, got {_short(tables)}")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ZooError(f"{origin}: {_table_name(kind, name)} must be a table, got {_short(table)}")
    return tables


def _field(kind: str, name: str, table: dict, key: str, expected: type, origin: str, default: Any = None):
    """``table[key]`` if it is of the ``expected`` type (``list`` means a list of strings)."""
    value = table.get(key, default)
    if expected is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, expected)
    if not ok:
        what = {str: "a string", dict: "a table", list: "a list of strings"}[expected]
        raise ZooError(f"{origin}: {_table_name(kind, name)} {key} must be {what}, got {_short(value)}")
    return value


def _check_keys(kind: str, name: str, table: dict, allowed: set[str], origin: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ZooError(
            f"{origin}: {_table_name(kind, name)} has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def _plugin_entry(name: str, table: dict, origin: str, source: str) -> PluginEntry:
    _check_keys("plugins", name, table, _PLUGIN_KEYS, origin)
    if name in _RESERVED_PLUGINS:
        raise ZooError(f"{origin}: plugin name {name!r} is reserved for zoo itself; choose another")
    if "module" not in table:
        raise ZooError(f"{origin}: {_table_name('plugins', name)} needs a 'module' (the import path)")
    return PluginEntry(name=name, module=_field("plugins", name, table, "module", str, origin),
                       summary=_field("plugins", name, table, "summary", str, origin, ""), source=source)


def _named_entry(kind: str, name: str, table: dict, origin: str, source: str) -> NamedEntry:
    _check_keys(kind, name, table, {"plugin", "summary"}, origin)
    if not table.get("plugin"):
        raise ZooError(f"{origin}: {_table_name(kind, name)} is missing plugin")
    return NamedEntry(name=name, plugin=_field(kind, name, table, "plugin", str, origin),
                      summary=_field(kind, name, table, "summary", str, origin, ""), source=source)


def _model_entry(name: str, table: dict, origin: str, source: str) -> ModelEntry:
    _check_keys("models", name, table, _MODEL_KEYS, origin)
    tasks = table.get("tasks", table.get("task"))
    missing = [k for k, v in (("plugin", table.get("plugin")), ("task", tasks),
                              ("dataset", table.get("dataset"))) if not v]
    if missing:
        raise ZooError(f"{origin}: {_table_name('models', name)} is missing {', '.join(missing)}")
    key = "tasks" if "tasks" in table else "task"  # `tasks` (a list, or one string) wins
    tasks = _field("models", name, table, key, str if key == "task" or isinstance(tasks, str) else list, origin)

    def get(field_name: str, expected: type, default: Any) -> Any:
        return _field("models", name, table, field_name, expected, origin, default)

    return ModelEntry(
        name=name, plugin=get("plugin", str, None), tasks=(tasks,) if isinstance(tasks, str) else tuple(tasks),
        dataset=get("dataset", str, None), summary=get("summary", str, ""), paper=get("paper", str, ""),
        tags=tuple(get("tags", list, [])), defaults=get("defaults", dict, {}),
        reference=get("reference", dict, {}), smoke=get("smoke", dict, {}),
        recipes=_recipes(name, get("recipes", dict, {}), origin), source=source,
    )


def _recipes(model: str, recipes: dict, origin: str) -> dict[str, dict]:
    """``[models.NAME.recipes.DATASET]`` tables checked for shape: config sections only, each a
    table, and no ``data.name`` (the table's name is the dataset). The values are checked against
    the model's config schema when it is resolved (``zoo doctor``, ``zoo train``)."""
    for dataset, recipe in recipes.items():
        here = _recipe_name(model, dataset)
        if not isinstance(recipe, dict):
            raise ZooError(f"{origin}: {here} must be a table, got {_short(recipe)}")
        unknown = set(recipe) - _SECTIONS
        if unknown:
            raise ZooError(f"{origin}: {here} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_SECTIONS)}")
        for section, table in recipe.items():
            if not isinstance(table, dict):
                raise ZooError(f"{origin}: {here} {section} must be a table, got {_short(table)}")
        if "name" in recipe.get("data", {}):
            raise ZooError(f"{origin}: {here} sets data.name; the recipe's table name is its dataset")
    return recipes


def _dataset_entry(name: str, table: dict, origin: str, source: str) -> DatasetEntry:
    _check_keys("datasets", name, table, _DATASET_KEYS, origin)
    missing = [k for k in ("plugin", "task") if not table.get(k)]
    if missing:
        raise ZooError(f"{origin}: {_table_name('datasets', name)} is missing {', '.join(missing)}")

    def get(field_name: str, default: Any) -> Any:
        return _field("datasets", name, table, field_name, str, origin, default)

    files = table.get("files", [])
    if not isinstance(files, list):
        raise ZooError(f"{origin}: {_table_name('datasets', name)} files must be an array of tables "
                       f"([[datasets.{name}.files]]), got {_short(files)}")
    return DatasetEntry(name=name, plugin=get("plugin", None), task=get("task", None),
                        summary=get("summary", ""), source=source, license=get("license", ""),
                        citation=get("citation", ""), homepage=get("homepage", ""),
                        files=tuple(_data_file(name, i, f, origin) for i, f in enumerate(files)),
                        system=tuple(_field("datasets", name, table, "system", list, origin, [])),
                        reference=_field("datasets", name, table, "reference", dict, origin, {}))


def _data_file(dataset: str, index: int, table: Any, origin: str) -> DataFile:
    """One ``[[datasets.NAME.files]]`` table, checked: the message names the dataset, the file's
    position and the key."""
    where = f"{origin}: {_table_name('datasets', dataset)} files[{index}]"
    if not isinstance(table, dict):
        raise ZooError(f"{where} must be a table, got {_short(table)}")
    unknown = set(table) - _FILE_KEYS
    if unknown:
        raise ZooError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_FILE_KEYS)}")
    for key in ("url", "path"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ZooError(f"{where} needs {key} (a string), got {_short(table.get(key))}")
    path = table["path"]
    if path.startswith("/") or ".." in path.split("/") or "\\" in path:
        raise ZooError(f"{where} path must be relative to a data root with '/' and no '..', got {path!r}")
    for key in ("sha256", "md5", "checksum_source", "unpack"):
        if not isinstance(table.get(key, ""), str):
            raise ZooError(f"{where} {key} must be a string, got {_short(table[key])}")
    for key, length in _HEX.items():
        value = table.get(key, "")
        if value and (len(value) != length or any(c not in "0123456789abcdefABCDEF" for c in value)):
            raise ZooError(f"{where} {key} must be {length} hex digits, got {_short(value)}")
    size = table.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ZooError(f"{where} size must be a number of bytes, got {_short(size)}")
    unpack = table.get("unpack", "")
    if unpack and unpack not in _UNPACK:
        raise ZooError(f"{where} unpack must be one of {', '.join(_UNPACK)}, got {unpack!r}")
    provides = table.get("provides", [])
    if not (isinstance(provides, list) and all(isinstance(p, str) and p for p in provides)):
        raise ZooError(f"{where} provides must be a list of paths, got {_short(provides)}")
    if provides and not unpack:
        raise ZooError(f"{where} provides needs unpack (the files come out of an archive)")
    return DataFile(url=table["url"], path=path, sha256=table.get("sha256", "").lower(),
                    md5=table.get("md5", "").lower(), checksum_source=table.get("checksum_source", ""),
                    size=size, unpack=unpack, provides=tuple(provides))


class Catalogue:
    """Plugins, models and datasets declared by one or more manifests."""

    def __init__(self) -> None:
        self.plugins: dict[str, PluginEntry] = {}
        self.models: dict[str, ModelEntry] = {}
        self.datasets: dict[str, DatasetEntry] = {}
        self.commands: dict[str, NamedEntry] = {}
        self.loggers: dict[str, NamedEntry] = {}

    # -- building -------------------------------------------------------------------------
    def add_manifest(self, data: dict[str, Any], origin: str, source: str = "built-in") -> None:
        """Add the declarations of one parsed manifest; ``origin`` names it in error messages.

        The whole manifest is checked (keys, value types, names already declared) before anything
        is added, so a rejected manifest leaves the catalogue as it was: a third-party plugin's
        broken manifest fails that plugin alone.
        """
        if not isinstance(data, dict):
            raise ZooError(f"{origin}: a manifest must be a TOML table, got {_short(data)}")
        unknown = set(data) - {"plugins", "models", "datasets", "commands", "loggers"}
        if unknown:
            raise ZooError(f"{origin}: unknown top-level table(s) {sorted(unknown)}; "
                           f"allowed: ['commands', 'datasets', 'loggers', 'models', 'plugins']")
        parsed = [
            (self.plugins, "plugin", {n: _plugin_entry(n, t, origin, source)
                                      for n, t in _tables(data, "plugins", origin).items()}),
            (self.models, "model", {n: _model_entry(n, t, origin, source)
                                    for n, t in _tables(data, "models", origin).items()}),
            (self.datasets, "dataset", {n: _dataset_entry(n, t, origin, source)
                                        for n, t in _tables(data, "datasets", origin).items()}),
            *[(getattr(self, kind), kind[:-1], {n: _named_entry(kind, n, t, origin, source)
                                                for n, t in _tables(data, kind, origin).items()})
              for kind in ("commands", "loggers")],
        ]
        for table, kind, entries in parsed:
            for name in entries:
                self._check_new(table, kind, name, origin)
        self._check_recipe_datasets(parsed[1][2], {**self.datasets, **parsed[2][2]}, origin)
        for table, _, entries in parsed:
            table.update(entries)

    @staticmethod
    def _check_recipe_datasets(models: dict[str, ModelEntry], datasets: dict[str, DatasetEntry],
                               origin: str) -> None:
        """Each recipe names a declared dataset (this manifest's or one declared before) of a task
        the model takes: a recipe nobody can select is a typo."""
        for model in models.values():
            for name in model.recipes:
                where = _recipe_name(model.name, name)
                if name not in datasets:
                    raise ZooError(f"{origin}: {where}: " + did_you_mean(name, datasets, "dataset",
                                                                         listed_by="zoo list --datasets"))
                if datasets[name].task not in model.tasks:
                    raise ZooError(f"{origin}: {where}: dataset {name!r} is a {datasets[name].task} dataset; "
                                   f"model {model.name!r} is for {', '.join(model.tasks)}")

    @staticmethod
    def _check_new(table: dict, kind: str, name: str, origin: str) -> None:
        if name in table:
            raise ZooError(
                f"{kind} {name!r} is declared twice: by {table[name].source} and by {origin}"
            )

    # -- queries --------------------------------------------------------------------------
    def model(self, name: str) -> ModelEntry:
        """The entry for ``name``; accepts ``plugin/model`` too. Unknown → ZooError with suggestions."""
        if "/" in name:
            plugin, _, name = name.partition("/")
            entry = self.models.get(name)
            if entry is not None and entry.plugin != plugin:
                raise ZooError(f"model {name!r} belongs to plugin {entry.plugin!r}, not {plugin!r}")
        if name not in self.models:
            raise ZooError(discovery.explain_unknown(name, did_you_mean(name, self.models, "model")))
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
        raise ZooError(discovery.explain_unknown(name, did_you_mean(name, [*self.models, *with_models],
                                                                    "model or plugin")))

    def dataset(self, name: str) -> DatasetEntry:
        if name not in self.datasets:
            raise ZooError(did_you_mean(name, self.datasets, "dataset", listed_by="zoo list --datasets"))
        return self.datasets[name]

    def logger(self, name: str) -> NamedEntry:
        """The logger ``--log NAME`` enables; unknown → ZooError listing the declared ones."""
        if name not in self.loggers:
            raise ZooError(did_you_mean(name, self.loggers, "logger"))
        return self.loggers[name]

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
    except RecursionError:
        raise ZooError(f"{path}: not valid TOML: nested too deeply") from None
    except ValueError as err:  # TOMLDecodeError, and bytes that are not UTF-8
        raise ZooError(f"{path}: not valid TOML: {err}") from None


@functools.cache
def load_catalogue() -> Catalogue:
    """The built-in registry plus the manifests of installed third-party plugins (entry points)."""
    from zoo.core.contract import discovery

    catalogue = Catalogue()
    catalogue.add_manifest(read_manifest(REGISTRY_PATH), origin=str(REGISTRY_PATH))
    for manifest in discovery.third_party_manifests():
        try:
            catalogue.add_manifest(manifest.data, origin=manifest.origin, source=manifest.source)
        except ZooError as err:
            discovery.record_manifest_error(manifest, str(err))
        except Exception as err:  # noqa: BLE001 - a third-party manifest must never break `zoo list`
            discovery.record_manifest_error(manifest, f"{manifest.origin}: {type(err).__name__}: {err}")
    return catalogue
