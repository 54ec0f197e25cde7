"""Hub references: ``[HUB/]NAME[:TAG]``, and ``hub:`` + that where a run directory is expected.

``HUB`` is a folder path, an fsspec URL (``file://``, ``s3://``, ``gs://``, ``https://``) or
``hf://USER`` (then ``NAME`` is the Hugging Face repository ``USER/NAME``). Without ``HUB`` the
default hub is used: ``$ZOO_HUB``, else a ``hub`` folder in the user data directory
(platformdirs: ``~/.local/share/zoo/hub`` on Linux). Without ``TAG`` a push takes the next
``vN`` and a pull the hub's latest tag.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from zoo.core.contract.errors import ZooError

#: What ``zoo predict``, ``serve``, ``export``, ``runs show`` and ``train --init`` accept in place
#: of a run directory: ``hub:NAME[:TAG]`` or ``hub:HUB/NAME[:TAG]``.
PREFIX = "hub:"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def default_hub() -> str:
    """``$ZOO_HUB``, else ``<user data dir>/hub`` (a plain folder, created on first push)."""
    env = os.environ.get("ZOO_HUB")
    if env:
        return env
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("zoo"), "hub")


def check_name(value: str, what: str) -> str:
    """A model name or tag: letters, digits, ``_ . -``, starting with a letter or digit (it becomes
    a folder name on every store, so no ``/``, no ``..``)."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise ZooError(f"hub {what} {value!r} is not valid: use letters, digits, '_', '.', '-' "
                       f"(starting with a letter or digit, at most 96 characters)")
    return value


@dataclass(frozen=True)
class HubRef:
    """A model on a hub: ``hub`` (path or URL), ``name`` and ``tag`` (``None``: latest / next)."""

    hub: str
    name: str
    tag: str | None = None

    @classmethod
    def parse(cls, text: str) -> HubRef:
        """``[HUB/]NAME[:TAG]`` (a leading ``hub:`` is dropped). The tag is the part after the last
        ``:`` of the last path segment, so ``https://host:8000/models/my-net:v1`` works."""
        if text.startswith(PREFIX):
            text = text[len(PREFIX):]
        hub, sep, last = text.rstrip("/").rpartition("/")
        name, colon, tag = last.partition(":")
        if not name:
            raise ZooError(f"{text!r} names no model: expected [HUB/]NAME[:TAG]")
        if colon and not tag:
            raise ZooError(f"{text!r}: empty tag after ':' (expected NAME:TAG)")
        check_name(name, "model name")
        if tag:
            check_name(tag, "tag")
        hub = hub if sep else default_hub()
        if "://" not in hub:  # a folder: absolute, so a reference saved in config.toml means one place
            hub = os.path.abspath(os.path.expanduser(hub))
        return cls(hub, name, tag or None)

    def with_tag(self, tag: str) -> HubRef:
        return HubRef(self.hub, self.name, tag)

    def __str__(self) -> str:
        return f"{self.hub.rstrip('/')}/{self.name}" + (f":{self.tag}" if self.tag else "")


def is_hub_target(target: str) -> bool:
    """Whether a command's RUN_DIR argument is a hub reference (``hub:...``)."""
    return isinstance(target, str) and target.startswith(PREFIX)
