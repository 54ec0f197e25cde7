"""The user's own data: ``table`` (CSV/Parquet), ``text`` (CSV/TSV/JSONL sentences with labels),
``tagged-text`` (CoNLL token/tag lines) and ``pairs`` (source → target), chosen with
``data.name`` and pointed at with ``data.options.path``.

A loader that can turn raw user input into model inputs puts ``info.extra["raw_inputs"] =
{"kind": KIND, ...}`` in its DataInfo; the run stores it as ``RUN/inputs.json``, and
``zoo predict RUN --input FILE`` / ``zoo serve`` call the decoder these datasets register
(:func:`decode_inputs`), which picks the function :data:`DECODERS` names for KIND.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
from zoo.core.contract.errors import ZooError

#: kind → "module:function" of its decoder (imported only when used).
DECODERS: dict[str, str] = {
    "table": "zoo.plugins.datasets.own.table:decode_inputs",
    "text": "zoo.plugins.datasets.own.text:decode_text",
    "tagged-text": "zoo.plugins.datasets.own.text:decode_tagged",
    "pairs": "zoo.plugins.datasets.own.pairs:decode_inputs",
    "image-folder": "zoo.plugins.datasets.own.images:decode_inputs",
}


def decode_inputs(meta: dict[str, Any], path_or_payload: str | Path | Any) -> dict[str, np.ndarray]:
    """Raw input (a file, or what a request carried) → the model's input arrays, by ``meta["kind"]``."""
    kind = meta.get("kind") if isinstance(meta, dict) else None
    target = DECODERS.get(kind)
    if target is None:
        raise ZooError(f"the run's inputs.json names kind {kind!r}, which no decoder reads "
                       f"(known: {', '.join(sorted(DECODERS))})")
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)(meta, path_or_payload)
