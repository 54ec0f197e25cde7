"""Run directories: everything one training run leaves behind.

    RUN_DIR/
      config.toml            the resolved config (rerun or resume from it)
      metrics.jsonl          one JSON object per epoch
      checkpoint-last.pt     model, optimizer, scheduler, RNG, epoch (resumable)
      checkpoint-best.pt     same, at the best validation epoch
      model.onnx             the parity-checked export
      export.log             what the exporter printed, and the whole of an export failure
      inputs.json            own data only: columns, categories, vocabulary (raw input → model input)
      summary.json           model, dataset, status, metrics, onnx, parity, ...

Every file is written atomically (temporary file + ``os.replace``) so an interrupted write never
leaves a truncated file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from zoo.core.contract.errors import ZooError


class RunWriteError(ZooError):
    """A file of a run could not be written (disk full, read-only, permissions); the previous
    version of that file, if any, is untouched."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: readers see the old
    file or the new one, never a part. A failed write (ENOSPC, EROFS, ...) is a one-line
    :class:`RunWriteError` that says the previous file is intact."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        kept = f"; the previous {path.name} is intact" if path.exists() else ""
        raise RunWriteError(f"could not write {path}: {err.strerror or err}{kept}") from err
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class Run:
    """A run directory and the files in it."""

    CONFIG = "config.toml"
    METRICS = "metrics.jsonl"
    SUMMARY = "summary.json"
    LAST = "checkpoint-last.pt"
    BEST = "checkpoint-best.pt"
    ONNX = "model.onnx"
    INPUTS = "inputs.json"  # how the dataset reads raw input (DataInfo.extra["raw_inputs"])
    EXPORT_LOG = "export.log"  # the exporter's console output (graph dumps, its traceback)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, out: str | Path | None, model_name: str, root: str | Path = "runs",
               force: bool = False) -> Run:
        """A new run directory: ``out``, or ``root/MODEL-TIMESTAMP``.

        A folder that already holds a run is refused (resume it instead), and so is a non-empty
        folder that is not a run unless ``force``: its files (a ``config.toml``, a
        ``model.onnx``) would be overwritten.
        """
        if out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out = Path(root) / f"{model_name}-{stamp}"
            suffix = 1
            while Path(out).exists():
                out = Path(root) / f"{model_name}-{stamp}-{suffix}"
                suffix += 1
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ZooError(f"--out {str(path)!r} exists and is not a directory")
        if any((path / name).exists() for name in (cls.CONFIG, cls.LAST, cls.SUMMARY)):
            raise ZooError(f"{str(path)!r} already holds a run; resume it with "
                           f"`zoo train --resume {path}` or choose another --out")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise ZooError(f"--out {str(path)!r} is a non-empty folder that is not a run; its files "
                           f"could be overwritten: choose another --out, or pass --force to use it")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ZooError(f"cannot create the run directory {str(path)!r}: {err.strerror or err}") from None
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        run = cls(path)
        if not (run.path / cls.CONFIG).is_file():
            raise ZooError(f"{str(path)!r} is not a run directory (no {cls.CONFIG})")
        return run

    def lock(self) -> RunLock:
        """The run's single-writer lock (a context manager); see :class:`RunLock`."""
        return RunLock(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    # -- config and metrics ------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        from zoo.core.contract.toml_io import dumps_toml

        atomic_write_text(self.file(self.CONFIG), dumps_toml(config))

    def read_config(self) -> dict[str, Any]:
        from zoo.core.contract.toml_io import read_toml

        return read_toml(self.file(self.CONFIG))

    def write_inputs(self, meta: dict[str, Any]) -> None:
        atomic_write_text(self.file(self.INPUTS), json.dumps(meta, indent=1))

    def append_metrics(self, record: dict[str, Any]) -> None:
        try:
            with open(self.file(self.METRICS), "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as err:
            raise RunWriteError(f"could not write {self.file(self.METRICS)}: {err.strerror or err}; "
                                f"the last checkpoint is intact") from err

    def read_metrics(self) -> list[dict[str, Any]]:
        """The per-epoch records; a line that is not a JSON object (the cut-off last line of a
        killed write, a damaged line) is skipped, so one bad line never hides the others."""
        path = self.file(self.METRICS)
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def truncate_metrics(self, epochs: int) -> None:
        """Drop records after ``epochs`` (resuming from a checkpoint older than the log)."""
        records = [r for r in self.read_metrics() if r.get("epoch", 0) <= epochs]
        atomic_write_text(self.file(self.METRICS), "".join(json.dumps(r) + "\n" for r in records))

    # -- summary -----------------------------------------------------------------------------
    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.file(self.SUMMARY), json.dumps(summary, indent=2, default=str) + "\n")

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` (``{}`` before there is one); a damaged one is a :class:`ZooError`."""
        path = self.file(self.SUMMARY)
        if not path.exists():
            return {}
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:
            raise ZooError(f"{path} is damaged ({type(err).__name__}: {str(err)[:120]}); `zoo export "
                           f"{self.path}` or `zoo train --resume {self.path}` writes a new one") from None
        if not isinstance(summary, dict):
            raise ZooError(f"{path} is damaged (not a JSON object)")
        return summary


class RunLock:
    """One writer per run directory: ``RUN_DIR/.lock`` holds the writer's PID, host and process
    start time, created with ``O_EXCL`` so two processes cannot both take it.

    A lock left by a process that is gone (SIGKILL, a crash, a reboot) is stale: on the same host,
    a PID that no longer exists, or that now belongs to a process started at another time (the PID
    was reused), is taken over. On taking the lock, temporary files left by an interrupted atomic
    write or export (``.NAME.*.tmp``, ``.export-*.onnx``) are removed: with the lock held, no other
    writer can own them.
    """

    NAME = ".lock"

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / self.NAME
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        me = _process_identity(os.getpid())
        for _ in range(2):  # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder):
                    raise ZooError(
                        f"{self.path.parent} is being written by process {holder.get('pid')} on "
                        f"{holder.get('host')} (since {holder.get('since', '?')}); wait for it to end "
                        f"or stop it. If that process is gone, remove {self.path}") from None
                self.path.unlink(missing_ok=True)  # stale (or unreadable): its writer is gone
                continue
            except OSError as err:
                raise ZooError(f"cannot lock {self.path.parent}: {err.strerror or err}") from None
            with os.fdopen(fd, "w") as fh:
                json.dump({**me, "since": time.strftime("%Y-%m-%dT%H:%M:%S")}, fh)
            self.held = True
            self._remove_stale_temporaries()
            return
        raise ZooError(f"cannot lock {self.path.parent}: another process took the lock meanwhile")

    def release(self) -> None:
        if self.held:
            self.held = False
            holder = self._holder()
            if holder is not None and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)

    def _holder(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _remove_stale_temporaries(self) -> None:
        for pattern in (".*.tmp", ".export-*.onnx", ".export-*.onnx.data"):  # atomic writes, exports
            for tmp in self.path.parent.glob(pattern):
                tmp.unlink(missing_ok=True)


def _process_identity(pid: int) -> dict[str, Any]:
    """PID, host and (Linux) the process's start time in clock ticks, which tells a reused PID apart."""
    import socket

    return {"pid": pid, "host": socket.gethostname(), "start": _start_time(pid)}


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime (after the command name)


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the lock's writer still runs. Another host's process cannot be checked: assume it does."""
    import socket

    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    start = holder.get("start")
    return start is None or _start_time(pid) in (None, start)


# -- many runs ---------------------------------------------------------------------------------


def run_status(run: Run) -> str:
    """finished / interrupted / failed / pruned (a sweep stopped it) from the summary; a run with
    no summary was cut short."""
    try:
        summary = run.read_summary()
    except ZooError:
        return "damaged"
    if summary.get("status") in ("finished", "interrupted", "failed", "pruned"):
        return summary["status"]
    return "interrupted" if run.file(Run.LAST).exists() else "created"


def describe(run: Run) -> dict[str, Any]:
    """One row of ``zoo runs``: what a person compares runs by. A damaged summary or config shows
    as status ``damaged`` in its row instead of breaking the table."""
    try:
        summary = run.read_summary()
        config = run.read_config()
    except ZooError as err:
        return {"run": run.name, "path": str(run.path), "model": None, "dataset": None, "started": None,
                "epochs": None, "status": "damaged", "device": None, "wall_seconds": None,
                "parity": None, "export": None, "metrics": {}, "error": str(err)}
    records = run.read_metrics()
    return {
        "run": run.name,
        "path": str(run.path),
        "model": summary.get("model") or config.get("model", {}).get("name"),
        "dataset": summary.get("dataset") or config.get("data", {}).get("name"),
        "started": summary.get("started"),
        "epochs": summary.get("epochs", len(records)),
        "status": run_status(run),
        "device": summary.get("device"),
        "wall_seconds": summary.get("wall_seconds"),
        "parity": summary.get("parity"),
        "export": summary.get("export"),  # ok | failed | disabled (None: an older run)
        "metrics": summary.get("metrics") or {},
    }


def find_runs(root: str | Path) -> list[Run]:
    """Every run directory (a folder with config.toml) under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        raise ZooError(f"runs folder {str(root)!r} does not exist")
    found = [Run(p.parent) for p in root.rglob(Run.CONFIG)]
    return sorted(found, key=lambda r: r.file(Run.CONFIG).stat().st_mtime, reverse=True)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or ``None`` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _epoch_plot(plt, run: Run, name: str, epochs: list[int], series: dict[str, list], title: str,
                ylabel: str = "", height: float = 4, log_if_spread: bool = False) -> Path:
    """One PNG of per-epoch series; a log axis when values span more than two orders of magnitude."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, height), dpi=100)
    for label, values in series.items():
        ax.plot(epochs, values, marker="o", label=label)
    positive = [v for values in series.values() for v in values if v]
    if log_if_spread and positive and min(positive) > 0 and max(positive) / min(positive) > 100:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1 or title.endswith("metrics"):
        ax.legend()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(run.file(name))
    plt.close(fig)
    return run.file(name)


def write_plots(run: Run) -> list[Path]:
    """Loss, validation metrics and learning rate per epoch as PNGs (matplotlib, when installed)."""
    records = run.read_metrics()
    plt = _pyplot()
    if not records or plt is None:
        return []
    epochs = [r["epoch"] for r in records]

    def series(key: str) -> list:
        return [r.get(key) for r in records]

    losses = {"train loss": series("train_loss")}
    if "val_loss" in records[0]:
        losses["validation loss"] = series("val_loss")
    written = [_epoch_plot(plt, run, "loss.png", epochs, losses, f"{run.name}: loss", "loss",
                           log_if_spread=True)]
    metrics = {k: series(k) for k in records[0] if k.startswith("val_") and k != "val_loss"}
    if metrics:
        written.append(_epoch_plot(plt, run, "metrics.png", epochs, metrics, f"{run.name}: validation metrics"))
    written.append(_epoch_plot(plt, run, "lr.png", epochs, {"lr": series("lr")}, f"{run.name}: learning rate",
                               "learning rate (end of epoch)", height=3))
    return written


def write_confusion(run: Run, matrix: list[list[int]], class_names: list[str] | None) -> list[Path]:
    """``confusion.json`` always; ``confusion.png`` when matplotlib is installed (rows: true class)."""
    import json as _json

    atomic_write_text(run.file("confusion.json"), _json.dumps({"matrix": matrix, "classes": class_names}) + "\n")
    written = [run.file("confusion.json")]
    plt = _pyplot()
    if plt is None:
        return written
    k = len(matrix)
    names = class_names if class_names and len(class_names) == k else [str(i) for i in range(k)]
    size = min(2 + 0.6 * k, 12)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(row) for row in matrix) or 1
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i][j]), ha="center", va="center",
                        color="white" if matrix[i][j] > top / 2 else "black", fontsize=8)
    ax.set_title(f"{run.name}: test confusion matrix")
    fig.tight_layout()
    fig.savefig(run.file("confusion.png"))
    plt.close(fig)
    return [*written, run.file("confusion.png")]
