"""Reading and writing TOML (standard library only: used by the torch-free catalogue commands)."""

from __future__ import annotations

import datetime
import re
import tomllib
from pathlib import Path
from typing import Any

from zoo.core.contract.errors import ZooError


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"config file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ZooError(f"config file {str(path)!r} is not valid TOML: {err}") from None
    except RecursionError:
        raise ZooError(f"config file {str(path)!r} is not valid TOML: nested too deeply") from None
    except OSError as err:  # no permission, or the file went away since the check
        raise ZooError(f"config file {str(path)!r} cannot be read: {err.strerror or err}") from None


#: Characters a TOML basic string must escape: controls other than tab, the quote and the backslash.
_ESCAPE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f"\\]')
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _toml_string(value: str) -> str:
    """A TOML basic string that reads back as ``value`` (every control character escaped)."""
    return '"' + _ESCAPE.sub(lambda m: _SHORT_ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), value) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (datetime.date, datetime.time)):  # TOML's own date/time literals
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    # fullmatch: `$` would let a key ending in a newline through unquoted.
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def dumps_toml(data: dict, _prefix: str = "") -> str:
    """Write nested dicts of scalars and lists as TOML (``None`` values are omitted)."""
    lines, tables = [], []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    out = "\n".join(lines)
    for key, value in tables:
        name = f"{_prefix}{_toml_key(key)}"
        out = out.rstrip("\n") + ("\n\n" if out else "") + f"[{name}]\n" + dumps_toml(value, name + ".")
    return out.strip() + "\n"


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"optim": {"lr": 0.1}}`` → ``{"optim.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
