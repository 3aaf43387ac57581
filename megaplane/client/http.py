"""`HTTPTransport`: the Transport over HTTP/1.1 to any Kubernetes API server.

One keep-alive pool of at most `max_connections` connections for requests
(one request per connection at a time; no pipelining), plus one dedicated
connection per watch. Responses are parsed by httptools (llhttp), chunked
watch bodies included. Per request the client sends one precomputed
header block (Host, User-Agent, Accept, Authorization) and the request
line; nothing about the request is re-derived on the hot path.

Policies, as client-go's rest client and net/http transport have them:

- Rate limit: a `qps`/`burst` token bucket before every request, watches
  included (`qps <= 0`: none).
- 429 (any verb) and 5xx on GET, when the server says Retry-After: wait
  that long and retry, at most `max_retries` times, then raise the typed
  error (`TooManyRequestsError` for 429).
- A pooled connection that the server closed while idle is noticed when a
  request on it fails before any response byte arrives; GETs (the
  idempotent verbs: get, list, watch) are then retried once on a fresh
  connection. Writes are not, since the server may have applied them.
- Connect errors and connect timeouts raise `ConnectionFailedError`; no
  complete answer within `timeout` seconds raises `RequestTimeoutError`
  and closes that connection.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import logging
import ssl
from typing import Any, AsyncIterator, Callable, Deque, Dict, List, Optional, Set, cast
from urllib.parse import quote, urlsplit

import httptools

from .clock import REAL_CLOCK, Clock
from .errors import (
    ConnectionFailedError,
    RequestTimeoutError,
    TooManyRequestsError,
    error_from_response,
    retry_after_seconds,
)
from .kubeconfig import KubeConfig
from .ratelimit import TokenBucket
from .resources import ResourceRef
from .transport import Params

__all__ = ["HTTPTransport", "USER_AGENT"]

log = logging.getLogger(__name__)

USER_AGENT = "megaplane-client/0.1"

# A watch consumer that falls this many events behind stops the socket being read (TCP back-pressure).
_WATCH_HIGH_WATER = 4096
_WATCH_LOW_WATER = 1024
_NEVER = float("inf")


class _Dropped(Exception):
    """The connection ended before a complete response (internal: decides the idle retry)."""

    def __init__(self, got_bytes: bool, why: str) -> None:
        super().__init__(why)
        self.got_bytes = got_bytes


class _Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; at most one request in flight; parsed by httptools callbacks."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Optional[asyncio.Transport] = None
        self.closed = False
        self.requests = 0
        self._future: Optional[asyncio.Future[Any]] = None
        self._status = 0
        self._headers: Dict[str, str] = {}
        self._body: List[bytes] = []
        self._got_bytes = False
        self._keep_alive = True
        self._stream: Optional[_HTTPWatchStream] = None
        self._streaming = False
        # One deadline timer per connection, re-armed lazily (see `send`), not one per request.
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at = 0.0
        self._deadline = 0.0
        self._timeout = 0.0
        self.on_lost: Optional[Callable[[], None]] = None
        #: Done once the transport is gone (TLS needs a few loop turns after close() for its shutdown).
        self.lost: Optional[asyncio.Future[None]] = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionFailedError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        self._cancel_timer()
        if self._future is not None and not self._future.done():
            why = f"connection lost: {exc}" if exc else "the server closed the connection"
            self._future.set_exception(_Dropped(self._got_bytes, why))
        if self._stream is not None:
            self._stream._end(complete=False)
        if self.on_lost is not None:
            self.on_lost()
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._status:
            self._status = self.parser.get_status_code()
        # Only failures need their headers (Retry-After); 2xx answers skip the dict entirely.
        if self._status >= 300:
            self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        self._keep_alive = self.parser.should_keep_alive()
        if self._streaming and self._status == 200:
            stream = _HTTPWatchStream(self)
            self._stream = stream
            self._cancel_timer()  # the stream's end is the server's to decide
            self._resolve(stream)

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream._feed(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._stream is not None:
            self._stream._end()
            self.close()
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._resolve(_Response(self._status, self._headers, body))
        if not self._keep_alive:
            self.close()

    # -- driving one request ----------------------------------------------------------------------

    def send(self, data: bytes, timeout: Optional[float], streaming: bool = False) -> "asyncio.Future[Any]":
        """Write one request; the future gets a _Response (or, streaming, a watch stream on 200)."""
        assert self.transport is not None and self._future is None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._future = fut
        self._status = 0
        if self._headers:
            self._headers = {}
        self._body = []
        self._got_bytes = False
        self._streaming = streaming
        self.requests += 1
        if timeout is not None:
            # A timer per request (call_later + cancel) costs about 2 us under uvloop, a tenth of a
            # request: the connection's one timer stays armed across requests and, when it fires
            # early for the request now in flight, moves to that request's deadline.
            self._deadline = deadline = loop.time() + timeout
            self._timeout = timeout
            if self._timer is None or self._timer_at > deadline:
                self._arm(loop, deadline)
        else:
            self._deadline = _NEVER
        self.transport.write(data)
        return fut

    def _resolve(self, value: Any) -> None:
        fut, self._future = self._future, None
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _fail(self, exc: BaseException) -> None:
        fut, self._future = self._future, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._future is None or self.closed or self._deadline == _NEVER:
            return  # answered (or no deadline): the next request with a timeout arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._arm(loop, self._deadline)  # armed for an earlier request: wait for this one's deadline
            return
        self._fail(RequestTimeoutError(f"no response within {self._timeout:g}s"))
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def reusable(self) -> bool:
        return not self.closed and self._future is None and self._keep_alive and self._stream is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _HTTPWatchStream:
    """The body of a watch response, split into event lines as they arrive.

    Two ways to read it: line by line (`async for line in stream`, the
    WatchStream protocol) or a batch at a time (`await next_batch()`: every
    complete line received so far, one wakeup for all the events one read
    of the socket brought; the informer's way).
    """

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._lines: Deque[bytes] = collections.deque()
        self._partial = b""
        self._done = False
        self._paused = False
        self._waiter: Optional[asyncio.Future[None]] = None

    def _feed(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
        parts = data.split(b"\n")
        self._partial = parts.pop()
        lines = self._lines
        if b"" in parts:
            lines.extend(line for line in parts if line)
        else:
            lines.extend(parts)
        if len(lines) > _WATCH_HIGH_WATER and not self._paused and self._conn.transport is not None:
            self._paused = True
            self._conn.transport.pause_reading()
        if self._waiter is not None and lines:
            self._wake()

    def _end(self, complete: bool = True) -> None:
        """No more data. The bytes after the last newline are one last event only if the response
        `complete`d: from a connection lost mid-event they are a cut line, not an event."""
        if not self._done:
            self._done = True
            if complete and self._partial.strip():
                self._lines.append(self._partial)
            self._partial = b""
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume(self) -> None:
        self._paused = False
        if self._conn.transport is not None and not self._conn.closed:
            self._conn.transport.resume_reading()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._lines:
            if self._done:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        line = self._lines.popleft()
        if self._paused and len(self._lines) < _WATCH_LOW_WATER:
            self._resume()
        return line

    async def next_batch(self) -> List[bytes]:
        """Every complete event line received and not yet read, in order (waits for one); [] at the end."""
        while not self._lines:
            if self._done:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        batch = list(self._lines)
        self._lines.clear()
        if self._paused:
            self._resume()
        return batch

    async def close(self) -> None:
        self._lines.clear()
        self._end(complete=False)
        self._conn.close()


def _query(params: Optional[Params]) -> str:
    if not params:
        return ""
    return "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


#: How long close() waits for its connections' transports to finish closing.
CLOSE_WAIT = 1.0


class HTTPTransport:
    """The Transport over HTTP/1.1 (see the module docstring for pooling, retries and limits)."""

    def __init__(
        self,
        server: str,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        tls_server_name: str = "",
        token: str = "",
        username: str = "",
        password: str = "",
        max_connections: int = 4,
        timeout: Optional[float] = 60.0,
        connect_timeout: float = 10.0,
        qps: float = 5.0,
        burst: int = 10,
        max_retries: int = 10,
        user_agent: str = USER_AGENT,
        clock: Optional[Clock] = None,
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server {server!r} is not an http(s) URL with a host")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1 (got {max_connections})")
        self.server = server.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")
        if parts.scheme == "https":
            self._ssl: Optional[ssl.SSLContext] = ssl_context or ssl.create_default_context()
            self._server_hostname: Optional[str] = tls_server_name or self._host
        else:
            self._ssl = None
            self._server_hostname = None
        self.max_connections = max_connections
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self._clock = clock or REAL_CLOCK
        self._limiter = TokenBucket(qps, burst, self._clock)

        headers = [f"Host: {parts.netloc}", f"User-Agent: {user_agent}", "Accept: application/json"]
        if token:
            headers.append(f"Authorization: Bearer {token}")
        elif username or password:
            basic = base64.b64encode(f"{username}:{password}".encode()).decode()
            headers.append(f"Authorization: Basic {basic}")
        self._fixed = (" HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n").encode("latin-1")
        self._no_body = self._fixed + b"\r\n"

        self._idle: List[_Connection] = []
        self._open = 0
        self._waiters: Deque[asyncio.Future[None]] = collections.deque()
        self._watches: Set[_Connection] = set()
        self._closed = False

    @classmethod
    def from_config(cls, config: KubeConfig, **options: Any) -> "HTTPTransport":
        """A transport for a loaded kubeconfig context (options: max_connections, qps, burst, timeout, ...)."""
        return cls(
            config.server,
            ssl_context=config.ssl_context(),
            tls_server_name=config.tls_server_name,
            token=config.token,
            username=config.username,
            password=config.password,
            **options,
        )

    def __repr__(self) -> str:
        return f"<HTTPTransport {self.server} open={self._open} idle={len(self._idle)} watches={len(self._watches)}>"

    # -- the request path -------------------------------------------------------------------

    def _encode(self, method: str, target: str, body: Optional[bytes], content_type: str) -> bytes:
        line = f"{method} {self._prefix}{target}".encode("latin-1")
        if body is None:
            return line + self._no_body
        extra = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1")
        return b"".join((line, self._fixed, extra, body))

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl, server_hostname=self._server_hostname
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectionFailedError(
                f"cannot connect to {self.server}: no connection within {self.connect_timeout:g}s"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectionFailedError(f"TLS handshake with {self.server} failed: {exc}") from None
        except OSError as exc:
            raise ConnectionFailedError(f"cannot connect to {self.server}: {exc.strerror or exc}") from None
        return conn

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise ConnectionFailedError(f"the transport to {self.server} is closed")
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self._open -= 1
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake_one()  # it was handed a slot it will not use
                raise
            if self._closed:
                raise ConnectionFailedError(f"the transport to {self.server} is closed")

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not self._closed:
            self._idle.append(conn)
        else:
            conn.close()
            self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _round_trip(self, data: bytes, idempotent: bool) -> _Response:
        idle = self._idle
        if idle and not idle[-1].closed and not self._closed:
            conn = idle.pop()  # the common case, without a coroutine for _acquire
        else:
            conn = await self._acquire()
        try:
            reused = conn.requests > 0
            try:
                response: _Response = await conn.send(data, self.timeout)
                return response
            except _Dropped as exc:
                if not (reused and idempotent and not exc.got_bytes):
                    raise ConnectionFailedError(f"{self.server}: {exc}") from None
            # The server closed an idle keep-alive connection under us: once more on a new one.
            conn.close()
            conn = await self._connect()  # keeps the pool slot of the one it replaces
            try:
                response = await conn.send(data, self.timeout)
                return response
            except _Dropped as exc:
                raise ConnectionFailedError(f"{self.server}: {exc}") from None
        finally:
            self._release(conn)

    async def _request(
        self, method: str, target: str, body: Optional[bytes] = None, content_type: str = "application/json"
    ) -> bytes:
        data = self._encode(method, target, body, content_type)
        idempotent = method == "GET"
        retries = 0
        while True:
            if not self._limiter.unlimited:
                await self._limiter.wait()
            response = await self._round_trip(data, idempotent)
            status = response.status
            if status < 300:
                return response.body
            error = error_from_response(status, response.headers, response.body)
            if retries < self.max_retries and (status == 429 or (status >= 500 and idempotent)):
                delay = retry_after_seconds(response.headers, error.details)
                if delay is not None:
                    retries += 1
                    log.debug("%s %s: %d, retry %d after %gs", method, target, status, retries, delay)
                    await self._clock.sleep(delay)
                    continue
            if isinstance(error, TooManyRequestsError) and retries:
                error.message = f"{error.message} (after {retries} retries)"
            raise error

    # -- Transport ------------------------------------------------------------------------------

    async def get(
        self, ref: ResourceRef, namespace: Optional[str], name: str, subresource: str = "",
        params: Optional[Params] = None,
    ) -> bytes:
        return await self._request("GET", ref.path(namespace, name, subresource) + _query(params))

    async def list(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None) -> bytes:
        return await self._request("GET", ref.path(namespace) + _query(params))

    async def create(
        self, ref: ResourceRef, namespace: Optional[str], body: bytes, subresource: str = "",
        params: Optional[Params] = None, name: str = "",
    ) -> bytes:
        return await self._request("POST", ref.path(namespace, name, subresource) + _query(params), body)

    async def update(
        self, ref: ResourceRef, namespace: Optional[str], name: str, body: bytes, subresource: str = "",
        params: Optional[Params] = None,
    ) -> bytes:
        return await self._request("PUT", ref.path(namespace, name, subresource) + _query(params), body)

    async def patch(
        self, ref: ResourceRef, namespace: Optional[str], name: str, content_type: str, body: bytes,
        subresource: str = "", params: Optional[Params] = None,
    ) -> bytes:
        target = ref.path(namespace, name, subresource) + _query(params)
        return await self._request("PATCH", target, body, content_type)

    async def delete(
        self, ref: ResourceRef, namespace: Optional[str], name: str, body: Optional[bytes] = None,
        params: Optional[Params] = None,
    ) -> bytes:
        return await self._request("DELETE", ref.path(namespace, name) + _query(params), body)

    async def delete_collection(
        self, ref: ResourceRef, namespace: Optional[str], body: Optional[bytes] = None,
        params: Optional[Params] = None,
    ) -> bytes:
        return await self._request("DELETE", ref.path(namespace) + _query(params), body)

    async def watch(
        self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None
    ) -> _HTTPWatchStream:
        query = dict(params or {})
        query["watch"] = "1"
        data = self._encode("GET", ref.path(namespace) + _query(query), None, "")
        retries = 0
        while True:
            if self._closed:
                raise ConnectionFailedError(f"the transport to {self.server} is closed")
            if not self._limiter.unlimited:
                await self._limiter.wait()
            conn = await self._connect()
            self._watches.add(conn)
            conn.on_lost = functools.partial(self._watches.discard, conn)
            try:
                # The timeout covers the answer's headers only: the stream then lasts as the server decides.
                result = await conn.send(data, self.timeout, streaming=True)
            except _Dropped as exc:
                self._forget_watch(conn)
                raise ConnectionFailedError(f"{self.server}: {exc}") from None
            except BaseException:
                self._forget_watch(conn)
                raise
            if isinstance(result, _HTTPWatchStream):
                return result
            self._forget_watch(conn)
            assert isinstance(result, _Response)
            error = error_from_response(result.status, result.headers, result.body)
            delay = retry_after_seconds(result.headers, error.details)
            if retries < self.max_retries and delay is not None and (result.status == 429 or result.status >= 500):
                retries += 1
                await self._clock.sleep(delay)
                continue
            raise error

    def _forget_watch(self, conn: _Connection) -> None:
        conn.close()
        self._watches.discard(conn)

    async def close(self) -> None:
        self._closed = True
        closing = list(self._idle) + list(self._watches)
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        for conn in list(self._watches):
            conn.close()
            if conn._stream is not None:
                conn._stream._end(complete=False)
        self._watches.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        # Wait (briefly) for the transports to be gone, so none is left to a garbage-collected finalizer
        # (a ResourceWarning) when the loop ends right after.
        pending = [c.lost for c in closing if c.lost is not None and not c.lost.done()]
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_WAIT)
        else:
            await asyncio.sleep(0)

