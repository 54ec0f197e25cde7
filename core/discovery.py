"""Finding third-party plugins through the ``zoo`` entry-point group, without importing them.

A distribution declares ``[project.entry-points.zoo] NAME = "package.module"`` and ships a
manifest ``zoo.toml`` (same schema as ``registry.toml``) next to that module. We locate the file
through the distribution's file list, so listing stays cheap: no plugin code runs here.
"""

from __future__ import annotations

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


def _distribution_label(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else f"entry point {ep.name}"


def third_party_manifests() -> list[Manifest]:
    manifests = []
    for ep in entry_points():
        source = _distribution_label(ep)
        package_dir = ep.value.split(":")[0].replace(".", "/")
        files = (ep.dist.files or []) if ep.dist is not None else []
        # The manifest sits in the entry point's package, or in the package above its module.
        folders = {package_dir, package_dir.rpartition("/")[0] or "."}
        candidates = [f for f in files if f.name == MANIFEST_NAME and str(f.parent) in folders]
        if not candidates:
            # No manifest: the plugin is still loaded; its models show up once registered.
            continue
        path = candidates[0].locate()
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as err:
            MANIFEST_ERRORS[ep.name] = f"{path}: {err}"
            continue
        data.setdefault("plugins", {}).setdefault(ep.name, {"module": ep.value.split(":")[0]})
        manifests.append(Manifest(name=ep.name, source=source, origin=str(path), data=data))
    return manifests


def record_manifest_error(manifest: Manifest, message: str) -> None:
    MANIFEST_ERRORS[manifest.name] = message
