"""One HTTP/2 connection carrying gRPC calls: frames in, frames out, flow control, call dispatch.

As much of both protocols as etcd clients use, and no more; the wire
vocabulary is in `h2` (HTTP/2, HPACK) and `calls` (gRPC).

Why not grpcio's server: profiled under 256 concurrent Puts, its Python
layer (per-call RPC state, conditions, futures, thread hand-offs) cost
~120 us of CPU per call while the handler itself did not show in the
profile; grpc.aio cost more (~190 us). This transport parses frames with
`struct`, decodes HPACK with the `hpack` library behind a cache, encodes
responses from constant header blocks, and answers every request that
arrived in one read with one write. It runs on the store's event loop, so
handlers call the store without locks.

HTTP/2 (RFC 9113) as implemented here:
- the client preface, SETTINGS (and ACK), PING (ACK), GOAWAY, RST_STREAM,
  WINDOW_UPDATE, HEADERS + CONTINUATION, DATA, padding and priority fields;
- flow control both ways: we advertise a 1 MiB stream window and a 16 MiB
  connection window and top them up as messages are consumed; responses
  respect the client's windows and frame size, the rest waits in a per
  stream queue until WINDOW_UPDATE;
- no server push, no priorities (parsed and ignored).

HPACK (RFC 7541): requests are decoded with `hpack.Decoder` (static and
dynamic table, Huffman). A header block made only of indexed fields does
not change the dynamic table, so its decoding is cached until a block
that may change the table arrives: after the first request on a
connection, grpc-go's blocks are all-indexed and cost a dict lookup.
Responses use literal fields without indexing only, so the client's
table never changes and the blocks are constants.

gRPC (PROTOCOL-HTTP2.md): length-prefixed messages, trailers with
grpc-status / grpc-message (percent-encoded), trailers-only responses for
errors, UNIMPLEMENTED for unknown methods, RESOURCE_EXHAUSTED for messages
over the receive limit, INTERNAL for undecodable requests; compressed
messages are refused (etcd clients do not compress by default).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Awaitable, Dict, List, Optional, Set, Tuple, Type

import hpack

from .calls import MSG_PREFIX, RESPONSE_HEADERS, STATUS, TRAILERS_OK, Method, status_block
from .h2 import (
    ACK,
    CONNECTION_WINDOW,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    RST_STREAM,
    S_HEADER_TABLE_SIZE,
    S_INITIAL_WINDOW_SIZE,
    S_MAX_CONCURRENT_STREAMS,
    S_MAX_FRAME_SIZE,
    SETTING,
    SETTINGS,
    STREAM_WINDOW,
    U32,
    WINDOW_UPDATE,
    frame,
)
from .streams import ServerCall, Stream

__all__ = ["H2Connection"]

log = logging.getLogger("megaplane.etcd.grpc")

class H2Connection(asyncio.Protocol):
    """One client connection: frames in, frames out."""

    def __init__(
        self,
        methods: Dict[str, Method],
        max_receive_bytes: int,
        registry: Set["H2Connection"],
        status_errors: Tuple[Type[Exception], ...],
    ) -> None:
        self.methods = methods
        self.max_receive_bytes = max_receive_bytes
        # The server's set of open connections, for closing them all on shutdown.
        self.registry = registry
        self.status_errors = status_errors
        self.transport: Optional[asyncio.Transport] = None
        self.inbuf = bytearray()
        self.preface = False
        self.out: List[bytes] = []
        self.flush_scheduled = False
        self.streams: Dict[int, Stream] = {}
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.header_cache: Dict[bytes, List[Tuple[str, str]]] = {}
        self.peer_window = 65535  # connection-level send window
        self.peer_initial_window = 65535
        self.peer_max_frame = 16384
        self.recv_unacked = 0
        self.continuation_of = 0
        self.last_stream_id = 0
        self.closed = False
        self.loop = asyncio.get_event_loop()

    # -- connection lifecycle -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.registry.add(self)
        # No TCP_NODELAY here: asyncio and uvloop set it on every TCP transport already.
        settings = SETTING.pack(S_MAX_CONCURRENT_STREAMS, 1 << 20) + SETTING.pack(S_INITIAL_WINDOW_SIZE, STREAM_WINDOW)
        self.out.append(frame(SETTINGS, 0, 0, settings))
        self.out.append(frame(WINDOW_UPDATE, 0, 0, U32.pack(CONNECTION_WINDOW - 65535)))
        self.flush()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        self.registry.discard(self)
        for s in list(self.streams.values()):
            self._cancel_stream(s)
        self.streams.clear()

    def goaway(self) -> None:
        if self.transport is not None and not self.closed:
            self.out.append(frame(GOAWAY, 0, 0, U32.pack(self.last_stream_id) + U32.pack(NO_ERROR)))
            self.flush()
            self.transport.close()

    def _protocol_error(self, why: str) -> None:
        log.debug("HTTP/2 protocol error: %s", why)
        if self.transport is not None and not self.closed:
            self.out.append(frame(GOAWAY, 0, 0, U32.pack(self.last_stream_id) + U32.pack(PROTOCOL_ERROR)))
            self.flush()
            self.transport.close()
            self.closed = True

    # -- output ---------------------------------------------------------------------

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def _start(self, s: Stream) -> None:
        if not s.started:
            s.started = True
            self.out.append(frame(HEADERS, END_HEADERS, s.id, RESPONSE_HEADERS))

    def send_message(self, s: Stream, payload: bytes) -> None:
        """Queue one gRPC message on stream `s` (headers first if needed), within flow control."""
        if s.finished or self.closed:
            return
        self._start(s)
        data = MSG_PREFIX.pack(0, len(payload)) + payload
        if not s.pending:
            data = self._write_data(s, data)
        if data:
            s.pending.append((DATA, data))
            s.queued += len(data)
        self._schedule_flush()

    def _write_data(self, s: Stream, data: bytes) -> bytes:
        """Frame as much of `data` as the windows allow; return what is left."""
        view = memoryview(data)
        max_frame = self.peer_max_frame
        while view:
            allowed = min(len(view), s.send_window, self.peer_window, max_frame)
            if allowed <= 0:
                return bytes(view)
            self.out.append(frame(DATA, 0, s.id, bytes(view[:allowed])))
            s.send_window -= allowed
            self.peer_window -= allowed
            view = view[allowed:]
        return b""

    def send_status(self, s: Stream, code: int, message: str = "") -> None:
        """End the call with trailers (or a trailers-only response if nothing was sent)."""
        if s.finished or self.closed:
            return
        block = TRAILERS_OK if code == 0 and not message else status_block(code, message)
        if not s.started:
            s.started = True
            trailer = frame(HEADERS, END_HEADERS | END_STREAM, s.id, RESPONSE_HEADERS + block)
        else:
            trailer = frame(HEADERS, END_HEADERS | END_STREAM, s.id, block)
        s.finished = True
        if s.pending:
            s.pending.append((HEADERS, trailer))
        else:
            self.out.append(trailer)
            self._close_local(s)
        self._schedule_flush()

    def _close_local(self, s: Stream) -> None:
        """Our side is done: forget the stream; tell a client still sending to stop."""
        if not s.recv_closed:
            self.out.append(frame(RST_STREAM, 0, s.id, U32.pack(NO_ERROR)))
        self.streams.pop(s.id, None)

    def _drain_pending(self, s: Stream) -> None:
        while s.pending:
            kind, data = s.pending[0]
            if kind == HEADERS:
                s.pending.pop(0)
                self.out.append(data)
                self._close_local(s)
                break
            rest = self._write_data(s, data)
            s.queued -= len(data) - len(rest)
            if rest:
                s.pending[0] = (DATA, rest)
                break
            s.pending.pop(0)
        if s.call is not None:
            s.call._wake_writable()
        self._schedule_flush()

    # -- input ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buf = self.inbuf
        buf += data
        off = 0
        if not self.preface:
            if len(buf) < len(PREFACE):
                return
            if not buf.startswith(PREFACE):
                self._protocol_error("bad client preface")
                return
            self.preface = True
            off = len(PREFACE)
        n = len(buf)
        unpack = FRAME.unpack_from
        try:
            while n - off >= 9 and not self.closed:
                hi, lo, ftype, flags, sid = unpack(buf, off)
                length = (hi << 16) | lo
                end = off + 9 + length
                if end > n:
                    break
                payload = bytes(buf[off + 9 : end])
                off = end
                sid &= 0x7FFFFFFF
                if self.continuation_of and ftype != CONTINUATION:
                    self._protocol_error("expected CONTINUATION")
                    return
                if ftype == DATA:
                    self._on_data(sid, flags, payload)
                elif ftype == HEADERS:
                    self._on_headers(sid, flags, payload)
                elif ftype == CONTINUATION:
                    self._on_continuation(sid, flags, payload)
                elif ftype == WINDOW_UPDATE:
                    self._on_window_update(sid, payload)
                elif ftype == SETTINGS:
                    self._on_settings(flags, payload)
                elif ftype == PING:
                    if not flags & ACK:
                        self.out.append(frame(PING, ACK, 0, payload))
                elif ftype == RST_STREAM:
                    s = self.streams.pop(sid, None)
                    if s is not None:
                        self._cancel_stream(s)
                elif ftype == GOAWAY:
                    if self.transport is not None:
                        self.transport.close()
                # PRIORITY, PUSH_PROMISE (never from clients) and unknown types are ignored.
        finally:
            del buf[:off]
        self.flush()

    def _on_settings(self, flags: int, payload: bytes) -> None:
        if flags & ACK:
            return
        for i in range(0, len(payload) - 5, 6):
            ident, value = SETTING.unpack_from(payload, i)
            if ident == S_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for s in self.streams.values():
                    s.send_window += delta
            elif ident == S_MAX_FRAME_SIZE:
                self.peer_max_frame = value
            elif ident == S_HEADER_TABLE_SIZE:
                pass  # we never index response headers
        self.out.append(frame(SETTINGS, ACK, 0))
        for s in list(self.streams.values()):
            if s.pending:
                self._drain_pending(s)

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        inc = U32.unpack(payload)[0] & 0x7FFFFFFF
        if sid == 0:
            self.peer_window += inc
            for s in list(self.streams.values()):
                if s.pending:
                    self._drain_pending(s)
        else:
            s = self.streams.get(sid)
            if s is not None:
                s.send_window += inc
                if s.pending:
                    self._drain_pending(s)

    def _on_headers(self, sid: int, flags: int, payload: bytes) -> None:
        pos = 0
        end = len(payload)
        if flags & PADDED:
            end -= payload[0]
            pos = 1
        if flags & PRIORITY_FLAG:
            pos += 5
        s = self.streams.get(sid)
        if s is None:
            if sid % 2 == 0 or sid <= self.last_stream_id:
                self._protocol_error(f"bad stream id {sid}")
                return
            self.last_stream_id = sid
            s = Stream(sid, self.peer_initial_window)
            self.streams[sid] = s
        elif s.headers_done:
            # Trailers from the client end its half of the stream.
            if flags & END_STREAM:
                self._end_of_input(s)
            return
        s.block += payload[pos:end]
        if flags & END_STREAM:
            s.recv_closed = True
        if flags & END_HEADERS:
            self._headers_complete(s)
        else:
            self.continuation_of = sid

    def _on_continuation(self, sid: int, flags: int, payload: bytes) -> None:
        s = self.streams.get(sid)
        if s is None or sid != self.continuation_of:
            self._protocol_error("unexpected CONTINUATION")
            return
        s.block += payload
        if flags & END_HEADERS:
            self.continuation_of = 0
            self._headers_complete(s)

    def _decode_headers(self, block: bytes) -> List[Tuple[str, str]]:
        cached = self.header_cache.get(block)
        if cached is not None:
            return cached
        headers = self.decoder.decode(block)
        # Only indexed fields (high bit set) leave the dynamic table as it was.
        if all(b & 0x80 for b in block):
            self.header_cache[block] = headers
        else:
            self.header_cache.clear()
        return headers

    def _headers_complete(self, s: Stream) -> None:
        block = bytes(s.block)
        s.block = bytearray()
        s.headers_done = True
        try:
            headers = self._decode_headers(block)
        except Exception as exc:  # hpack errors are connection errors (COMPRESSION_ERROR)
            log.debug("HPACK decode failed: %s", exc)
            self._protocol_error("header block not decodable")
            return
        path = ""
        encoding = ""
        for name, value in headers:
            if name == ":path":
                path = value
            elif name == "grpc-encoding":
                encoding = value
        s.path = path
        method = self.methods.get(path)
        if method is None:
            service, _, name = path.lstrip("/").rpartition("/")
            known = any(p.startswith(f"/{service}/") for p in self.methods)
            reason = f"unknown method {name} for service {service}" if known else f"unknown service {service}"
            s.refused = True
            self.send_status(s, STATUS["UNIMPLEMENTED"], reason)
            return
        if encoding and encoding != "identity":
            s.refused = True
            self.send_status(s, STATUS["UNIMPLEMENTED"], f"grpc: Decompressor is not installed for grpc-encoding {encoding!r}")
            return
        s.method = method
        if method.kind == "bidi":
            call = s.call = ServerCall(self, s, method)
            try:
                method.handler(call)
            except Exception as exc:  # a handler bug must not take the connection down
                self._fail(s, exc)
                return
        if s.recv_closed:
            self._end_of_input(s)

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        length = len(payload)
        self.recv_unacked += length
        if self.recv_unacked >= CONNECTION_WINDOW // 2:
            self.out.append(frame(WINDOW_UPDATE, 0, 0, U32.pack(self.recv_unacked)))
            self.recv_unacked = 0
        s = self.streams.get(sid)
        if s is None or s.refused:
            return
        if flags & PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        s.buf += payload
        s.unacked += length
        if not flags & END_STREAM and s.unacked >= STREAM_WINDOW // 2:
            self.out.append(frame(WINDOW_UPDATE, 0, sid, U32.pack(s.unacked)))
            s.unacked = 0
        self._extract_messages(s)
        if flags & END_STREAM:
            self._end_of_input(s)

    def _extract_messages(self, s: Stream) -> None:
        """Check each message's prefix as it arrives; hand complete ones to bidi calls.

        Unary and server-streaming requests stay in the buffer until the
        client ends its side (`_end_of_input`).
        """
        buf = s.buf
        bidi = s.method is not None and s.method.kind == "bidi"
        limit = self.max_receive_bytes
        while len(buf) >= 5 and not s.refused:
            compressed, length = MSG_PREFIX.unpack_from(buf, 0)
            if length > limit:
                s.refused = True
                self.send_status(
                    s, STATUS["RESOURCE_EXHAUSTED"], f"grpc: received message larger than max ({length} vs. {limit})"
                )
                return
            if compressed:
                s.refused = True
                self.send_status(s, STATUS["UNIMPLEMENTED"], "grpc: compressed messages are not supported")
                return
            if not bidi or len(buf) < 5 + length:
                return
            body = bytes(buf[5 : 5 + length])
            del buf[: 5 + length]
            self._deliver(s, body)

    def _deliver(self, s: Stream, body: bytes) -> None:
        call = s.call
        assert call is not None and s.method is not None
        try:
            msg = s.method.decode(body)
        except Exception as exc:
            s.refused = True
            self.send_status(s, STATUS["INTERNAL"], f"grpc: error unmarshalling request: {exc}")
            return
        if call.on_message is not None and not call.done:
            try:
                call.on_message(msg)
            except Exception as exc:
                self._fail(s, exc)

    def _end_of_input(self, s: Stream) -> None:
        s.recv_closed = True
        if s.refused:
            if s.finished:
                self.streams.pop(s.id, None)
            return
        method = s.method
        if method is None:
            return
        if method.kind == "bidi":
            if s.finished and not s.pending:
                self.streams.pop(s.id, None)
            return
        # unary and server-streaming calls take exactly one message.
        buf = s.buf
        if len(buf) < 5:
            self.send_status(s, STATUS["INTERNAL"], "grpc: error unmarshalling request: missing message")
            return
        length = MSG_PREFIX.unpack_from(buf, 0)[1]
        if len(buf) != 5 + length:
            self.send_status(s, STATUS["INTERNAL"], "grpc: error unmarshalling request: bad message length")
            return
        try:
            req = method.decode(bytes(buf[5:]))
        except Exception as exc:
            self.send_status(s, STATUS["INTERNAL"], f"grpc: error unmarshalling request: {exc}")
            return
        s.buf = bytearray()
        if method.kind == "unary":
            self._run_unary(s, method, req)
        else:
            call = s.call = ServerCall(self, s, method)
            self._run_async(s, method.handler(req, call), streaming=True)

    def _run_unary(self, s: Stream, method: Method, req: Any) -> None:
        try:
            res = method.handler(req)
        except self.status_errors as exc:
            self.send_status(s, STATUS[exc.code], exc.message)  # type: ignore[attr-defined]
            return
        except Exception as exc:
            self._fail(s, exc)
            return
        if inspect.isawaitable(res):
            self._run_async(s, res, streaming=False)
            return
        self.send_message(s, method.encode(res))
        self.send_status(s, 0)

    def _run_async(self, s: Stream, aw: Awaitable, streaming: bool) -> None:
        async def run() -> None:
            try:
                res = await aw
            except self.status_errors as exc:
                self.send_status(s, STATUS[exc.code], exc.message)  # type: ignore[attr-defined]
                return
            except asyncio.CancelledError:
                return
            except Exception as exc:
                self._fail(s, exc)
                return
            if not streaming:
                self.send_message(s, s.method.encode(res))  # type: ignore[union-attr]
            self.send_status(s, 0)

        task = self.loop.create_task(run())
        if streaming:
            call = s.call
            assert call is not None
            call.on_cancel = task.cancel

    def _fail(self, s: Stream, exc: BaseException) -> None:
        log.exception("handler for %s failed", s.path, exc_info=exc)
        self.send_status(s, STATUS["UNKNOWN"], f"megaplane: internal error: {exc}")

    def _cancel_stream(self, s: Stream) -> None:
        call = s.call
        if call is not None and not call.done:
            call.done = True
            cb = call.on_cancel
            if cb is not None:
                try:
                    cb()
                except Exception:
                    log.exception("cancel callback for %s failed", s.path)
            call._wake_writable()
