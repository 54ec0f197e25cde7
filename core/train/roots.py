"""Where public datasets' files are looked for: the data roots and the download cache.

Standard library only (platformdirs imported when needed), so ``zoo data list`` can say what is
cached without importing torch. :mod:`zoo.core.train.data` re-exports these functions.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Where ``zoo data fetch`` keeps public datasets: ``$ZOO_CACHE_DIR``, else the user's cache
    directory (platformdirs: ``~/.cache/zoo/data`` on Linux). Its layout is the data roots' layout
    (``planetoid/ind.cora.x``, ``sst2/train.tsv``, ...), so any root can stand in for any other."""
    env = os.environ.get("ZOO_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo")) / "data"


def data_roots(configured: str | None = None) -> list[Path]:
    """The folders searched for a public dataset's files, first match wins: ``--data-dir`` /
    ``data.data_dir``, ``$ZOO_DATA_DIR``, the cache (:func:`cache_root`). None hides the next: a
    root without the dataset's files is passed over. System packages (``/usr/share/datasets``)
    are per-dataset extras given to :func:`locate`."""
    roots: list[Path] = []
    if configured:
        base = Path(configured).expanduser()
        if not base.is_dir():
            from zoo.core.contract.errors import DataUnavailable

            raise DataUnavailable(f"data directory {configured!r} does not exist")
        roots.append(base)
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(cache_root())
    return roots


def system_roots(dataset: str) -> list[Path]:
    """The folders a system package installs ``dataset``'s files into (Debian's
    ``/usr/share/datasets``), as its catalogue entry declares them (``system``); searched last."""
    from zoo.core.contract.catalogue import load_catalogue

    entry = load_catalogue().datasets.get(dataset)
    return [Path(p) for p in entry.system] if entry is not None else []


def locate(dataset: str, files: list[str], configured: str | None = None) -> Path:
    """The first root (of :func:`data_roots`, then :func:`system_roots`) that holds every one of
    ``files`` (paths relative to a root, e.g. ``["planetoid/ind.cora.x", ...]``).

    Raises :class:`~zoo.core.contract.errors.DataNotFound` naming the dataset and the roots searched.
    """
    from zoo.core.contract.errors import DataNotFound

    roots = [*data_roots(configured), *system_roots(dataset)]
    for root in roots:
        if all((root / name).is_file() for name in files):
            return root
    raise DataNotFound(dataset, files, [str(root) for root in roots])
