"""A gRPC client over HTTP/2 on asyncio: unary calls and bidirectional streams of message bytes.

The client half of this package (the server is `server`/`connection`),
as generic: paths and message bytes in, message bytes out. One TCP (or
TLS, ALPN h2) connection per `Channel`, opened on first use and again
after it is lost; every call is a stream on it. It exists because it costs
a fraction of grpcio's per-call CPU in Python (`benchmarks/etcd_backend.py`
measures both): no completion-queue thread, no per-call objects beyond a
future, frames parsed from one buffer.

What it implements of RFC 9113 and gRPC's PROTOCOL-HTTP2.md: the preface
and SETTINGS exchange, HEADERS (+CONTINUATION) decoded with `hpack`,
DATA split to the peer's frame size and held back by its flow-control
windows, our own windows replenished as data is read, PING answered,
RST_STREAM and GOAWAY failing the streams they end, the 5-byte message
prefix, trailers with grpc-status / grpc-message (and trailers-only
responses), and a deadline per unary call (grpc-timeout sent, and the
stream reset when it passes). Not implemented: compression, server push
(refused by SETTINGS_ENABLE_PUSH 0), priorities.

Failures are `CallError(code, details)` with gRPC's status names; a
connection that cannot be made says "failed to connect", one that drops
"connection lost".
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as _ssl
import struct
from collections import deque
from typing import Any, AsyncIterator, Callable, Deque, Dict, List, Optional, cast
from urllib.parse import unquote

import hpack

from .calls import STATUS
from .h2 import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTING,
    SETTINGS,
    U32,
    WINDOW_UPDATE,
    frame,
    literal_field,
)

__all__ = ["Channel", "CallError", "Stream"]

_CODE_NAMES = {v: k for k, v in STATUS.items()}
_MSG = struct.Struct(">BI")
_CANCEL = 0x8
_REFUSED_STREAM = 0x7
# Our receive windows: big enough that a large list streams without waiting for us.
_WINDOW = 1 << 24
_CONNECTION_WINDOW_BUMP = (1 << 30) - 65535
_DEFAULT_WINDOW = 65535
_DEFAULT_FRAME = 16384


class CallError(Exception):
    """A call ended with a non-OK gRPC status (`code` is its name: "UNAVAILABLE", "DEADLINE_EXCEEDED", ...)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class _Call:
    """One HTTP/2 stream: its messages in, its status at the end, and what it still owes the peer."""

    __slots__ = ("sid", "buf", "on_message", "done", "status", "details", "send_window", "pending", "headers_seen",
                 "unread", "closed_local")

    def __init__(self, sid: int, on_message: Callable[[bytes], None], done: "asyncio.Future[None]",
                 send_window: int) -> None:
        self.sid = sid
        self.buf = bytearray()
        self.on_message = on_message
        self.done = done
        self.status = -1
        self.details = ""
        self.send_window = send_window
        # DATA waiting for flow-control window: (bytes, end_stream).
        self.pending: Deque[List[Any]] = deque()
        self.headers_seen = False
        self.unread = 0
        self.closed_local = False


class _Connection(asyncio.Protocol):
    """The HTTP/2 state of one connection (client side)."""

    def __init__(self, authority: bytes, scheme: bytes, keepalive: float = 30.0, keepalive_timeout: float = 10.0) -> None:
        self.authority = authority
        self.scheme = scheme
        # PING every `keepalive` seconds; no ACK within `keepalive_timeout`: the peer is gone (a partition sends
        # no RST), so the connection is closed and its streams fail (a watch then reconnects).
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout
        self._ping_timer: Optional[asyncio.TimerHandle] = None
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.decoder = hpack.Decoder()
        self.calls: Dict[int, _Call] = {}
        self.next_sid = 1
        self.peer_frame = _DEFAULT_FRAME
        self.peer_window = _DEFAULT_WINDOW
        self.conn_send_window = _DEFAULT_WINDOW
        self.conn_unread = 0
        self.alive = False
        self.lost: Optional[str] = None
        self.goaway = False
        self._header_block: Optional[List[Any]] = None  # [sid, flags, bytearray] while CONTINUATION follows
        # Frames written in one loop iteration go out in one send (many calls in flight: one segment, not 64).
        self._out: List[bytes] = []
        self._flush_scheduled = False
        #: Resolved once connection_made ran (uvloop may run it after create_connection returned).
        self.made: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        self._headers_cache: Dict[bytes, bytes] = {}
        self._decoded: Dict[bytes, List[Any]] = {}

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # small frames go out at once (a call is one small write)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alive = True
        if not self.made.done():
            self.made.set_result(None)
        settings = SETTING.pack(2, 0) + SETTING.pack(4, _WINDOW)  # no push; our stream window
        self.transport.write(PREFACE + frame(SETTINGS, 0, 0, settings)
                        + frame(WINDOW_UPDATE, 0, 0, U32.pack(_CONNECTION_WINDOW_BUMP)))
        if self.keepalive > 0:
            self._ping_timer = asyncio.get_running_loop().call_later(self.keepalive, self._ping)

    def _ping(self) -> None:
        if not self.alive:
            return
        self._write(frame(PING, 0, 0, b"megaplne"))
        self._ping_timer = asyncio.get_running_loop().call_later(self.keepalive_timeout, self._ping_lost)

    def _ping_lost(self) -> None:
        self._ping_timer = None
        if self.alive:
            self._fail_connection(f"no PING answer within {self.keepalive_timeout:g}s")

    def _pong(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if self.alive:
            self._ping_timer = asyncio.get_running_loop().call_later(self.keepalive, self._ping)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.alive = False
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self.lost = f"connection lost: {exc}" if exc is not None else "connection lost: closed by the server"
        for call in list(self.calls.values()):
            self._finish(call, STATUS["UNAVAILABLE"], self.lost)
        self.calls.clear()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        at = 0
        n = len(buf)
        try:
            while n - at >= 9:
                hi, lo, ftype, flags, sid = FRAME.unpack_from(buf, at)
                length = (hi << 16) | lo
                end = at + 9 + length
                if end > n:
                    break
                payload = bytes(buf[at + 9:end])
                at = end
                sid &= 0x7FFFFFFF
                self._frame(ftype, flags, sid, payload)
        finally:
            del buf[:at]

    # -- frames -------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_out)

    def _send_out(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if out and self.transport is not None and self.alive:
            self.transport.write(b"".join(out))

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if self._header_block is not None and ftype != CONTINUATION:
            self._fail_connection("a header block was interrupted")
            return
        if ftype == DATA:
            self._data(sid, flags, payload)
        elif ftype == HEADERS:
            if flags & PADDED:
                pad = payload[0]
                payload = payload[1:len(payload) - pad]
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._headers(sid, flags, payload)
            else:
                self._header_block = [sid, flags, bytearray(payload)]
        elif ftype == CONTINUATION:
            block = self._header_block
            if block is None or block[0] != sid:
                self._fail_connection("an unexpected CONTINUATION frame")
                return
            block[2] += payload
            if flags & END_HEADERS:
                self._header_block = None
                self._headers(sid, block[1], bytes(block[2]))
        elif ftype == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif ftype == WINDOW_UPDATE:
            inc = U32.unpack(payload)[0] & 0x7FFFFFFF
            if sid == 0:
                self.conn_send_window += inc
                for call in list(self.calls.values()):
                    self._flush(call)
            else:
                call = self.calls.get(sid)
                if call is not None:
                    call.send_window += inc
                    self._flush(call)
        elif ftype == PING:
            if flags & ACK:
                self._pong()
            elif self.transport is not None:
                self._write(frame(PING, ACK, 0, payload))
        elif ftype == RST_STREAM:
            call = self.calls.pop(sid, None)
            if call is not None:
                code = U32.unpack(payload)[0]
                status = STATUS["UNAVAILABLE"] if code == _REFUSED_STREAM else (
                    STATUS["CANCELLED"] if code == _CANCEL else STATUS["INTERNAL"])
                self._finish(call, status, f"stream reset by the server (HTTP/2 error {code})")
        elif ftype == GOAWAY:
            last = U32.unpack(payload[:4])[0] & 0x7FFFFFFF
            self.goaway = True
            for s, call in list(self.calls.items()):
                if s > last:
                    del self.calls[s]
                    self._finish(call, STATUS["UNAVAILABLE"], "the server is going away (GOAWAY)")

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - len(payload) % 6, 6):
            key, value = SETTING.unpack_from(payload, i)
            if key == 4:  # INITIAL_WINDOW_SIZE: adjusts every open stream's window by the difference
                delta = value - self.peer_window
                self.peer_window = value
                for call in self.calls.values():
                    call.send_window += delta
            elif key == 5:
                self.peer_frame = value
        if self.transport is not None:
            self._write(frame(SETTINGS, ACK, 0))
        for call in list(self.calls.values()):
            self._flush(call)

    def _decode(self, block: bytes) -> List[Any]:
        """A header block's fields; a block of indexed fields only leaves the dynamic table as it was, so its
        decoding is cached until a block that may change the table arrives (grpc-go indexes everything: after
        the first response, headers and trailers are all-indexed and cost a dict lookup, as in `connection`)."""
        cached = self._decoded.get(block)
        if cached is not None:
            return cached
        fields: List[Any] = self.decoder.decode(block, raw=True)
        if all(b & 0x80 for b in block):
            if len(self._decoded) < 256:
                self._decoded[block] = fields
        else:
            self._decoded.clear()
        return fields

    def _headers(self, sid: int, flags: int, block: bytes) -> None:
        try:
            fields = self._decode(block)
        except Exception as e:  # a compression error ends the connection
            self._fail_connection(f"bad HPACK block: {e}")
            return
        call = self.calls.get(sid)
        if call is None:
            return
        status = None
        message = ""
        http_status = b""
        for name, value in fields:
            if name == b"grpc-status":
                status = int(value)
            elif name == b"grpc-message":
                message = unquote(value.decode("utf-8", "replace"))
            elif name == b":status":
                http_status = value
        if not call.headers_seen:
            call.headers_seen = True
            if http_status and http_status != b"200" and status is None:
                self.calls.pop(sid, None)
                self._finish(call, STATUS["UNAVAILABLE"] if http_status in (b"502", b"503", b"504")
                             else STATUS["UNKNOWN"], f"HTTP status {http_status.decode()}")
                return
        if status is not None or flags & END_STREAM:
            self.calls.pop(sid, None)
            self._finish(call, status if status is not None else STATUS["INTERNAL"],
                         message if status is not None else "the stream ended without a grpc-status")

    def _data(self, sid: int, flags: int, payload: bytes) -> None:
        n = len(payload)
        if flags & PADDED:
            payload = payload[1:len(payload) - payload[0]]
        self.conn_unread += n
        transport = self.transport
        if self.conn_unread >= _WINDOW // 2 and transport is not None:
            self._write(frame(WINDOW_UPDATE, 0, 0, U32.pack(self.conn_unread)))
            self.conn_unread = 0
        call = self.calls.get(sid)
        if call is None:
            return
        call.unread += n
        if call.unread >= _WINDOW // 2 and transport is not None and not flags & END_STREAM:
            self._write(frame(WINDOW_UPDATE, 0, sid, U32.pack(call.unread)))
            call.unread = 0
        buf = call.buf
        if buf:
            buf += payload
            data: Any = buf
        else:
            data = payload
        at = 0
        size = len(data)
        while size - at >= 5:
            _, length = _MSG.unpack_from(data, at)
            if size - at - 5 < length:
                break
            call.on_message(bytes(data[at + 5:at + 5 + length]))
            at += 5 + length
        if data is buf:
            del buf[:at]
        elif at < size:
            call.buf = bytearray(data[at:])
        if flags & END_STREAM and sid in self.calls:
            del self.calls[sid]
            self._finish(call, STATUS["INTERNAL"], "the stream ended without trailers")

    def _finish(self, call: _Call, status: int, details: str) -> None:
        call.status = status
        call.details = details
        if not call.done.done():
            call.done.set_result(None)

    def _fail_connection(self, why: str) -> None:
        if self.transport is not None:
            self.transport.write(frame(GOAWAY, 0, 0, U32.pack(0) + U32.pack(1)))
            self.transport.close()
        self.connection_lost(ConnectionError(why))

    # -- sending --------------------------------------------------------------------------

    def _header_block_for(self, path: bytes, timeout: Optional[float]) -> bytes:
        base = self._headers_cache.get(path)
        if base is None:
            base = self._headers_cache[path] = (
                b"\x83" + (b"\x87" if self.scheme == b"https" else b"\x86")  # :method POST, :scheme (static table)
                + literal_field(b":path", path) + literal_field(b":authority", self.authority)
                + literal_field(b"content-type", b"application/grpc") + literal_field(b"te", b"trailers"))
        if timeout is not None:
            return base + literal_field(b"grpc-timeout", b"%dm" % max(int(timeout * 1000), 1))
        return base

    def open(self, path: bytes, on_message: Callable[[bytes], None], timeout: Optional[float],
             message: Optional[bytes] = None) -> _Call:
        """A new stream; with `message`, also its only request message (the stream is then half-closed)."""
        if not self.alive or self.goaway or self.transport is None:
            raise CallError("UNAVAILABLE", self.lost or "connection lost: not connected")
        sid = self.next_sid
        self.next_sid += 2
        call = _Call(sid, on_message, asyncio.get_running_loop().create_future(), self.peer_window)
        self.calls[sid] = call
        headers = frame(HEADERS, END_HEADERS, sid, self._header_block_for(path, timeout))
        if message is None:
            self._write(headers)
            return call
        data = _MSG.pack(0, len(message)) + message
        if len(data) <= min(call.send_window, self.conn_send_window, self.peer_frame):
            # One write for the whole call: one segment, so the server reads it in one go.
            call.send_window -= len(data)
            self.conn_send_window -= len(data)
            call.closed_local = True
            self._write(headers + frame(DATA, END_STREAM, sid, data))
            return call
        self._write(headers)
        call.pending.append([data, True])
        self._flush(call)
        return call

    def send(self, call: _Call, message: bytes, end_stream: bool) -> None:
        data = _MSG.pack(0, len(message)) + message
        if not call.pending and len(data) <= min(call.send_window, self.conn_send_window, self.peer_frame):
            call.send_window -= len(data)
            self.conn_send_window -= len(data)
            assert self.transport is not None
            self._write(frame(DATA, END_STREAM if end_stream else 0, call.sid, data))
            call.closed_local = end_stream
            return
        call.pending.append([data, end_stream])
        self._flush(call)

    def _flush(self, call: _Call) -> None:
        transport = self.transport
        while call.pending and transport is not None:
            data, end_stream = call.pending[0]
            room = min(call.send_window, self.conn_send_window, self.peer_frame)
            if room <= 0:
                return
            piece, rest = data[:room], data[room:]
            call.send_window -= len(piece)
            self.conn_send_window -= len(piece)
            last = not rest
            self._write(frame(DATA, END_STREAM if (last and end_stream) else 0, call.sid, piece))
            if last:
                call.pending.popleft()
                call.closed_local = end_stream
            else:
                call.pending[0][0] = rest

    def reset(self, call: _Call) -> None:
        if self.calls.pop(call.sid, None) is not None and self.transport is not None and self.alive:
            self._write(frame(RST_STREAM, 0, call.sid, U32.pack(_CANCEL)))


class Stream:
    """A bidirectional streaming call: `write` messages, iterate the responses; a non-OK end raises CallError."""

    def __init__(self, channel: "Channel", path: bytes) -> None:
        self._channel = channel
        self._path = path
        self._conn: Optional[_Connection] = None
        self._call: Optional[_Call] = None
        self._messages: Deque[bytes] = deque()
        self._waiter: Optional["asyncio.Future[None]"] = None

    async def _open(self) -> _Call:
        if self._call is None:
            self._conn = await self._channel._connection()
            self._call = self._conn.open(self._path, self._on_message, None)
            self._call.done.add_done_callback(lambda _: self._wake())
        return self._call

    def _on_message(self, data: bytes) -> None:
        self._messages.append(data)
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def write(self, message: bytes) -> None:
        call = await self._open()
        assert self._conn is not None
        if call.done.done():
            raise CallError(_CODE_NAMES.get(call.status, "UNKNOWN"), call.details)
        self._conn.send(call, message, False)

    def cancel(self) -> None:
        if self._call is not None and self._conn is not None:
            self._conn.reset(self._call)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        call = await self._open()
        while True:
            while self._messages:
                yield self._messages.popleft()
            if call.done.done():
                if call.status != 0:
                    raise CallError(_CODE_NAMES.get(call.status, "UNKNOWN"), call.details)
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class Channel:
    """Calls to one server (host:port), on one HTTP/2 connection opened on demand."""

    def __init__(self, host: str, port: int, *, ssl: Optional[_ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None, connect_timeout: float = 5.0,
                 keepalive: float = 30.0, keepalive_timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self._conn: Optional[_Connection] = None
        self._connecting: Optional["asyncio.Future[_Connection]"] = None

    def __repr__(self) -> str:
        return f"<h2 Channel {self.host}:{self.port} connected={self._conn is not None and self._conn.alive}>"

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.alive and not conn.goaway:
            return conn
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = fut = loop.create_future()
        try:
            authority = f"{self.host}:{self.port}".encode()
            scheme = b"https" if self.ssl is not None else b"http"
            kw: Dict[str, Any] = {}
            if self.ssl is not None:
                kw["ssl"] = self.ssl
                kw["server_hostname"] = self.server_hostname or self.host
            try:
                _, proto = await asyncio.wait_for(loop.create_connection(
                    lambda: _Connection(authority, scheme, self.keepalive, self.keepalive_timeout),
                    self.host, self.port, **kw), self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as e:
                err = CallError("UNAVAILABLE", f"failed to connect to {self.host}:{self.port}: {e or 'timeout'}")
                fut.set_exception(err)
                fut.exception()  # retrieved: waiters re-raise it
                raise err from None
            await proto.made
            self._conn = proto
            fut.set_result(proto)
            return proto
        finally:
            self._connecting = None

    async def unary(self, path: bytes, request: bytes, timeout: Optional[float]) -> bytes:
        conn = await self._connection()
        got: List[bytes] = []
        call = conn.open(path, got.append, timeout, request)
        timer = None
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(timeout, self._expire, conn, call)
        try:
            await call.done
        except asyncio.CancelledError:
            conn.reset(call)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if call.status != 0:
            raise CallError(_CODE_NAMES.get(call.status, "UNKNOWN"), call.details)
        if not got:
            raise CallError("INTERNAL", "the call ended without a response message")
        return got[0]

    @staticmethod
    def _expire(conn: _Connection, call: _Call) -> None:
        if not call.done.done():
            conn.reset(call)
            conn._finish(call, STATUS["DEADLINE_EXCEEDED"], "Deadline Exceeded")

    def stream(self, path: bytes) -> Stream:
        return Stream(self, path)

    async def close(self) -> None:
        conn = self._conn
        self._conn = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()
