"""Requests on connections of the fleet's own: HTTP/1.1, pipelined, driven by callbacks, no coroutine per request.

Lease renewals are most of what a fleet sends (a million nodes renewing
every 60 s: 16,667 PUTs/s). Through `megaplane.client` each one is a
coroutine, a future, a pooled connection taken and given back, one
write and one wake-up: 50-100 us of the fleet's CPU, mostly the event
loop's. Here a renewal is bytes queued on a `Channel`; `flush()` writes
everything queued to each connection in one write (up to `depth`
requests in flight per connection, answered in order as HTTP/1.1
requires), and httptools' callbacks hand each answer to `on_answer` in
the order the requests were queued on that connection. With a
`read_delay`, a connection that still waits for answers after a read
stops reading for that long, so the answers a server writes one by one
are read (and the loop woken) once per delay, not once each.

The request bytes are the caller's (the same bytes `HTTPTransport` would
write: `Endpoint.head` is its request line and header block), so what
reaches the server is a client-go kubelet's PUT; only the framing of
several requests per write and per connection differs.

Failures as `HTTPTransport` reports them: a connection that cannot be
opened, or is lost or closed with requests unanswered, or an answer that
does not come within `timeout` (the connection is then closed), hands
each unanswered request to `on_failure` with a `ConnectionFailedError` or
`RequestTimeoutError`. Nothing is retried here: a write may have been
applied, so the caller decides (the fleet re-reads the Lease, as a
kubelet does after an error).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import ssl
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, cast
from urllib.parse import urlsplit

import httptools

from megaplane.client import ConnectionFailedError, KubeConfig, RequestTimeoutError, StatusError
from megaplane.client.http import USER_AGENT
from megaplane.runtime import REAL_CLOCK, Clock

__all__ = ["Channel", "Endpoint"]

log = logging.getLogger("megaplane.fleet")

#: After a connection could not be opened, wait this long before opening that slot again.
RECONNECT_DELAY = 1.0


class Endpoint:
    """Where the API server is and the header block every request carries (as `HTTPTransport` writes them)."""

    def __init__(self, server: str, *, ssl_context: Optional[ssl.SSLContext] = None, tls_server_name: str = "",
                 token: str = "", username: str = "", password: str = "", user_agent: str = USER_AGENT) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server {server!r} is not an http(s) URL with a host")
        self.server = server.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/").encode("latin-1")
        if parts.scheme == "https":
            self.ssl: Optional[ssl.SSLContext] = ssl_context or ssl.create_default_context()
            self.server_hostname: Optional[str] = tls_server_name or self.host
        else:
            self.ssl = None
            self.server_hostname = None
        headers = [f"Host: {parts.netloc}", f"User-Agent: {user_agent}", "Accept: application/json"]
        if token:
            headers.append(f"Authorization: Bearer {token}")
        elif username or password:
            basic = base64.b64encode(f"{username}:{password}".encode()).decode()
            headers.append(f"Authorization: Basic {basic}")
        #: " HTTP/1.1\r\n" and the fixed headers, each ending in CRLF (the blank line not included).
        self.fixed = (" HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n").encode("latin-1")

    @classmethod
    def from_config(cls, config: KubeConfig) -> "Endpoint":
        return cls(config.server, ssl_context=config.ssl_context(), tls_server_name=config.tls_server_name,
                   token=config.token, username=config.username, password=config.password)

    def __repr__(self) -> str:
        return f"<Endpoint {self.server}>"


class _Connection(asyncio.Protocol):
    """One connection of a Channel: requests written in order, answers parsed by httptools in order."""

    def __init__(self, channel: "Channel") -> None:
        self.channel = channel
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Optional[asyncio.Transport] = None
        self.inflight: Deque[Tuple[Any, float]] = collections.deque()  # (item, sent at)
        self.closed = False
        self._status = 0
        self._headers: Dict[str, str] = {}
        self._body: List[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close(ConnectionFailedError(f"malformed HTTP response: {exc}"))
            return
        except httptools.HttpParserUpgrade:
            self.close(ConnectionFailedError("unexpected protocol upgrade"))
            return
        channel = self.channel
        if self.inflight and channel.read_delay > 0 and self.transport is not None and not self.closed:
            # More answers are coming: let them gather in the socket for a moment and read them in one
            # go (a wake-up and a read per answer is most of what a renewal costs the fleet otherwise).
            self.transport.pause_reading()
            channel._paused(self)
        channel._refill(self)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        why = f"connection lost: {exc}" if exc else "the server closed the connection"
        self._lost(ConnectionFailedError(f"{self.channel.endpoint.server}: {why}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._status:
            self._status = self.parser.get_status_code()
        if self._status >= 300:  # only failures need their headers (Retry-After)
            self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._status or self.parser.get_status_code()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        headers = self._headers
        self._status = 0
        self._body = []
        if headers:
            self._headers = {}
        keep_alive = self.parser.should_keep_alive()
        if self.inflight:
            item, _ = self.inflight.popleft()
            self.channel.on_answer(item, status, headers, body)
        if not keep_alive:
            self.close(ConnectionFailedError(f"{self.channel.endpoint.server}: the server closed the connection"))

    def close(self, why: StatusError) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self._lost(why)

    def _lost(self, why: StatusError) -> None:
        if self.closed:
            return
        self.closed = True
        self.channel._forget(self)
        while self.inflight:
            item, _ = self.inflight.popleft()
            self.channel.on_failure(item, why)


class Channel:
    """Up to `connections` connections to `endpoint`, each with up to `depth` requests in flight.

    `queue(item, data)` adds one request; `flush()` sends what is queued.
    Each request ends in exactly one call: `on_answer(item, status,
    headers, body)` (headers only for status >= 300) or `on_failure(item,
    error)`.
    """

    def __init__(self, endpoint: Endpoint, connections: int, depth: int, *,
                 on_answer: Callable[[Any, int, Dict[str, str], bytes], None],
                 on_failure: Callable[[Any, StatusError], None],
                 timeout: float = 60.0, connect_timeout: float = 10.0, read_delay: float = 0.0,
                 clock: Clock = REAL_CLOCK) -> None:
        if connections < 1 or depth < 1:
            raise ValueError(f"connections and depth must be >= 1 (got {connections}, {depth})")
        self.endpoint = endpoint
        self.connections = connections
        self.depth = depth
        self.on_answer = on_answer
        self.on_failure = on_failure
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.read_delay = read_delay
        self.clock = clock
        self.pending: Deque[Tuple[Any, bytes]] = collections.deque()
        self._live: List[_Connection] = []
        self._connecting = 0
        self._retry_at = 0.0
        self._tasks: "set[asyncio.Task[None]]" = set()
        self._closed = False
        self._paused_conns: List[_Connection] = []
        self._resume_timer: Optional[asyncio.TimerHandle] = None
        self.opened = 0
        self.writes = 0
        self.requests = 0

    def __repr__(self) -> str:
        return (f"<Channel {self.endpoint.server} live={len(self._live)} pending={len(self.pending)} "
                f"inflight={self.inflight()}>")

    def inflight(self) -> int:
        return sum(len(c.inflight) for c in self._live)

    def queue(self, item: Any, data: bytes) -> None:
        self.pending.append((item, data))

    def flush(self) -> None:
        """Write what is queued to connections with room; open connections when there is more."""
        pending = self.pending
        if not pending or self._closed:
            return
        for conn in self._live:
            self._refill(conn)
            if not pending:
                return
        if len(self._live) + self._connecting < self.connections:
            now = self.clock.monotonic()
            if now >= self._retry_at:
                # Enough connections for what waits; each takes `depth`.
                room = self.connections - len(self._live) - self._connecting
                wanted = min(room, -(-len(pending) // self.depth) - self._connecting)
                for _ in range(max(wanted, 0)):
                    self._open()
                return
        if not self._live and not self._connecting:
            # Nothing can carry them now (the server could not be reached a moment ago): say so at once.
            error = ConnectionFailedError(f"cannot connect to {self.endpoint.server} (retrying shortly)")
            while pending:
                item, _ = pending.popleft()
                self.on_failure(item, error)

    def _refill(self, conn: _Connection) -> None:
        pending = self.pending
        room = self.depth - len(conn.inflight)
        if room <= 0 or not pending or conn.closed or conn.transport is None:
            return
        now = self.clock.monotonic()
        inflight = conn.inflight
        if room == 1 or len(pending) == 1:
            item, data = pending.popleft()
            inflight.append((item, now))
            self.requests += 1
        else:
            chunks = []
            for _ in range(min(room, len(pending))):
                item, data = pending.popleft()
                inflight.append((item, now))
                chunks.append(data)
            self.requests += len(chunks)
            data = b"".join(chunks)
        self.writes += 1
        conn.transport.write(data)

    def _paused(self, conn: _Connection) -> None:
        self._paused_conns.append(conn)
        if self._resume_timer is None:
            self._resume_timer = asyncio.get_running_loop().call_later(self.read_delay, self._resume)

    def _resume(self) -> None:
        self._resume_timer = None
        paused, self._paused_conns = self._paused_conns, []
        for conn in paused:
            if not conn.closed and conn.transport is not None:
                conn.transport.resume_reading()

    def _open(self) -> None:
        self._connecting += 1
        task = asyncio.get_running_loop().create_task(self._connect(), name="fleet-wire-connect")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        ep = self.endpoint
        loop = asyncio.get_running_loop()
        error: Optional[StatusError] = None
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(self), ep.host, ep.port, ssl=ep.ssl, server_hostname=ep.server_hostname),
                self.connect_timeout)
        except asyncio.TimeoutError:
            error = ConnectionFailedError(f"cannot connect to {ep.server}: no connection within "
                                          f"{self.connect_timeout:g}s")
        except ssl.SSLError as exc:
            error = ConnectionFailedError(f"TLS handshake with {ep.server} failed: {exc}")
        except OSError as exc:
            error = ConnectionFailedError(f"cannot connect to {ep.server}: {exc.strerror or exc}")
        finally:
            self._connecting -= 1
        if error is not None:
            log.debug("fleet: %s", error)
            self._retry_at = self.clock.monotonic() + RECONNECT_DELAY
            if not self._live and not self._connecting:
                while self.pending:
                    item, _ = self.pending.popleft()
                    self.on_failure(item, error)
            return
        if self._closed:
            conn.close(ConnectionFailedError("the channel is closed"))
            return
        self.opened += 1
        self._live.append(conn)
        self._refill(conn)
        if self.pending:
            self.flush()

    def _forget(self, conn: _Connection) -> None:
        try:
            self._live.remove(conn)
        except ValueError:
            pass

    def check_deadlines(self) -> None:
        """Close each connection whose oldest request has waited past `timeout` (its requests fail)."""
        now = self.clock.monotonic()
        for conn in list(self._live):
            if conn.inflight and now - conn.inflight[0][1] > self.timeout:
                conn.close(RequestTimeoutError(f"no response within {self.timeout:g}s"))

    async def close(self) -> None:
        """Close every connection; requests queued or in flight fail."""
        self._closed = True
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        error = ConnectionFailedError("the channel is closed")
        for conn in list(self._live):
            conn.close(error)
        while self.pending:
            item, _ = self.pending.popleft()
            self.on_failure(item, error)
        await asyncio.sleep(0)
