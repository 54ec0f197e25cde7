"""onnxruntime sessions and prediction for exported models.

``make_session`` asks for the CUDA execution provider only when onnxruntime offers it *and* a
CUDA device is visible, then reports what really runs: onnxruntime-gpu lists CUDA even on
machines without a GPU and silently falls back to the CPU.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from zoo.core.contract.errors import ZooError

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


def _onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ZooError("onnxruntime is not importable (install exactly one of onnxruntime-gpu or "
                       f"onnxruntime): {err}") from None
    return ort


def _wants_cuda(ort) -> bool:
    """CUDA is asked for when onnxruntime offers it and a GPU is visible; its libraries (CUDA 12,
    cuDNN 9) are preloaded from the ``onnxruntime-gpu[cuda,cudnn]`` wheels when those are installed."""
    if "CUDAExecutionProvider" not in ort.get_available_providers() or not _cuda_visible():
        return False
    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - system libraries may still do; the session will tell
            pass
    return True


def _provider_list(providers: list[str], exact: bool) -> list:
    """Provider options: no exhaustive cuDNN search per new input shape (a server sees many batch
    sizes), and with ``exact`` no TF32 (onnxruntime's CUDA provider runs MatMul/Gemm/Conv in TF32
    by default: ~1e-3 off float32, which would fail a parity check against float32 torch)."""
    cuda = {"cudnn_conv_algo_search": "HEURISTIC", **({"use_tf32": "0"} if exact else {})}
    return [("CUDAExecutionProvider", cuda) if p == "CUDAExecutionProvider" else p for p in providers]


#: [whether this process is zoo's own server or predictor, whether zoo has made a session yet]
_PROCESS = {"serving": False, "first": True}


def serving_process() -> None:
    """Declare this process zoo's own (``zoo serve``, ``zoo predict``): the thread that makes its
    first session then flushes denormals too, as do the threads it starts afterwards (see
    :func:`make_session`). Call before the first session."""
    _PROCESS["serving"] = True


def _claim_calling_thread(ort, flush: bool) -> None:
    """Before zoo's first session in a process that is not zoo's own (``zoo.pull`` or the API in
    a notebook, a test run), a tiny session *without* the flush option, so that onnxruntime's
    once-per-process switch leaves the calling thread with IEEE denormals: a library must not
    change how every later numpy or torch computation on its caller's thread rounds tiny values
    (hypothesis, for one, refuses to run on such a thread). onnxruntime's own intra-op threads
    still flush, per session."""
    if not _PROCESS["first"]:
        return
    _PROCESS["first"] = False
    if flush and not _PROCESS["serving"]:
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "first",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def make_session(path: str | Path, providers: list[str] | None = None, spinning: bool = True,
                 threads: int | None = None, exact: bool = False):
    """An onnxruntime InferenceSession on CUDA when present and usable, else on the CPU.

    ``spinning=False`` stops idle intra-op threads from busy-waiting for the next call: right for
    a server, whose event loop needs those cycles between calls. ``threads`` caps onnxruntime's
    intra-op threads (default: one per core). ``exact``: full float32 on CUDA (parity checks).

    CUDA that fails to load (missing libraries) is retried on the CPU alone, and a session that
    runs on another provider than the one asked for says so (a warning on stderr): onnxruntime
    itself falls back silently. ``session.get_providers()[0]`` is what really runs.

    Denormal floats (``|x| < 2^-126``) are flushed to zero (FTZ/DAZ): onnxruntime's softmax
    clamps ``exp(x - max)`` at ``exp(-88.4) ≈ 4·10⁻³⁹``, a denormal, so every masked score of
    an attention (padding, causal, local window) becomes one, and x86 CPUs take a microcode
    assist on each arithmetic operation that reads one: the ``Attention`` node of a padded
    batch ran 3× slower than the same node without a mask (B 64, T 32, D 64). Flushed, the
    masked weights are exact zeros, as in torch. onnxruntime sets the flags on its intra-op
    threads and, for the first session of a process only, on the thread that creates it
    (which then flushes denormals in everything it computes, numpy and torch included;
    threads it starts later inherit them). The calling thread does its share of each run, so
    zoo's own processes (:func:`serving_process`: ``zoo serve``, ``zoo predict``) let their
    first session flush it; in any other process zoo's first session is preceded by one that
    leaves it as it is (:func:`_claim_calling_thread`). ``exact`` sessions (the export's
    parity check, inside ``zoo train`` and sweeps) do not flush at all.
    """
    ort = _onnxruntime()
    _claim_calling_thread(ort, flush=not exact)
    if providers is None:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if _wants_cuda(ort) else ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the CUDA→CPU fallback is reported by get_providers(), not logs
    if threads:
        options.intra_op_num_threads = threads
    if not exact:  # the export's parity check runs in the training process: leave its threads as they are
        options.add_session_config_entry("session.set_denormal_as_zero", "1")  # see the docstring
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=_provider_list(providers, exact),
                                       disabled_optimizers=_disabled_optimizers(providers))
    except Exception as err:  # noqa: BLE001
        if providers == ["CPUExecutionProvider"]:
            raise ZooError(f"onnxruntime could not load {path}: {err}") from None
        _warn(f"onnxruntime could not use {providers[0]} for {path} ({_first_line(err)}); running on the CPU")
        return make_session(path, ["CPUExecutionProvider"], spinning, threads, exact)
    if session.get_providers()[0] != providers[0]:
        _warn(f"asked onnxruntime for {providers[0]} but {path} runs on {session.get_providers()[0]} "
              f"(CUDA 12 / cuDNN 9 libraries missing? pip install 'onnxruntime-gpu[cuda,cudnn]')")
    return session


def _disabled_optimizers(providers: list[str]) -> list[str]:
    """Graph rewrites that made CPU inference slower, by measurement: ``SkipLayerNormFusion``
    (residual Add + LayerNormalization into one SkipLayerNormalization node) left attention
    encoders 15–20 % slower at batch 64 on onnxruntime 1.31's CPU provider (docs/results.md)."""
    return ["SkipLayerNormFusion"] if providers == ["CPUExecutionProvider"] else []


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] or type(err).__name__


def _warn(message: str) -> None:
    import logging

    logging.getLogger("zoo.runtime").warning("warning: %s", message)


def read_metadata(session) -> dict[str, Any]:
    raw = session.get_modelmeta().custom_metadata_map
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out


def load_inputs(path: str | Path, input_names: list[str], data: Any = None) -> dict[str, np.ndarray]:
    """Inputs from ``.npy`` (the single input) or JSON (a list for the single input, or an object
    mapping input names to nested lists). ``data``: the JSON already parsed (by the caller)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"input file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        return {input_names[0]: load_npy(path)}
    if path.suffix == ".json":
        if data is None:
            data = read_json(path)
        if isinstance(data, dict):
            unknown = set(data) - set(input_names)
            if unknown:
                raise ZooError(f"{path}: unknown input(s) {sorted(unknown)}; the model takes {input_names}")
            return {k: _to_array(v, path, k) for k, v in data.items()}
        return {input_names[0]: _to_array(data, path, input_names[0])}
    raise ZooError(f"{path}: unsupported input format {path.suffix!r} (use .npy or .json)")


def read_json(path: Path) -> Any:
    """A JSON file parsed; every way it can be unreadable (empty, not UTF-8, nested too deeply
    for the parser's recursion, unreadable) is a one-line ZooError."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))  # (Notepad's UTF-8 starts with a BOM)
    except (ValueError, UnicodeDecodeError) as err:  # (ValueError: an integer over 4,300 digits, too)
        raise ZooError(f"{path}: not valid JSON/UTF-8 text: {str(err)[:200]}") from None
    except RecursionError:
        raise ZooError(f"{path}: JSON nested too deeply to parse") from None
    except OSError as err:
        raise ZooError(f"{path}: cannot read it: {err.strerror or err}") from None


def load_npy(path: Path) -> np.ndarray:
    """An ``.npy`` array, its header checked against the file's size first: a header may claim
    any shape, and numpy would allocate it before noticing the data is not there (MemoryError)."""
    try:
        with path.open("rb") as fh:
            shape, dtype = _npy_header(fh, path)
            claimed, held = math.prod(shape) * dtype.itemsize, os.fstat(fh.fileno()).st_size - fh.tell()
            if claimed > held:
                raise ZooError(f"{path}: the header claims shape {list(shape)} of {dtype} ({claimed} bytes) "
                               f"but the file holds {held} bytes of data (truncated or damaged)")
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
    except (ValueError, EOFError) as err:  # bad magic or header, pickled objects, an empty file
        raise ZooError(f"{path}: not a valid .npy file: {err}") from None
    except OSError as err:
        raise ZooError(f"{path}: cannot read it: {err.strerror or err}") from None
    except MemoryError:
        raise ZooError(f"{path}: the array does not fit in memory") from None


def _npy_header(fh, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an .npy header. numpy's parser of the header (a Python literal) fails
    on damaged bytes with ValueError, SyntaxError, tokenize.TokenError, ...: all mean the same."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(fh)
        if version not in readers:
            raise ValueError(f"format version {version} is not supported (1.0 or 2.0: numpy.save of a "
                             f"numeric array)")
        shape, _, dtype = readers[version](fh)
    except Exception as err:  # noqa: BLE001 - see the docstring
        message = " ".join(str(err).split()) or type(err).__name__
        raise ZooError(f"{path}: not a valid .npy file: {message}") from None
    return shape, dtype


def _to_array(value: Any, path: Path, name: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as err:  # ragged, or more dimensions than numpy allows
        raise ZooError(f"{path}: input {name!r} is not a rectangular array: {err}") from None


def run_model(session, feed: dict[str, np.ndarray], names: list[str] | None = None) -> list[np.ndarray]:
    """``session.run`` with onnxruntime's own failures as a one-line ZooError: the feed passed the
    signature checks, so what is left is in its values (a graph's edge pointing past its nodes, a
    size a reshape cannot take) or in the memory they need."""
    try:
        return session.run(names, feed)
    except MemoryError:
        raise ZooError("the model ran out of memory on this input; send fewer or smaller samples") from None
    except Exception as err:
        if not type(err).__module__.startswith("onnxruntime"):
            raise  # not onnxruntime's: a bug, keeps its traceback
        message = " ".join(str(err).split()).removeprefix("[ONNXRuntimeError] : ")
        raise ZooError(f"the model could not run on this input: {message[:400]}") from None


def json_safe(value: Any) -> tuple[Any, int]:
    """``value`` with every NaN and ±inf float replaced by ``None`` (JSON has no such numbers;
    ``json.dumps`` would write bare ``NaN``, which JSON parsers refuse), and how many there were."""
    if isinstance(value, (float, np.floating)):
        return (value, 0) if math.isfinite(value) else (None, 1)
    if isinstance(value, dict):
        pairs = [(k, json_safe(v)) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, sum(n for _, (_, n) in pairs)
    if isinstance(value, (list, tuple)):
        items = [json_safe(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


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
        # (an empty JSON list parses as float64: no value in it is a non-integer, e.g. a graph's no edges)
        if np.issubdtype(dtype, np.integer) and not np.issubdtype(array.dtype, np.integer) and array.size:
            raise ZooError(f"input {spec.name!r} must hold integers, got {array.dtype}")
        if np.iscomplexobj(array):  # astype would keep only the real part, silently
            raise ZooError(f"input {spec.name!r} holds complex numbers; the model takes real values")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise ZooError(f"input {spec.name!r} must be numeric, got {array.dtype}")
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, as the model would see it
            out[spec.name] = array.astype(dtype, copy=False)
    return out
