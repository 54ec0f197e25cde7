"""A pushed model: the folder ``zoo push`` uploads, built from a finished run, and its checks.

    README.md           the model card (:mod:`zoo.core.hub.card`)
    model.onnx          the parity-checked export (model.onnx.data too, when the weights are external)
    checkpoint-best.pt  the best weights only (``{"model": state_dict, "data_info": ...}``), a
                        zoo checkpoint: ``torch.load(weights_only=True)`` reads it, its digest is checked
    config.toml         the resolved config: ``zoo train MODEL --config config.toml`` reproduces the run
    summary.json        the run's summary (test metrics, parity, versions)
    metrics.jsonl       the per-epoch record, inputs.json when the run reads raw input
    manifest.json       SHA-256 and size of every file above

The folder is laid out as a run directory, so every command that reads runs reads a pulled model.
``data_info`` (input shape, classes, statistics, plain extras) lets :func:`zoo.pull` build the torch
module without the training data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from zoo.core.contract.errors import ZooError
from zoo.core.hub.store import MANIFEST, HubError
from zoo.core.train.runs import Run

#: Run files copied as they are (when the run has them).
COPIED = (Run.CONFIG, Run.ONNX, "model.onnx.data", Run.INPUTS, Run.METRICS)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(value: Any) -> tuple[bool, Any]:
    """``(True, value)`` when a checkpoint can hold ``value`` (tensors and plain values only)."""
    import torch

    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return True, value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return all(ok for ok, _ in items), type(value)(v for _, v in items)
    if isinstance(value, dict):
        items = {k: _plain(v) for k, v in value.items()}
        ok = all(isinstance(k, str) and good for k, (good, _) in items.items())
        return ok, {k: v for k, (_, v) in items.items()}
    return False, None


def plain_info(info) -> dict[str, Any]:
    """The DataInfo fields a checkpoint can hold; ``extra`` entries that are objects are left out."""
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(info) if f.name != "extra"}
    extra = {}
    for key, value in info.extra.items():
        ok, kept = _plain(value)
        if ok:
            extra[key] = kept
    return {**fields, "input_shape": list(fields["input_shape"]), "extra": extra}


def _finished(run_dir: str) -> Run:
    run = Run.open(run_dir)
    summary = run.read_summary()
    if summary.get("status") != "finished" or not run.file(Run.ONNX).is_file():
        state = summary.get("status", "not finished")
        export = summary.get("export", "no model.onnx")
        raise ZooError(f"{run_dir} is not a finished, exported run (status {state}, export {export}); "
                       f"push a run that trained to the end with a parity-checked model.onnx")
    return run


def build(run_dir: str, dest: Path, name: str, tag: str, license_: str | None) -> dict[str, Any]:
    """Write the push folder of ``run_dir`` into ``dest``; returns its manifest."""
    from zoo.core import api
    from zoo.core.train import checkpoint
    from zoo.core.hub import card

    run = _finished(run_dir)
    _, entry, _, net, dataset, _, _ = api.load_run(run_dir)  # the best weights, checked to fit
    for file in COPIED:
        if run.file(file).is_file():
            shutil.copyfile(run.file(file), dest / file)
    weights = {"model": net.state_dict(), "data_info": plain_info(dataset.info)}
    (dest / Run.BEST).write_bytes(checkpoint.dumps(weights))
    summary = {**run.read_summary(), "onnx": Run.ONNX, "hub": {"name": name, "tag": tag}}
    (dest / Run.SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    meta = card.card_metadata(summary, _dataset_info(summary.get("dataset")), entry.as_dict(), license_)
    (dest / "README.md").write_text(card.render(meta, name, tag), encoding="utf-8")
    files = {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size} for p in sorted(dest.iterdir())}
    from zoo import __version__

    manifest = {"format": "zoo-hub/1", "name": name, "tag": tag, "model": summary.get("model"),
                "pushed": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "zoo_version": __version__,
                "card": meta, "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _dataset_info(name: str | None) -> dict[str, Any]:
    """The catalogue's dataset facts (license, citation), ``{}`` for own data."""
    from zoo.core.contract.catalogue import load_catalogue

    entry = load_catalogue().datasets.get(name or "")
    return entry.as_dict() if entry is not None else {}


def verify(folder: Path, expected_manifest: str | None, what: str) -> dict[str, Any]:
    """Check a downloaded (or cached) folder: the manifest against the index's SHA-256 (when the hub
    has an index), every listed file against the manifest. Returns the manifest; raises
    :class:`HubError` naming the first problem."""
    path = folder / MANIFEST
    if not path.is_file():
        raise HubError(f"{what}: {MANIFEST} is missing")
    raw = path.read_bytes()
    if expected_manifest is not None and hashlib.sha256(raw).hexdigest() != expected_manifest:
        raise HubError(f"{what}: {MANIFEST} does not match the SHA-256 the hub's index records for this "
                       f"tag (changed after the push?)")
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise HubError(f"{what}: {MANIFEST} is not a zoo manifest") from None
    for file, facts in files.items():
        if Path(file).name != file or file.startswith(".") or file == MANIFEST:
            raise HubError(f"{what}: the manifest lists {file!r}, which is not a plain file name")
        local = folder / file
        if not local.is_file():
            raise HubError(f"{what}: {file} is missing (listed in the manifest)")
        got = sha256_file(local)
        if got != facts.get("sha256"):
            raise HubError(f"{what}: {file} does not match its SHA-256 in the manifest "
                           f"(expected {str(facts.get('sha256'))[:16]}..., got {got[:16]}...)")
    return manifest
