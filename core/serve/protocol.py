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
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

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
# extra="allow": the protocol lets clients add fields and parameters (tritonclient sends
# ``binary_data_output`` and friends); they are kept, never an error.

Dim = Annotated[StrictInt, Field(ge=0)]


class TensorParameters(BaseModel):
    """An input's ``parameters``; only the binary data extension's size is read."""

    model_config = ConfigDict(extra="allow")
    binary_data_size: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None, description="Bytes of this tensor in the binary part of the body, in input order.")


class RequestInput(BaseModel):
    """One input tensor of an infer request."""

    model_config = ConfigDict(extra="allow")
    name: StrictStr = Field(description="The model input it feeds.")
    datatype: StrictStr = Field(description="A v2 datatype: FP32, INT64, BYTES, ...")
    shape: list[Dim] = Field(description="Its dimensions, each a non-negative integer.")
    data: list | None = Field(None, description="Its values, flat or nested, row-major (JSON tensors).")
    parameters: TensorParameters | None = Field(None, description="binary_data_size for binary tensors.")


class RequestOutput(BaseModel):
    """One output a request asks for (all outputs when the request names none)."""

    model_config = ConfigDict(extra="allow")
    name: StrictStr = Field(description="The model output to return.")


class InferRequest(BaseModel):
    """``POST /v2/models/{name}/infer``: the JSON part of the body."""

    model_config = ConfigDict(extra="allow")
    id: Any = Field(None, description="Echoed back in the response.")
    inputs: list[RequestInput] = Field(description="The input tensors, each once.")
    outputs: list[RequestOutput] | None = Field(None, description="The outputs wanted (default: all).")


# What each field must be, in the words of a client's author (pydantic's own message follows).
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


def parse_request(body: Any) -> InferRequest:
    """A decoded JSON body → the request, or a one-line :class:`RequestError` (400)."""
    if not isinstance(body, dict):
        raise RequestError(_FIELD_RULES["inputs"])
    try:
        return InferRequest.model_validate(body)
    except ValidationError as err:
        raise RequestError(_one_line(err, body)) from None


def _one_line(err: ValidationError, body: dict) -> str:
    """The first validation error as one line: which input, which field, what it must be."""
    first = err.errors(include_url=False)[0]
    loc = [p for p in first["loc"] if not (isinstance(p, str) and p.startswith(("list[", "int", "function")))]
    if not loc or loc[0] not in ("inputs", "outputs"):
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
    name, datatype, shape = spec["name"], item.datatype, item.shape
    if datatype != spec["datatype"]:
        raise RequestError(f"input {name!r} has datatype {datatype!r}; the model expects {spec['datatype']}")
    if datatype not in V2_TO_NUMPY:
        raise RequestError(f"input {name!r}: datatype {datatype} is not served (valid: {sorted(V2_TO_NUMPY)})")
    dtype = np.dtype(V2_TO_NUMPY[datatype])
    if len(shape) != len(spec["shape"]) or any(e != -1 and e != d for e, d in zip(spec["shape"], shape)):
        raise RequestError(f"input {name!r} has shape {shape}; the model expects {spec['shape']} (-1 = any)")
    count = math.prod(shape)
    if count * dtype.itemsize > max_bytes:
        raise RequestError(f"input {name!r}: shape {shape} of {datatype} takes {count * dtype.itemsize} bytes, "
                           f"more than the limit of {max_bytes} (--max-body-mb)", 413)
    size = binary_size(item)
    if size is not None:
        array, offset = _binary_tensor(name, datatype, dtype, size, binary, offset)
    else:
        array = _json_tensor(name, datatype, dtype, item.data)
    if array.size != count:
        raise RequestError(f"input {name!r}: {array.size} values do not fill shape {shape}")
    return array.reshape(shape), offset


def binary_size(item: RequestInput) -> int | None:
    """An input's ``parameters.binary_data_size``, or None when its data comes as JSON."""
    return item.parameters.binary_data_size if item.parameters is not None else None


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


def unpack_bytes(data: bytes) -> list[str]:
    """Triton's binary BYTES tensor: each element a 4-byte little-endian length, then the bytes."""
    texts, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise RequestError("binary BYTES data is truncated")
        n = int.from_bytes(data[offset:offset + 4], "little")
        offset += 4
        if offset + n > len(data):
            raise RequestError("binary BYTES data is truncated")
        try:
            texts.append(data[offset:offset + n].decode("utf-8"))
        except UnicodeDecodeError as err:
            raise RequestError(f"text is not UTF-8: {err}") from None
        offset += n
    return texts


# -- responses -------------------------------------------------------------------------------------


def encode(outputs: dict[str, np.ndarray], wanted: list[str] | None) -> list[dict[str, Any]]:
    """Output arrays → v2 JSON tensors (only the ``wanted`` ones when given)."""
    return [{"name": name, "datatype": NUMPY_TO_V2.get(array.dtype, "FP32"), "shape": list(array.shape),
             "data": array.reshape(-1).tolist()}
            for name, array in outputs.items() if not wanted or name in wanted]


def json_codec():
    """(loads, dumps → bytes): orjson when installed (the serve extra brings it; several times
    faster on the hot path of every request), else the standard library."""
    try:
        import orjson
    except ImportError:
        return json.loads, std_dumps
    return orjson.loads, orjson.dumps  # orjson writes NaN and ±inf as null


def std_dumps(obj: Any) -> bytes:
    """The standard library's JSON, with NaN and ±inf as null (as orjson writes them): bare NaN
    is not JSON, and clients' parsers refuse it."""
    from zoo.core.runtime import json_safe

    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(json_safe(obj)[0], separators=(",", ":")).encode()


def parse_json(raw: bytes, loads) -> Any:
    """The JSON part of a body, or a one-line 400."""
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # JSONDecodeError of either codec
        raise RequestError(f"request body is not JSON: {' '.join(str(err).split())}") from None
