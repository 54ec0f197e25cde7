"""The infer route answered at the HTTP protocol: ``zoo serve``'s hot path.

uvicorn hands each request to the ASGI application as a task that awaits ``receive`` and
``send`` coroutines through Starlette's middleware, and writes a response's head and body in two
system calls; for a small model that machinery is most of the server's time per request.
:func:`fast_protocol` gives uvicorn's httptools protocol a shortcut for the one route that
carries load, ``POST /v2/models/{name}[/versions/1]/infer``: the body is gathered from the
parser's callbacks, the request checked and handed to the model's batcher
(:meth:`Batcher.start`), and the answer written from the batcher's reply, head and body in one
``write``: no task, coroutine or ASGI message per request.

The answers are the ASGI route's (:meth:`Routes.infer`): the same statuses, one-line JSON
errors, ``content-type``, ``content-length``, ``x-zoo-latency-ms`` and uvicorn's ``date``
header. Every other route takes the ASGI application, and so does an infer request that needs
what only it handles: a missing or wrong API key (401), a percent-encoded path, an HTTP
upgrade, a request pipelined behind one not yet answered, or one beyond ``--max-connections``
(503). Body limits (413), the read timeout (408, by the stall guard, which reads the same cycle
fields), ``Expect: 100-continue``, keep-alive, ``Connection: close``, HTTP/1.0 and a graceful
shutdown (finish the request, then close) behave as on the ASGI route.
"""

from __future__ import annotations

import time
from typing import Any

from zoo.core.serve.transport import bearer_ok, body_limit, body_too_large

_JSON_HEAD = b"content-type: application/json\r\ncontent-length: %d\r\nx-zoo-latency-ms: %.3f\r\n"
_defaults: list[Any] = [None, b""]  # uvicorn's default headers (a new list each second: the date), joined


class _NoEvent:
    """uvicorn's protocol sets its cycle's ``message_event`` when the connection is lost; nothing waits here."""

    @staticmethod
    def set() -> None:
        pass


class _InferCycle:
    """One infer request on the fast path: the body as it arrives, then the answer. Carries the
    fields uvicorn's protocol and the stall guard read of a request cycle (``more_body``,
    ``response_started``, ``response_complete``, ``disconnected``, ``keep_alive``,
    ``message_event``)."""

    __slots__ = ("protocol", "name", "keep_alive", "started", "chunks", "size", "limit", "split", "more_body",
                 "response_started", "response_complete", "disconnected")
    message_event = _NoEvent

    def __init__(self, protocol, name: str, keep_alive: bool) -> None:
        self.protocol, self.name, self.keep_alive = protocol, name, keep_alive
        self.started = time.perf_counter()
        self.chunks: list[bytes] = []
        self.size, self.limit, self.split = 0, 0, None
        self.more_body, self.response_started, self.response_complete, self.disconnected = True, False, False, False

    def begin(self, headers: dict[bytes, bytes]) -> None:
        """The headers are in: an unknown model (404) or a declared size over the limits (413)
        is answered before the body is read (and without ``100 Continue``, as on the ASGI route)."""
        routes = self.protocol.zoo_routes
        try:
            routes.endpoint(self.name)
            self.limit, self.split = body_limit(headers, routes.limits)
        except Exception as err:  # noqa: BLE001 - answered by failure()
            self.answer(*routes.failure(err, self.name))
            return
        if self.protocol.expect_100_continue:  # the client waits for this before it sends the body
            self.protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def receive(self, chunk: bytes) -> None:
        if self.response_complete:
            return  # answered already (a 404 or 413): the rest of the body is dropped
        self.size += len(chunk)
        if self.size > self.limit:
            self.answer(*self.protocol.zoo_routes.failure(body_too_large(self.limit, self.split), self.name))
            return
        self.chunks.append(chunk)

    def complete(self) -> None:
        """The body is in: checked, decoded and handed to the batcher, answered from its reply."""
        self.more_body = False
        if self.response_complete:
            return
        chunks = self.chunks
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.protocol.zoo_routes.begin(self.name, raw, len(raw) if self.split is None else min(self.split, len(raw)),
                                       self.answer)

    def answer(self, status: int, payload: bytes, close: bool) -> None:
        """Head and body in one write; then, as uvicorn does after a response, the connection
        closed (``close``, HTTP/1.0, a shutdown) or made ready for its next request."""
        if self.response_complete:
            return
        self.response_started = self.response_complete = True
        protocol = self.protocol
        transport = protocol.transport
        if self.disconnected or transport.is_closing():
            return  # the client left
        keep = self.keep_alive and not close
        headers = protocol.server_state.default_headers
        if headers is not _defaults[0]:
            _defaults[:] = [headers, b"".join(b"%s: %s\r\n" % pair for pair in headers)]
        head = _JSON_HEAD % (len(payload), (time.perf_counter() - self.started) * 1e3)
        transport.write(b"".join((protocol.zoo_status[status], _defaults[1], head,
                                  b"\r\n" if keep else b"connection: close\r\n\r\n", payload)))
        if not keep:
            transport.close()
        protocol.on_response_complete()


class _FastInfer:
    """The fast path as a mixin over uvicorn's ``HttpToolsProtocol`` (its parser callbacks)."""

    zoo_routes: Any = None  # the app's Routes; set on the class by fast_protocol
    zoo_key: bytes | None = None  # the API key, when one guards the routes
    zoo_status: dict[int, bytes] = {}  # uvicorn's status lines

    def on_headers_complete(self) -> None:
        headers = dict(self.headers)
        cycle = self._zoo_cycle_for(headers)
        if cycle is None:
            super().on_headers_complete()
            return
        self.cycle = cycle
        cycle.begin(headers)

    def on_body(self, body: bytes) -> None:
        if type(self.cycle) is _InferCycle:
            self.cycle.receive(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if type(self.cycle) is _InferCycle:
            self.cycle.complete()
        else:
            super().on_message_complete()

    def _zoo_cycle_for(self, headers: dict[bytes, bytes]) -> _InferCycle | None:
        """A cycle when this request takes the fast path (see the module's docstring), else None."""
        parser, cycle = self.parser, self.cycle
        if (parser.get_method() != b"POST" or parser.should_upgrade()
                or (cycle is not None and not cycle.response_complete)):
            return None
        path = self.url.partition(b"?")[0]
        if not (path.startswith(b"/v2/models/") and path.endswith(b"/infer")) or b"%" in path:
            return None
        name = path[len(b"/v2/models/"):-len(b"/infer")].removesuffix(b"/versions/1")
        if not name or b"/" in name or not name.isascii():
            return None
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return None
        if self.zoo_key is not None and not bearer_ok(headers, self.zoo_key):
            return None
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        return _InferCycle(self, name.decode(), keep_alive)


#: uvicorn releases whose ``HttpToolsProtocol`` internals the fast path was tested against
#: (``(major, minor)``, both ends included); any other release serves every route through ASGI.
TESTED_UVICORN = ((0, 55), (0, 55))


def fast_protocol(base: type, routes, api_key: str | None = None) -> type:
    """uvicorn's HTTP protocol class ``base`` answering the infer route itself (httptools'
    protocol of a tested uvicorn release; any other ``base``, such as h11's, or a release
    outside ``TESTED_UVICORN``, whose private protocol fields may differ, is returned as it is)."""
    try:
        import uvicorn
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    except ImportError:
        return base
    release = tuple(int(part) for part in uvicorn.__version__.split(".")[:2] if part.isdigit())
    if not issubclass(base, HttpToolsProtocol) or not TESTED_UVICORN[0] <= release <= TESTED_UVICORN[1]:
        return base
    key = api_key.strip().encode() if api_key is not None else None
    return type(f"FastInfer{base.__name__}", (_FastInfer, base),
                {"zoo_routes": routes, "zoo_key": key, "zoo_status": STATUS_LINE})
