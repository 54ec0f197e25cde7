"""The Open Inference Protocol (KServe v2) bodies ``zoo serve`` accepts and writes.

A request is first checked for its *form* by the pydantic models below (an object with an
``inputs`` list; each input a name, a datatype, a shape of non-negative integers, and ``data``
or ``parameters.binary_data_size``), then against the *model* (names, datatypes, shapes) by
:func:`decode_tensor` and the endpoint. Either failure is a :class:`RequestError`: an HTTP 400
(413 for a tensor over the size limit) with one line naming the field, never a traceback.

Shapes:
    - a JSON tensor: ``data`` holds ``prod(shape)`` values, flat or nested, row-major;
    - a binary tensor: ``parameters.binary_data_size`` bytes of the body after its JSON part
      (``Inference-Header-Content-Length``), in input order, read in place;
    - a BYTES tensor: JSON strings, or Triton's length-prefixed binary form (4-byte
      little-endian length, then UTF-8).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Optional

import numpy as np
from pydantic import Field, StrictInt, StrictStr, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

# KServe v2 / Triton datatypes ↔ numpy
V2_TO_NUMPY = {
    "BOOL": np.bool_, "UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
ONNX_TO_V2 = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16", "tensor(int64)": "INT64",
    "tensor(int32)": "INT32", "tensor(int16)": "INT16", "tensor(int8)": "INT8", "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
}
NUMPY_TO_V2 = {np.dtype(v): k for k, v in V2_TO_NUMPY.items()}
V2_DTYPES = {k: np.dtype(v) for k, v in V2_TO_NUMPY.items()}
DEFAULT_MAX_BODY = 64 * 1024 * 1024
# Decoded JSON tensors take up to ~20x their text in memory (a Python float per number, then the
# array): the JSON part gets a tighter bound than binary tensor data, which is used in place.
DEFAULT_MAX_JSON = 8 * 1024 * 1024
TEXT_INPUT = "text"  # the raw-text input of text models (BYTES [N])


class RequestError(Exception):
    """A bad request: becomes an HTTP error with a one-line JSON message."""

    def __init__(self, message: str, status: int = 400, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close  # the body was left unread: the connection cannot carry another request


# -- the request's form ------------------------------------------------------------------------------
# TypedDicts validated by one pydantic TypeAdapter rather than BaseModels: the same checks
# without a model instance per input (pydantic's own advice for hot paths), on a path every
# request takes. Unknown keys are dropped, never an error: the protocol
# lets clients add fields and parameters (tritonclient sends ``binary_data_output``).

Dim = Annotated[StrictInt, Field(ge=0)]


class TensorParameters(TypedDict):
    """An input's ``parameters``; only the binary data extension's size is read."""

    binary_data_size: NotRequired[Annotated[Optional[Dim], Field(
        description="Bytes of this tensor in the binary part of the body, in input order.")]]


class RequestInput(TypedDict):
    """One input tensor of an infer request."""

    name: Annotated[StrictStr, Field(description="The model input it feeds.")]
    datatype: Annotated[StrictStr, Field(description="A v2 datatype: FP32, INT64, BYTES, ...")]
    shape: Annotated[list[Dim], Field(description="Its dimensions, each a non-negative integer.")]
    data: NotRequired[Annotated[Optional[list], Field(
        description="Its values, flat or nested, row-major (JSON tensors).")]]
    parameters: NotRequired[Annotated[Optional[TensorParameters], Field(
        description="binary_data_size for binary tensors.")]]


class RequestOutput(TypedDict):
    """One output a request asks for (all outputs when the request names none)."""

    name: Annotated[StrictStr, Field(description="The model output to return.")]


class InferRequest(TypedDict):
    """``POST /v2/models/{name}/infer``: the JSON part of the body."""

    id: NotRequired[Annotated[Any, Field(description="Echoed back in the response.")]]
    inputs: Annotated[list[RequestInput], Field(description="The input tensors, each once.")]
    outputs: NotRequired[Annotated[Optional[list[RequestOutput]], Field(
        description="The outputs wanted (default: all).")]]


_REQUEST = TypeAdapter(InferRequest)


# What each field must be, in the words of a client's author (pydantic's messages name types
# and constraints, not the protocol).
_FIELD_RULES = {
    "inputs": "request body must be a JSON object with an 'inputs' list",
    "input": "each input must be an object with name, shape, datatype and data",
    "name": "name must be a string",
    "datatype": "datatype must be a string such as 'FP32'",
    "shape": "shape must be a list of non-negative integers",
    "data": "'data' must be a list of values (or binary data with parameters.binary_data_size)",
    "parameters": "parameters must be an object",
    "binary_data_size": "binary_data_size must be a non-negative integer",
    "outputs": "'outputs' must be a list of objects, each with a string 'name'",
}


def parse_request(raw: bytes | dict) -> InferRequest:
    """The JSON part of a body (bytes, parsed and checked in one pass by pydantic's JSON parser,
    or an already decoded object) → the request, or a one-line :class:`RequestError` (400)."""
    try:
        if isinstance(raw, dict):
            return _REQUEST.validate_python(raw)
        return _REQUEST.validate_json(raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise RequestError(f"request body is not JSON: {' '.join(first['msg'].split())}") from None
        raise RequestError(_one_line(first, raw if isinstance(raw, dict) else _loads(raw))) from None


def _loads(raw: bytes) -> Any:
    """The body parsed again on the error path only, for the input names in the message."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _one_line(first: dict[str, Any], body: Any) -> str:
    """A validation error as one line: which input, which field, what it must be."""
    loc = [p for p in first["loc"] if isinstance(p, int) or p in _FIELD_RULES]  # no union tags
    if not loc or loc[0] not in ("inputs", "outputs") or not isinstance(body, dict):
        return _FIELD_RULES["inputs"]
    if loc[0] == "outputs":
        return _FIELD_RULES["outputs"]
    if len(loc) < 3:
        return _FIELD_RULES["inputs" if len(loc) == 1 else "input"]
    field = str(loc[-1] if loc[2] == "parameters" and len(loc) > 3 else loc[2])
    item = body["inputs"][loc[1]]
    where = f"input {item['name']!r}" if isinstance(item.get("name"), str) else f"input {loc[1]}"
    rule = _FIELD_RULES.get(field, f"{field} is invalid")
    if first["type"] == "missing":
        return f"{where}: {field} is missing ({rule})"
    got = json.dumps(first["input"], default=str)
    return f"{where}: {rule}, got {got if len(got) <= 60 else got[:57] + '...'}"


# -- the request against the model ----------------------------------------------------------------


def decode_tensor(item: RequestInput, spec: dict[str, Any], binary: bytes, offset: int,
                  max_bytes: int) -> tuple[np.ndarray, int]:
    """One input of a request checked against the model's ``spec`` → (the array, the offset
    past its binary data). The size its shape claims is bounded before any allocation (413)."""
    name, datatype, shape = spec["name"], item["datatype"], item["shape"]
    if datatype != spec["datatype"]:
        raise RequestError(f"input {name!r} has datatype {datatype!r}; the model expects {spec['datatype']}")
    dtype = V2_DTYPES.get(datatype)
    if dtype is None:
        raise RequestError(f"input {name!r}: datatype {datatype} is not served (valid: {sorted(V2_TO_NUMPY)})")
    if not _fits(shape, spec["shape"]):
        raise RequestError(f"input {name!r} has shape {shape}; the model expects {spec['shape']} (-1 = any)")
    count = math.prod(shape)
    if count * dtype.itemsize > max_bytes:
        raise RequestError(f"input {name!r}: shape {shape} of {datatype} takes {count * dtype.itemsize} bytes, "
                           f"more than the limit of {max_bytes} (--max-body-mb)", 413)
    size = binary_size(item)
    if size is not None:
        array, offset = _binary_tensor(name, datatype, dtype, size, binary, offset)
    else:
        array = _json_tensor(name, datatype, dtype, item.get("data"))
    if array.size != count:
        raise RequestError(f"input {name!r}: {array.size} values do not fill shape {shape}")
    return array.reshape(shape), offset


def _fits(shape: list[int], expected: list[int]) -> bool:
    """``shape`` matches the model's ``expected`` shape (-1: any size); a plain loop, as this
    runs for every input of every request."""
    if len(shape) != len(expected):
        return False
    for want, got in zip(expected, shape):
        if want != -1 and want != got:
            return False
    return True


def binary_size(item: RequestInput) -> int | None:
    """An input's ``parameters.binary_data_size``, or None when its data comes as JSON."""
    parameters = item.get("parameters")
    return parameters.get("binary_data_size") if parameters is not None else None


def _binary_tensor(name: str, datatype: str, dtype: np.dtype, size: int, binary: bytes,
                   offset: int) -> tuple[np.ndarray, int]:
    if offset + size > len(binary):
        raise RequestError(f"input {name!r}: binary_data_size {size!r} does not match the body")
    try:  # a view of the body, not a copy
        return np.frombuffer(memoryview(binary)[offset:offset + size], dtype=dtype), offset + size
    except ValueError as err:
        raise RequestError(f"input {name!r}: binary data is not {datatype}: {err}") from None


def _json_tensor(name: str, datatype: str, dtype: np.dtype, data: list | None) -> np.ndarray:
    if data is None:
        raise RequestError(f"input {name!r}: {_FIELD_RULES['data']}, got null")
    try:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: no log line per request
            return np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise RequestError(f"input {name!r}: data is not {datatype}: {err}") from None


def unpack_bytes(data: bytes, text: bool = True) -> list[str] | list[bytes]:
    """Triton's binary BYTES tensor: each element a 4-byte little-endian length, then the bytes
    (UTF-8 strings; raw ``bytes`` with ``text=False``)."""
    texts, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise RequestError("binary BYTES data is truncated")
        n = int.from_bytes(data[offset:offset + 4], "little")
        offset += 4
        if offset + n > len(data):
            raise RequestError("binary BYTES data is truncated")
        try:
            texts.append(data[offset:offset + n].decode("utf-8") if text else bytes(data[offset:offset + n]))
        except UnicodeDecodeError as err:
            raise RequestError(f"text is not UTF-8: {err}") from None
        offset += n
    return texts


# -- responses -------------------------------------------------------------------------------------


def encode(outputs: dict[str, np.ndarray], wanted: list[str] | None, arrays: bool = False) -> list[dict[str, Any]]:
    """Output arrays → v2 JSON tensors (only the ``wanted`` ones when given). ``arrays``: the
    codec writes numeric numpy arrays itself (orjson), so ``data`` stays an array, not a list of
    Python floats; float32 values are then written at float32 precision (``0.1``, not
    ``0.10000000149011612``), the same numbers once read back as float32."""
    return [{"name": name, "datatype": NUMPY_TO_V2.get(array.dtype, "FP32"), "shape": list(array.shape),
             "data": array.reshape(-1) if arrays and array.dtype in NUMPY_TO_V2 else array.reshape(-1).tolist()}
            for name, array in outputs.items() if not wanted or name in wanted]


def json_codec():
    """(dumps → bytes, whether it writes numpy arrays): orjson when installed (the serve extra
    brings it; several times faster on the hot path of every request), else the standard library."""
    try:
        import orjson
    except ImportError:
        return std_dumps, False
    numpy = orjson.OPT_SERIALIZE_NUMPY

    def dumps(obj: Any) -> bytes:  # orjson writes NaN and ±inf as null, in arrays too
        try:
            return orjson.dumps(obj, option=numpy)
        except TypeError:  # what orjson refuses and JSON allows: an integer beyond 64 bits (an echoed id)
            return std_dumps(_as_lists(obj))

    return dumps, True


def _as_lists(value: Any) -> Any:
    """``value`` with numpy arrays and scalars as Python lists and numbers (for ``json``)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


def std_dumps(obj: Any) -> bytes:
    """The standard library's JSON, with NaN and ±inf as null (as orjson writes them): bare NaN
    is not JSON, and clients' parsers refuse it."""
    from zoo.core.deploy.runtime import json_safe

    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(json_safe(obj)[0], separators=(",", ":")).encode()
