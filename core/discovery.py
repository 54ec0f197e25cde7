"""Finding third-party plugins through the ``zoo`` entry-point group, without importing them.

A distribution declares ``[project.entry-points.zoo] NAME = "package.module"`` and ships a
manifest ``zoo.toml`` (same schema as ``registry.toml``) next to that module. We locate the file
through the distribution's file list, so listing stays cheap: no plugin code runs here.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

GROUP = "zoo"
MANIFEST_NAME = "zoo.toml"

#: Manifests that could not be read or merged, by entry-point name (shown by `zoo plugins`).
MANIFEST_ERRORS: dict[str, str] = {}


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
    package_dir = ep.value.split(":")[0].replace(".", "/")
    files = (ep.dist.files or []) if ep.dist is not None else []
    # The manifest sits in the entry point's package, or in the package above its module.
    folders = {package_dir, package_dir.rpartition("/")[0] or "."}
    candidates = [f for f in files if f.name == MANIFEST_NAME and str(f.parent) in folders]
    if not candidates:
        # No manifest: the plugin is still loaded; its models show up once registered.
        return None
    path = candidates[0].locate()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except RecursionError:
        MANIFEST_ERRORS[ep.name] = f"{path}: not valid TOML: nested too deeply"
        return None
    except (OSError, ValueError) as err:  # ValueError: TOMLDecodeError and undecodable UTF-8
        MANIFEST_ERRORS[ep.name] = f"{path}: not valid TOML: {err}"
        return None
    plugins = data.setdefault("plugins", {})
    if isinstance(plugins, dict) and isinstance(plugins.setdefault(ep.name, {}), dict):
        # The entry point declares the plugin; its manifest may add a summary.
        plugins[ep.name].setdefault("module", ep.value.split(":")[0])
    # Otherwise the catalogue rejects the manifest with a message saying what `plugins` must be.
    return Manifest(name=ep.name, source=_distribution_label(ep), origin=str(path), data=data)


def record_manifest_error(manifest: Manifest, message: str) -> None:
    MANIFEST_ERRORS[manifest.name] = message
