"""One served model: an onnxruntime session, its v2 signature, and its requests decoded against it."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.contract.errors import ZooError
from zoo.core.deploy.runtime import run_model  # numpy and the standard library only: no torch
from zoo.core.serve.protocol import (
    DEFAULT_MAX_BODY,
    ONNX_TO_V2,
    TEXT_INPUT,
    InferRequest,
    RequestError,
    RequestInput,
    binary_size,
    decode_tensor,
    encode,
    unpack_bytes,
)


def _dims(shape) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def _signature(args) -> list[dict[str, Any]]:
    return [{"name": a.name, "datatype": ONNX_TO_V2.get(a.type, a.type), "shape": _dims(a.shape)} for a in args]


@dataclass
class Endpoint:
    """One served model: an onnxruntime session and its signature.

    ``task`` is set for models whose inputs the task must check or build (index inputs such as
    token ids or a graph's edges, raw text): an embedding lookup or a gather would otherwise
    fail inside onnxruntime, and text must be tokenised as ``zoo predict`` does.
    """

    name: str
    path: Path
    session: Any
    metadata: dict[str, Any]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    task: Any = None  # the zoo Task of a text model (raw text → arrays, outputs → predictions)
    raw_meta: dict[str, Any] | None = None  # the run's inputs.json: raw rows/text decoded by its kind

    @classmethod
    def load(cls, name: str, path: Path, threads: int | None = None) -> Endpoint:
        from zoo.core import api
        from zoo.core.deploy.runtime import make_session, read_metadata

        session = make_session(path, spinning=False, threads=threads)
        endpoint = cls(name=name, path=path, session=session, metadata=read_metadata(session),
                       inputs=_signature(session.get_inputs()), outputs=_signature(session.get_outputs()),
                       raw_meta=api.read_raw_meta(path))
        task_name = endpoint.metadata.get("task")
        indexed = any(i["datatype"].startswith("INT") for i in endpoint.inputs)
        if task_name and (indexed or endpoint.metadata.get("onnx_vocabulary") or endpoint.raw_meta):
            endpoint.task = api.load_task(task_name)  # only these pay for loading the plugins
        return endpoint

    @functools.cached_property
    def takes_text(self) -> bool:
        return (self.task is not None and bool(self.metadata.get("onnx_vocabulary") or self.raw_meta)
                and TEXT_INPUT not in self.input_specs)

    @functools.cached_property
    def payload(self) -> str:
        """What each item of ``text`` is: ``"text"`` (UTF-8) or ``"bytes"`` (an encoded file, as
        the run's dataset registered its decoder; base64 in JSON)."""
        from zoo.core import api

        return api.raw_payload(self.raw_meta) if self.raw_meta is not None else "text"

    @functools.cached_property
    def input_specs(self) -> dict[str, dict[str, Any]]:
        """The model's inputs by name."""
        return {spec["name"]: spec for spec in self.inputs}

    @functools.cached_property
    def batchable(self) -> bool:
        """Every input and output has a dynamic first axis: requests can be stacked along it."""
        specs = [*self.session.get_inputs(), *self.session.get_outputs()]
        return all(len(s.shape) > 0 and not isinstance(s.shape[0], int) for s in specs)

    def describe(self) -> dict[str, Any]:
        spec = {"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}
        if self.payload == "bytes":  # what a client must put in each item (a file, not a path)
            spec["parameters"] = {"content": "an encoded file: base64 in JSON, raw with binary_data"}
        raw = {"raw_inputs": [spec]} if self.takes_text else {}
        return {"name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": self.inputs, "outputs": self.outputs,
                "parameters": {"zoo_model": self.metadata.get("model"), "task": self.metadata.get("task"),
                               "providers": self.session.get_providers(), **raw}}

    def answers(self, request: InferRequest) -> bool:
        """Whether the response adds the BYTES ``prediction``: raw text, or a task that decodes
        tensors; not where the model's own output is called ``prediction`` (a regression's values
        are its answer, and one response must not name two outputs alike)."""
        if any(o["name"] == "prediction" for o in self.outputs):
            return False
        return self.is_text_request(request) or bool(self.task is not None and self.task.answers_tensors)

    def is_text_request(self, request: InferRequest) -> bool:
        """Whether a request sends raw text: the ``text`` input of a text model."""
        return self.takes_text and any(i["name"] == TEXT_INPUT for i in request["inputs"])

    def decode(self, request: InferRequest, binary: bytes = b"",
               max_bytes: int = DEFAULT_MAX_BODY) -> dict[str, np.ndarray]:
        """Check a request against the model; returns the arrays to feed.

        ``binary`` holds the tensors sent with the binary data extension, in input order, each
        announced by ``parameters.binary_data_size`` (what tritonclient sends by default). A
        tensor whose shape would take more than ``max_bytes`` is refused before it is built (413).
        """
        if self.is_text_request(request):
            if len(request["inputs"]) != 1:
                raise RequestError(f"raw text comes alone: send only the {TEXT_INPUT!r} input")
            return self.decode_text(request["inputs"][0], binary)[1]
        offset, expected, feed = 0, self.input_specs, {}
        for item in request["inputs"]:
            name = item["name"]
            if name not in expected:
                raise RequestError(f"unknown input {name!r}; model {self.name!r} takes {sorted(expected)}")
            if name in feed:
                raise RequestError(f"input {name!r} is given twice")
            feed[name], offset = decode_tensor(item, expected[name], binary, offset, max_bytes)
        if len(feed) != len(expected):  # the names are known and unique: a shorter feed misses some
            raise RequestError(f"missing input(s) {sorted(set(expected) - set(feed))}")
        if self.task is not None:  # indices (token ids, edges) against what they index, as zoo predict does
            try:
                self.task.raw_inputs(feed, self.metadata)
            except ZooError as err:
                raise RequestError(str(err)) from None
        return feed

    def decode_text(self, item: RequestInput, binary: bytes) -> tuple[list[str] | list[bytes], dict[str, np.ndarray]]:
        """The raw input (``text``, BYTES ``[N]``) → (its items, the arrays to feed): strings, or
        the encoded files of a ``bytes`` payload (base64 in JSON, raw with the binary extension)."""
        texts = _texts(item, binary, as_bytes=self.payload == "bytes")
        try:
            if self.raw_meta is not None:  # own data: rows (JSON objects) or text, by the run's kind
                from zoo.core.api import decode_raw

                feed = decode_raw(self.raw_meta, texts)
            else:
                feed = self.task.raw_inputs(texts, self.metadata)
        except ZooError as err:
            raise RequestError(f"input {TEXT_INPUT!r}: {err}") from None
        if feed is None:
            raise RequestError(f"model {self.name!r} does not take raw text")
        from zoo.core.deploy.runtime import check_and_cast

        try:
            return texts, check_and_cast(self.session, feed)
        except ZooError as err:
            raise RequestError(str(err)) from None

    def wanted_outputs(self, request: InferRequest) -> list[str]:
        """The output names a request asks for, [] for all; checked before the model runs."""
        if request.get("outputs") is None:
            return []
        wanted = [o["name"] for o in request["outputs"]]
        known = {o["name"] for o in self.outputs} | ({"prediction"} if self.answers(request) else set())
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise RequestError(f"unknown output(s) {unknown}; the model has {sorted(known)}")
        return wanted

    def respond(self, request: InferRequest, feed: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                wanted: list[str], arrays: bool = False) -> dict[str, Any]:
        """The v2 infer response: the wanted outputs as JSON tensors (clients that asked for binary
        outputs read JSON too), plus ``prediction`` for raw text, and the request's ``id``.
        ``arrays``: leave numeric data as numpy arrays (for a codec that writes them)."""
        encoded = encode(outputs, wanted, arrays)
        if self.answers(request) and (not wanted or "prediction" in wanted):
            answers = self.predictions(outputs, feed)
            encoded.append({"name": "prediction", "datatype": "BYTES", "shape": [len(answers)], "data": answers})
        response = {"model_name": self.name, "model_version": "1", "outputs": encoded}
        if "id" in request:
            response["id"] = request["id"]
        return response

    def predictions(self, outputs: dict[str, np.ndarray], feed: dict[str, np.ndarray]) -> list[str]:
        """``zoo predict``'s answer for each row, JSON-encoded (the BYTES ``prediction`` output)."""
        from zoo.core.deploy.runtime import json_safe

        answers = self.task.postprocess(outputs, {**self.metadata, "_inputs": feed})
        return [json.dumps(json_safe(a)[0]) for a in answers]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One onnxruntime call; its failures on an input's values are ZooErrors (a 400)."""
        names = [o["name"] for o in self.outputs]
        return dict(zip(names, run_model(self.session, feed, names)))


def _texts(item: RequestInput, binary: bytes, as_bytes: bool = False) -> list[str] | list[bytes]:
    """The strings of a raw-text input: JSON strings or Triton's binary BYTES, ``shape [N]``;
    ``as_bytes``: the raw bytes of each element (JSON strings are base64, as KServe sends files)."""
    shape = item["shape"]
    if item["datatype"] != "BYTES":
        raise RequestError(f"input {TEXT_INPUT!r} has datatype {item['datatype']!r}; raw text is BYTES")
    if len(shape) != 1 or shape[0] < 1:
        raise RequestError(f"input {TEXT_INPUT!r}: shape must be [N] with N >= 1 texts, got {shape!r}")
    size = binary_size(item)
    if size is not None:
        if size > len(binary):
            raise RequestError(f"input {TEXT_INPUT!r}: binary_data_size {size!r} does not match the body")
        texts = unpack_bytes(bytes(binary[:size]), text=not as_bytes)
    else:
        texts = item.get("data")
        if not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
            raise RequestError(f"input {TEXT_INPUT!r}: data must be a list of strings")
        if as_bytes:
            texts = [_unbase64(t, i) for i, t in enumerate(texts)]
    if len(texts) != shape[0]:
        raise RequestError(f"input {TEXT_INPUT!r}: {len(texts)} texts do not fill shape {shape}")
    return texts


def _unbase64(text: str, index: int) -> bytes:
    """One JSON item of a ``bytes`` payload: the file, base64-encoded (standard alphabet)."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)  # MIME base64 wraps its lines
    except (binascii.Error, ValueError):
        raise RequestError(f"input {TEXT_INPUT!r}: item {index} is not base64; this model takes each item "
                           f"as an encoded file (an image's bytes, say): base64 in JSON, or raw with "
                           f"the binary data extension") from None
