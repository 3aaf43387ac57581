"""The HTTP messages of the API server: a parsed `Request`, a `Response`, a `StreamResponse` (watch).

Bytes in, bytes out: a Response encodes itself to its status line, headers
and body in one buffer; status lines and the Date header are precomputed.
The connection handling that produces and writes them is `transport`.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

__all__ = ["Request", "Response", "StreamResponse", "StreamSink"]


class StreamSink(Protocol):
    """Where a streaming response writes (the transport's chunked sink for one connection)."""

    on_lost: Optional[Callable[[], None]]

    def write(self, data: bytes) -> bool: ...

    def write_chunk(self, chunk: bytes) -> bool: ...

    def close(self) -> None: ...

_REASONS = {
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    400: b"Bad Request",
    414: b"Request-URI Too Long",
    431: b"Request Header Fields Too Large",
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

    __slots__ = ("method", "path", "query", "headers", "body", "peer", "started", "user", "peer_certificate")

    def __init__(self, method: str, path: str, query: str, headers: Dict[str, str], body: bytes, peer: Any) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.peer = peer
        self.started = time.perf_counter()
        #: The authenticated user (megaplane.apimachinery.user.UserInfo), set by the server's authentication step.
        self.user: Any = None
        #: The TLS client certificate the connection presented (DER bytes), verified against --client-ca-file.
        self.peer_certificate: Optional[bytes] = None

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

    def encode(self, keep_alive: bool, head_only: bool = False) -> bytes:
        """The response's bytes; `head_only` (the answer to a HEAD) keeps the Content-Length but not the body."""
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
        if not head_only:
            head.append(self.body)
        return b"".join(head)


class StreamResponse:
    """A chunked response the handler keeps writing to (watch). `start(sink)` is called once headers are out.

    `timeout` is the stream's lifetime in seconds (the watch's timeoutSeconds, see `watch_timeout`); the
    transport ends the stream then. None: a random [min, 2*min] of --min-request-timeout, as upstream.
    """

    __slots__ = ("status", "content_type", "start", "timeout")

    def __init__(
        self,
        start: Callable[["StreamSink"], None],
        content_type: bytes = b"application/json",
        timeout: Optional[float] = None,
    ) -> None:
        self.status = 200
        self.content_type = content_type
        self.start = start
        self.timeout = timeout
