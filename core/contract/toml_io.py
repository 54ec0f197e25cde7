"""Reading (tomllib) and writing (tomli-w) TOML: light imports, used by the torch-free catalogue commands."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from zoo.core.contract.errors import ZooError


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"config file {str(path)!r} does not exist")
    name = f"config file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ZooError(f"{name} is not valid TOML: {err}") from None
    except OSError as err:  # no permission, or the file went away since the check
        raise ZooError(f"{name} cannot be read: {err.strerror or err}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ZooError(f"{name} is not valid TOML: {err}") from None
    except RecursionError:
        raise ZooError(f"{name} is not valid TOML: nested too deeply") from None


def _without_none(data: dict) -> dict:
    """``data`` with every ``None`` value left out, at any depth of tables (TOML has no null)."""
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None}


def dumps_toml(data: dict) -> str:
    """Write nested dicts of scalars and lists as TOML with tomli-w (``None`` values are omitted).

    Raises:
        TypeError: a value TOML cannot hold (an object, ``None`` inside a list).
    """
    import tomli_w

    return tomli_w.dumps(_without_none(data))


def flatten(data: dict, prefix: str = "", keep_empty: bool = False) -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"optim": {"lr": 0.1}}`` → ``{"optim.lr": 0.1}``.

    An empty table leaves no key, or with ``keep_empty`` is a key of its own (value ``{}``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and (value or not keep_empty):
            out.update(flatten(value, f"{prefix}{key}.", keep_empty))
        else:
            out[f"{prefix}{key}"] = value
    return out
