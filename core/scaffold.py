"""``zoo new-plugin NAME``: write a pip-installable plugin package that works out of the box.

The generated package follows the project's own style: a manifest (``zoo.toml``) that makes its
model show in ``zoo list`` without importing it, a pydantic config with descriptions and bounds,
a builder with a docstring and shapes, a dataset hook example, and tests that pass as generated.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import string
from dataclasses import dataclass
from pathlib import Path

from zoo.core.contract.errors import ZooError

# Lower-case words joined by single '-' or '_': `shapes`, `my-family`, `my_family2`.
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginNames:
    """Every name ``zoo new-plugin NAME`` derives from NAME.

    ``zoo new-plugin my-family`` gives the plugin (entry-point) name ``my-family``, the
    distribution ``zoo-my-family`` (what ``pip install`` and PyPI call it), the import package
    ``zoo_my_family``, the model ``my-family-net`` and the dataset ``my-family-blobs``.
    """

    plugin: str
    distribution: str
    module: str
    model: str
    dataset: str

    @classmethod
    def derive(cls, name: str) -> PluginNames:
        if not _NAME.match(name):
            raise ZooError(f"plugin name {name!r} must be lower-case letters and digits, words joined by '-' "
                           f"or '_', starting with a letter (e.g. my-family: distribution zoo-my-family, "
                           f"module zoo_my_family)")
        dashed = name.replace("_", "-")
        return cls(plugin=name, distribution=f"zoo-{dashed}", module=f"zoo_{name.replace('-', '_')}",
                   model=f"{dashed}-net", dataset=f"{dashed}-blobs")


def _files(names: PluginNames, zoo_version: str) -> dict[str, str]:
    """The package's files, relative path → text: the templates of ``zoo.core/templates/plugin``.

    Template files are package data (``*.tmpl``, so no tool takes them for modules); their
    ``${name}``, ``${distribution}``, ``${module}``, ``${model}``, ``${dataset}`` and
    ``${zoo_version}`` are filled in, and a ``__module__`` folder is named after the module.
    """
    values = {**dataclasses.asdict(names), "name": names.plugin, "zoo_version": zoo_version}
    root = importlib.resources.files("zoo.core") / "templates" / "plugin"
    out: dict[str, str] = {}
    pending = [(root, "")]
    while pending:  # importlib.resources has no rglob: walk the folders
        folder, prefix = pending.pop()
        for item in sorted(folder.iterdir(), key=lambda t: t.name):
            name = item.name.replace("__module__", names.module)
            if item.is_dir():
                pending.append((item, f"{prefix}{name}/"))
            elif name.endswith(".tmpl"):
                text = string.Template(item.read_text(encoding="utf-8")).substitute(values)
                out[prefix + name.removesuffix(".tmpl")] = text
    return out


def new_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the package of plugin ``name`` (see :class:`PluginNames`) into ``directory``.

    Returns:
        The package's folder, ``directory/zoo-NAME`` (dashes for underscores).
    """
    from zoo import __version__

    names = PluginNames.derive(name)
    root = Path(directory) / names.distribution
    if root.exists() and any(root.iterdir()):
        raise ZooError(f"{root} already exists and is not empty")
    for relative, text in _files(names, __version__).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
