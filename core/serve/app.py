"""The ``zoo serve`` application: v2 routes over the loaded endpoints, and the uvicorn server."""

from __future__ import annotations

import asyncio
import functools
import gc
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from zoo.core.contract.errors import ZooError
from zoo.core.deploy.runtime import serving_process
from zoo.core.serve.batcher import Batcher
from zoo.core.serve.endpoint import Endpoint
from zoo.core.serve.protocol import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_JSON,
    RequestError,
    json_codec,
    parse_request,
)
from zoo.core.serve.transport import (
    DEFAULT_READ_TIMEOUT,
    Limits,
    _BearerAuth,
    _check_tls,
    _InferRoute,
    _listen,
    guarded_protocol,
    read_request,
)

_NEEDS_EXTRA = "zoo serve needs the serve extra: pip install 'zoo-ml[serve]'"


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
        out.append((re.sub(r"[^A-Za-z0-9_.-]", "_", name), path))
    names = [n for n, _ in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ZooError(f"two models would be served as {duplicates}; name them: NAME=RUN_DIR")
    return out


def load_endpoints(targets: list[str], threads: int | None, log) -> tuple[dict[str, Endpoint], dict[str, str]]:
    """(the endpoints that loaded, {name: why not} for the others); none loading is a ZooError."""
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
    return endpoints, failed


class Routes:
    """The v2 handlers over ``endpoints``: Starlette routes for metadata, health and statistics;
    :meth:`infer` a plain ASGI endpoint (the hot path skips Starlette's Request and Response
    objects, about a tenth of the server's time per request)."""

    def __init__(self, endpoints: dict[str, Endpoint], failed: dict[str, str], batchers: dict[str, Batcher],
                 limits: Limits, log: Callable[[str], Any]) -> None:
        from starlette.responses import JSONResponse

        self.endpoints, self.failed, self.batchers, self.limits, self.log = endpoints, failed, batchers, limits, log
        self.dumps, self.arrays = json_codec()
        self.json = JSONResponse

    def endpoint(self, name: str) -> Endpoint:
        if name not in self.endpoints:
            reason = f" (failed to load: {self.failed[name]})" if name in self.failed else ""
            raise RequestError(f"unknown model {name!r}{reason}; serving {sorted(self.endpoints)}", 404)
        return self.endpoints[name]

    def starlette_routes(self) -> list:
        from starlette.routing import Route

        return [  # inference is routed by _InferRoute, ahead of these
            Route("/v2/health/live", self.live), Route("/v2/health/ready", self.ready), Route("/v2", self.server),
            Route("/v2/models/stats", self.model_stats),  # before /v2/models/{name}, which would match it
            Route("/v2/models/{name}", self.model_metadata),
            Route("/v2/models/{name}/versions/1", self.model_metadata),
            Route("/v2/models/{name}/ready", self.model_ready), Route("/v2/models/{name}/stats", self.model_stats),
        ]

    async def live(self, request):
        return self.json({"live": True})

    async def ready(self, request):
        return self.json({"ready": True})

    async def server(self, request):
        from zoo import __version__

        return self.json({"name": "zoo", "version": __version__, "extensions": [],
                          "models": sorted(self.endpoints), "failed": self.failed})

    async def model_metadata(self, request):
        try:
            return self.json(self.endpoint(request.path_params["name"]).describe())
        except RequestError as err:
            return self.json({"error": str(err)}, status_code=err.status)

    async def model_ready(self, request):
        try:
            return self.json({"name": self.endpoint(request.path_params["name"]).name, "ready": True})
        except RequestError as err:
            return self.json({"error": str(err)}, status_code=err.status)

    async def model_stats(self, request):
        """Triton's statistics extension, the counts part: inference_count (requests answered)
        and execution_count (onnxruntime calls); their ratio is the mean dynamic batch."""
        name = request.path_params.get("name")
        try:
            chosen = [self.endpoint(name).name] if name else sorted(self.batchers)
        except RequestError as err:
            return self.json({"error": str(err)}, status_code=err.status)
        return self.json({"model_stats": [
            {"name": n, "version": "1", "inference_count": self.batchers[n].requests,
             "execution_count": self.batchers[n].calls} for n in chosen]})

    async def infer(self, scope, receive, send) -> None:
        """``POST /v2/models/{name}/infer`` as an ASGI endpoint (the in-process route, as under a
        test client; ``zoo serve`` answers it at the HTTP protocol, :mod:`.fast`): every failure
        is answered in one JSON line."""
        started = time.perf_counter()
        try:
            self.endpoint(scope["path_params"]["name"])  # an unknown model: 404 before the body is read
            body = await read_request(scope, receive, self.limits)
            if body is None:
                return  # the client left
            future = asyncio.get_running_loop().create_future()
            self.begin(scope["path_params"]["name"], *body,
                       lambda *answer: future.done() or future.set_result(answer))  # done: cancelled
            status, payload, close = await future
        except Exception as err:  # noqa: BLE001 - each answered in one line by failure()
            status, payload, close = self.failure(err, scope["path"])
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                   (b"x-zoo-latency-ms", f"{(time.perf_counter() - started) * 1e3:.3f}".encode())]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def begin(self, name: str, raw: bytes, split: int, answer: Callable[[int, bytes, bool], None]) -> None:
        """Validate and decode one request (``raw[:split]`` its JSON part, the rest binary tensor
        data), hand it to the model's batcher, and call ``answer(status, payload, close)`` once:
        at once for a bad request, else when its call returns. ``close``: the connection cannot
        carry another request."""
        try:
            endpoint = self.endpoint(name)
            request = parse_request(raw[:split])
            feed = endpoint.decode(request, raw[split:], self.limits.body)
            wanted = endpoint.wanted_outputs(request)
        except Exception as err:  # noqa: BLE001 - answered by failure()
            answer(*self.failure(err, f"/v2/models/{name}/infer"))
            return
        self.batchers[endpoint.name].start(feed, functools.partial(self._finish, endpoint, request, feed, wanted,
                                                                   answer))

    def _finish(self, endpoint: Endpoint, request, feed, wanted, answer, outputs) -> None:
        """The batcher's reply: the response encoded (or the failure) and answered."""
        if isinstance(outputs, BaseException):
            answer(*self.failure(outputs, f"/v2/models/{endpoint.name}/infer"))
            return
        try:
            payload = self.dumps(endpoint.respond(request, feed, outputs, wanted, self.arrays))
        except Exception as err:  # noqa: BLE001 - answered by failure()
            answer(*self.failure(err, f"/v2/models/{endpoint.name}/infer"))
            return
        answer(200, payload, False)

    def failure(self, err: BaseException, where: str) -> tuple[int, bytes, bool]:
        """(status, one-line JSON payload, close the connection) for a failed request: a
        RequestError its own status; a ZooError (the model could not run on the request's
        values) a 400; anything else a bug, logged and answered 500."""
        if isinstance(err, RequestError):
            return err.status, self.dumps({"error": str(err)}), err.close
        if isinstance(err, ZooError):
            return 400, self.dumps({"error": str(err)}), False
        self.log(f"internal error on {where}: {err!r}\n"
                 f"{''.join(traceback.format_exception(err)).rstrip()}")
        return 500, self.dumps({"error": f"internal error ({type(err).__name__}); see the server log"}), False


def build_app(targets: list[str], max_batch: int = 32, max_delay_ms: float = 2.0,
              max_body: int = DEFAULT_MAX_BODY, log=print, threads: int | None = None, *,
              max_json: int = DEFAULT_MAX_JSON, api_key: str | None = None):
    """The ASGI application; models that fail to load are reported and left out.

    ``max_body`` and ``max_json`` bound each request (see :class:`Limits`); ``api_key``: every
    route but ``/v2/health/*`` then needs ``Authorization: Bearer KEY``.
    """
    try:
        from starlette.applications import Starlette
    except ImportError:
        raise ZooError(_NEEDS_EXTRA) from None
    if api_key is not None and not api_key.strip():
        raise ZooError("the API key is empty; give a non-empty --api-key (or ZOO_API_KEY), or none")
    endpoints, failed = load_endpoints(targets, threads, log)
    batchers = {name: Batcher(e, max_batch, max_delay_ms) for name, e in endpoints.items()}
    routes = Routes(endpoints, failed, batchers, Limits(max_body, max_json), log)
    app = Starlette(routes=routes.starlette_routes())
    app.add_middleware(_InferRoute, infer=routes.infer)
    if api_key is not None:
        app.add_middleware(_BearerAuth, key=api_key.strip())  # added last: the outermost layer
    app.state.batchers = batchers
    app.state.failed = failed
    app.state.routes = routes  # for the infer fast path at the HTTP protocol (zoo serve)
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

        from zoo.core.serve.fast import fast_protocol
    except ImportError:
        raise ZooError(_NEEDS_EXTRA) from None
    _check_tls(ssl_certfile, ssl_keyfile)
    serving_process()  # the event loop's thread and the batcher's workers flush denormals (make_session)
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
        # No "server: uvicorn" header: it names the software to every client and costs per response.
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30, access_log=False,
                                proxy_headers=False, ws="none", timeout_keep_alive=idle_timeout, server_header=False,
                                http=guarded_protocol(fast_protocol(AutoHTTPProtocol, app.state.routes, api_key),
                                                      read_timeout),
                                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                                limit_concurrency=max_connections)
        server = uvicorn.Server(config)
        # Everything loaded so far (torch-free imports, sessions, routes) lives as long as the
        # server: frozen out of the collector, a full collection under load scans only what the
        # requests left behind (~1 ms) instead of every module's objects (~15 ms of stalled requests).
        gc.collect()
        gc.freeze()
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise ZooError("zoo serve did not start (see the messages above)")
