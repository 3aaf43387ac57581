"""One HTTP/2 stream's state, and the server-side call that streaming handlers see on it.

`Stream` is the connection's book-keeping for one stream (headers, the
request buffer, send window, responses queued for window). `ServerCall` is
what a streaming handler holds: send, finish, writable / wait_writable, and
the on_message / on_cancel / on_writable callbacks. A call writes through
its connection, seen as a `StreamWriter`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Optional, Protocol, Tuple

from .calls import STATUS, Method

__all__ = ["Stream", "ServerCall", "StreamWriter", "HIGH_WATER"]


class StreamWriter(Protocol):
    """What a call needs from its connection (`megaplane.etcd.grpc.connection.H2Connection`)."""

    def send_message(self, s: "Stream", payload: bytes) -> None:
        """Queue one encoded gRPC message on the stream, within flow control."""

    def send_status(self, s: "Stream", code: int, message: str = "") -> None:
        """End the call with trailers."""


# A stream whose queued response bytes pass this is "not writable":
# streaming handlers stop producing until the client reads.
HIGH_WATER = 4 << 20


class ServerCall:
    """One stream's server side, as handlers of streaming methods see it."""

    __slots__ = ("conn", "stream", "method", "on_message", "on_cancel", "on_writable", "done", "_writable")

    def __init__(self, conn: StreamWriter, stream: "Stream", method: Method) -> None:
        self.conn = conn
        self.stream = stream
        self.method = method
        self.on_message: Optional[Callable[[Any], None]] = None
        self.on_cancel: Optional[Callable[[], None]] = None
        #: Called when the client has read enough that writable() is true again.
        self.on_writable: Optional[Callable[[], None]] = None
        self.done = False
        self._writable: Optional[asyncio.Future] = None

    def send(self, message: Any) -> None:
        if not self.done:
            self.conn.send_message(self.stream, self.method.encode(message))

    def finish(self, code: str = "OK", message: str = "") -> None:
        if not self.done:
            self.done = True
            self.conn.send_status(self.stream, STATUS[code], message)

    def writable(self) -> bool:
        """False while the client has not read what was already sent (see HIGH_WATER)."""
        return self.stream.queued < HIGH_WATER

    async def wait_writable(self) -> None:
        while not self.writable() and not self.done:
            fut = self._writable = asyncio.get_running_loop().create_future()
            await fut

    def _wake_writable(self) -> None:
        if not self.writable() and not self.done:
            return
        fut = self._writable
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self.on_writable is not None and not self.done:
            self.on_writable()


class Stream:
    __slots__ = (
        "id",
        "path",
        "headers_done",
        "block",
        "buf",
        "recv_closed",
        "send_window",
        "pending",
        "queued",
        "started",
        "finished",
        "call",
        "method",
        "unacked",
        "refused",
    )

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.path = ""
        self.headers_done = False
        self.block = bytearray()
        self.buf = bytearray()
        self.recv_closed = False
        self.send_window = send_window
        # DATA payloads and the trailer waiting for window: [(kind, bytes)]
        self.pending: List[Tuple[int, bytes]] = []
        self.queued = 0
        self.started = False
        self.finished = False
        self.call: Optional[ServerCall] = None
        self.method: Optional[Method] = None
        self.unacked = 0
        self.refused = False
