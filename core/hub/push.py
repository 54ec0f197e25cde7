"""``zoo push``, ``zoo hub list`` and ``zoo hub show``."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.core.hub import package
from zoo.core.hub.ref import HubRef, check_name, default_hub
from zoo.core.hub.store import MANIFEST, HubError, open_store


def default_name(run_dir: str) -> str:
    """``MODEL-DATASET`` from the run's summary (``my-net-iris``), the name a push takes by default."""
    from zoo.core.train.runs import Run

    summary = Run.open(run_dir).read_summary()
    name = f"{summary.get('model', 'model')}-{summary.get('dataset', 'data')}"
    return check_name(re.sub(r"[^A-Za-z0-9_.-]", "-", name), "model name")


def _next_tag(tags: list[str]) -> str:
    """``v1``, then one past the highest ``vN`` pushed so far."""
    numbers = [int(t[1:]) for t in tags if re.fullmatch(r"v\d+", t)]
    return f"v{max(numbers, default=0) + 1}"


def push(run_dir: str, target: str | None = None, force: bool = False, license_: str | None = None,
         log=None) -> dict[str, Any]:
    """Publish a finished run as ``[HUB/]NAME[:TAG]`` (default: ``MODEL-DATASET`` on the default hub,
    the next ``vN``). Returns ``{"ref", "files", "manifest_sha256"}``."""
    ref = HubRef.parse(target) if target else HubRef(default_hub(), default_name(run_dir))
    store = open_store(ref.hub)
    if store.read_only:
        raise HubError(f"hub {ref.hub} is read-only (HTTP); push to a folder or a writable URL")
    tag = ref.tag or _next_tag(store.tags(ref.name))
    if store.has_tag(ref.name, tag) and not force:  # before the (slow) build; checked again under the lock
        raise HubError(f"{ref.name}:{tag} already exists on {ref.hub}; tags are immutable: push another "
                       f"tag, or pass --force to replace it")
    folder = Path(tempfile.mkdtemp(prefix="zoo-push-"))
    try:
        manifest = package.build(run_dir, folder, ref.name, tag, license_)
        digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
        zoo = manifest["card"]["zoo"]
        row = {"manifest_sha256": digest, "pushed": manifest["pushed"], "model": zoo["model"],
               "dataset": zoo["dataset"], "task": zoo["task"], "metrics": zoo["metrics"],
               "parity": zoo["parity"]}
        if log:
            log(f"pushing {run_dir} as {ref.name}:{tag} to {ref.hub} ({len(manifest['files'])} files)")
        store.publish(folder, ref.name, tag, row, force)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"ref": str(ref.with_tag(tag)), "files": sorted(manifest["files"]), "manifest_sha256": digest}


def list_models(hub: str | None = None) -> list[dict[str, Any]]:
    """One row per model and tag on ``hub`` (default hub when ``None``), newest tag last."""
    store = open_store(hub or default_hub())
    rows = []
    for name, entry in sorted(store.index()["models"].items()):
        tags = entry.get("tags") or {entry.get("latest", "main"): {}}
        for tag, facts in tags.items():
            rows.append({"name": name, "tag": tag, "latest": tag == entry.get("latest"), **facts})
    return rows


def show(target: str) -> dict[str, Any]:
    """A pushed model's manifest (card metadata, files and their SHA-256) and its tags, read from the
    hub without pulling it."""
    ref = HubRef.parse(target)
    store = open_store(ref.hub)
    tags = store.tags(ref.name)
    tag = ref.tag or (store.index()["models"].get(ref.name, {}).get("latest") if tags else None) or "main"
    raw = store.read(ref.name, tag, MANIFEST)
    if raw is None:
        raise HubError(f"{ref.name}:{tag} is not on {ref.hub} (tags: {', '.join(tags) or 'none'})")
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise HubError(f"{ref.name}:{tag}: {MANIFEST} is not JSON") from None
    return {"ref": str(ref.with_tag(tag)), "tags": tags, **manifest}
