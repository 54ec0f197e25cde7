"""Finding third-party plugins through the ``zoo`` entry-point group, without importing them.

A distribution declares ``[project.entry-points.zoo] NAME = "package.module"`` and ships a
manifest ``zoo.toml`` (same schema as ``registry.toml``) next to that module. We locate the file
where the import system would find the module, without running any of its code, so listing stays
cheap and works for every kind of install: a regular one, ``pip install --target`` and the
editable ones (setuptools' finder-based default, ``editable_mode=compat`` and ``strict``), whose
distribution file lists name no package files. The distribution's file list is the fallback.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

GROUP = "zoo"
MANIFEST_NAME = "zoo.toml"

#: Manifests that could not be read or merged, by entry-point name (shown by `zoo plugins`).
MANIFEST_ERRORS: dict[str, str] = {}
#: The model and dataset names each third-party manifest seems to declare (read from its table
#: headers, so a manifest that fails to parse or validate still says whose names they are).
DECLARED_NAMES: dict[str, dict[str, set[str]]] = {}

# `[models.NAME]`, `[datasets."NAME".defaults]`: the kind and the (possibly quoted) name.
_HEADER = re.compile(r"""^\s*\[\s*(models|datasets)\s*\.\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))""",
                     re.MULTILINE)


@dataclass
class Manifest:
    name: str
    source: str
    origin: str
    data: dict[str, Any] = field(default_factory=dict)


def entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)


def disabled_plugins() -> set[str]:
    """The plugin names in ``ZOO_DISABLE_PLUGINS`` (comma-separated): neither imported nor, for a
    third-party plugin, is its manifest read, so disabling always gets a broken plugin out of the way."""
    return {p.strip() for p in os.environ.get("ZOO_DISABLE_PLUGINS", "").split(",") if p.strip()}


def _distribution_label(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    if dist is None:
        return f"entry point {ep.name}"
    # A dist-info without METADATA has neither name nor version: still a one-line label.
    return f"{dist.metadata['Name'] or ep.name} {dist_version(ep) or '(no version)'}"


def dist_version(ep: metadata.EntryPoint) -> str:
    """The version of the distribution behind an entry point, or "" when it has none."""
    return (ep.dist.version if ep.dist is not None else "") or ""


def third_party_manifests() -> list[Manifest]:
    """The parsed manifests of the enabled third-party plugins. One that cannot be found or read is
    recorded in :data:`MANIFEST_ERRORS` (its plugin then shows as failed) and never stops the rest."""
    manifests = []
    disabled = disabled_plugins()
    for ep in entry_points():
        if ep.name in disabled:
            continue
        try:
            manifest = _read_manifest(ep)
        except Exception as err:  # noqa: BLE001 - a broken distribution must not break `zoo list`
            MANIFEST_ERRORS[ep.name] = f"{type(err).__name__}: {err}"
            continue
        if manifest is not None:
            manifests.append(manifest)
    return manifests


def _read_manifest(ep: metadata.EntryPoint) -> Manifest | None:
    """The manifest next to an entry point's module, or ``None`` when it ships none."""
    module = ep.value.split(":")[0].strip()
    path = locate_manifest(module) or _recorded_manifest(ep, module)
    if path is None:
        # No manifest: the plugin is still loaded; its models show up once registered.
        return None
    try:
        text = Path(path).read_bytes().decode("utf-8")
        DECLARED_NAMES[ep.name] = declared_names(text)
        data = tomllib.loads(text)
    except RecursionError:
        MANIFEST_ERRORS[ep.name] = f"{path}: not valid TOML: nested too deeply"
        return None
    except (OSError, ValueError) as err:  # ValueError: TOMLDecodeError and undecodable UTF-8
        MANIFEST_ERRORS[ep.name] = f"{path}: not valid TOML: {err}"
        return None
    plugins = data.setdefault("plugins", {})
    if isinstance(plugins, dict) and isinstance(plugins.setdefault(ep.name, {}), dict):
        # The entry point declares the plugin; its manifest may add a summary.
        plugins[ep.name].setdefault("module", module)
    # Otherwise the catalogue rejects the manifest with a message saying what `plugins` must be.
    return Manifest(name=ep.name, source=_distribution_label(ep), origin=str(path), data=data)


def locate_manifest(module: str) -> Path | None:
    """``zoo.toml`` in the folder of ``module`` (a package) or of the package above it, found as
    ``import module`` would find them, whatever the install, without importing anything.

    Args:
        module (str): The entry point's module, e.g. ``"zoo_shapes"`` or ``"acme.zoo_plugin"``.
    """
    for folder in _module_folders(module):
        if (folder / MANIFEST_NAME).is_file():
            return folder / MANIFEST_NAME
    return None


def _module_folders(module: str) -> list[Path]:
    """The folders of ``module`` (when a package) and of its parent package, innermost first.

    Only the top-level name goes through the import system's finders (``sys.meta_path`` holds
    setuptools' editable finder); deeper names are looked up on the parent's ``__path__``, because
    :func:`importlib.util.find_spec` would import (run) the parent packages."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        parents: list[str] = []
        for depth in range(1, len(parts)):
            if spec is None or not spec.submodule_search_locations:
                return []
            parents = list(spec.submodule_search_locations)
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth + 1]), parents)
    except (ImportError, ValueError):  # a malformed name, a parent that is not a package
        return []
    if spec is None:
        return []
    own = list(spec.submodule_search_locations or [])
    if not own and len(parts) == 1:
        return []  # a top-level single-file module: its folder (site-packages) is nobody's
    return [Path(p) for p in [*own, *parents] if p]


def _recorded_manifest(ep: metadata.EntryPoint, module: str) -> Path | None:
    """The manifest in the distribution's file list (``RECORD``): where ``import`` cannot find the
    module (it then fails to load, with its own message), its declarations still show."""
    package_dir = module.replace(".", "/")
    files = (ep.dist.files or []) if ep.dist is not None else []
    folders = {package_dir, package_dir.rpartition("/")[0] or "."}
    candidates = [f for f in files if f.name == MANIFEST_NAME and str(f.parent) in folders]
    return Path(candidates[0].locate()) if candidates else None


def declared_names(text: str) -> dict[str, set[str]]:
    """``{"models": {...}, "datasets": {...}}`` from a manifest's table headers (no TOML parsing)."""
    names: dict[str, set[str]] = {"models": set(), "datasets": set()}
    for kind, *quoted in _HEADER.findall(text):
        names[kind].add(next(q for q in quoted if q))
    return names


def broken_declarer(name: str, kind: str = "models") -> str | None:
    """The plugin whose broken manifest seems to declare model (or dataset) ``name``, if any."""
    return next((plugin for plugin in MANIFEST_ERRORS
                 if name in DECLARED_NAMES.get(plugin, {}).get(kind, ())), None)


def explain_unknown(name: str, message: str, kind: str = "models") -> str:
    """``message`` (an "unknown model" error) naming the broken plugin behind ``name``: the one
    whose manifest declares it, or the plugin called ``name``; else the broken plugins, if any."""
    plugin = broken_declarer(name, kind) or (name if name in MANIFEST_ERRORS else None)
    if plugin is not None:
        what = f"plugin {name!r}" if plugin == name else f"{kind[:-1]} {name!r} comes from plugin {plugin!r}, which"
        return (f"{what} failed to load: its manifest is broken: {' '.join(MANIFEST_ERRORS[plugin].split())}; "
                f"fix it (see zoo plugins) or set ZOO_DISABLE_PLUGINS={plugin}")
    if MANIFEST_ERRORS:
        return f"{message}; plugins with a broken manifest: {', '.join(sorted(MANIFEST_ERRORS))} (see zoo plugins)"
    return message


def manifest_warnings() -> list[str]:
    """One line per plugin whose manifest is broken, for stderr (``zoo list``, ``zoo train``)."""
    return [f"plugin {name}: manifest error: {' '.join(error.split())}; see zoo plugins"
            for name, error in sorted(MANIFEST_ERRORS.items())]


def record_manifest_error(manifest: Manifest, message: str) -> None:
    MANIFEST_ERRORS[manifest.name] = message
