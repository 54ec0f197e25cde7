"""Run directories: everything one training run leaves behind.

    RUN_DIR/
      config.toml            the resolved config (rerun or resume from it)
      metrics.jsonl          one JSON object per epoch
      checkpoint-last.pt     model, optimizer, scheduler, RNG, epoch (resumable)
      checkpoint-best.pt     same, at the best validation epoch
      model.onnx             the parity-checked export
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

from zoo.core.errors import ZooError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, out: str | Path | None, model_name: str, root: str | Path = "runs") -> Run:
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
        if (path / cls.LAST).exists() or (path / cls.SUMMARY).exists():
            raise ZooError(f"{str(path)!r} already holds a run; resume it with "
                           f"`zoo train --resume {path}` or choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        run = cls(path)
        if not (run.path / cls.CONFIG).is_file():
            raise ZooError(f"{str(path)!r} is not a run directory (no {cls.CONFIG})")
        return run

    def file(self, name: str) -> Path:
        return self.path / name

    # -- config and metrics ------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        from zoo.core.toml_io import dumps_toml

        atomic_write_text(self.file(self.CONFIG), dumps_toml(config))

    def read_config(self) -> dict[str, Any]:
        from zoo.core.toml_io import read_toml

        return read_toml(self.file(self.CONFIG))

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.file(self.METRICS), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.file(self.METRICS)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_metrics(self, epochs: int) -> None:
        """Drop records after ``epochs`` (resuming from a checkpoint older than the log)."""
        records = [r for r in self.read_metrics() if r.get("epoch", 0) <= epochs]
        atomic_write_text(self.file(self.METRICS), "".join(json.dumps(r) + "\n" for r in records))

    # -- summary -----------------------------------------------------------------------------
    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.file(self.SUMMARY), json.dumps(summary, indent=2, default=str) + "\n")

    def read_summary(self) -> dict[str, Any]:
        path = self.file(self.SUMMARY)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
