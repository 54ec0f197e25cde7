"""``zoo serve``: exported models behind the Open Inference Protocol (KServe v2, as Triton speaks it).

Built on Starlette (ASGI) and served by uvicorn; both come with the ``zoo-ml[serve]`` extra.

    GET  /v2/health/live, /v2/health/ready         liveness and readiness
    GET  /v2                                       server metadata
    GET  /v2/models/{name}                          inputs/outputs: names, datatypes, shapes (-1 = dynamic)
    GET  /v2/models/{name}/ready
    GET  /v2/models[/{name}]/stats                 inference_count, execution_count (Triton statistics)
    POST /v2/models/{name}/infer                    JSON (or binary-extension) tensors in, JSON out

Raw text: a model whose ONNX metadata holds a vocabulary (text models), or whose run keeps an
``inputs.json`` (own data: each item a row as a JSON object, or a sentence), also takes one input
``text`` of datatype BYTES and shape ``[N]`` (JSON strings, or tritonclient's length-prefixed
binary BYTES); the server tokenises it exactly as ``zoo predict`` does (the task's
``raw_inputs``) and adds a BYTES output ``prediction`` holding ``zoo predict``'s answer per text
(JSON-encoded). The model metadata lists it under ``parameters.raw_inputs``.

Dynamic batching that never waits for strangers: a request that finds the model idle runs at
once, alone; requests that arrive while an onnxruntime call is in flight (and agree on every
non-batch dimension) are concatenated along the batch axis and run together as the next call, of
at most ``max_batch`` rows, then split back per request. When a call returns, the queued requests
wait for the clients just answered to come back, at most ``max_delay_ms`` from their arrival, so
the batch grows with the number of busy clients; a lone client never waits. At most two calls run
at once (one in onnxruntime while the event loop gathers the next). onnxruntime runs in worker
threads so the event loop keeps accepting requests meanwhile.

Hardening, as a server on a shared host needs: every malformed request is a 400 with a one-line
JSON ``{"error": ...}`` (the connection kept); the body, its JSON part and every decoded tensor
are bounded before anything is allocated (413); a body that does not arrive within the read
timeout is a 408, and connections that stall before or between requests are closed; an optional
bearer token guards everything but ``/v2/health/*`` (401); TLS comes from uvicorn.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hmac
import json
import math
import re
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.contract.errors import ZooError
from zoo.core.deploy.runtime import run_model  # numpy and the standard library only: no torch

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
DEFAULT_READ_TIMEOUT = 30.0  # seconds for a request's headers or body to arrive
TEXT_INPUT = "text"  # the raw-text input of text models (BYTES [N])


class RequestError(Exception):
    """A bad request: becomes an HTTP error with a one-line JSON message."""

    def __init__(self, message: str, status: int = 400, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close  # the body was left unread: the connection cannot carry another request


def _dims(shape) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


@dataclass
class Endpoint:
    """One served model: an onnxruntime session and its signature."""

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
        from zoo.core.deploy.runtime import make_session, read_metadata

        session = make_session(path, spinning=False, threads=threads)
        endpoint = cls(name=name, path=path, session=session, metadata=read_metadata(session))
        endpoint.inputs = [{"name": i.name, "datatype": ONNX_TO_V2.get(i.type, i.type), "shape": _dims(i.shape)}
                           for i in session.get_inputs()]
        endpoint.outputs = [{"name": o.name, "datatype": ONNX_TO_V2.get(o.type, o.type), "shape": _dims(o.shape)}
                            for o in session.get_outputs()]
        task_name = endpoint.metadata.get("task")
        indexed = any(i["datatype"].startswith("INT") for i in endpoint.inputs)
        from zoo.core.api import read_raw_meta

        endpoint.raw_meta = read_raw_meta(path)
        if task_name and (indexed or endpoint.metadata.get("onnx_vocabulary") or endpoint.raw_meta):
            # Only models with index inputs (token ids, a graph's edges) or raw text pay for loading
            # the plugins: their task checks the indices (an embedding lookup or a gather would
            # fail inside onnxruntime) and turns text into token ids.
            from zoo.core.api import _loaded_zoo

            endpoint.task = _loaded_zoo().registry.tasks.get(task_name)
        return endpoint

    @property
    def takes_text(self) -> bool:
        return (self.task is not None and bool(self.metadata.get("onnx_vocabulary") or self.raw_meta)
                and TEXT_INPUT not in {i["name"] for i in self.inputs})

    @functools.cached_property
    def batchable(self) -> bool:
        """Every input and output has a dynamic first axis: requests can be stacked along it."""
        specs = [*self.session.get_inputs(), *self.session.get_outputs()]
        return all(len(s.shape) > 0 and not isinstance(s.shape[0], int) for s in specs)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": self.inputs, "outputs": self.outputs,
                "parameters": {"zoo_model": self.metadata.get("model"), "task": self.metadata.get("task"),
                               "providers": self.session.get_providers(),
                               **({"raw_inputs": [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}]}
                                  if self.takes_text else {})}}

    def is_text_request(self, body: dict[str, Any]) -> bool:
        """Whether a (validated) request sends raw text: the ``text`` input of a text model."""
        return self.takes_text and any(isinstance(i, dict) and i.get("name") == TEXT_INPUT
                                       for i in body["inputs"])

    def decode_text(self, item: dict[str, Any], binary: bytes) -> tuple[list[str], dict[str, np.ndarray]]:
        """The raw-text input (``text``, BYTES ``[N]``) → (the texts, the arrays to feed)."""
        if item.get("datatype") != "BYTES":
            raise RequestError(f"input {TEXT_INPUT!r} has datatype {item.get('datatype')!r}; raw text is BYTES")
        shape = item.get("shape")
        if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] >= 1):
            raise RequestError(f"input {TEXT_INPUT!r}: shape must be [N] with N >= 1 texts, got {shape!r}")
        size = _binary_size(item, TEXT_INPUT)
        if size is not None:
            if size > len(binary):
                raise RequestError(f"input {TEXT_INPUT!r}: binary_data_size {size!r} does not match the body")
            texts = _unpack_bytes(bytes(binary[:size]))
        else:
            texts = item.get("data")
            if not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
                raise RequestError(f"input {TEXT_INPUT!r}: data must be a list of strings")
        if len(texts) != shape[0]:
            raise RequestError(f"input {TEXT_INPUT!r}: {len(texts)} texts do not fill shape {shape}")
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

    def predictions(self, outputs: dict[str, np.ndarray], feed: dict[str, np.ndarray]) -> list[str]:
        """``zoo predict``'s answer for each row, JSON-encoded (the BYTES ``prediction`` output)."""
        from zoo.core.deploy.runtime import json_safe

        answers = self.task.postprocess(outputs, {**self.metadata, "_inputs": feed})
        return [json.dumps(json_safe(a)[0]) for a in answers]

    def wanted_outputs(self, body: dict[str, Any]) -> list[str]:
        """The output names a (decoded) request asks for, [] for all; checked before the model runs."""
        requested = body.get("outputs")
        if requested is None:
            return []
        if not (isinstance(requested, list) and all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                     for o in requested)):
            raise RequestError("'outputs' must be a list of objects, each with a string 'name'")
        wanted = [o["name"] for o in requested]
        known = {o["name"] for o in self.outputs} | ({"prediction"} if self.is_text_request(body) else set())
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise RequestError(f"unknown output(s) {unknown}; the model has {sorted(known)}")
        return wanted

    def respond(self, body: dict[str, Any], feed: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                wanted: list[str]) -> dict[str, Any]:
        """The v2 infer response: the wanted outputs as JSON tensors (clients that asked for binary
        outputs read JSON too), plus ``prediction`` for raw text, and the request's ``id``."""
        encoded = encode(outputs, wanted)
        if self.is_text_request(body) and (not wanted or "prediction" in wanted):
            answers = self.predictions(outputs, feed)
            encoded.append({"name": "prediction", "datatype": "BYTES", "shape": [len(answers)], "data": answers})
        response = {"model_name": self.name, "model_version": "1", "outputs": encoded}
        if "id" in body:
            response["id"] = body["id"]
        return response

    def decode(self, body: dict[str, Any], binary: bytes = b"",
               max_bytes: int = DEFAULT_MAX_BODY) -> dict[str, np.ndarray]:
        """Validate a v2 infer request against the model; returns the arrays to feed.

        ``binary`` holds the tensors sent with the binary data extension, in input order, each
        announced by ``parameters.binary_data_size`` (what tritonclient sends by default). A
        tensor whose shape would take more than ``max_bytes`` is refused before it is built (413).
        """
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise RequestError("request body must be a JSON object with an 'inputs' list")
        if self.is_text_request(body):
            if len(body["inputs"]) != 1:
                raise RequestError(f"raw text comes alone: send only the {TEXT_INPUT!r} input")
            return self.decode_text(body["inputs"][0], binary)[1]
        offset = 0
        expected = {spec["name"]: spec for spec in self.inputs}
        feed: dict[str, np.ndarray] = {}
        for item in body["inputs"]:
            if not isinstance(item, dict):
                raise RequestError("each input must be an object with name, shape, datatype and data")
            name = item.get("name")
            if not isinstance(name, str) or name not in expected:
                raise RequestError(f"unknown input {name!r}; model {self.name!r} takes {sorted(expected)}")
            if name in feed:
                raise RequestError(f"input {name!r} is given twice")
            feed[name], offset = self._tensor(item, expected[name], binary, offset, max_bytes)
        missing = sorted(set(expected) - set(feed))
        if missing:
            raise RequestError(f"missing input(s) {missing}")
        if self.task is not None:  # indices (token ids, edges) against what they index, as zoo predict does
            try:
                self.task.raw_inputs(feed, self.metadata)
            except ZooError as err:
                raise RequestError(str(err)) from None
        return feed

    @staticmethod
    def _tensor(item: dict[str, Any], spec: dict[str, Any], binary: bytes, offset: int,
                max_bytes: int) -> tuple[np.ndarray, int]:
        """One input of a request checked against the model's ``spec`` → (the array, the offset
        past its binary data). The size its shape claims is bounded before any allocation."""
        name, datatype = spec["name"], item.get("datatype")
        if datatype != spec["datatype"]:
            raise RequestError(f"input {name!r} has datatype {datatype!r}; the model expects {spec['datatype']}")
        if datatype not in V2_TO_NUMPY:
            raise RequestError(f"input {name!r}: datatype {datatype} is not served (valid: {sorted(V2_TO_NUMPY)})")
        dtype = np.dtype(V2_TO_NUMPY[datatype])
        shape = item.get("shape")
        # type(d) is int: JSON true and false are bools, which isinstance(d, int) would let through
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise RequestError(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
        if len(shape) != len(spec["shape"]) or any(e != -1 and e != d for e, d in zip(spec["shape"], shape)):
            raise RequestError(f"input {name!r} has shape {shape}; the model expects {spec['shape']} (-1 = any)")
        count = math.prod(shape)
        if count * dtype.itemsize > max_bytes:
            raise RequestError(f"input {name!r}: shape {shape} of {datatype} takes {count * dtype.itemsize} bytes, "
                               f"more than the limit of {max_bytes} (--max-body-mb)", 413)
        size = _binary_size(item, name)
        if size is not None:
            if offset + size > len(binary):
                raise RequestError(f"input {name!r}: binary_data_size {size!r} does not match the body")
            try:  # a view of the body, not a copy
                array = np.frombuffer(memoryview(binary)[offset:offset + size], dtype=dtype)
            except ValueError as err:
                raise RequestError(f"input {name!r}: binary data is not {datatype}: {err}") from None
            offset += size
        else:
            data = item.get("data")
            if not isinstance(data, list):
                raise RequestError(f"input {name!r}: 'data' must be a list of values (or binary data with "
                                   f"parameters.binary_data_size), got {type(data).__name__}")
            try:
                with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: no log line per request
                    array = np.asarray(data, dtype=dtype)
            except (ValueError, TypeError, OverflowError, RecursionError) as err:
                raise RequestError(f"input {name!r}: data is not {datatype}: {err}") from None
        if array.size != count:
            raise RequestError(f"input {name!r}: {array.size} values do not fill shape {shape}")
        return array.reshape(shape), offset

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One onnxruntime call; its failures on an input's values are ZooErrors (a 400)."""
        names = [o["name"] for o in self.outputs]
        return dict(zip(names, run_model(self.session, feed, names)))


def _binary_size(item: dict[str, Any], name: str) -> int | None:
    """An input's ``parameters.binary_data_size``, or None when its data comes as JSON."""
    parameters = item.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise RequestError(f"input {name!r}: parameters must be an object, got {type(parameters).__name__}")
    size = parameters.get("binary_data_size")
    if size is not None and (type(size) is not int or size < 0):
        raise RequestError(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}")
    return size


def _unpack_bytes(data: bytes) -> list[str]:
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


def encode(outputs: dict[str, np.ndarray], wanted: list[str] | None) -> list[dict[str, Any]]:
    out = []
    for name, array in outputs.items():
        if wanted and name not in wanted:
            continue
        out.append({"name": name, "datatype": NUMPY_TO_V2.get(array.dtype, "FP32"), "shape": list(array.shape),
                    "data": array.reshape(-1).tolist()})
    return out


@dataclass
class _Pending:
    feed: dict[str, np.ndarray]
    rows: int
    key: tuple  # what must agree to merge: each input's name, non-batch dimensions and dtype
    future: asyncio.Future
    since: float  # loop.time() at arrival


class Batcher:
    """Merges concurrent requests to one endpoint into onnxruntime calls (dynamic batching).

    Batching that never waits for strangers: a request that finds the model idle, with no
    recently answered client due back, runs at once, by itself (one client gets batching-off
    latency). Requests that arrive while a call is in flight queue and go together in the next
    call. When a call returns, the batcher expects the clients it just answered back (a client
    that got its answer sends its next request), and holds the queued requests until they are
    (the group then holds everyone the server held a moment ago) or ``max_delay_ms`` has
    passed, whichever comes first: the batch size follows the load, 1 for one client, about N
    for N busy clients, at most ``max_batch`` rows. Requests merge when every non-batch
    dimension and dtype agree; the others keep their places in the queue.

    ``max_delay_ms`` bounds how long a queued request is held back for company: from its
    arrival, at most that long before it is dispatched (as soon as a call slot is free; waits
    for compute, when ``max_in_flight`` calls already run, are not bounded by it). A group
    that is complete while a call runs starts as a second call alongside (pipelining: one call
    in onnxruntime while the event loop gathers the next).

    Args:
        endpoint: what runs a feed: ``endpoint.run(feed) -> outputs`` (called in a worker thread,
            so the event loop keeps reading requests) and ``endpoint.batchable``.
        max_batch: most rows in one call; 1 turns batching off (each request its own call).
        max_delay_ms: longest a request is held back for company (0: never; dispatch at once
            whenever a slot is free).
        max_in_flight: most concurrent calls (1: strictly one call at a time).
    """

    def __init__(self, endpoint: Endpoint, max_batch: int, max_delay_ms: float, max_in_flight: int = 2) -> None:
        self.endpoint = endpoint
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000.0
        self.max_in_flight = max(1, max_in_flight)
        self.queue: collections.deque[_Pending] = collections.deque()
        self.running = 0    # calls in flight
        self.timer: asyncio.TimerHandle | None = None  # wakes _dispatch when a held group is due
        self.timer_at = 0.0
        self.soon = False   # a _dispatch is scheduled for the next loop iteration
        self.queued_rows = self.running_rows = 0
        self.expected, self.due_until = 0, float("-inf")  # rows due back from the last call's clients
        self.calls = 0      # onnxruntime executions
        self.requests = 0   # inference requests answered through them

    async def submit(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request's ``feed`` (arrays ``[rows, ...]``), alone or merged; its outputs' rows."""
        loop = asyncio.get_running_loop()
        self.requests += 1
        if self.max_batch <= 1 or not self.endpoint.batchable:
            self.calls += 1
            return await loop.run_in_executor(None, self.endpoint.run, feed)
        rows = next(iter(feed.values())).shape[0]
        if not self.running and not self.queue and (  # the model is idle ...
                rows >= min(self.expected, self.max_batch) or loop.time() >= self.due_until):
            return await self._run_alone(feed, rows)  # ... and no answered client is due: at once
        key = tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(feed.items()))
        pending = _Pending(feed, rows, key, loop.create_future(), loop.time())
        self.queue.append(pending)
        self.queued_rows += rows
        if not self.soon:  # at the end of this loop iteration: requests whose handlers run in it merge
            self.soon = True
            loop.call_soon(self._on_soon)
        return await pending.future

    async def _run_alone(self, feed: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run a request that found the model idle in its own handler, not queued (as cheap as
        batching off)."""
        self.running += 1
        self.running_rows += rows
        self.calls += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self.endpoint.run, feed)
        except Exception as err:  # noqa: BLE001 - as for a merged call
            raise _request_error(err) from None
        finally:
            self._finished(rows)

    def _dispatch(self) -> None:
        """Start calls from the queue while a slot is free and the oldest group is not held back
        (see :meth:`_hold`). Called on each arrival, each finished call and the deadline timer."""
        loop = asyncio.get_running_loop()
        while self.queue and self.running < self.max_in_flight:
            now = loop.time()
            until = self._hold(now)
            if until > now:
                if self.timer is None or self.timer_at > until:  # (uvloop's handles have no when())
                    if self.timer is not None:
                        self.timer.cancel()
                    self.timer, self.timer_at = loop.call_at(until, self._on_timer), until
                return
            group = self._take()
            rows = sum(p.rows for p in group)
            self.queued_rows -= rows
            self.running += 1
            self.running_rows += rows
            self.calls += 1
            future = loop.run_in_executor(None, self._call, [p.feed for p in group], [p.rows for p in group])
            future.add_done_callback(functools.partial(self._done, group, rows))

    def _hold(self, now: float) -> float:
        """Until when the oldest queued request is held back (``now`` or earlier: not at all).

        Never past its arrival + ``max_delay``. Within that: while a call runs, the group waits
        for it (a second call starts early only once the clients of the last call are all back);
        while none runs, it waits only for the clients of the call that just returned (each
        answered request's client is expected back within ``max_delay``), never for strangers."""
        deadline = self.queue[0].since + self.max_delay
        if now >= deadline:
            return now
        due = now < self.due_until
        complete = self.queued_rows >= self.max_batch or (
            due and self.queued_rows >= self.expected - self.running_rows)
        if self.running:
            return now if complete else deadline
        return min(deadline, self.due_until) if due and not complete else now

    def _on_soon(self) -> None:
        self.soon = False
        self._dispatch()

    def _on_timer(self) -> None:
        self.timer = None
        self._dispatch()

    def _take(self) -> list[_Pending]:
        """The oldest queued request and, in arrival order, the queued ones that merge with it
        (same key), up to ``max_batch`` rows; the others keep their places."""
        first = self.queue.popleft()
        group, rows, skipped = [first], first.rows, []
        while self.queue and rows < self.max_batch:
            item = self.queue.popleft()
            if item.key == first.key and rows + item.rows <= self.max_batch:
                group.append(item)
                rows += item.rows
            else:
                skipped.append(item)
        self.queue.extendleft(reversed(skipped))
        return group

    def _call(self, feeds: list[dict[str, np.ndarray]], rows: list[int]) -> tuple[list[Any], int]:
        """In a worker thread: one call for the whole group, split back into each request's rows
        → (each request's outputs or exception, the onnxruntime calls made). When a merged call
        fails, each request runs alone: one request the model cannot run on fails by itself, not
        those merged with it."""
        try:
            feed = feeds[0] if len(feeds) == 1 else {name: np.concatenate([f[name] for f in feeds])
                                                     for name in feeds[0]}
            outputs = self.endpoint.run(feed)
        except Exception as err:  # noqa: BLE001 - handed to the waiting request(s)
            if len(feeds) == 1:
                return [err], 1
            return [self._call([f], [n])[0][0] for f, n in zip(feeds, rows)], 1 + len(feeds)
        if len(feeds) == 1:
            return [outputs], 1
        bounds = np.cumsum([0, *rows])
        return [{k: v[a:b] for k, v in outputs.items()} for a, b in zip(bounds[:-1], bounds[1:])], 1

    def _finished(self, rows: int) -> None:
        """A call of ``rows`` rows returned: its clients are expected back within max_delay (the
        load the server just held), and the next call starts from what queued meanwhile."""
        self.running -= 1
        self.running_rows -= rows
        self.expected = rows + self.queued_rows + self.running_rows
        self.due_until = asyncio.get_running_loop().time() + self.max_delay
        self._dispatch()

    def _done(self, group: list[_Pending], rows: int, future: asyncio.Future) -> None:
        """A call returned (on the event loop): start the next from what queued meanwhile, then
        answer this group's requests."""
        self._finished(rows)
        error = asyncio.CancelledError() if future.cancelled() else future.exception()
        if error is None:
            results, calls = future.result()
            self.calls += calls - 1  # a failed merged call: each request ran again alone
        else:
            results = [error] * len(group)
        for p, result in zip(group, results):
            if p.future.done():  # the client left
                continue
            if isinstance(result, BaseException):
                p.future.set_exception(_request_error(result))
            else:
                p.future.set_result(result)


def _request_error(err: BaseException) -> RequestError:
    """A failed onnxruntime call as the request's answer: a ZooError (the model cannot run on
    these values) is a 400, anything else a 500."""
    if isinstance(err, ZooError):
        return RequestError(str(err), 400)
    return RequestError(f"inference failed: {err}", 500)


def resolve_targets(targets: list[str]) -> list[tuple[str, Path]]:
    """``[NAME=]RUN_DIR|model.onnx`` → (name, path); names default to the run folder's name."""
    out = []
    for target in targets:
        name, sep, location = target.partition("=")
        if not sep:
            name, location = "", target
        path = Path(location)
        if path.is_dir():
            path = path / "model.onnx"
        if not name:
            name = path.parent.name if path.name == "model.onnx" else path.stem
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        out.append((name, path))
    names = [n for n, _ in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ZooError(f"two models would be served as {duplicates}; name them: NAME=RUN_DIR")
    return out


class _InferRoute:
    """ASGI middleware that routes ``/v2/models/{name}[/versions/1]/infer`` itself, straight to
    the infer endpoint (POST; other methods get 405), past Starlette's exception middleware and
    router (a regex match per route), a sizeable share of a small model's request. Every other
    request takes Starlette's routes."""

    def __init__(self, app, infer) -> None:
        self.app, self.infer = app, infer

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/v2/models/") and path.endswith("/infer"):
            name = path[len("/v2/models/"):-len("/infer")].removesuffix("/versions/1")
            if name and "/" not in name:
                if scope["method"] != "POST":
                    payload = json.dumps({"error": f"{scope['method']} not allowed; infer takes POST"}).encode()
                    await send({"type": "http.response.start", "status": 405, "headers": [
                        (b"content-type", b"application/json"), (b"allow", b"POST"),
                        (b"content-length", str(len(payload)).encode())]})
                    await send({"type": "http.response.body", "body": payload})
                    return
                scope["path_params"] = {"name": name}
                await self.infer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _json_codec():
    """(loads, dumps → bytes): orjson when installed (the serve extra brings it; several times
    faster on the hot path of every request), else the standard library."""
    try:
        import orjson
    except ImportError:
        return json.loads, _std_dumps
    return orjson.loads, orjson.dumps  # orjson writes NaN and ±inf as null


def _std_dumps(obj: Any) -> bytes:
    """The standard library's JSON, with NaN and ±inf as null (as orjson writes them): bare NaN
    is not JSON, and clients' parsers refuse it."""
    from zoo.core.deploy.runtime import json_safe

    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(json_safe(obj)[0], separators=(",", ":")).encode()


@dataclass
class Limits:
    """What one request may take: body bytes and bytes of its JSON part. (The time it may take
    is bounded per connection, by :class:`_StallGuard`.)"""

    body: int = DEFAULT_MAX_BODY
    json: int = DEFAULT_MAX_JSON


def _header_int(headers: dict[bytes, bytes], name: bytes) -> int | None:
    value = headers.get(name)
    # At most 18 digits: int() of thousands of digits is slow, and no body is that large.
    return int(value) if value is not None and value.isdigit() and len(value) <= 18 else None


async def read_request(scope, receive, limits: Limits) -> tuple[bytes, int] | None:
    """The request body and the length of its JSON part (the rest is binary tensor data), read
    within ``limits``; None when the client left. Declared sizes are checked before reading, so
    an oversized body is refused (413) without being received."""
    headers = dict(scope["headers"])
    declared = _header_int(headers, b"content-length")
    split = _header_int(headers, b"inference-header-content-length")
    json_limit = min(limits.json, limits.body)
    advice = "; send large tensors as binary data (tritonclient's binary_data=True) or raise --max-json-mb"
    if declared is not None and declared > limits.body:
        raise RequestError(f"request body of {declared} bytes exceeds the limit of {limits.body} "
                           f"(--max-body-mb)", 413, close=True)
    if (split if split is not None else declared or 0) > json_limit:
        raise RequestError(f"the JSON part of the request exceeds the limit of {json_limit} bytes{advice}",
                           413, close=True)
    limit = limits.body if split is not None else json_limit  # without the header, all is JSON
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body exceeds the limit of {limit} bytes"
                               f"{'' if split is not None else advice}", 413, close=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return raw, len(raw) if split is None else min(split, len(raw))


def parse_json(raw: bytes, loads) -> Any:
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # JSONDecodeError of either codec
        raise RequestError(f"request body is not JSON: {' '.join(str(err).split())}") from None


class _BearerAuth:
    """ASGI middleware: every request but the health checks (``/v2/health/*``, for load balancers
    and orchestrators) needs ``Authorization: Bearer KEY``; 401 otherwise."""

    def __init__(self, app, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/v2/health/") or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        payload = json.dumps({"error": "missing or wrong API key: send the header "
                                       "'Authorization: Bearer KEY'"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            (b"www-authenticate", b'Bearer realm="zoo"')]})
        await send({"type": "http.response.body", "body": payload})

    def _allowed(self, scope) -> bool:
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        # compare_digest: the time taken does not tell how much of a guessed key was right
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)


def build_app(targets: list[str], max_batch: int = 32, max_delay_ms: float = 2.0,
              max_body: int = DEFAULT_MAX_BODY, log=print, threads: int | None = None, *,
              max_json: int = DEFAULT_MAX_JSON, api_key: str | None = None):
    """The ASGI application; models that fail to load are reported and left out.

    ``max_body`` and ``max_json`` bound each request (see :class:`Limits`); ``api_key``: every
    route but ``/v2/health/*`` then needs ``Authorization: Bearer KEY``.
    """
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route
    except ImportError:
        raise ZooError("zoo serve needs the serve extra: pip install 'zoo-ml[serve]'") from None
    from zoo import __version__

    if api_key is not None and not api_key.strip():
        raise ZooError("the API key is empty; give a non-empty --api-key (or ZOO_API_KEY), or none")
    loads, dumps = _json_codec()

    endpoints: dict[str, Endpoint] = {}
    failed: dict[str, str] = {}
    for name, path in resolve_targets(targets):
        try:
            if not path.is_file():
                raise ZooError(f"{path} does not exist")
            endpoints[name] = Endpoint.load(name, path, threads)
            log(f"serving {name} from {path} ({', '.join(endpoints[name].session.get_providers())})")
        except ZooError as err:
            failed[name] = str(err)
            log(f"not serving {name}: {err}")
    if not endpoints:
        raise ZooError("no model could be loaded: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    batchers = {name: Batcher(e, max_batch, max_delay_ms) for name, e in endpoints.items()}
    limits = Limits(max_body, max_json)

    def error(message: str, status: int) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def endpoint_of(request: Request) -> Endpoint:
        name = request.path_params["name"]
        if name not in endpoints:
            reason = f" (failed to load: {failed[name]})" if name in failed else ""
            raise RequestError(f"unknown model {name!r}{reason}; serving {sorted(endpoints)}", 404)
        return endpoints[name]

    async def live(request):
        return JSONResponse({"live": True})

    async def ready(request):
        return JSONResponse({"ready": True})

    async def server(request):
        return JSONResponse({"name": "zoo", "version": __version__, "extensions": [],
                             "models": sorted(endpoints), "failed": failed})

    async def model_metadata(request):
        try:
            return JSONResponse(endpoint_of(request).describe())
        except RequestError as err:
            return error(str(err), err.status)

    async def model_stats(request):
        """Triton's statistics extension, the counts part: inference_count (requests answered)
        and execution_count (onnxruntime calls); their ratio is the mean dynamic batch."""
        name = request.path_params.get("name")
        try:
            chosen = [endpoint_of(request).name] if name else sorted(batchers)
        except RequestError as err:
            return error(str(err), err.status)
        return JSONResponse({"model_stats": [
            {"name": n, "version": "1", "inference_count": batchers[n].requests,
             "execution_count": batchers[n].calls} for n in chosen]})

    async def model_ready(request):
        try:
            endpoint_of(request)
            return JSONResponse({"name": request.path_params["name"], "ready": True})
        except RequestError as err:
            return error(str(err), err.status)

    async def infer(scope, receive, send):
        """``POST /v2/models/{name}/infer`` as a plain ASGI endpoint: the hot path skips
        Starlette's Request/Response objects (about a tenth of the server's time per request)."""
        started, close = time.perf_counter(), False
        try:
            endpoint = endpoints.get(scope["path_params"]["name"])
            if endpoint is None:
                name = scope["path_params"]["name"]
                reason = f" (failed to load: {failed[name]})" if name in failed else ""
                raise RequestError(f"unknown model {name!r}{reason}; serving {sorted(endpoints)}", 404)
            request = await read_request(scope, receive, limits)
            if request is None:
                return  # the client left
            raw, split = request
            body = parse_json(raw[:split], loads)
            feed = endpoint.decode(body, raw[split:], limits.body)
            wanted = endpoint.wanted_outputs(body)
            outputs = await batchers[endpoint.name].submit(feed)
            status, payload = 200, dumps(endpoint.respond(body, feed, outputs, wanted))
        except RequestError as err:
            status, payload, close = err.status, dumps({"error": str(err)}), err.close
        except ZooError as err:  # the model could not run on the request's values
            status, payload = 400, dumps({"error": str(err)})
        except Exception as err:  # noqa: BLE001 - a bug: logged, answered in one line, connection kept
            log(f"internal error on {scope['path']}: {err!r}\n{traceback.format_exc().rstrip()}")
            status, payload = 500, dumps({"error": f"internal error ({type(err).__name__}); see the server log"})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                   (b"x-zoo-latency-ms", f"{(time.perf_counter() - started) * 1e3:.3f}".encode())]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    routes = [  # inference is routed by _InferRoute, ahead of these
        Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server),
        Route("/v2/models/stats", model_stats),  # before /v2/models/{name}, which would match it
        Route("/v2/models/{name}", model_metadata), Route("/v2/models/{name}/versions/1", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/stats", model_stats),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(_InferRoute, infer=infer)
    if api_key is not None:
        app.add_middleware(_BearerAuth, key=api_key.strip())  # added last: the outermost layer
    app.state.batchers = batchers
    app.state.failed = failed
    return app


def serve(targets: list[str], host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32,
          max_delay_ms: float = 2.0, max_body: int = DEFAULT_MAX_BODY, log=print,
          threads: int | None = None, *, max_json: int = DEFAULT_MAX_JSON, api_key: str | None = None,
          ssl_certfile: str | None = None, ssl_keyfile: str | None = None, idle_timeout: float = 5.0,
          read_timeout: float = DEFAULT_READ_TIMEOUT, max_connections: int = 1024) -> None:
    """Serve ``targets`` with uvicorn until SIGINT/SIGTERM. A busy port, an unknown host and an
    unusable certificate are ZooErrors, found before the models load. Beyond ``max_connections``
    open connections (or requests in flight) a new request is answered 503 at once, so a flood of
    clients cannot exhaust file descriptors or memory."""
    try:
        import uvicorn
        from uvicorn.protocols.http.auto import AutoHTTPProtocol
    except ImportError:
        raise ZooError("zoo serve needs the serve extra: pip install 'zoo-ml[serve]'") from None
    _check_tls(ssl_certfile, ssl_keyfile)
    sock = _listen(host, port)
    try:
        app = build_app(targets, max_batch, max_delay_ms, max_body, log, threads, max_json=max_json,
                        api_key=api_key)
        scheme = "https" if ssl_certfile else "http"
        log(f"zoo serve on {scheme}://{host}:{sock.getsockname()[1]}/v2 (Ctrl-C or SIGTERM to stop)")
        if api_key and not ssl_certfile and host not in ("127.0.0.1", "localhost", "::1"):
            log("warning: the API key crosses the network in clear text; add --ssl-certfile and --ssl-keyfile")
        # uvicorn handles SIGINT/SIGTERM gracefully: stop accepting, finish in-flight requests, exit.
        # No access log and no X-Forwarded-* rewriting: both cost per request and serve no purpose
        # on a model server bound to loopback by default. No websockets: nothing here speaks them.
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30, access_log=False,
                                proxy_headers=False, ws="none", timeout_keep_alive=idle_timeout,
                                http=guarded_protocol(AutoHTTPProtocol, read_timeout),
                                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                                limit_concurrency=max_connections)
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise ZooError("zoo serve did not start (see the messages above)")


def _check_tls(certfile: str | None, keyfile: str | None) -> None:
    """The certificate and key load (uvicorn would fail with a traceback, or prompt for the
    password of an encrypted key)."""
    if keyfile and not certfile:
        raise ZooError("--ssl-keyfile needs --ssl-certfile (the certificate the key belongs to)")
    if not certfile:
        return
    import ssl

    def no_password() -> bytes:
        raise ZooError(f"{keyfile or certfile}: the private key is encrypted; give zoo serve an unencrypted key")

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile, password=no_password)
    except (ssl.SSLError, OSError) as err:
        why = err.strerror if not isinstance(err, ssl.SSLError) and err.strerror else \
            f"{err} (expected a PEM certificate and its unencrypted PEM private key)"
        raise ZooError(f"cannot use --ssl-certfile {certfile}"
                       f"{f' with --ssl-keyfile {keyfile}' if keyfile else ''}: {why}") from None


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn: a busy port or an unknown host is
    then a one-line ZooError (exit 2), not uvicorn's startup failure (exit 3, the code zoo gives a
    non-finite loss)."""
    sock = None
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        # As uvicorn does: a restart may bind while the last run's connections are in TIME_WAIT
        # (on Linux this never lets two servers listen on one port).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:  # socket.gaierror included
        if sock is not None:
            sock.close()
        raise ZooError(f"cannot listen on {host}:{port}: {err.strerror or err}; choose another --port "
                       f"(or --host)") from None
    return sock


MAX_HEAD_BYTES = 64 * 1024  # a request line and headers; a v2 client sends a few hundred bytes


class _StallGuard:
    """A mixin for uvicorn's HTTP protocol (:func:`guarded_protocol`): a connection must deliver
    each request, headers and body, within ``zoo_timeout`` s of opening or of its last response,
    and at most ``MAX_HEAD_BYTES`` before its headers end. uvicorn has neither bound: its
    keep-alive timer stops at the first byte, so a client sending half a request line or half a
    body held its connection forever, and endless headers took memory and a core (httptools joins
    the pieces of a header value). One sweep a second checks every connection, rather than a
    timer per request, which would cost the hot path several microseconds."""

    zoo_timeout = DEFAULT_READ_TIMEOUT
    _zoo_sweeping = False  # set on the guarded class once its sweep runs
    _zoo_since, _zoo_cycle, _zoo_head = 0.0, None, 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._zoo_ready()
        cls = type(self)
        if not cls._zoo_sweeping:
            cls._zoo_sweeping = True
            self.loop.call_later(cls._zoo_period(), cls._zoo_sweep, self.loop, self.connections)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._zoo_ready()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before or not self._zoo_waiting(before):
            return  # a request has begun, or these were its body's bytes
        self._zoo_head += len(data)
        if self._zoo_head > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.transport.close()

    def _zoo_ready(self) -> None:
        """The connection waits for a request: its headers and body have ``zoo_timeout`` s."""
        self._zoo_since, self._zoo_cycle, self._zoo_head = self.loop.time(), self.cycle, 0

    @staticmethod
    def _zoo_waiting(cycle) -> bool:
        return cycle is None or cycle.response_complete

    def _zoo_check(self, now: float) -> None:
        if now - self._zoo_since <= self.zoo_timeout or self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is self._zoo_cycle and self._zoo_waiting(cycle):
            self.transport.close()  # no request has begun: half a request line, a body nobody reads
        elif not self._zoo_waiting(cycle) and cycle.more_body and not cycle.response_started:
            payload = json.dumps({"error": f"the request did not arrive within {self.zoo_timeout:g} s "
                                           f"(--read-timeout-s)"}).encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload))
            self.transport.close()  # the handler waiting for the body gets a disconnect

    @classmethod
    def _zoo_period(cls) -> float:
        return min(1.0, cls.zoo_timeout / 4)

    @classmethod
    def _zoo_sweep(cls, loop, connections) -> None:
        now = loop.time()
        for protocol in list(connections):
            if isinstance(protocol, cls):
                protocol._zoo_check(now)
        loop.call_later(cls._zoo_period(), cls._zoo_sweep, loop, connections)


def guarded_protocol(base: type, timeout: float) -> type:
    """uvicorn's HTTP protocol class ``base`` with :class:`_StallGuard`'s bounds."""
    return type(f"Guarded{base.__name__}", (_StallGuard, base), {"zoo_timeout": timeout, "_zoo_sweeping": False})
