"""HTTP around the v2 routes: request bodies read within limits, stalled connections closed,
the bearer-token guard, the infer fast path, TLS and the listening socket."""

from __future__ import annotations

import hmac
import json
import socket
from dataclasses import dataclass

from zoo.core.contract.errors import ZooError
from zoo.core.serve.protocol import DEFAULT_MAX_BODY, DEFAULT_MAX_JSON, RequestError

DEFAULT_READ_TIMEOUT = 30.0  # seconds for a request's headers or body to arrive


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


_ADVICE = "; send large tensors as binary data (tritonclient's binary_data=True) or raise --max-json-mb"


def body_limit(headers: dict[bytes, bytes], limits: Limits) -> tuple[int, int | None]:
    """(the most body bytes to read, the length of the JSON part when declared) for a request's
    headers (lower-case names). Declared sizes beyond ``limits`` are a 413 (the connection then
    closed) before any byte of the body is read."""
    declared = _header_int(headers, b"content-length")
    split = _header_int(headers, b"inference-header-content-length")
    json_limit = min(limits.json, limits.body)
    if declared is not None and declared > limits.body:
        raise RequestError(f"request body of {declared} bytes exceeds the limit of {limits.body} "
                           f"(--max-body-mb)", 413, close=True)
    if (split if split is not None else declared or 0) > json_limit:
        raise RequestError(f"the JSON part of the request exceeds the limit of {json_limit} bytes{_ADVICE}",
                           413, close=True)
    return (limits.body if split is not None else json_limit), split  # without the header, all is JSON


def body_too_large(limit: int, split: int | None) -> RequestError:
    """The 413 for a body that grew past ``limit`` while being read."""
    return RequestError(f"request body exceeds the limit of {limit} bytes{'' if split is not None else _ADVICE}",
                        413, close=True)


async def read_request(scope, receive, limits: Limits) -> tuple[bytes, int] | None:
    """The request body and the length of its JSON part (the rest is binary tensor data), read
    within ``limits`` (:func:`body_limit`); None when the client left."""
    limit, split = body_limit(dict(scope["headers"]), limits)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit, split)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return raw, len(raw) if split is None else min(split, len(raw))


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
        return bearer_ok(dict(scope["headers"]), self.key)


def bearer_ok(headers: dict[bytes, bytes], key: bytes) -> bool:
    """Whether ``headers`` (lower-case names) carry ``Authorization: Bearer KEY``."""
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    # compare_digest: the time taken does not tell how much of a guessed key was right
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key)


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
