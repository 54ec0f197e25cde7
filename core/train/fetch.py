"""Public datasets fetched into the user's cache: ``zoo data fetch/verify/path/rm`` and ``zoo train``'s
fetch-when-missing.

A dataset declares its files in the catalogue (``[[datasets.NAME.files]]``: URL, where the file
lands under a data root, the checksum as published, optionally an archive to unpack). Downloads go
through pooch, which streams each file to a temporary name in the cache folder and moves it into
place only once its checksum matches, so a corrupt, tampered or cut-short download never lands
in the cache. A file without a published checksum is fetched *unverified* (said once per process,
and by ``zoo data list``). ``--mirror`` reads the same relative paths from a folder laid out like a
data root, or from another base URL, and checks them against the same checksums.

This module imports neither torch nor pooch at import time: ``zoo data list`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from zoo.core.contract.catalogue import DataFile, DatasetEntry, load_catalogue
from zoo.core.contract.errors import ZooError, did_you_mean
from zoo.core.train.roots import cache_root, data_roots, system_roots

#: pooch's ``retry_if_failed``: a failed or corrupt download is tried this many more times
#: (waiting 1 s, 2 s, ...) before the error is reported.
RETRIES = 2
#: Seconds without a byte from the server before a download is given up (requests' read timeout).
TIMEOUT = 60
_OFFLINE: ContextVar[bool] = ContextVar("zoo_offline", default=False)
_warned: set[str] = set()


# -- declarations and switches ----------------------------------------------------------------


def is_offline() -> bool:
    """True under ``zoo train --offline`` (:func:`offline`) or with ``ZOO_OFFLINE=1``."""
    return _OFFLINE.get() or os.environ.get("ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def offline(enabled: bool = True):
    """Within the block no dataset is fetched (``zoo train --offline``)."""
    token = _OFFLINE.set(enabled or _OFFLINE.get())
    try:
        yield
    finally:
        _OFFLINE.reset(token)


def declared(name: str) -> DatasetEntry:
    """The catalogue entry of dataset ``name``; unknown names are a ZooError with suggestions."""
    datasets = load_catalogue().datasets
    if name not in datasets:
        raise ZooError(did_you_mean(name, datasets, "dataset", listed_by="zoo data list"))
    return datasets[name]


def fetchable(name: str) -> bool:
    """Whether ``name`` is a declared dataset with files to download."""
    entry = load_catalogue().datasets.get(name)
    return entry is not None and bool(entry.files)


def _with_files(name: str) -> DatasetEntry:
    entry = declared(name)
    if not entry.files:
        raise ZooError(f"dataset {name!r} has no files to fetch: it is generated or comes with a package "
                       f"(see `zoo data info {name}`)")
    return entry


def needed(entry: DatasetEntry) -> list[str]:
    """Every file the dataset's loader reads, relative to a data root."""
    return [path for file in entry.files for path in file.needed]


# -- fetching ---------------------------------------------------------------------------------


def fetch(name: str, mirror: str | None = None, progress: bool = True) -> Path:
    """Download dataset ``name``'s declared files into the cache (those already there and intact
    are kept) and unpack its archives. Returns the cache root, which then holds the dataset.

    :param mirror: a folder laid out like a data root (``DIR/<path>`` for each file) or a base
        URL (``URL/<path>``), used instead of the declared URLs; checked by the same checksums.
    :param progress: a progress line per file on stderr.
    """
    entry = _with_files(name)
    root = cache_root()
    for file in entry.files:
        _fetch_file(entry, file, root, mirror, progress)
    return root


def _fetch_file(entry: DatasetEntry, file: DataFile, root: Path, mirror: str | None, progress: bool) -> None:
    import pooch
    import requests

    url, downloader = _source(entry, file, mirror, progress)
    known_hash = file.known_hash
    if _intact(root / file.path, known_hash):
        known_hash = None  # hashed just now: pooch only unpacks (no network, no write, no second hash)
    else:
        if is_offline() and (mirror is None or "://" in mirror):
            raise ZooError(f"offline (ZOO_OFFLINE or --offline): {file.path} of dataset {entry.name!r} is not "
                           f"cached and would come from {url}; unset ZOO_OFFLINE, or pass --mirror DIR "
                           f"(a folder holding {file.path})")
        _check_writable(root, entry.name)
        if file.known_hash is None and entry.name not in _warned:
            _warned.add(entry.name)
            print(f"warning: dataset {entry.name!r}: {file.path} has no published checksum; fetched unverified",
                  file=sys.stderr)
    pup = pooch.create(path=root, base_url="", registry={file.path: known_hash},
                       urls={file.path: url}, retry_if_failed=RETRIES)
    try:
        with _quiet_pooch(), _prune_on_error(root, root / file.path):
            pup.fetch(file.path, processor=_processor(file), downloader=downloader)
    except ValueError as err:  # pooch: the hash does not match (the temporary file is already deleted)
        got = re.search(r"but got (\w+)", str(err))
        raise ZooError(f"{url} (dataset {entry.name!r}): checksum mismatch, expected {file.known_hash}"
                       f"{', got ' + got.group(1) if got else ''}; nothing was cached ({_fix(entry.name)})") from None
    except requests.RequestException as err:
        raise ZooError(f"could not download {url} (dataset {entry.name!r}): {_reason(err)}; "
                       f"{_fix(entry.name)}") from None
    _check_size(entry, file, root)


def _intact(path: Path, known_hash: str | None) -> bool:
    """Whether ``path`` is in the cache and matches its checksum (any file, without one)."""
    if not path.is_file():
        return False
    if known_hash is None:
        return True
    import pooch

    algorithm, _, digest = known_hash.partition(":")
    return pooch.file_hash(str(path), algorithm) == digest.lower()


def _check_writable(root: Path, name: str) -> None:
    """The cache folder exists (made if missing) and takes a new file; else one line naming it
    and the fix, before pooch fails on a temporary file's name the user never chose."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        reason = "a file, not a folder" if root.is_file() else (err.strerror or str(err))
        raise ZooError(f"cannot write to the dataset cache {root} ({reason}); set ZOO_CACHE_DIR to a writable "
                       f"folder, or put the files of dataset {name!r} under DIR and pass --data-dir DIR") from None


@contextlib.contextmanager
def _prune_on_error(root: Path, target: Path):
    """Remove the folders pooch made for ``target`` when its fetch fails (empty ones only)."""
    try:
        yield
    except BaseException:
        _prune(root, target)
        raise


def _prune(root: Path, target: Path) -> None:
    """Remove the empty folders between ``target`` and ``root`` (``root`` itself stays)."""
    for parent in target.parents:
        if parent == root or root not in parent.parents:
            break
        with contextlib.suppress(OSError):
            parent.rmdir()


def _fix(name: str) -> str:
    return (f"fetch the files elsewhere and run `zoo data fetch {name} --mirror DIR` (DIR laid out like "
            f"the cache), or put them under DIR and pass --data-dir DIR")


def _reason(err: Exception) -> str:
    """A few words on why a request failed (requests' messages run over several nested reprs)."""
    import requests

    response = getattr(err, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason or ''}".strip()
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection closed before the whole file arrived"
    if isinstance(err, requests.Timeout):
        return "timed out"
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", str(err))
    return f"no connection ({errno.group(0)})" if errno else type(err).__name__


def _check_size(entry: DatasetEntry, file: DataFile, root: Path) -> None:
    """A declared size guards files without a checksum (a checksum already fixes the size)."""
    path = root / file.path
    if file.known_hash is None and file.size is not None and path.stat().st_size != file.size:
        got = path.stat().st_size
        path.unlink()
        _prune(root, path)
        raise ZooError(f"{file.url} (dataset {entry.name!r}): {got} bytes, the declaration says {file.size}; "
                       f"nothing was cached ({_fix(entry.name)})")


def _source(entry: DatasetEntry, file: DataFile, mirror: str | None, progress: bool):
    """(where the file comes from, a pooch downloader for it)."""
    import pooch

    bar = _Progress(file.path) if progress else False
    if mirror is None or "://" in mirror:
        url = file.url if mirror is None else f"{mirror.rstrip('/')}/{file.path}"
        if url.startswith(("http://", "https://")):
            return url, pooch.HTTPDownloader(progressbar=bar, timeout=TIMEOUT)
        try:
            return url, pooch.downloaders.choose_downloader(url, progressbar=bar)
        except ValueError:
            raise ZooError(f"{url} (dataset {entry.name!r}): unsupported protocol; use http(s), ftp or a folder") from None
    folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise ZooError(f"--mirror {mirror!r} is neither a folder nor a URL")
    source = folder / file.path
    if not source.is_file():
        raise ZooError(f"mirror {folder} has no {file.path} (dataset {entry.name!r}; published at {file.url}); "
                       f"copy it there, or pass --data-dir DIR with the dataset's files under DIR")

    def copy(url: str, output_file: str, pup: Any) -> None:  # a pooch downloader reading the folder
        shutil.copyfile(source, output_file)

    return str(source), copy


def _processor(file: DataFile):
    """pooch's unpacking step for ``file.unpack``, into the folder holding the archive."""
    import pooch

    if file.unpack == "zip":
        return pooch.Unzip(extract_dir=".")
    if file.unpack in ("tar", "tar.gz"):
        return pooch.Untar(extract_dir=".")
    if file.unpack == "gz":
        return pooch.Decompress(method="gzip", name=Path(file.path).name.removesuffix(".gz"))
    return None


@contextlib.contextmanager
def _quiet_pooch():
    """pooch logs every step at INFO on stderr (and for unverified files suggests a hash to pin,
    which is not how zoo declares checksums): our own lines say what happens."""
    import pooch

    logger = pooch.get_logger()  # pooch's own Logger object, not registered with logging.getLogger
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


class _Progress:
    """A pooch progress bar on stderr: rewritten in place on a terminal, one line at the end elsewhere."""

    def __init__(self, label: str) -> None:
        self.label, self.total, self.done, self.last = label, 0, 0, 0.0
        self.tty = sys.stderr.isatty()

    def update(self, n: int) -> None:
        self.done += n
        if self.tty and time.monotonic() - self.last > 0.2:
            self.last = time.monotonic()
            sys.stderr.write(f"\r{self._line()}")
            sys.stderr.flush()

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        sys.stderr.write(f"\r{self._line()}\n" if self.tty else f"{self._line()}\n")
        sys.stderr.flush()

    def _line(self) -> str:
        done = min(self.done, self.total) if self.total else self.done
        total = f" / {human_size(self.total)}" if self.total else ""
        return f"fetching {self.label}: {human_size(done)}{total}"


def human_size(size: int | None) -> str:
    """``26421880`` → ``26.4 MB`` (decimal units, as download pages give them)."""
    if size is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""  # unreachable


# -- what is cached ---------------------------------------------------------------------------


def where(entry: DatasetEntry, data_dir: str | None = None) -> Path | None:
    """The first data root (``--data-dir``, ``$ZOO_DATA_DIR``, the cache, then the dataset's
    ``system`` folders) holding every file the dataset needs, or ``None``."""
    files = needed(entry)
    for root in _roots(entry, data_dir):
        if files and all((root / f).is_file() for f in files):
            return root
    return None


def status(entry: DatasetEntry) -> dict[str, Any]:
    """One row of ``zoo data list``: size, license, whether cached, whether checksums are published."""
    sizes = [f.size for f in entry.files]
    root = cache_root()
    return {
        "name": entry.name, "task": entry.task, "summary": entry.summary, "license": entry.license,
        "size": sum(sizes) if sizes and None not in sizes else None,
        "cached": bool(entry.files) and all((root / f).is_file() for f in needed(entry)),
        "checksums": ("" if not entry.files else
                      "verified" if all(f.known_hash for f in entry.files) else "unverified"),
    }


def info(name: str) -> dict[str, Any]:
    """``zoo data info NAME``: the declaration, and where its files are found."""
    entry = declared(name)
    root = cache_root()
    found = where(entry) if entry.files else None
    data = entry.as_dict()
    data.update(status(entry), cache=str(root), found=str(found) if found else None)
    for row, file in zip(data["files"], entry.files):
        row["cached"] = all((root / p).is_file() for p in file.needed)
    return data


def path(name: str, data_dir: str | None = None) -> Path:
    """The data root that holds dataset ``name`` (the same search as the loaders)."""
    from zoo.core.contract.errors import DataNotFound

    entry = _with_files(name)
    found = where(entry, data_dir)
    if found is None:
        raise DataNotFound(name, needed(entry), [str(r) for r in _roots(entry, data_dir)])
    return found


def _roots(entry: DatasetEntry, data_dir: str | None) -> list[Path]:
    """Where the loaders look for ``entry``'s files, in order (:func:`zoo.core.train.roots.locate`)."""
    return [*data_roots(data_dir), *system_roots(entry.name)]


def verify(name: str | None = None) -> list[dict[str, Any]]:
    """Re-hash the cached files of ``name`` (or of every dataset with files in the cache) against
    their published checksums. One row per file: ``status`` is ``ok``, ``mismatch``, ``missing``
    or ``unverified`` (no published checksum; its sha256 is given so it can be compared)."""
    import pooch

    root = cache_root()
    if name is not None:
        entries = [_with_files(name)]
    else:
        entries = [e for e in load_catalogue().datasets.values()
                   if any((root / f.path).exists() for f in e.files)]
    rows = []
    for entry in entries:
        for file in entry.files:
            target = root / file.path
            row = {"dataset": entry.name, "path": file.path, "expected": file.known_hash or ""}
            if not target.is_file():
                row.update(status="missing", got="")
            elif file.known_hash is None:
                row.update(status="unverified", got="sha256:" + pooch.file_hash(str(target), "sha256"))
            else:
                algorithm = file.known_hash.split(":")[0]
                got = f"{algorithm}:{pooch.file_hash(str(target), algorithm)}"
                row.update(status="ok" if got == file.known_hash else "mismatch", got=got)
            rows.append(row)
    return rows


def remove(name: str) -> list[Path]:
    """Delete dataset ``name``'s files from the cache (never from ``--data-dir`` or ``$ZOO_DATA_DIR``):
    downloads, what their archives unpacked, then folders left empty. Returns what was deleted."""
    entry = _with_files(name)
    root = cache_root()
    removed: list[Path] = []
    for file in entry.files:
        archive = root / file.path
        paths = [*_unpacked(file, archive), *file.needed, file.path]
        for rel in dict.fromkeys(paths):
            target = root / rel
            if target.is_file() or target.is_symlink():
                target.unlink()
                removed.append(target)
    for target in removed:  # folders left empty go too, never the root itself
        _prune(root, target)
    return removed


def _unpacked(file: DataFile, archive: Path) -> list[str]:
    """Paths (relative to the root) of the files an archive in the cache unpacked."""
    if not archive.is_file() or file.unpack not in ("zip", "tar", "tar.gz"):
        return []
    folder = str(Path(file.path).parent)
    prefix = "" if folder == "." else folder + "/"
    import tarfile
    import zipfile

    try:
        if file.unpack == "zip":
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        else:
            with tarfile.open(archive) as tf:
                names = [m.name for m in tf.getmembers() if m.isfile()]
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError):  # broken: remove what was declared
        return []
    return [prefix + n for n in names if ".." not in n.split("/") and not n.startswith("/")]
