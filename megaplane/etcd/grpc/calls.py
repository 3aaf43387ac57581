"""gRPC over HTTP/2 (PROTOCOL-HTTP2.md): status codes, trailers, message framing, and methods.

What a gRPC call is on the wire, apart from any one connection: the
5-byte length prefix of each message, the response header block, trailers
with grpc-status and a percent-encoded grpc-message, and `Method`, the
table entry that says how to decode a method's requests, run it and encode
its responses. `RpcError` is how a handler ends a call with a status.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from .h2 import hpack_int, literal_field

__all__ = ["STATUS", "MSG_PREFIX", "RESPONSE_HEADERS", "TRAILERS_OK", "status_block", "RpcError", "Method"]

MSG_PREFIX = struct.Struct(">BI")

STATUS = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}

# :status 200 (static index 8), content-type: application/grpc (name index 31, not indexed).
RESPONSE_HEADERS = b"\x88\x0f\x10" + hpack_int(16, 7, 0) + b"application/grpc"
TRAILERS_OK = literal_field(b"grpc-status", b"0")


def percent_encode(message: str) -> bytes:
    out = bytearray()
    for b in message.encode("utf-8"):
        if 0x20 <= b <= 0x7E and b != 0x25:
            out.append(b)
        else:
            out += b"%%%02X" % b
    return bytes(out)


def status_block(code: int, message: str = "") -> bytes:
    block = literal_field(b"grpc-status", str(code).encode())
    if message:
        block += literal_field(b"grpc-message", percent_encode(message))
    return block


class RpcError(Exception):
    """Raised by a handler to end its call with a gRPC status."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Method:
    """One RPC: how to decode its requests, run it and encode its responses.

    kind "unary": handler(request) -> response | awaitable of response.
    kind "server_stream": handler(request, call) -> awaitable (sends with call.send).
    kind "bidi": handler(call) -> None; it sets call.on_message / call.on_cancel.
    """

    __slots__ = ("kind", "handler", "decode", "encode")

    def __init__(self, kind: str, handler: Callable, decode: Callable[[bytes], Any], encode: Callable[[Any], bytes]):
        self.kind = kind
        self.handler = handler
        self.decode = decode
        self.encode = encode
