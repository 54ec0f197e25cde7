"""Where pushed models live: a folder or any fsspec URL (:class:`FsspecStore`), or the Hugging
Face Hub (:class:`HfStore`). No server of zoo's own.

Layout of an fsspec hub::

    HUB/index.json              {"format": "zoo-hub-index/1", "models": {NAME: {"latest": TAG,
                                 "tags": {TAG: {"manifest_sha256": ..., "pushed": ..., ...}}}}}
    HUB/NAME/TAG/manifest.json  {"files": {FILE: {"sha256": ..., "size": ...}}, ...}
    HUB/NAME/TAG/README.md, model.onnx, checkpoint-best.pt, config.toml, summary.json, ...

The index pins each tag's manifest by its SHA-256 and the manifest pins every file, so a pull
verifies the whole chain. ``manifest.json`` is uploaded last: a push cut short leaves no tag.
The index is what a read-only HTTP hub (any static file server) needs for ``zoo hub list``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from zoo.core.contract.errors import ZooError

INDEX = "index.json"
MANIFEST = "manifest.json"
READ_ONLY = ("http", "https")


class HubError(ZooError):
    """A hub that cannot be reached, read or written, or a model or tag it does not hold."""


def open_store(hub: str):
    """The store behind a hub path or URL: :class:`HfStore` for ``hf://``, else fsspec."""
    if hub.startswith("hf://"):
        return HfStore(hub)
    return FsspecStore(hub)


@contextlib.contextmanager
def _io(where: str):
    """An fsspec/network failure as one line naming the hub (a missing backend says what to install)."""
    try:
        yield
    except ZooError:
        raise
    except FileNotFoundError as err:
        raise HubError(f"{where}: not found ({err})") from None
    except ImportError as err:
        raise HubError(f"{where}: {err} (install the fsspec backend for this URL)") from None
    except Exception as err:  # noqa: BLE001 - aiohttp, botocore, ... : any transport failure
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise HubError(f"{where}: {type(err).__name__}: {first}") from None


class FsspecStore:
    """A hub in a folder or at an fsspec URL; ``http(s)://`` hubs are read-only."""

    def __init__(self, hub: str) -> None:
        import fsspec

        self.url = hub
        with _io(f"hub {hub}"):
            self.fs, self.root = fsspec.core.url_to_fs(hub)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.local = protocol in ("file", "local")
        self.read_only = protocol in READ_ONLY

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def index(self) -> dict[str, Any]:
        """The hub's index (an empty one for a hub nobody has pushed to)."""
        with _io(f"hub {self.url}"):
            if not self.fs.exists(self._path(INDEX)):
                return {"format": "zoo-hub-index/1", "models": {}}
            data = json.loads(self.fs.cat_file(self._path(INDEX)))
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise HubError(f"hub {self.url}: {INDEX} is not a zoo hub index")
        return data

    def read(self, name: str, tag: str, file: str) -> bytes | None:
        """One file of a pushed tag, or ``None`` when it is not there."""
        path = self._path(name, tag, file)
        with _io(f"hub {self.url}"):
            try:
                return self.fs.cat_file(path)
            except FileNotFoundError:
                return None

    def fetch(self, name: str, tag: str, files: list[str], dest: Path) -> None:
        """Download ``files`` of ``NAME/TAG`` into ``dest``; a missing one is simply not written
        (the caller's verification names it)."""
        for file in files:
            data = self.read(name, tag, file)
            if data is not None:
                (dest / file).write_bytes(data)

    def tags(self, name: str) -> list[str]:
        """The tags of ``name``, in the order they were pushed (from the index)."""
        return list(self.index()["models"].get(name, {}).get("tags", {}))

    def has_tag(self, name: str, tag: str) -> bool:
        with _io(f"hub {self.url}"):
            return self.fs.exists(self._path(name, tag, MANIFEST))

    def publish(self, folder: Path, name: str, tag: str, row: dict[str, Any], force: bool) -> None:
        """Upload ``folder`` as ``NAME/TAG`` (manifest last) and record it in the index as latest."""
        if self.read_only:
            raise HubError(f"hub {self.url} is read-only (HTTP); push to a folder, file://, s3://, "
                           f"gs://, ... or hf:// hub and serve that folder over HTTP")
        with self._index_lock():
            if self.has_tag(name, tag) and not force:
                raise HubError(f"{name}:{tag} already exists on {self.url}; tags are immutable: push "
                               f"another tag, or pass --force to replace it")
            base = self._path(name, tag)
            with _io(f"hub {self.url}"):
                if self.fs.exists(base):
                    self.fs.rm(base, recursive=True)  # --force, or the leftovers of a cut-short push
                self.fs.makedirs(base, exist_ok=True)
                for path in sorted(folder.iterdir(), key=lambda p: p.name == MANIFEST):
                    self.fs.put_file(str(path), self._path(name, tag, path.name))
                self._record(name, tag, row)

    def _record(self, name: str, tag: str, row: dict[str, Any]) -> None:
        index = self.index()
        model = index["models"].setdefault(name, {"latest": tag, "tags": {}})
        model["tags"][tag] = row
        model["latest"] = tag
        data = json.dumps(index, indent=1, sort_keys=True).encode()
        tmp = self._path(f".{INDEX}.{time.time_ns()}.tmp")
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, self._path(INDEX))  # a reader never sees half an index (local: a rename)

    @contextlib.contextmanager
    def _index_lock(self):
        """Pushes to one local hub take turns (filelock); object stores have no locks: push to one
        name from one place at a time there (the last index write wins)."""
        if not self.local:
            yield
            return
        from filelock import FileLock

        Path(self.root).mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(self.root) / ".index.lock"), timeout=600):
            yield


class HfStore:
    """A hub on the Hugging Face Hub: ``hf://USER`` holds repositories ``USER/NAME``; a tag is a git
    tag of the repository, the latest is ``main``. The token comes from huggingface_hub's usual
    places (``HF_TOKEN``, ``huggingface-cli login``)."""

    read_only = False
    local = False

    def __init__(self, hub: str) -> None:
        self.url = hub
        self.owner = hub[len("hf://"):].strip("/")
        if not self.owner or "/" in self.owner:
            raise HubError(f"{hub!r}: a Hugging Face hub is hf://USER (models are hf://USER/NAME[:TAG])")
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise HubError("hf:// hubs need huggingface_hub: pip install 'zoo-ml[hf]'") from None
        self.api = HfApi()

    def repo(self, name: str) -> str:
        return f"{self.owner}/{name}"

    def index(self) -> dict[str, Any]:
        with _io(self.url):
            found = self.api.list_models(author=self.owner, filter="zoo")
            models = {m.id.split("/", 1)[1]: {"latest": "main", "tags": {}} for m in found}
        return {"format": "zoo-hub-index/1", "models": models}

    def read(self, name: str, tag: str, file: str) -> bytes | None:
        from huggingface_hub.utils import EntryNotFoundError

        with _io(self.url):
            try:
                path = self.api.hf_hub_download(self.repo(name), file, revision=tag)
            except EntryNotFoundError:
                return None
        return Path(path).read_bytes()

    def fetch(self, name: str, tag: str, files: list[str], dest: Path) -> None:
        with _io(self.url):
            self.api.snapshot_download(self.repo(name), revision=tag, local_dir=str(dest),
                                       allow_patterns=files)

    def tags(self, name: str) -> list[str]:
        with _io(self.url):
            if not self.api.repo_exists(self.repo(name)):
                return []
            return [t.name for t in self.api.list_repo_refs(self.repo(name)).tags]

    def has_tag(self, name: str, tag: str) -> bool:
        with _io(self.url):
            if not self.api.repo_exists(self.repo(name)):
                return False
            return tag in {t.name for t in self.api.list_repo_refs(self.repo(name)).tags}

    def publish(self, folder: Path, name: str, tag: str, row: dict[str, Any], force: bool) -> None:
        exists = self.has_tag(name, tag)
        if exists and not force:
            raise HubError(f"{self.repo(name)}:{tag} already exists; tags are immutable: push another "
                           f"tag, or pass --force to move it")
        with _io(self.url):
            self.api.create_repo(self.repo(name), exist_ok=True)
            commit = self.api.upload_folder(repo_id=self.repo(name), folder_path=str(folder),
                                            commit_message=f"zoo push {name}:{tag}")
            if exists:
                self.api.delete_tag(self.repo(name), tag=tag)
            self.api.create_tag(self.repo(name), tag=tag, revision=commit.oid)
