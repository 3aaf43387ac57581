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

Hostile and careless clients are bounded as kube-apiserver's Go
http.Server bounds them (`TransportLimits` names each default's source):

- a request head (request line + headers) past MaxHeaderBytes is answered
  with Go's plain-text 431 and the connection closed; bytes are counted
  per read, so a 64 MB URL costs one read past the limit, not 64 MB;
- a head must arrive within ReadHeaderTimeout (silently closed, as Go
  does), a keep-alive connection may sit idle for IdleTimeout, a body must
  arrive within the request timeout (504, then closed);
- a request whose handler is still waiting after --request-timeout (or a
  shorter ?timeout=) is answered 504 Timeout as the timeout filter does;
  watches (streams) instead end at their deadline (--min-request-timeout,
  randomised in [min, 2*min] as upstream, when the handler gives none);
- output is bounded per connection: past the write buffer's high-water
  mark the connection stops reading and stops answering pipelined
  requests until the client drains it, and a client that does not read for
  `write_stall_timeout` is cut off, its buffered output freed;
- connections stay within a file-descriptor budget below RLIMIT_NOFILE:
  when a new client would go past it, the connection idle the longest is
  closed first, so idle sockets cannot lock new clients out.

Deadlines are one number per connection, checked by one sweep a second:
the per-request cost is a few attribute writes.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import httptools

from megaplane.apimachinery import errors
from megaplane.apiserver.http import limits as _limits
from megaplane.apiserver.http.encoding import event_line
from megaplane.apiserver.http.limits import (
    TransportLimits,
    invalid_timeout,
    request_deadline,
    watch_timeout,
)
from megaplane.apiserver.http.messages import _STATUS_LINES, Request, Response, StreamResponse, _date_header
from megaplane.apiserver.http.tls import connection_credentials

__all__ = [
    "Request",
    "Response",
    "StreamResponse",
    "HTTPServer",
    "TransportLimits",
    "MAX_BODY_BYTES",
    "watch_timeout",
]

log = logging.getLogger("megaplane.apiserver.http.transport")

MAX_BODY_BYTES = TransportLimits.max_body_bytes
# A watch whose socket buffer passes this is too slow: it is closed and the client rewatches.
STREAM_HIGH_WATER = 16 * 1024 * 1024


class ChunkSink:
    """Chunked transfer encoding onto one connection; the watch cache's `Sink`.

    `on_lost` is called when the transport ends the stream: the connection
    was lost, or the stream's deadline passed (then the stream is closed
    right after, with its terminating chunk).
    """

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

# Connection phases; each has its own deadline (see TransportLimits).
_IDLE, _HEAD, _BODY, _BUSY, _STREAM, _CLOSING = range(6)
# What Go's http.Server writes when a request head is too large (net/http server.go, errTooLarge).
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n431 Request Header Fields Too Large"
)
# The timeout filter (endpoints/filters/timeout.go) encodes the bare Status, without kind and apiVersion.
_TIMEOUT_BODY = (
    b'{"metadata":{},"status":"Failure","message":"Timeout: request did not complete within the allotted '
    b'timeout","reason":"Timeout","details":{},"code":504}\n'
)
# Seconds a refused connection keeps its write side open for the answer before it is closed (Go: 500 ms).
_LINGER = 0.5


def _fd_budget(reserve: int) -> int:
    """Client connections that fit under the process's RLIMIT_NOFILE with `reserve` descriptors kept free."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(soft - (reserve or max(64, soft // 10)), 1)


class HTTPServer:
    """Listeners for one handler (plain and TLS ports share it), and the limits of their connections."""

    def __init__(
        self, handler: Handler, *, limits: Optional[TransportLimits] = None, max_body_bytes: Optional[int] = None,
        tls_protocol: Optional[Callable[["HTTPServer"], asyncio.Protocol]] = None,
    ) -> None:
        self.handler = handler
        #: What serves a TLS connection (h2.ALPNSwitch: HTTP/2 or HTTP/1.1 by ALPN); None: HTTP/1.1. Given by the
        #: caller so this module need not know HTTP/2 (h2 builds on it).
        self.tls_protocol = tls_protocol
        self.limits = limits or _limits.DEFAULT_LIMITS
        self.max_body_bytes = max_body_bytes or self.limits.max_body_bytes
        # Go counts the request line and headers against MaxHeaderBytes + 4096 bytes of bufio slack.
        self.max_head_bytes = self.limits.max_header_bytes + 4096
        self.servers: List[asyncio.AbstractServer] = []
        self.connections: set = set()
        # Connections with no request in flight, oldest first: the first closed when descriptors run short.
        self.idle: Dict["HTTPConnection", None] = {}
        self.fd_budget = _fd_budget(self.limits.fd_reserve)
        self._sweeper: Optional[asyncio.Task] = None

    @property
    def request_timeout(self) -> float:
        return self.limits.request_timeout

    @property
    def min_request_timeout(self) -> float:
        return self.limits.min_request_timeout

    async def listen(self, host: str, port: int, ssl: Any = None) -> int:
        loop = asyncio.get_running_loop()
        factory: Callable[[], asyncio.Protocol] = lambda: HTTPConnection(self)  # noqa: E731
        tls_protocol = self.tls_protocol
        if ssl is not None and tls_protocol is not None:
            # TLS: the protocol ALPN chose (h2 or HTTP/1.1) takes over once the handshake is done.
            factory = lambda: tls_protocol(self)  # noqa: E731
        server = await loop.create_server(factory, host, port, ssl=ssl, reuse_address=True, backlog=4096)
        self.servers.append(server)
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep())
        return server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for s in self.servers:
            s.close()
        for c in list(self.connections):
            goaway = getattr(c, "goaway", None)  # HTTP/2 connections say GOAWAY first
            if goaway is not None:
                goaway()
            elif c.transport is not None:
                c.transport.close()
        for s in self.servers:
            await s.wait_closed()

    def admit(self, conn: "HTTPConnection") -> bool:
        """Make room for a new connection: close idle ones past the budget; False if it cannot be kept."""
        excess = len(self.connections) - self.fd_budget
        while excess >= 0 and self.idle:
            oldest = next(iter(self.idle))
            oldest.close_idle()
            excess -= 1
        # With nothing idle to close, a few more fit in the reserve; past half of it, refuse the newcomer.
        return excess < max((self.limits.fd_reserve or 64) // 2, 1)

    async def _sweep(self) -> None:
        """Once a second: end every connection whose deadline has passed."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in [c for c in self.connections if c.deadline <= now or c.stalled_since]:
                try:
                    conn.expire(now)
                except Exception:  # one connection's cleanup must not stop the sweep
                    log.exception("expiring a connection failed")


class HTTPConnection(asyncio.Protocol):
    __slots__ = (
        "server",
        "transport",
        "parser",
        "url",
        "headers",
        "repeated",
        "body",
        "body_size",
        "queue",
        "busy",
        "draining",
        "stream",
        "peer",
        "refused",
        "phase",
        "deadline",
        "head_bytes",
        "answering_head",
        "head_size",
        "stalled_since",
        "write_paused",
        "generation",
        "peer_certificate",
        "user",
    )

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.transport: Optional[asyncio.Transport] = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: Dict[str, str] = {}
        self.repeated: Optional[Dict[str, List[str]]] = None
        self.body: List[bytes] = []
        self.body_size = 0
        self.queue: Deque[Tuple[Request, bool]] = deque()
        self.busy = False
        self.draining = False
        self.stream: Optional[ChunkSink] = None
        self.peer: Any = None
        self.refused = False
        self.phase = _IDLE
        self.deadline = time.monotonic() + server.limits.read_header_timeout
        self.head_bytes = 0
        self.stalled_since = 0.0
        self.write_paused = False
        self.head_size = 0  # the request line's target and the header fields of the request being read
        self.answering_head = False  # the request being answered is a HEAD (one is answered at a time)
        self.generation = 0  # bumped when a request is answered for its handler (timeout): its late result is dropped
        self.peer_certificate: Optional[bytes] = None
        self.user: Any = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        if not server.admit(self):
            transport.abort()  # type: ignore[attr-defined]
            self.transport = None
            return
        server.connections.add(self)
        server.idle[self] = None
        self.peer = transport.get_extra_info("peername")
        self.peer_certificate, self.user = connection_credentials(transport)  # once per connection (tls.py)
        transport.set_write_buffer_limits(high=server.limits.write_high_water)  # type: ignore[attr-defined]
        # No TCP_NODELAY here: asyncio and uvloop set it on every TCP transport already.

    def connection_lost(self, exc: Optional[Exception]) -> None:
        server = self.server
        server.connections.discard(self)
        server.idle.pop(self, None)
        stream = self.stream
        if stream is not None:
            stream.closed = True
            self.stream = None
            if stream.on_lost is not None:
                stream.on_lost()
        self.transport = None
        self.queue.clear()
        self.phase = _CLOSING

    def pause_writing(self) -> None:
        # The client reads slower than we answer: stop reading (and so answering) until it catches up.
        self.write_paused = True
        self.stalled_since = time.monotonic()
        t = self.transport
        if t is not None:
            t.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.stalled_since = 0.0
        t = self.transport
        if t is not None and not self.refused:
            t.resume_reading()
        if not self.busy and self.stream is None:
            self._next()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        phase = self.phase
        if phase == _IDLE:
            self.phase = _HEAD
            self.deadline = time.monotonic() + self.server.limits.read_header_timeout
            self.server.idle.pop(self, None)
            self.head_bytes = len(data)
        elif phase == _HEAD:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self.refused:
                self._fail(400, f"malformed HTTP request: {exc}".encode())
        if self.phase == _HEAD and self.head_bytes > self.server.max_head_bytes and not self.refused:
            self._refuse(_HEADERS_TOO_LARGE)

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.head_size = 0
        self.url = b""
        self.headers = {}
        self.repeated = None
        self.body = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4  # ": " and CRLF
        key = name.decode("latin-1").lower()
        v = value.decode("latin-1")
        if key in self.headers:
            # Repeated headers are joined once the head is complete: joining here is quadratic in their number.
            if self.repeated is None:
                self.repeated = {}
            self.repeated.setdefault(key, [self.headers[key]]).append(v)
        else:
            self.headers[key] = v

    def on_headers_complete(self) -> None:
        # The per-read count in data_received bounds a head still arriving; a head that arrives whole within the
        # read that also completes it is measured here (the read's count restarts with the next request).
        if self.head_size > self.server.max_head_bytes and not self.refused:
            self._refuse(_HEADERS_TOO_LARGE)
            return
        if self.repeated is not None:
            for key, values in self.repeated.items():
                self.headers[key] = ",".join(values)
            self.repeated = None
        self.phase = _BODY
        self.deadline = time.monotonic() + self.server.limits.request_timeout
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
        # The next request's head starts here (pipelined bytes after this one count towards it).
        self.phase = _HEAD
        self.head_bytes = 0
        self.deadline = time.monotonic() + self.server.limits.read_header_timeout
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
        req.peer_certificate, req.user = self.peer_certificate, self.user
        keep_alive = self.parser.should_keep_alive()
        if self.busy or self.queue or self.write_paused:
            self.queue.append((req, keep_alive))
        else:
            self._dispatch(req, keep_alive)

    # -- deadlines ---------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Called by the sweep when the deadline has passed or output is stalled (see TransportLimits)."""
        t = self.transport
        if t is None:
            return
        if self.stalled_since and now - self.stalled_since > self.server.limits.write_stall_timeout:
            log.info("closing %s: its client read nothing for %.0f s", self.peer, now - self.stalled_since)
            _reset(t)
            return
        if now < self.deadline:
            return
        phase = self.phase
        if self.busy and self.stream is None and phase != _BODY:
            self._timed_out()
        elif phase == _STREAM and self.stream is not None:
            self._end_stream(self.stream)
        elif phase == _BODY:
            self._refuse(_STATUS_LINES[504] + b"Content-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))
        elif phase in (_IDLE, _HEAD) and not self.busy:
            t.close()  # Go closes a connection whose head did not arrive in time without answering
        elif phase == _CLOSING:
            t.abort()

    def close_idle(self) -> None:
        """Close this idle connection to make room for a new client."""
        self.server.idle.pop(self, None)
        t = self.transport
        if t is not None:
            t.close()

    def _timed_out(self) -> None:
        """The handler is still working past the request deadline: answer 504 as the timeout filter does.

        The handler is left to finish (upstream too lets it run; a write may still land); its result is dropped.
        """
        self.generation += 1
        self._write(Response(504, _TIMEOUT_BODY), keep_alive=True)
        self._next()

    def _end_stream(self, sink: ChunkSink) -> None:
        if sink.on_lost is not None:
            sink.on_lost()
        sink.close()

    # -- responses ---------------------------------------------------------------------

    def _refuse(self, raw: bytes) -> None:
        """Answer with `raw` and close: the request is refused before it is read to its end."""
        if self.refused:
            return
        self.refused = True
        self.queue.clear()
        t = self.transport
        if t is None:
            return
        self.server.idle.pop(self, None)
        self.phase = _CLOSING
        self.deadline = time.monotonic() + _LINGER
        t.pause_reading()
        t.write(raw)
        # Half-close so the client reads the answer even while it is still sending; the sweep (or the
        # client's own close) ends the connection.
        if t.can_write_eof():
            t.write_eof()
        else:
            t.close()

    def _too_large(self) -> None:
        if self.refused:
            return
        err = errors.too_large(self.server.max_body_bytes)
        self._refuse(Response(err.code, err.body()).encode(keep_alive=False))

    def _fail(self, status: int, message: bytes) -> None:
        err = errors.StatusError(status, "BadRequest", message.decode(errors="replace"))
        self._refuse(Response(status, err.body()).encode(keep_alive=False))

    def _write(self, resp: Response, keep_alive: bool) -> None:
        t = self.transport
        if t is None:
            return
        # A HEAD is answered as its GET would be, without the body (RFC 9110 9.3.2; Go's server drops it too):
        # body bytes would be read as the start of the next response on this connection.
        t.write(resp.encode(keep_alive, self.answering_head))
        if not keep_alive:
            self.phase = _CLOSING
            t.close()

    def _dispatch(self, req: Request, keep_alive: bool) -> None:
        self.answering_head = req.method == "HEAD"
        result = handler_result(self.server.handler, req)
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
            while (
                self.queue and not self.busy and self.stream is None and not self.write_paused
                and self.transport is not None
            ):
                req, keep_alive = self.queue.popleft()
                self._dispatch(req, keep_alive)
        finally:
            self.draining = False
        if not self.busy and not self.queue and self.stream is None and self.phase == _HEAD and not self.head_bytes:
            # Nothing in flight and no next request begun: idle, on the keep-alive clock.
            self.phase = _IDLE
            self.deadline = time.monotonic() + self.server.limits.idle_timeout
            if self.transport is not None:
                self.server.idle[self] = None

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
        task = asyncio.get_event_loop().create_task(resume(coro, fut))
        generation = self.generation
        self.deadline = time.monotonic() + request_deadline(req.query, self.server.limits.request_timeout)

        def done(t: "asyncio.Task[Any]") -> None:
            if t.cancelled() or self.transport is None or self.generation != generation:
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
        self.phase = _STREAM
        timeout = resp.timeout
        if timeout is None:
            timeout = watch_timeout(None, self.server.limits.min_request_timeout)
        self.deadline = time.monotonic() + timeout
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
            self.phase = _HEAD
            self.head_bytes = 0
            self.deadline = time.monotonic() + self.server.limits.read_header_timeout
            self._next()


def handler_result(handler: Handler, req: Request) -> Any:
    """What answers `req` (each protocol's dispatch): a bad ?timeout= as its Status, else the handler's result (a
    response, or a coroutine to drive), a StatusError it raised as its response, any other error as a 500 (a handler
    bug: the connection survives)."""
    if "timeout=" in req.query:
        bad = invalid_timeout(req.path, req.query)
        if bad is not None:
            return _status_response(bad)
    try:
        return handler(req)
    except errors.StatusError as exc:
        return _status_response(exc)
    except Exception as exc:
        log.exception("handler failed for %r", req)
        return _status_response(errors.internal(str(exc)))


def _reset(transport: asyncio.Transport) -> None:
    """Drop a connection with a reset: its unsent output is freed at once, in the process and in the kernel.

    A plain close would leave the kernel holding the output (and the FIN behind it) for a client that
    never reads.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


async def resume(coro: Any, fut: Any) -> Any:
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
