"""``zoo pull``: a pushed model into the local cache, every SHA-256 verified, safe to run twice at once.

The cache holds ``<cache>/<hub key>/NAME@TAG/``, laid out as a run directory (``zoo runs show``
calls it ``NAME@TAG``). A pull downloads
into a temporary folder next to it, verifies the chain (index → manifest → files) and renames the
folder into place: a refused pull leaves nothing in the cache. A file lock per tag makes concurrent
pulls of one model (two processes, two ranks of a torchrun job) take turns; the second finds the
verified copy and downloads nothing. A cached copy is verified again each time it is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zoo.core.hub.package import verify
from zoo.core.hub.ref import HubRef, is_hub_target
from zoo.core.hub.store import MANIFEST, HubError, open_store


@dataclass(frozen=True)
class Pulled:
    """Where a pull put a model: ``path`` (a run directory), the resolved ``ref`` (with its tag)
    and whether this call ``downloaded`` it (else it was in the cache, verified)."""

    path: Path
    ref: HubRef
    downloaded: bool


def cache_dir() -> Path:
    """``$ZOO_HUB_CACHE``; else ``$ZOO_CACHE_DIR/.hub``; else the user cache (``~/.cache/zoo/hub``)."""
    if os.environ.get("ZOO_HUB_CACHE"):
        return Path(os.environ["ZOO_HUB_CACHE"]).expanduser()
    if os.environ.get("ZOO_CACHE_DIR"):
        return Path(os.environ["ZOO_CACHE_DIR"]).expanduser() / ".hub"
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo")) / "hub"


def _hub_key(hub: str) -> str:
    """A folder name per hub: its last path part and a hash of its absolute location."""
    where = hub if "://" in hub else os.path.abspath(os.path.expanduser(hub))
    tail = re.sub(r"[^A-Za-z0-9_.-]", "_", where.rstrip("/").rsplit("/", 1)[-1])[:40] or "hub"
    return f"{tail}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def _resolve_tag(store, ref: HubRef) -> tuple[str, str | None]:
    """(tag, the manifest SHA-256 the index pins for it, or None for a hub without an index)."""
    from zoo.core.contract.errors import did_you_mean

    if store.url.startswith("hf://"):
        return ref.tag or "main", None
    models = store.index()["models"]
    if not models:
        raise HubError(f"no model {ref.name!r} on hub {store.url}: it holds no models yet "
                       f"(`zoo push RUN_DIR` publishes one; ZOO_HUB names the default hub)")
    if ref.name not in models:
        raise HubError(did_you_mean(ref.name, models, f"model (hub {store.url})", "zoo hub list"))
    entry = models[ref.name]
    tag = ref.tag or entry.get("latest")
    if tag not in entry.get("tags", {}):
        raise HubError(did_you_mean(str(tag), entry.get("tags", {}), f"tag of {ref.name}", "zoo hub show"))
    return tag, entry["tags"][tag].get("manifest_sha256")


def pull(target: str | HubRef, out: str | Path | None = None, log=None) -> Pulled:
    """Pull ``[HUB/]NAME[:TAG]`` (or ``hub:...``) into the cache; with ``out``, also copy the verified
    folder there (a run directory of your own, for ``zoo export --opset`` or ``--resume``)."""
    from filelock import FileLock

    ref = target if isinstance(target, HubRef) else HubRef.parse(target)
    store = open_store(ref.hub)
    offline = _offline(store)
    if offline and ref.tag is None:
        raise HubError(f"{ref}: offline (ZOO_OFFLINE=1 or --offline) and no tag named: name one "
                       f"(NAME:TAG) to use the cached copy")
    tag, expected = (ref.tag, None) if offline else _resolve_tag(store, ref)
    ref = ref.with_tag(tag)
    final = cache_dir() / _hub_key(ref.hub) / f"{ref.name}@{tag}"
    locks = cache_dir() / ".locks"  # apart from the models: a refused pull leaves no folder behind
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{_hub_key(ref.hub)}.{ref.name}.{tag}.lock"), timeout=600):
        downloaded = not _cached(final, expected, str(ref))
        if downloaded:
            if offline:
                raise HubError(f"{ref} is not in the cache and zoo is offline (ZOO_OFFLINE=1 or --offline)")
            _download(store, ref, final, expected, log)
    if out is not None:
        _copy_out(final, Path(out))
    return Pulled(Path(out) if out is not None else final, ref, downloaded)


def _offline(store) -> bool:
    from zoo.core.train.fetch import is_offline

    return is_offline() and not getattr(store, "local", False)


def _cached(final: Path, expected: str | None, what: str) -> bool:
    """Whether ``final`` holds a verified copy (a damaged one is removed, to be downloaded again)."""
    if not final.is_dir():
        return False
    try:
        verify(final, expected, f"cached {what}")
    except HubError:
        shutil.rmtree(final, ignore_errors=True)
        return False
    return True


def _download(store, ref: HubRef, final: Path, expected: str | None, log) -> None:
    """Manifest, then its files, into a temporary folder; verified, then renamed into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{ref.tag}.partial-"))
    try:
        raw = store.read(ref.name, ref.tag, MANIFEST)
        if raw is None:
            raise HubError(f"{ref}: not on {store.url} (no {MANIFEST})")
        (tmp / MANIFEST).write_bytes(raw)
        files = _listed(raw, str(ref))
        if log:
            log(f"pulling {ref} ({len(files)} files) from {store.url}")
        store.fetch(ref.name, ref.tag, files, tmp)
        try:
            verify(tmp, expected, f"{ref} refused")
        except HubError as err:
            raise HubError(f"{err}; nothing was kept in the cache") from None
        for extra in set(os.listdir(tmp)) - {*files, MANIFEST}:  # e.g. huggingface_hub's .cache
            path = tmp / extra
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            final.parent.rmdir()  # only when empty: the first pull from a hub, refused


def _listed(raw: bytes, what: str) -> list[str]:
    import json

    try:
        files = json.loads(raw)["files"]
        names = [str(name) for name in files]
    except (ValueError, KeyError, TypeError):
        raise HubError(f"{what}: {MANIFEST} is not a zoo manifest") from None
    return [n for n in names if Path(n).name == n and not n.startswith(".")]


def _copy_out(final: Path, out: Path) -> None:
    from zoo.core.contract.errors import ZooError

    if out.exists() and any(out.iterdir()):
        raise ZooError(f"--out {out} is not empty: choose a new folder")
    shutil.copytree(final, out, dirs_exist_ok=True)


def resolve_target(target: str, log=None) -> str:
    """The one resolver: ``hub:[HUB/]NAME[:TAG]`` → the pulled run directory; anything else as given."""
    if not is_hub_target(target):
        return target
    return str(pull(target, log=log).path)


def serve_targets(targets: list[str]) -> list[str]:
    """``zoo serve`` targets with hub references pulled: ``hub:my-net`` → ``my-net=<cache path>`` (served
    under the model's hub name), ``web=hub:my-net:v2`` → ``web=<cache path>``."""
    resolved = []
    for target in targets:
        name, sep, location = target.partition("=")
        if is_hub_target(target):  # `hub:...` itself (a URL inside may hold '=')
            name, location = HubRef.parse(target).name, target
        elif not (sep and is_hub_target(location)):
            resolved.append(target)
            continue
        resolved.append(f"{name}={resolve_target(location)}")
    return resolved
