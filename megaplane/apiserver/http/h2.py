"""HTTP/2 for the API server's secure port: hyper-h2 on an asyncio Protocol, chosen when TLS ALPN says "h2".

kubectl and client-go offer "h2" first and multiplex every request of a
process over one connection, as they do against kube-apiserver. Each
stream is one request for the same `handler(Request)` the HTTP/1.1
transport drives, with the same semantics per stream: a handler's
coroutine is stepped inline and becomes a Task only if it waits; a body
past the limit is answered 413 (and the rest of the stream reset, as Go's
server does); a handler still waiting at --request-timeout (or ?timeout=)
is answered 504 Timeout; a watch (StreamResponse) is a long-lived stream
ended at its deadline or by the client's RST_STREAM.

The server's HTTP/2 settings are kube-apiserver's (secure_serving.go):
SETTINGS_MAX_CONCURRENT_STREAMS from --http2-max-streams-per-connection
(0: 100, the client's initialMaxConcurrentStreams), 256 KiB per-stream
upload window and read frame size (resourceBody99Percentile), a connection
window of that times the stream limit, and a header list limit of
MaxHeaderBytes + 320 (Go's maxHeaderListSize); a header list past it is
answered 431 on its stream, as Go's handleHeaderListTooLong does.

Output respects the peer's flow-control windows: what a window does not
admit waits per stream. A watch whose client stops reading it (its window
stays shut) is refused further events once 4 MiB wait for it, or once the
connection holds 16 MiB, and is closed, as an HTTP/1.1 watcher whose
socket backs up; output waiting longer than `write_stall_timeout` resets
the stream. The connection as a whole follows the HTTP/1.1 rules: reading
stops past the write buffer's high-water mark, a client that reads nothing
for `write_stall_timeout` is cut off, an idle connection (no open stream)
counts towards the server's idle set and fd budget, and it gets a GOAWAY
when the server closes or its idle timeout passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack

from megaplane.apimachinery import errors
from megaplane.apiserver.http.encoding import event_line
from megaplane.apiserver.http.limits import request_deadline, watch_timeout
from megaplane.apiserver.http.messages import Request, Response, StreamResponse, _date_header
from megaplane.apiserver.http.tls import connection_credentials
from megaplane.apiserver.http.transport import (
    _TIMEOUT_BODY,
    STREAM_HIGH_WATER,
    HTTPConnection,
    HTTPServer,
    _reset,
    _status_response,
    handler_result,
    resume,
)

__all__ = ["H2Connection", "ALPNSwitch", "UPLOAD_BUFFER_PER_STREAM", "DEFAULT_MAX_STREAMS"]

log = logging.getLogger("megaplane.apiserver.http.h2")

#: secure_serving.go's resourceBody99Percentile: the per-stream upload window and the largest frame read.
UPLOAD_BUFFER_PER_STREAM = 256 * 1024
#: --http2-max-streams-per-connection 0: kube-apiserver advertises 100 (golang/net b225e7c).
DEFAULT_MAX_STREAMS = 100
# Output a stream may hold beyond its peer's window before its watch is refused more.
_STREAM_PENDING_MAX = STREAM_HIGH_WATER // 4
# Go's http2 maxHeaderListSize: MaxHeaderBytes plus 32 bytes of overhead for ten typical fields.
_HEADER_LIST_SLACK = 10 * 32
# What Go's http2 server answers a header list past its limit with (handleHeaderListTooLong).
_HEADERS_TOO_LARGE_BODY = b"<h1>HTTP Error 431</h1><p>Request Header Field(s) Too Large</p>"
_NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
_CANCEL = h2.errors.ErrorCodes.CANCEL
_INF = float("inf")

# Stream phases.
_BODY, _BUSY, _STREAM, _SENDING = range(4)


class _CappedDecoder(hpack.Decoder):
    """An HPACK decoder whose hard limit is twice the advertised header list size.

    hpack ends the whole connection past its limit; between the advertised size and twice it the
    stream is answered 431 instead, as Go does; beyond, the connection ends (ENHANCE_YOUR_CALM).
    """

    @property  # type: ignore[override]
    def max_header_list_size(self) -> int:
        return self._cap

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        self._cap = 2 * value


class _Stream:
    __slots__ = (
        "id", "method", "path", "headers", "body", "body_size", "phase", "deadline", "generation",
        "out", "end", "remote_ended", "sink", "stalled_since", "refused",
    )

    def __init__(self, stream_id: int, method: str, path: str, headers: Dict[str, str], deadline: float) -> None:
        self.id = stream_id
        self.method = method
        self.path = path
        self.headers = headers
        self.body: List[bytes] = []
        self.body_size = 0
        self.phase = _BODY
        self.deadline = deadline
        self.generation = 0
        self.out = bytearray()  # response bytes the peer's window has not admitted yet
        self.end = False  # the response ends once `out` is sent
        self.remote_ended = False
        self.sink: Optional[H2Sink] = None
        self.stalled_since = 0.0
        self.refused = False


class H2Sink:
    """One watch stream: the `StreamSink` the watch fan-out writes to (HTTP/2 DATA frames, flow-controlled)."""

    __slots__ = ("conn", "stream", "closed", "on_lost")

    def __init__(self, conn: "H2Connection", stream: _Stream) -> None:
        self.conn = conn
        self.stream = stream
        self.closed = False
        self.on_lost: Any = None

    def write(self, data: bytes) -> bool:
        if self.closed:
            return False
        return self.conn.stream_write(self.stream, data)

    def write_chunk(self, chunk: bytes) -> bool:
        # The fan-out's shared chunks are framed for HTTP/1.1 chunked encoding: HTTP/2 sends their payload.
        if self.closed:
            return False
        return self.conn.stream_write(self.stream, chunk[chunk.index(b"\r\n") + 2 : -2])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.conn.stream_finish(self.stream)


class ALPNSwitch(asyncio.Protocol):
    """The protocol a TLS connection starts with: once the handshake is done, the one ALPN chose takes over.

    asyncio (and uvloop) call connection_made after the handshake, so the negotiated protocol is known
    before any request byte arrives; this object is replaced at once and sees nothing else.
    """

    __slots__ = ("server",)

    def __init__(self, server: HTTPServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        chosen: asyncio.Protocol
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            chosen = H2Connection(self.server)
        else:
            chosen = HTTPConnection(self.server)
        transport.set_protocol(chosen)
        chosen.connection_made(transport)


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection: its h2 state machine, its open streams, and the connection's deadlines."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.transport: Optional[asyncio.Transport] = None
        self.streams: Dict[int, _Stream] = {}
        self.peer: Any = None
        self.certificate: Optional[bytes] = None
        self.user: Any = None
        self.deadline = time.monotonic() + server.limits.read_header_timeout
        # Nonzero while output waits (the sweep then visits every second): the earliest stall.
        self.stalled_since = 0.0
        self.paused_since = 0.0  # when the transport's write buffer passed its high-water mark
        self.receiving = False
        self.pending_bytes = 0  # bytes waiting in streams' `out`, all streams together
        limits = server.limits
        self.header_limit = limits.max_header_bytes + _HEADER_LIST_SLACK
        max_streams = limits.http2_max_streams_per_connection or DEFAULT_MAX_STREAMS
        conn = self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None,
            # Response headers are built here, lower-case and valid: skip h2's per-header checks.
            validate_outbound_headers=False, normalize_outbound_headers=False, split_outbound_cookies=False,
        ))
        conn.decoder = _CappedDecoder()
        conn.decoder.max_header_list_size = self.header_limit
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.header_limit,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: UPLOAD_BUFFER_PER_STREAM,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: UPLOAD_BUFFER_PER_STREAM,
        })
        conn.max_inbound_frame_size = UPLOAD_BUFFER_PER_STREAM
        self.connection_window = UPLOAD_BUFFER_PER_STREAM * max_streams

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        if not server.admit(self):  # type: ignore[arg-type]
            transport.abort()  # type: ignore[attr-defined]
            self.transport = None
            return
        server.connections.add(self)
        server.idle[self] = None  # type: ignore[index]
        self.peer = transport.get_extra_info("peername")
        self.certificate, self.user = connection_credentials(transport)  # once per connection, as HTTP/1.1
        transport.set_write_buffer_limits(high=server.limits.write_high_water)  # type: ignore[attr-defined]
        log.debug("HTTP/2 connection from %s", self.peer)
        conn = self.h2
        conn.initiate_connection()
        conn.increment_flow_control_window(self.connection_window - 65535)
        self.transport.write(conn.data_to_send())  # type: ignore[union-attr]

    def connection_lost(self, exc: Optional[Exception]) -> None:
        server = self.server
        server.connections.discard(self)
        server.idle.pop(self, None)  # type: ignore[call-overload]
        self.transport = None
        streams = list(self.streams.values())
        self.streams.clear()
        for st in streams:
            self._lose(st)

    def pause_writing(self) -> None:
        self.paused_since = time.monotonic()
        self.stalled_since = self.stalled_since or self.paused_since
        t = self.transport
        if t is not None:
            t.pause_reading()

    def resume_writing(self) -> None:
        self.paused_since = 0.0
        t = self.transport
        if t is not None:
            t.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.receiving = True
        try:
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                # h2 has queued the GOAWAY; the connection ends once it is out.
                log.debug("HTTP/2 protocol error from %s: %s", self.peer, exc)
                self._write_out()
                if self.transport is not None:
                    self.transport.close()
                return
            for ev in events:
                kind = type(ev)
                if kind is h2.events.RequestReceived:
                    self._request(ev)
                elif kind is h2.events.DataReceived:
                    self._data(ev)
                elif kind is h2.events.StreamEnded:
                    self._ended(ev.stream_id)
                elif kind is h2.events.StreamReset:
                    self._peer_reset(ev.stream_id)
                elif kind is h2.events.WindowUpdated:
                    self._window(ev.stream_id)
                elif kind is h2.events.RemoteSettingsChanged:
                    if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                        self._window(0)
                elif kind is h2.events.ConnectionTerminated:
                    if self.transport is not None:
                        self.transport.close()
        finally:
            self.receiving = False
        self._write_out()

    # -- incoming streams ------------------------------------------------------------

    def _request(self, ev: h2.events.RequestReceived) -> None:
        sid = ev.stream_id
        method = path = ""
        headers: Dict[str, str] = {}
        size = 0
        for name, value in ev.headers:
            size += len(name) + len(value) + 32
            if name[:1] == b":":
                if name == b":method":
                    method = value.decode("latin-1")
                elif name == b":path":
                    path = value.decode("latin-1")
                elif name == b":authority":
                    headers["host"] = value.decode("latin-1")
                continue
            key = name.decode("latin-1")
            v = value.decode("latin-1")
            if key in headers:
                headers[key] += ("; " if key == "cookie" else ",") + v
            else:
                headers[key] = v
        now = time.monotonic()
        st = _Stream(sid, method, path, headers, now + self.server.limits.request_timeout)
        st.remote_ended = ev.stream_ended is not None  # a request without a body: no reset after a refusal
        self.streams[sid] = st
        self.server.idle.pop(self, None)  # type: ignore[call-overload]
        if st.deadline < self.deadline:
            self.deadline = st.deadline
        if size > self.header_limit:
            self._refuse(st, Response(431, _HEADERS_TOO_LARGE_BODY, content_type=b"text/html; charset=utf-8"))
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body_bytes:
            self._too_large(st)

    def _data(self, ev: h2.events.DataReceived) -> None:
        sid = ev.stream_id
        try:
            self.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
        except h2.exceptions.ProtocolError:
            pass
        st = self.streams.get(sid)
        if st is None or st.refused:
            return
        st.body_size += len(ev.data)
        if st.body_size > self.server.max_body_bytes:
            self._too_large(st)
            return
        st.body.append(ev.data)

    def _ended(self, sid: int) -> None:
        st = self.streams.get(sid)
        if st is None:
            return
        st.remote_ended = True
        if st.refused:
            return
        path, _, query = st.path.partition("?")
        body = st.body
        req = Request(st.method, path, query, st.headers, b"".join(body) if len(body) != 1 else body[0], self.peer)
        req.peer_certificate, req.user = self.certificate, self.user
        st.body = []
        st.phase = _BUSY
        self._dispatch(st, req)

    def _peer_reset(self, sid: int) -> None:
        st = self.streams.pop(sid, None)
        if st is None:
            return
        self.pending_bytes -= len(st.out)
        st.out = bytearray()
        self._lose(st)
        self._maybe_idle()

    def _lose(self, st: _Stream) -> None:
        """The stream is gone (reset or connection lost): a watch on it ends, a handler's result is dropped."""
        st.generation += 1
        sink = st.sink
        if sink is not None and not sink.closed:
            sink.closed = True
            if sink.on_lost is not None:
                sink.on_lost()

    # -- handlers ----------------------------------------------------------------------

    def _dispatch(self, st: _Stream, req: Request) -> None:
        result = handler_result(self.server.handler, req)
        if asyncio.iscoroutine(result):
            self._drive(st, result, req)
            return
        self._complete(st, result)

    def _drive(self, st: _Stream, coro: Any, req: Request) -> None:
        """Step a handler coroutine inline; only if it waits does it become a Task."""
        try:
            fut = coro.send(None)
        except StopIteration as stop:
            self._complete(st, stop.value)
            return
        except errors.StatusError as exc:
            self._complete(st, _status_response(exc))
            return
        except Exception as exc:
            log.exception("handler failed for %r", req)
            self._complete(st, _status_response(errors.internal(str(exc))))
            return
        task = asyncio.get_event_loop().create_task(resume(coro, fut))
        generation = st.generation
        st.deadline = time.monotonic() + request_deadline(req.query, self.server.limits.request_timeout)
        if st.deadline < self.deadline:
            self.deadline = st.deadline

        def done(t: "asyncio.Task[Any]") -> None:
            if t.cancelled() or self.transport is None or st.generation != generation:
                return
            exc = t.exception()
            if exc is None:
                self._complete(st, t.result())
            elif isinstance(exc, errors.StatusError):
                self._complete(st, _status_response(exc))
            else:
                log.error("handler failed for %r", req, exc_info=exc)
                self._complete(st, _status_response(errors.internal(str(exc))))
            self._write_out()

        task.add_done_callback(done)

    def _complete(self, st: _Stream, result: Any) -> None:
        if self.streams.get(st.id) is not st:
            return  # reset by the client meanwhile
        if isinstance(result, StreamResponse):
            self._start_stream(st, result)
        else:
            self._respond(st, result)

    # -- responses ---------------------------------------------------------------------

    def _respond(self, st: _Stream, resp: Response) -> None:
        headers: List[Tuple[bytes, bytes]] = [
            (b":status", b"%d" % resp.status),
            (b"cache-control", b"no-cache, private"),
            (b"content-type", resp.content_type),
            (b"date", _date_header()[6:-2]),
        ]
        if resp.headers:
            for k, v in resp.headers:
                headers.append((k.lower(), v))
        body = resp.body
        headers.append((b"content-length", b"%d" % len(body)))
        st.phase = _SENDING
        conn = self.h2
        sid = st.id
        try:
            if not body or st.method == "HEAD":  # a HEAD's answer: its GET's headers, no DATA (RFC 9113 8.1)
                conn.send_headers(sid, headers, end_stream=True)
                self._sent(st)
                return
            conn.send_headers(sid, headers)
            if len(body) <= conn.max_outbound_frame_size and len(body) <= conn.local_flow_control_window(sid):
                conn.send_data(sid, body, end_stream=True)
                self._sent(st)
                return
        except h2.exceptions.ProtocolError:  # the stream (or, after GOAWAY, the connection) is closed
            self._forget(st)
            return
        self._queue(st, body, True)

    def _start_stream(self, st: _Stream, resp: StreamResponse) -> None:
        timeout = resp.timeout
        if timeout is None:
            timeout = watch_timeout(None, self.server.limits.min_request_timeout)
        st.phase = _STREAM
        st.deadline = time.monotonic() + timeout
        if st.deadline < self.deadline:
            self.deadline = st.deadline
        try:
            self.h2.send_headers(st.id, [
                (b":status", b"200"),
                (b"cache-control", b"no-cache, private"),
                (b"content-type", resp.content_type),
                (b"date", _date_header()[6:-2]),
            ])
        except h2.exceptions.ProtocolError:
            self._forget(st)
            return
        sink = st.sink = H2Sink(self, st)
        try:
            resp.start(sink)
        except Exception as exc:  # a handler bug: end this stream with an ERROR event, keep the server
            log.exception("starting a stream failed")
            sink.write(event_line("ERROR", errors.internal(str(exc)).body()))
            sink.close()

    def stream_write(self, st: _Stream, data: bytes) -> bool:
        """A watch's bytes onto its stream; False when the client is gone or too far behind."""
        t = self.transport
        if t is None or t.is_closing() or self.streams.get(st.id) is not st:
            return False
        if len(st.out) > _STREAM_PENDING_MAX or self.pending_bytes + t.get_write_buffer_size() > STREAM_HIGH_WATER:
            return False
        self._queue(st, data, False)
        if not self.receiving:
            self._write_out()
        return True

    def stream_finish(self, st: _Stream) -> None:
        """The watch ended (sink.close): END_STREAM once its queued events are out."""
        if self.streams.get(st.id) is not st:
            return
        self._queue(st, b"", True)
        if not self.receiving:
            self._write_out()

    def _queue(self, st: _Stream, data: bytes, end: bool) -> None:
        if data:
            st.out += data
            self.pending_bytes += len(data)
        if end:
            st.end = True
        self._pump(st)

    def _pump(self, st: _Stream) -> None:
        """Send what the peer's windows admit of the stream's queued output."""
        conn = self.h2
        out = st.out
        sid = st.id
        progress = False
        try:
            while out:
                n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(out))
                if n <= 0:
                    break
                last = st.end and n == len(out)
                conn.send_data(sid, bytes(out[:n]), end_stream=last)
                del out[:n]
                self.pending_bytes -= n
                progress = True
                if last:
                    st.stalled_since = 0.0
                    self._sent(st)
                    return
            if out:
                # The stall clock runs from the last progress: a client that reads slowly is not cut off.
                if progress or not st.stalled_since:
                    st.stalled_since = time.monotonic()
                    self.stalled_since = self.stalled_since or st.stalled_since
                return
            st.stalled_since = 0.0
            if st.end:
                conn.end_stream(sid)
                self._sent(st)
        except h2.exceptions.ProtocolError:
            self.pending_bytes -= len(out)
            st.out = bytearray()
            self._forget(st)

    def _window(self, sid: int) -> None:
        if sid:
            st = self.streams.get(sid)
            if st is not None and st.out:
                self._pump(st)
            return
        for st in list(self.streams.values()):
            if st.out:
                self._pump(st)

    def _sent(self, st: _Stream) -> None:
        """The whole response is out."""
        if not st.remote_ended:
            # Answered before the request's end (413, 431): ask the client to stop sending (RFC 9113 8.1).
            st.refused = True
            try:
                self.h2.reset_stream(st.id, _NO_ERROR)
            except h2.exceptions.ProtocolError:
                pass
        self._forget(st)

    def _forget(self, st: _Stream) -> None:
        if self.streams.get(st.id) is st:
            del self.streams[st.id]
            if st.out:
                self.pending_bytes -= len(st.out)
                st.out = bytearray()
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.streams and self.transport is not None:
            self.deadline = time.monotonic() + self.server.limits.idle_timeout
            self.server.idle[self] = None  # type: ignore[index]

    def _refuse(self, st: _Stream, resp: Response) -> None:
        st.refused = True
        st.body = []
        self._respond(st, resp)

    def _too_large(self, st: _Stream) -> None:
        err = errors.too_large(self.server.max_body_bytes)
        self._refuse(st, Response(err.code, err.body()))

    def _reset_stream(self, st: _Stream, code: int) -> None:
        self.streams.pop(st.id, None)
        self.pending_bytes -= len(st.out)
        st.out = bytearray()
        try:
            self.h2.reset_stream(st.id, code)
        except h2.exceptions.ProtocolError:
            pass
        self._lose(st)
        self._maybe_idle()

    def _write_out(self) -> None:
        t = self.transport
        if t is None:
            return
        data = self.h2.data_to_send()
        if data:
            t.write(data)

    # -- deadlines (HTTPServer's sweep) ---------------------------------------------------

    def expire(self, now: float) -> None:
        t = self.transport
        if t is None:
            return
        if t.is_closing():  # closed before and still not gone (a TLS shutdown its peer does not answer)
            t.abort()
            return
        limits = self.server.limits
        if self.paused_since and now - self.paused_since > limits.write_stall_timeout:
            log.info("closing %s: its client read nothing for %.0f s", self.peer, now - self.paused_since)
            _reset(t)
            return
        if not self.streams:
            self.stalled_since = self.paused_since
            if now >= self.deadline:
                self.goaway()
            return
        stalled = 0.0
        deadline = _INF
        for st in list(self.streams.values()):
            if st.stalled_since and now - st.stalled_since > limits.write_stall_timeout:
                log.info("resetting stream %d of %s: its client read nothing for %.0f s",
                         st.id, self.peer, now - st.stalled_since)
                self._reset_stream(st, _CANCEL)
                continue
            if now >= st.deadline:
                if st.phase == _BODY:
                    # The body did not arrive in time: 504 as HTTP/1.1 does, and the rest of the stream reset.
                    self._refuse(st, Response(504, _TIMEOUT_BODY))
                elif st.phase == _BUSY:
                    # The handler is left to finish (as upstream's timeout filter does); its result is dropped.
                    st.generation += 1
                    self._respond(st, Response(504, _TIMEOUT_BODY))
                elif st.phase == _STREAM and st.sink is not None:
                    sink = st.sink
                    if sink.on_lost is not None:
                        sink.on_lost()
                    sink.close()
                if self.streams.get(st.id) is st:
                    st.deadline = _INF
            if self.streams.get(st.id) is st:
                if st.deadline < deadline:
                    deadline = st.deadline
                if st.stalled_since and (not stalled or st.stalled_since < stalled):
                    stalled = st.stalled_since
        self.stalled_since = min(stalled or _INF, self.paused_since or _INF) if stalled or self.paused_since else 0.0
        if self.streams:
            self.deadline = deadline
        self._write_out()

    def close_idle(self) -> None:
        """Close this idle connection to make room for a new client."""
        self.server.idle.pop(self, None)  # type: ignore[call-overload]
        self.goaway()

    def goaway(self) -> None:
        """GOAWAY (NO_ERROR) and close: the client opens a new connection for its next request."""
        t = self.transport
        if t is None:
            return
        try:
            self.h2.close_connection(_NO_ERROR)
        except h2.exceptions.ProtocolError:
            pass
        self._write_out()
        t.close()
