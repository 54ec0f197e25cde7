"""Checkpoint files: written by the trainer, read back without ever running code from them.

A checkpoint is a ``torch.save`` file that holds only tensors and plain values (dicts, lists,
tuples, strings, numbers, booleans, ``None``), so it is read with ``torch.load(weights_only=True)``:
whoever made the file, unpickling it cannot import a module or call a function. Run directories
are shared and downloaded, so a checkpoint is untrusted input like any other file.

The file also carries a SHA-256 digest of its contents (every key, value, tensor dtype, shape and
byte), checked on load: a truncated file fails to unpickle, and a file whose bytes were damaged
in place (a zeroed block, a bad copy) no longer matches its digest. Either way the command stops
with one line naming the file instead of training on, or exporting, altered weights.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo.core.contract.errors import ZooError

DIGEST_KEY = "sha256"


class CheckpointError(ZooError):
    """A checkpoint that cannot be trusted: unreadable, damaged, or holding more than data."""


def _feed(h, value: Any) -> None:
    """Feed ``value`` into hash ``h`` in a fixed, type-tagged order (dicts keep insertion order,
    which ``torch.save``/``torch.load`` preserve)."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.is_sparse:
            tensor = tensor.coalesce()
            h.update(b"S")
            _feed(h, tensor.indices())
            _feed(h, tensor.values())
            return
        h.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        h.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())  # its buffer: no bytes copy
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for key, item in value.items():
            _feed(h, key)
            _feed(h, item)
    elif isinstance(value, (list, tuple)):
        h.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}".encode())
        for item in value:
            _feed(h, item)
    else:  # str, int, float, bool, None, torch.dtype/device/Size: their repr is exact
        h.update(f"V{type(value).__name__}:{value!r};".encode())


def content_digest(payload: dict[str, Any]) -> str:
    """SHA-256 over everything in ``payload`` except its own digest entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != DIGEST_KEY})
    return h.hexdigest()


def dumps(payload: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint file holding ``payload`` and its digest."""
    buffer = io.BytesIO()
    torch.save({**payload, DIGEST_KEY: content_digest(payload)}, buffer)
    return buffer.getvalue()


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify the checkpoint at ``path``; :class:`CheckpointError` if it cannot be trusted.

    Files written before checkpoints carried a digest load unverified (they still load as data
    only).
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found is None:  # not a pickle of anything: random or damaged bytes
            raise CheckpointError(f"checkpoint {path} is damaged or not a zoo checkpoint") from None
        raise CheckpointError(
            f"refusing to load {path}: it names {found.group(1)}, which could run code when loaded; "
            f"zoo checkpoints hold only tensors and plain values") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is damaged or not a zoo checkpoint ({reason})") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} is not a zoo checkpoint (no model weights in it)")
    expected = payload.get(DIGEST_KEY)
    if expected is not None and content_digest(payload) != expected:
        raise CheckpointError(f"checkpoint {path} is damaged: its contents do not match the SHA-256 "
                              f"digest written with it (a partial copy or a disk error?)")
    return payload
