"""``zoo serve``: exported models behind the Open Inference Protocol (KServe v2, as Triton speaks it).

Built on Starlette (ASGI) and served by uvicorn; both come with the ``zoo-ml[serve]`` extra.

    GET  /v2/health/live, /v2/health/ready         liveness and readiness
    GET  /v2                                       server metadata
    GET  /v2/models/{name}                          inputs/outputs: names, datatypes, shapes (-1 = dynamic)
    GET  /v2/models/{name}/ready
    GET  /v2/models[/{name}]/stats                 inference_count, execution_count (Triton statistics)
    POST /v2/models/{name}/infer                    JSON (or binary-extension) tensors in, JSON out

Raw text: a model whose ONNX metadata holds a vocabulary (text models) also takes one input
``text`` of datatype BYTES and shape ``[N]`` (JSON strings, or tritonclient's length-prefixed
binary BYTES); the server tokenises it exactly as ``zoo predict`` does (the task's
``raw_inputs``) and adds a BYTES output ``prediction`` holding ``zoo predict``'s answer per text
(JSON-encoded). The model metadata lists it under ``parameters.raw_inputs``.

Dynamic batching: requests to the same model that arrive within ``max_delay_ms`` of each other
(and agree on every non-batch dimension) are concatenated along the batch axis, run as one
onnxruntime call of at most ``max_batch`` rows, and split back per request. onnxruntime runs in
a worker thread so the event loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.errors import ZooError

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
TEXT_INPUT = "text"  # the raw-text input of text models (BYTES [N])


class RequestError(Exception):
    """A bad request: becomes an HTTP error with a one-line JSON message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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

    @classmethod
    def load(cls, name: str, path: Path, threads: int | None = None) -> Endpoint:
        from zoo.core.runtime import make_session, read_metadata

        session = make_session(path, spinning=False, threads=threads)
        endpoint = cls(name=name, path=path, session=session, metadata=read_metadata(session))
        endpoint.inputs = [{"name": i.name, "datatype": ONNX_TO_V2.get(i.type, i.type), "shape": _dims(i.shape)}
                           for i in session.get_inputs()]
        endpoint.outputs = [{"name": o.name, "datatype": ONNX_TO_V2.get(o.type, o.type), "shape": _dims(o.shape)}
                            for o in session.get_outputs()]
        task_name = endpoint.metadata.get("task")
        if endpoint.metadata.get("onnx_vocabulary") and task_name and TEXT_INPUT not in \
                {i["name"] for i in endpoint.inputs}:
            # Only text models pay for loading the plugins (the task turns text into token ids).
            from zoo.core.api import _loaded_zoo

            endpoint.task = _loaded_zoo().registry.tasks.get(task_name)
        return endpoint

    @property
    def takes_text(self) -> bool:
        return self.task is not None

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
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or size > len(binary):
                raise RequestError(f"input {TEXT_INPUT!r}: binary_data_size {size!r} does not match the body")
            texts = _unpack_bytes(binary[:size])
        else:
            texts = item.get("data")
            if not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
                raise RequestError(f"input {TEXT_INPUT!r}: data must be a list of strings")
        if len(texts) != shape[0]:
            raise RequestError(f"input {TEXT_INPUT!r}: {len(texts)} texts do not fill shape {shape}")
        try:
            feed = self.task.raw_inputs(texts, self.metadata)
        except ZooError as err:
            raise RequestError(f"input {TEXT_INPUT!r}: {err}") from None
        if feed is None:
            raise RequestError(f"model {self.name!r} does not take raw text")
        from zoo.core.runtime import check_and_cast

        try:
            return texts, check_and_cast(self.session, feed)
        except ZooError as err:
            raise RequestError(str(err)) from None

    def predictions(self, outputs: dict[str, np.ndarray], feed: dict[str, np.ndarray]) -> list[str]:
        """``zoo predict``'s answer for each row, JSON-encoded (the BYTES ``prediction`` output)."""
        answers = self.task.postprocess(outputs, {**self.metadata, "_inputs": feed})
        return [json.dumps(a) for a in answers]

    def decode(self, body: dict[str, Any], binary: bytes = b"") -> dict[str, np.ndarray]:
        """Validate a v2 infer request against the model; returns the arrays to feed.

        ``binary`` holds the tensors sent with the binary data extension, in input order, each
        announced by ``parameters.binary_data_size`` (what tritonclient sends by default).
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
            if name not in expected:
                raise RequestError(f"unknown input {name!r}; model {self.name!r} takes {sorted(expected)}")
            spec = expected[name]
            datatype = item.get("datatype")
            if datatype != spec["datatype"]:
                raise RequestError(f"input {name!r} has datatype {datatype!r}; the model expects {spec['datatype']}")
            shape = item.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise RequestError(f"input {name!r}: shape must be a list of non-negative integers")
            if len(shape) != len(spec["shape"]) or any(e != -1 and e != d for e, d in zip(spec["shape"], shape)):
                raise RequestError(f"input {name!r} has shape {shape}; the model expects {spec['shape']} (-1 = any)")
            size = (item.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                    raise RequestError(f"input {name!r}: binary_data_size {size!r} does not match the body")
                try:
                    array = np.frombuffer(binary[offset:offset + size], dtype=V2_TO_NUMPY[datatype])
                except ValueError as err:
                    raise RequestError(f"input {name!r}: binary data is not {datatype}: {err}") from None
                offset += size
            else:
                try:
                    array = np.asarray(item.get("data"), dtype=V2_TO_NUMPY[datatype])
                except (ValueError, TypeError) as err:
                    raise RequestError(f"input {name!r}: data is not {datatype}: {err}") from None
            if array.size != int(np.prod(shape)):
                raise RequestError(f"input {name!r}: {array.size} values do not fill shape {shape}")
            feed[name] = array.reshape(shape)
        missing = sorted(set(expected) - set(feed))
        if missing:
            raise RequestError(f"missing input(s) {missing}")
        if self.takes_text:  # token ids against the vocabulary and the length limit, as zoo predict does
            try:
                self.task.raw_inputs(feed, self.metadata)
            except ZooError as err:
                raise RequestError(str(err)) from None
        return feed

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o["name"] for o in self.outputs]
        return dict(zip(names, self.session.run(names, feed)))


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
    future: asyncio.Future


class Batcher:
    """Merges concurrent requests to one endpoint into onnxruntime calls (dynamic batching)."""

    def __init__(self, endpoint: Endpoint, max_batch: int, max_delay_ms: float) -> None:
        self.endpoint = endpoint
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000.0
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.calls = 0      # onnxruntime executions
        self.requests = 0   # inference requests answered through them

    async def submit(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        self.requests += 1
        if self.max_batch <= 1 or not self.endpoint.batchable:
            self.calls += 1
            return await loop.run_in_executor(None, self.endpoint.run, feed)
        if self.task is None:
            self.task = asyncio.create_task(self._worker())
        pending = _Pending(feed, next(iter(feed.values())).shape[0], loop.create_future())
        await self.queue.put(pending)
        return await pending.future

    @staticmethod
    def _key(feed: dict[str, np.ndarray]) -> tuple:
        return tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(feed.items()))

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Pending | None = None
        while True:
            first = carry or await self.queue.get()
            carry = None
            group, rows = [first], first.rows
            deadline = loop.time() + self.max_delay
            while rows < self.max_batch:
                try:  # what is already queued costs no timer (the common case under load)
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), timeout)
                    except asyncio.TimeoutError:
                        break
                if self._key(item.feed) != self._key(first.feed) or rows + item.rows > self.max_batch:
                    carry = item  # starts the next group
                    break
                group.append(item)
                rows += item.rows
            feed = {name: np.concatenate([p.feed[name] for p in group]) for name in first.feed}
            self.calls += 1
            try:
                outputs = await loop.run_in_executor(None, self.endpoint.run, feed)
            except Exception as err:  # noqa: BLE001 - reported to each waiting request
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(RequestError(f"inference failed: {err}", 500))
                continue
            start = 0
            for p in group:
                part = {k: v[start:start + p.rows] for k, v in outputs.items()}
                start += p.rows
                if not p.future.done():
                    p.future.set_result(part)


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
        return json.loads, lambda obj: json.dumps(obj, separators=(",", ":")).encode()
    return orjson.loads, orjson.dumps


def build_app(targets: list[str], max_batch: int = 32, max_delay_ms: float = 2.0,
              max_body: int = DEFAULT_MAX_BODY, log=print, threads: int | None = None):
    """The ASGI application; models that fail to load are reported and left out."""
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route
    except ImportError:
        raise ZooError("zoo serve needs the serve extra: pip install 'zoo-ml[serve]'") from None
    from zoo import __version__

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
        started = time.perf_counter()
        try:
            endpoint = endpoints.get(scope["path_params"]["name"])
            if endpoint is None:
                name = scope["path_params"]["name"]
                reason = f" (failed to load: {failed[name]})" if name in failed else ""
                raise RequestError(f"unknown model {name!r}{reason}; serving {sorted(endpoints)}", 404)
            headers = dict(scope["headers"])
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_body:
                raise RequestError(f"request body of {int(declared)} bytes exceeds the limit of {max_body}", 413)
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_body:
                    raise RequestError(f"request body exceeds the limit of {max_body} bytes", 413)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            header = headers.get(b"inference-header-content-length")
            split = int(header) if header is not None and header.isdigit() else len(raw)
            try:
                body = loads(raw[:split])
            except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError of either codec
                raise RequestError(f"request body is not JSON: {err}") from None
            # Responses are always JSON tensors (clients that asked for binary outputs read JSON too).
            feed = endpoint.decode(body, raw[split:])
            outputs = await batchers[endpoint.name].submit(feed)
            wanted = [o.get("name") for o in body.get("outputs", []) if isinstance(o, dict)]
            text = endpoint.is_text_request(body)
            known = set(outputs) | ({"prediction"} if text else set())
            unknown = sorted(set(wanted) - known)
            if unknown:
                raise RequestError(f"unknown output(s) {unknown}; the model has {sorted(known)}")
            encoded = encode(outputs, wanted)
            if text and (not wanted or "prediction" in wanted):
                answers = endpoint.predictions(outputs, feed)
                encoded.append({"name": "prediction", "datatype": "BYTES", "shape": [len(answers)], "data": answers})
            response = {"model_name": endpoint.name, "model_version": "1", "outputs": encoded}
            if "id" in body:
                response["id"] = body["id"]
            status, payload = 200, dumps(response)
        except RequestError as err:
            status, payload = err.status, dumps({"error": str(err)})
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            (b"x-zoo-latency-ms", f"{(time.perf_counter() - started) * 1e3:.3f}".encode())]})
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
    app.state.batchers = batchers
    app.state.failed = failed
    return app


def serve(targets: list[str], host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32,
          max_delay_ms: float = 2.0, max_body: int = DEFAULT_MAX_BODY, log=print,
          threads: int | None = None) -> None:
    try:
        import uvicorn
    except ImportError:
        raise ZooError("zoo serve needs the serve extra: pip install 'zoo-ml[serve]'") from None
    app = build_app(targets, max_batch, max_delay_ms, max_body, log, threads)
    # uvicorn handles SIGINT/SIGTERM gracefully: stop accepting, finish in-flight requests, exit.
    # No access log and no X-Forwarded-* rewriting: both cost per request and serve no purpose
    # on a model server bound to loopback by default.
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30,
                access_log=False, proxy_headers=False)
