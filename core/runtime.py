"""onnxruntime sessions and prediction for exported models.

``make_session`` asks for the CUDA execution provider only when onnxruntime offers it *and* a
CUDA device is visible, then reports what really runs: onnxruntime-gpu lists CUDA even on
machines without a GPU and silently falls back to the CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from zoo.core.errors import ZooError

ONNX_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(float16)": np.float16,
}


def _cuda_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


def make_session(path: str | Path, providers: list[str] | None = None, spinning: bool = True,
                 threads: int | None = None):
    """An onnxruntime InferenceSession on CUDA when present and usable, else on the CPU.

    ``spinning=False`` stops idle intra-op threads from busy-waiting for the next call: right for
    a server, whose event loop needs those cycles between calls. ``threads`` caps onnxruntime's
    intra-op threads (default: one per core).
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ZooError("onnxruntime is not importable (install exactly one of onnxruntime-gpu or "
                       f"onnxruntime): {err}") from None
    if providers is None:
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in available and _cuda_visible():
            providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the CUDA→CPU fallback is reported by get_providers(), not logs
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as err:  # noqa: BLE001
        raise ZooError(f"onnxruntime could not load {path}: {err}") from None


def read_metadata(session) -> dict[str, Any]:
    raw = session.get_modelmeta().custom_metadata_map
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out


def load_inputs(path: str | Path, input_names: list[str]) -> dict[str, np.ndarray]:
    """Inputs from ``.npy`` (the single input) or JSON (a list for the single input, or an object
    mapping input names to nested lists)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"input file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ZooError(f"{path}: not a valid .npy file: {err}") from None
        return {input_names[0]: array}
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ZooError(f"{path}: not valid JSON: {err}") from None
        if isinstance(data, dict):
            unknown = set(data) - set(input_names)
            if unknown:
                raise ZooError(f"{path}: unknown input(s) {sorted(unknown)}; the model takes {input_names}")
            return {k: _to_array(v, path, k) for k, v in data.items()}
        return {input_names[0]: _to_array(data, path, input_names[0])}
    raise ZooError(f"{path}: unsupported input format {path.suffix!r} (use .npy or .json)")


def _to_array(value: Any, path: Path, name: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as err:
        raise ZooError(f"{path}: input {name!r} is not a rectangular array: {err}") from None


def check_and_cast(session, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate names, ranks and fixed dimensions against the model; cast to its dtypes.

    A single sample (rank one less than the model's input) gets a batch axis added.
    """
    out = {}
    for spec in session.get_inputs():
        if spec.name not in feed:
            raise ZooError(f"missing input {spec.name!r}; the model takes "
                           f"{[i.name for i in session.get_inputs()]}")
        array = feed[spec.name]
        expected = spec.shape
        if array.ndim == len(expected) - 1:
            array = array[None]
        shown = [d if isinstance(d, int) else -1 for d in expected]
        if array.ndim != len(expected) or any(
            isinstance(d, int) and d != a for d, a in zip(expected, array.shape)
        ):
            raise ZooError(f"input {spec.name!r} has shape {list(array.shape)}; the model expects "
                           f"{shown} (-1 = any size)")
        dtype = ONNX_TO_NUMPY.get(spec.type)
        if dtype is None:
            raise ZooError(f"input {spec.name!r} has unsupported type {spec.type}")
        if np.issubdtype(dtype, np.integer) and not np.issubdtype(array.dtype, np.integer):
            raise ZooError(f"input {spec.name!r} must hold integers, got {array.dtype}")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise ZooError(f"input {spec.name!r} must be numeric, got {array.dtype}")
        out[spec.name] = array.astype(dtype, copy=False)
    return out
