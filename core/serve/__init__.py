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
(JSON-encoded; where the model's own output is already called ``prediction``, as a
regression's is, that output is the answer). The model metadata lists it under ``parameters.raw_inputs``.
Where the run's dataset registered its decoder with ``payload="bytes"`` (images), each item of
``text`` is an encoded file instead: base64 in JSON, raw bytes with the binary extension; an item
is never a path on the server.

Dynamic batching that never waits for strangers: a request that finds the model idle runs at
once, alone; requests that arrive while an onnxruntime call is in flight (and agree on every
non-batch dimension) are concatenated along the batch axis and run together as the next call, of
at most ``max_batch`` rows, then split back per request. When a call returns, the queued requests
wait for the clients just answered to come back, at most ``max_delay_ms`` from their arrival, so
the batch grows with the number of busy clients; a lone client never waits. At most two calls run
at once (one in onnxruntime while the event loop gathers the next). onnxruntime runs in worker
threads so the event loop keeps accepting requests meanwhile, except a lone request to an idle
model whose calls of that size are known to be quick: it runs on the event loop itself, sparing
two thread hand-offs that would cost more than the call.

Hardening, as a server on a shared host needs: every malformed request is a 400 with a one-line
JSON ``{"error": ...}`` (the connection kept); the body, its JSON part and every decoded tensor
are bounded before anything is allocated (413); a body that does not arrive within the read
timeout is a 408, and connections that stall before or between requests are closed; an optional
bearer token guards everything but ``/v2/health/*`` (401); TLS comes from uvicorn.

The infer route is answered at the HTTP protocol itself (:mod:`.fast`): the request read from
the parser's callbacks, handed to the batcher, and answered from its reply in one write, with no
task, coroutine or ASGI message per request; the other routes, and infer requests that need what
only the ASGI application handles (a wrong API key, a pipelined request, ...), go through
Starlette.

The package, in the order a request meets it: :mod:`.transport` (HTTP: body limits, stalled
connections, the API key, TLS), :mod:`.fast` (the infer route at the protocol),
:mod:`.protocol` (the v2 bodies as pydantic models; tensors decoded and encoded),
:mod:`.endpoint` (one model: its signature and requests checked against it), :mod:`.batcher`
(dynamic batching), :mod:`.app` (the routes and the uvicorn server).
"""

from zoo.core.serve.app import Routes, build_app, load_endpoints, resolve_targets, serve
from zoo.core.serve.batcher import Batcher
from zoo.core.serve.endpoint import Endpoint
from zoo.core.serve.protocol import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_JSON,
    InferRequest,
    RequestError,
    encode,
    parse_request,
)
from zoo.core.serve.protocol import std_dumps as _std_dumps
from zoo.core.serve.transport import DEFAULT_READ_TIMEOUT, MAX_HEAD_BYTES, Limits, guarded_protocol, read_request

__all__ = [
    "DEFAULT_MAX_BODY", "DEFAULT_MAX_JSON", "DEFAULT_READ_TIMEOUT", "MAX_HEAD_BYTES", "Batcher", "Endpoint",
    "InferRequest", "Limits", "RequestError", "Routes", "build_app", "encode", "guarded_protocol",
    "load_endpoints", "parse_request", "read_request", "resolve_targets", "serve", "_std_dumps",
]
