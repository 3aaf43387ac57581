"""HTTP/2 framing (RFC 9113) and the HPACK encoding helpers the gRPC server needs.

Only the wire vocabulary: frame types, flags, settings, error codes, the
frame header and how to encode one, and HPACK integer and literal-field
encoding (RFC 7541 §5.1, §6.2.2) for response header blocks that never
touch the client's dynamic table. The connection state machine is in
`megaplane.etcd.grpc.connection`.
"""

from __future__ import annotations

import struct

__all__ = ["frame", "hpack_int", "literal_field", "PREFACE", "STREAM_WINDOW", "CONNECTION_WINDOW"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE = 1, 2, 3, 4, 5

NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, CANCEL = 0x0, 0x1, 0x3, 0x8

FRAME = struct.Struct(">BHBBI")
U32 = struct.Struct(">I")
SETTING = struct.Struct(">HI")

# Our receive windows: large, so clients rarely wait for WINDOW_UPDATE.
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 1 << 24


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return FRAME.pack(n >> 16, n & 0xFFFF, ftype, flags, stream_id) + payload


def hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_field(name: bytes, value: bytes) -> bytes:
    """A literal header field without indexing, with a literal name (never touches the table)."""
    return b"\x00" + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value
