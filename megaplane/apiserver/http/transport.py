"""HTTP/1.1 for the API server: httptools parsing on an asyncio Protocol, bytes in and bytes out.

Measured on this machine kind (REFERENCE.md §8): asyncio.Protocol +
httptools + uvloop answers a 4.7 KB GET in ~16 us of CPU; ASGI servers
and frameworks cost 2-7x that. This module is that floor plus what the
API needs: keep-alive, a request body limit (413, like kube-apiserver's
3 MiB), chunked streaming responses for watches, and TLS when the server
is given an SSL context.

Handlers return a `Response`, a `StreamResponse` (watch), or a coroutine
producing one. A coroutine is first stepped inline: if it finishes without
waiting (the common case: the embedded store answers synchronously) no
Task is created at all; if it waits, the rest runs in a Task. Requests on
one connection are answered in order (no pipelining reorder).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from email.utils import formatdate
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import httptools

from megaplane.apimachinery import errors
from megaplane.apiserver.http.encoding import event_line

__all__ = ["Request", "Response", "StreamResponse", "HTTPServer", "MAX_BODY_BYTES"]

log = logging.getLogger("megaplane.apiserver.http.transport")

# kube-apiserver's limit for a request body (apiserver/pkg/server: MaxRequestBodyBytes).
MAX_BODY_BYTES = 3 * 1024 * 1024
# A watch whose socket buffer passes this is too slow: it is closed and the client rewatches.
STREAM_HIGH_WATER = 16 * 1024 * 1024

_REASONS = {
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    409: b"Conflict",
    410: b"Gone",
    413: b"Request Entity Too Large",
    415: b"Unsupported Media Type",
    422: b"Unprocessable Entity",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}

_date_cache: List[Any] = [0, b""]


def _date_header() -> bytes:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date_cache[1]  # type: ignore[no-any-return]


class Request:
    """One parsed request. `path` and `query` are the raw URL parts; headers are lower-cased."""

    __slots__ = ("method", "path", "query", "headers", "body", "peer", "started")

    def __init__(self, method: str, path: str, query: str, headers: Dict[str, str], body: bytes, peer: Any) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.peer = peer
        self.started = time.perf_counter()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}?{self.query}>"


class Response:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: Optional[List[Tuple[bytes, bytes]]] = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers

    def encode(self, keep_alive: bool) -> bytes:
        head = [
            _STATUS_LINES.get(self.status) or b"HTTP/1.1 %d Status\r\n" % self.status,
            b"Cache-Control: no-cache, private\r\nContent-Type: ",
            self.content_type,
            b"\r\n",
            _date_header(),
        ]
        if self.headers:
            for k, v in self.headers:
                head.append(k + b": " + v + b"\r\n")
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"Content-Length: %d\r\n\r\n" % len(self.body))
        head.append(self.body)
        return b"".join(head)


class StreamResponse:
    """A chunked response the handler keeps writing to (watch). `start(sink)` is called once headers are out."""

    __slots__ = ("status", "content_type", "start")

    def __init__(self, start: Callable[["ChunkSink"], None], content_type: bytes = b"application/json") -> None:
        self.status = 200
        self.content_type = content_type
        self.start = start


class ChunkSink:
    """Chunked transfer encoding onto one connection; the watch cache's `Sink`."""

    __slots__ = ("conn", "closed", "on_lost")

    def __init__(self, conn: "HTTPConnection") -> None:
        self.conn = conn
        self.closed = False
        self.on_lost: Optional[Callable[[], None]] = None

    def write(self, data: bytes) -> bool:
        if self.closed:
            return False
        t = self.conn.transport
        if t is None or t.is_closing():
            return False
        if t.get_write_buffer_size() > STREAM_HIGH_WATER:
            return False
        t.write(b"%x\r\n%s\r\n" % (len(data), data))
        return True

    def write_chunk(self, chunk: bytes) -> bool:
        if self.closed:
            return False
        t = self.conn.transport
        if t is None or t.is_closing() or t.get_write_buffer_size() > STREAM_HIGH_WATER:
            return False
        t.write(chunk)
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        conn = self.conn
        t = conn.transport
        if t is not None and not t.is_closing():
            t.write(b"0\r\n\r\n")
        conn.stream_ended(self)


Handler = Callable[[Request], Any]


class HTTPServer:
    """Listeners for one handler (plain and TLS ports share it)."""

    def __init__(self, handler: Handler, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.servers: List[asyncio.AbstractServer] = []
        self.connections: set = set()

    async def listen(self, host: str, port: int, ssl: Any = None) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: HTTPConnection(self), host, port, ssl=ssl, reuse_address=True, backlog=4096
        )
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for s in self.servers:
            s.close()
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.close()
        for s in self.servers:
            await s.wait_closed()


class HTTPConnection(asyncio.Protocol):
    __slots__ = (
        "server",
        "transport",
        "parser",
        "url",
        "headers",
        "body",
        "body_size",
        "queue",
        "busy",
        "draining",
        "stream",
        "peer",
        "refused",
    )

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.transport: Optional[asyncio.Transport] = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: Dict[str, str] = {}
        self.body: List[bytes] = []
        self.body_size = 0
        self.queue: Deque[Tuple[Request, bool]] = deque()
        self.busy = False
        self.draining = False
        self.stream: Optional[ChunkSink] = None
        self.peer: Any = None
        self.refused = False

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self.peer = transport.get_extra_info("peername")
        # No TCP_NODELAY here: asyncio and uvloop set it on every TCP transport already.

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.server.connections.discard(self)
        stream = self.stream
        if stream is not None:
            stream.closed = True
            self.stream = None
            if stream.on_lost is not None:
                stream.on_lost()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self.refused:
                self._fail(400, f"malformed HTTP request: {exc}".encode())

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        v = value.decode("latin-1")
        if key in self.headers:
            self.headers[key] += "," + v
        else:
            self.headers[key] = v

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body_bytes:
            self._too_large()

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        self.body_size += len(body)
        if self.body_size > self.server.max_body_bytes:
            self._too_large()
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        url = self.url.decode("latin-1")
        path, _, query = url.partition("?")
        req = Request(
            self.parser.get_method().decode(),
            path,
            query,
            self.headers,
            b"".join(self.body) if len(self.body) != 1 else self.body[0],
            self.peer,
        )
        keep_alive = self.parser.should_keep_alive()
        if self.busy or self.queue:
            self.queue.append((req, keep_alive))
        else:
            self._dispatch(req, keep_alive)

    # -- responses ---------------------------------------------------------------------

    def _too_large(self) -> None:
        if self.refused:
            return
        self.refused = True
        err = errors.too_large(self.server.max_body_bytes)
        self._write(Response(err.code, err.body()), keep_alive=False)

    def _fail(self, status: int, message: bytes) -> None:
        err = errors.StatusError(status, "BadRequest", message.decode(errors="replace"))
        self._write(Response(status, err.body()), keep_alive=False)

    def _write(self, resp: Response, keep_alive: bool) -> None:
        t = self.transport
        if t is None:
            return
        t.write(resp.encode(keep_alive))
        if not keep_alive:
            t.close()

    def _dispatch(self, req: Request, keep_alive: bool) -> None:
        try:
            result = self.server.handler(req)
        except errors.StatusError as exc:
            result = _status_response(exc)
        except Exception as exc:  # a handler bug: 500, the connection survives
            log.exception("handler failed for %r", req)
            result = _status_response(errors.internal(str(exc)))
        if asyncio.iscoroutine(result):
            self._drive(result, req, keep_alive)
            return
        self._complete(result, keep_alive)

    def _complete(self, result: Any, keep_alive: bool) -> None:
        if isinstance(result, StreamResponse):
            self._start_stream(result)
            return
        self._write(result, keep_alive)
        self._next()

    def _next(self) -> None:
        self.busy = False
        if self.draining:
            return  # the loop below is already working through the queue (no recursion per pipelined request)
        self.draining = True
        try:
            while self.queue and not self.busy and self.stream is None and self.transport is not None:
                req, keep_alive = self.queue.popleft()
                self._dispatch(req, keep_alive)
        finally:
            self.draining = False

    def _drive(self, coro: Any, req: Request, keep_alive: bool) -> None:
        """Step a handler coroutine inline; only if it waits does it become a Task."""
        self.busy = True
        try:
            fut = coro.send(None)
        except StopIteration as stop:
            self._complete(stop.value, keep_alive)
            return
        except errors.StatusError as exc:
            self._complete(_status_response(exc), keep_alive)
            return
        except Exception as exc:
            log.exception("handler failed for %r", req)
            self._complete(_status_response(errors.internal(str(exc))), keep_alive)
            return
        task = asyncio.get_event_loop().create_task(_resume(coro, fut))

        def done(t: "asyncio.Task[Any]") -> None:
            if t.cancelled() or self.transport is None:
                return
            exc = t.exception()
            if exc is None:
                self._complete(t.result(), keep_alive)
            elif isinstance(exc, errors.StatusError):
                self._complete(_status_response(exc), keep_alive)
            else:
                log.error("handler failed for %r", req, exc_info=exc)
                self._complete(_status_response(errors.internal(str(exc))), keep_alive)

        task.add_done_callback(done)

    def _start_stream(self, resp: StreamResponse) -> None:
        t = self.transport
        if t is None:
            return
        self.busy = True
        t.write(
            b"HTTP/1.1 200 OK\r\nCache-Control: no-cache, private\r\nContent-Type: "
            + resp.content_type
            + b"\r\n"
            + _date_header()
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sink = self.stream = ChunkSink(self)
        try:
            resp.start(sink)
        except Exception as exc:  # a handler bug: end this stream with an ERROR event, keep the server
            log.exception("starting a stream failed")
            err = errors.internal(str(exc))
            sink.write(event_line("ERROR", err.body()))
            sink.close()

    def stream_ended(self, sink: ChunkSink) -> None:
        if self.stream is sink:
            self.stream = None
            self._next()


async def _resume(coro: Any, fut: Any) -> Any:
    """Continue a coroutine that yielded `fut` on its first step, as a Task would have."""
    while True:
        cancelled = False
        try:
            if fut is None:
                await asyncio.sleep(0)
            else:
                await _wait(fut)
        except asyncio.CancelledError:
            cancelled = True
        try:
            fut = coro.throw(asyncio.CancelledError()) if cancelled else coro.send(None)
        except StopIteration as stop:
            return stop.value


async def _wait(fut: Any) -> None:
    """Wait for a future without taking its result (the coroutine reads it when resumed)."""
    if not fut.done():
        waiter = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda _: waiter.done() or waiter.set_result(None))
        await waiter


def _status_response(exc: errors.StatusError) -> Response:
    headers = [(k.encode(), v.encode()) for k, v in exc.headers.items()] if exc.headers else None
    return Response(exc.code, exc.body(), headers=headers)
