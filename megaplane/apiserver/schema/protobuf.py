"""Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`).

Owns turning such a body into the plain dict `orjson.loads` would give for
the JSON the same Go client would have sent, so everything after decoding
(defaulting, validation, storage) sees one form. Only decoding lives here:
responses are encoded from the same table by `protobuf_encode`.

Wire format: the 4 bytes `k8s\\x00`, then a `runtime.Unknown` message
{typeMeta{apiVersion, kind}, raw, contentEncoding, contentType} whose `raw`
is the object as the message upstream's `generated.proto` defines for its
kind (proto2, field numbers fixed by the API).

The table (`protobuf_schema.py`, written by `scripts/gen-protobuf-schema`)
is derived from a kubectl 1.32 binary: the wire layout from the
`generated.proto` descriptors gogo-protobuf embeds in it, the JSON layout
from the Go runtime type information of the same API structs (struct tags
and field kinds). Per field it holds the number, the JSON name ("" for an
embedded struct that encoding/json inlines), the proto type, whether Go
declares the field `omitempty`, and its Go shape: `value` (plain scalar),
`ptr`, `slice`, `map` or `struct`.

How a field is printed follows Go's encoding/json on the decoded struct,
which is what kube-apiserver and `kubectl --dry-run=client -o json` print:

* a `value` scalar with `omitempty` is dropped when zero (the Go client
  always sends it, zero or not); without `omitempty` it is kept, zero too;
* a `ptr` scalar is kept whenever it is on the wire (`replicas: 0` and
  `enableServiceLinks: false` mean something);
* `struct` fields are always printed (omitempty never drops a struct), as
  `{}` when empty; absent ones print as their zero value;
* an absent `ptr`/`slice`/`map` field without `omitempty` prints as null
  (`"selector": null`), as Go prints a nil one;
* keys come out in Go struct order, `kind` and `apiVersion` first.

Types with their own JSON form (apimachinery's): metav1.Time (RFC 3339 in
UTC, whole seconds; the empty message, Go's zero time, is null),
MicroTime (6 fractional digits), Duration (Go's duration string),
resource.Quantity (its string, "0" when empty), intstr.IntOrString (int or
string), runtime.RawExtension and metav1.FieldsV1 (the JSON their raw
bytes hold; a nested protobuf object in a RawExtension is decoded too),
and []byte (base64, as Go prints it).

Pointer-ness and omitempty come from the Go types themselves, so no field
needs a guess. A kind without a table raises UnknownKindError (a
ProtobufError), for which a server may answer 415 rather than 400.
Duration and RawExtension are not reachable from the kinds in the table
today; their converters are there for when one is.

Deviations from Go: a Quantity string is passed on as sent, where Go would
print its canonical form (the Go client sends canonical strings); strings
with invalid UTF-8 get U+FFFD per Python's decoder rather than Go's; a
second occurrence of a singular message field merges into the first, as in
Go, but a special type's second occurrence replaces it.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import orjson

from megaplane.apiserver.schema._generated.protobuf_schema import SCHEMA

__all__ = ["CONTENT_TYPE", "ProtobufError", "UnknownKindError", "decode", "supported_kinds"]

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body that is not a protobuf object megaplane can read (the message suits a 400 BadRequest)."""


class UnknownKindError(ProtobufError):
    """A well-formed envelope naming a kind this decoder has no table for (a server may answer 415)."""


# Field codes: the length-delimited ones first, so one comparison tells the wire form.
(
    _STRING, _MSG, _MAP, _BYTES, _SPECIAL, _INLINE,
    _INT32, _INT64, _BOOL, _UINT32, _UINT64, _SINT32, _SINT64,
    _DOUBLE, _FLOAT, _FIXED32, _FIXED64, _SFIXED32, _SFIXED64,
) = range(19)  # fmt: skip
_LAST_DELIMITED = _INLINE
_PACKED = 100  # added to a varint/fixed code: the packed (length-delimited) form of a repeated scalar

_SCALAR_CODES = {
    "string": _STRING, "bytes": _BYTES, "int32": _INT32, "enum": _INT32, "int64": _INT64, "bool": _BOOL,
    "uint32": _UINT32, "uint64": _UINT64, "sint32": _SINT32, "sint64": _SINT64, "double": _DOUBLE,
    "float": _FLOAT, "fixed32": _FIXED32, "fixed64": _FIXED64, "sfixed32": _SFIXED32, "sfixed64": _SFIXED64,
}  # fmt: skip
_WIRE_TYPE = {
    _STRING: 2, _MSG: 2, _MAP: 2, _BYTES: 2, _SPECIAL: 2, _INLINE: 2,
    _INT32: 0, _INT64: 0, _BOOL: 0, _UINT32: 0, _UINT64: 0, _SINT32: 0, _SINT64: 0,
    _DOUBLE: 1, _FIXED64: 1, _SFIXED64: 1, _FLOAT: 5, _FIXED32: 5, _SFIXED32: 5,
}  # fmt: skip
_FIXED_FORMATS = {_DOUBLE: "<d", _FIXED64: "<Q", _SFIXED64: "<q", _FLOAT: "<f", _FIXED32: "<I", _SFIXED32: "<i"}
# Go's zero value of a scalar as JSON prints it, where not 0 (a nil []byte is null)
_SCALAR_ZERO: Dict[int, Any] = {_STRING: "", _BYTES: None, _BOOL: False, _DOUBLE: 0.0, _FLOAT: 0.0}


# --- wire primitives -------------------------------------------------------


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    """The varint at pos and the position after it (hot paths inline the 1-byte case)."""
    result = 0
    shift = 0
    while True:
        b = buf[pos]  # IndexError past the end: decode() reports it as truncated
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if shift == 63 and result >> 64:
                raise ProtobufError("proto: integer overflow")
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("proto: integer overflow")


def _length(buf: bytes, pos: int, end: int) -> Tuple[int, int]:
    """(start, stop) of the length-delimited value at pos, checked against end."""
    b = buf[pos]
    if b < 0x80:
        pos += 1
        n = b
    else:
        n, pos = _varint(buf, pos)
    stop = pos + n
    if stop > end:
        raise ProtobufError("proto: unexpected EOF")
    return pos, stop


def _skip(buf: bytes, pos: int, end: int, wire: int, num: int) -> int:
    """Position after a field this table does not know (Go skips those too)."""
    if wire == 0:
        _, pos = _varint(buf, pos)
    elif wire == 1:
        pos += 8
    elif wire == 2:
        _, pos = _length(buf, pos, end)
    elif wire == 5:
        pos += 4
    elif wire == 3:  # a group: skip to its end marker
        while True:
            if pos >= end:
                raise ProtobufError("proto: unexpected EOF")
            key, pos = _varint(buf, pos)
            if key & 7 == 4:
                if key >> 3 != num:
                    raise ProtobufError("proto: mismatched group end")
                break
            pos = _skip(buf, pos, end, key & 7, key >> 3)
    else:
        raise ProtobufError(f"proto: illegal wireType {wire}")
    if pos > end:
        raise ProtobufError("proto: unexpected EOF")
    return pos


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def _int64(v: int) -> int:
    return v - 0x10000000000000000 if v & 0x8000000000000000 else v


def _zigzag(v: int) -> int:
    return (v >> 1) ^ -(v & 1)


def _string(buf: bytes, start: int, stop: int) -> str:
    return buf[start:stop].decode("utf-8", "replace")


def _scalar(code: int, buf: bytes, pos: int) -> Tuple[Any, int]:
    """A scalar of a code other than string/bytes, from its plain (unpacked) wire form."""
    wire = _WIRE_TYPE[code]
    if wire == 0:
        b = buf[pos]
        if b < 0x80:
            v, pos = b, pos + 1
        else:
            v, pos = _varint(buf, pos)
        if code == _INT32:
            return _int32(v), pos
        if code == _INT64:
            return _int64(v), pos
        if code == _BOOL:
            return v != 0, pos
        if code == _UINT32:
            return v & 0xFFFFFFFF, pos
        if code == _SINT32:
            return _zigzag(v & 0xFFFFFFFF), pos
        if code == _SINT64:
            return _zigzag(v), pos
        return v, pos  # uint64
    size = 8 if wire == 1 else 4
    if pos + size > len(buf):
        raise ProtobufError("proto: unexpected EOF")
    return struct.unpack_from(_FIXED_FORMATS[code], buf, pos)[0], pos + size


# --- the types apimachinery prints its own way ------------------------------


def _timestamp(buf: bytes, start: int, stop: int) -> Tuple[int, int]:
    """(seconds, nanos) of a meta/v1 Timestamp message."""
    seconds = nanos = 0
    pos = start
    while pos < stop:
        key, pos = _varint(buf, pos)
        if key == 0x08:
            v, pos = _varint(buf, pos)
            seconds = _int64(v)
        elif key == 0x10:
            v, pos = _varint(buf, pos)
            nanos = _int32(v)
        else:
            pos = _skip(buf, pos, stop, key & 7, key >> 3)
    if pos != stop:
        raise ProtobufError("proto: unexpected EOF")
    return seconds, nanos


def _rfc3339(seconds: int) -> str:
    try:
        t = time.gmtime(seconds)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"Time.MarshalJSON: time {seconds}s since the epoch is out of range") from None
    if not 0 <= t.tm_year <= 9999:
        raise ProtobufError("Time.MarshalJSON: year outside of range [0,9999]")
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]


def _time(buf: bytes, start: int, stop: int) -> Optional[str]:
    # An empty message is Go's zero time, which metav1.Time prints as null.
    # Nanoseconds are dropped on decode upstream (JSON only ever had seconds).
    if start == stop:
        return None
    return _rfc3339(_timestamp(buf, start, stop)[0])


def _microtime(buf: bytes, start: int, stop: int) -> Optional[str]:
    if start == stop:
        return None
    seconds, nanos = _timestamp(buf, start, stop)
    extra, nanos = divmod(nanos, 1_000_000_000)  # Go's time.Unix normalizes out-of-range nanos
    return _rfc3339(seconds + extra)[:-1] + ".%06dZ" % (nanos // 1000)


def _go_duration(d: int) -> str:
    """Go's time.Duration.String()."""
    if d == 0:
        return "0s"
    sign, u = ("-", -d) if d < 0 else ("", d)
    if u < 1_000_000_000:
        for unit, scale in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < scale * 1000:
                whole, frac = divmod(u, scale)
                digits = f"{frac:0{len(str(scale)) - 1}d}".rstrip("0") if scale > 1 else ""
                return f"{sign}{whole}{'.' + digits if digits else ''}{unit}"
    secs, frac = divmod(u, 1_000_000_000)
    digits = f"{frac:09d}".rstrip("0")
    out = f"{secs % 60}{'.' + digits if digits else ''}s"
    mins = secs // 60
    if mins:
        out = f"{mins % 60}m{out}"
        if mins // 60:
            out = f"{mins // 60}h{out}"
    return sign + out


def _single_field(buf: bytes, start: int, stop: int, want_key: int) -> Optional[Tuple[int, int]]:
    """(start, stop) of the last length-delimited field `want_key` in a message; None if absent."""
    found = None
    pos = start
    while pos < stop:
        key, pos = _varint(buf, pos)
        if key == want_key:
            found = _length(buf, pos, stop)
            pos = found[1]
        else:
            pos = _skip(buf, pos, stop, key & 7, key >> 3)
    if pos != stop:
        raise ProtobufError("proto: unexpected EOF")
    return found


def _duration(buf: bytes, start: int, stop: int) -> str:
    d = 0
    pos = start
    while pos < stop:
        key, pos = _varint(buf, pos)
        if key == 0x08:
            v, pos = _varint(buf, pos)
            d = _int64(v)
        else:
            pos = _skip(buf, pos, stop, key & 7, key >> 3)
    return _go_duration(d)


def _quantity(buf: bytes, start: int, stop: int) -> str:
    s = _single_field(buf, start, stop, 0x0A)
    # Go's Quantity.Unmarshal parses the string; an empty message is the zero
    # Quantity, which prints as "0". The Go client always sends its canonical
    # string, which is what Go prints back.
    if s is None:
        return "0"
    text = _string(buf, *s)
    if not text:
        raise ProtobufError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return text


def _int_or_string(buf: bytes, start: int, stop: int) -> Any:
    kind = int_val = 0
    str_val = ""
    pos = start
    while pos < stop:
        key, pos = _varint(buf, pos)
        if key == 0x08:
            v, pos = _varint(buf, pos)
            kind = _int64(v)
        elif key == 0x10:
            v, pos = _varint(buf, pos)
            int_val = _int32(v)
        elif key == 0x1A:
            a, pos = _length(buf, pos, stop)
            str_val = _string(buf, a, pos)
        else:
            pos = _skip(buf, pos, stop, key & 7, key >> 3)
    if pos != stop:
        raise ProtobufError("proto: unexpected EOF")
    if kind == 0:
        return int_val
    if kind == 1:
        return str_val
    raise ProtobufError("impossible IntOrString.Type")


def _raw_json(buf: bytes, span: Optional[Tuple[int, int]], what: str) -> Any:
    if span is None or span[0] == span[1]:
        return None  # nil (or empty) raw bytes print as null
    raw = buf[span[0] : span[1]]
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtobufError(f"{what}: raw bytes are not JSON: {exc}") from None


def _raw_extension(buf: bytes, start: int, stop: int) -> Any:
    return _raw_json(buf, _single_field(buf, start, stop, 0x0A), "RawExtension")


def _fields_v1(buf: bytes, start: int, stop: int) -> Any:
    return _raw_json(buf, _single_field(buf, start, stop, 0x0A), "FieldsV1")


def _extra_value(buf: bytes, start: int, stop: int) -> Any:
    """ExtraValue (authentication/authorization UserInfo.extra): a Go []string carried as `repeated string items = 1`."""
    items = []
    pos = start
    while pos < stop:
        key, pos = _varint(buf, pos)
        if key == 0x0A:
            a, pos = _length(buf, pos, stop)
            items.append(_string(buf, a, pos))
        else:
            pos = _skip(buf, pos, stop, key & 7, key >> 3)
    if pos != stop:
        raise ProtobufError("proto: unexpected EOF")
    return items


# (converter, zero value as Go prints it)
_SPECIALS: Dict[str, Tuple[Callable[[bytes, int, int], Any], Any]] = {
    "time": (_time, None),
    "microtime": (_microtime, None),
    "duration": (_duration, "0s"),
    "quantity": (_quantity, "0"),
    "intorstring": (_int_or_string, 0),
    "rawextension": (_raw_extension, None),
    "fieldsv1": (_fields_v1, None),
    "extravalue": (_extra_value, None),
}


# --- the table ---------------------------------------------------------------


class _Message:
    """One message's decoding plan, compiled from the schema table."""

    __slots__ = ("name", "by_key", "numbers", "absent", "rank", "reorder", "_zero")

    def __init__(self, name: str) -> None:
        self.name = name
        # wire key (number << 3 | wire type) -> (json key, code, sub, repeated, drop when zero)
        self.by_key: Dict[int, Tuple[str, int, Any, bool, bool]] = {}
        self.numbers: Dict[int, str] = {}  # field number -> json key, for wrong-wire-type errors
        # what Go prints for a field that is not on the wire: (json key or "" to inline, factory)
        self.absent: List[Tuple[str, Callable[[], Any]]] = []
        self.rank: Dict[str, int] = {}  # json key -> position in Go struct order
        self.reorder = False  # Go order differs from field-number (wire) order
        self._zero: Optional[bytes] = None

    def zero(self) -> Dict[str, Any]:
        """A fresh copy of what Go prints for this message's zero struct."""
        if self._zero is None:
            out: Dict[str, Any] = {}
            for key, factory in self.absent:
                if key:
                    out[key] = factory()
                else:
                    out.update(factory())
            self._zero = orjson.dumps(out)
        return orjson.loads(self._zero)  # type: ignore[no-any-return]


def _const(value: Any) -> Callable[[], Any]:
    return lambda: value


def _compile(schema: Dict[str, Any]) -> Tuple[Dict[str, _Message], Dict[str, str]]:
    specials = schema["special"]
    messages = {name: _Message(name) for name in schema["messages"]}

    def code_of(type_name: str) -> Tuple[int, Any]:
        if type_name.startswith("@"):
            ref = type_name[1:]
            if ref in specials:
                return _SPECIAL, _SPECIALS[specials[ref]]
            return _MSG, messages[ref]
        return _SCALAR_CODES[type_name], None

    for name, fields in schema["messages"].items():
        msg = messages[name]
        for f in fields:
            num, key, go, omitempty = f["n"], f["json"], f["go"], f.get("omitempty", False)
            repeated = f.get("repeated", False)
            sub: Any
            if f["type"] == "map":
                code, sub = _MAP, (_SCALAR_CODES[f["key"]],) + code_of(f["value"])
            else:
                code, sub = code_of(f["type"])
            if key == "":
                code = _INLINE
            # A plain Go value (or a []byte) with omitempty: Go omits it when zero.
            drop = omitempty and not repeated and (go == "value" or code == _BYTES)
            msg.by_key[num << 3 | _WIRE_TYPE[code]] = (key, code, sub, repeated, drop)
            if repeated and _WIRE_TYPE[code] != 2:  # packed form of a repeated scalar
                msg.by_key[num << 3 | 2] = (key, code + _PACKED, sub, True, False)
            msg.numbers[num] = key or f["type"][1:]
            # what an absent field prints as
            if code == _INLINE:
                if go == "struct":  # (a nil embedded pointer prints nothing)
                    msg.absent.append(("", sub.zero))
            elif go == "struct":
                msg.absent.append((key, sub.zero if code == _MSG else _const(sub[1])))
            elif not omitempty:
                if go in ("ptr", "slice", "map"):
                    msg.absent.append((key, _const(None)))
                else:
                    msg.absent.append((key, _const(_SCALAR_ZERO.get(code, 0))))
        msg.reorder = [f["n"] for f in fields] != sorted(f["n"] for f in fields)
    for msg in messages.values():
        msg.rank = {key: i for i, key in enumerate(_go_order(msg, schema["messages"], messages))}
        msg.reorder = msg.reorder or any(code == _INLINE for _, code, _, _, _ in msg.by_key.values())
    return messages, dict(schema["kinds"])


def _go_order(msg: _Message, table: Dict[str, Any], messages: Dict[str, _Message]) -> List[str]:
    """JSON keys in the order encoding/json prints them: Go struct order, inlined structs in place."""
    out: List[str] = []
    for f in table[msg.name]:
        if f["json"]:
            out.append(f["json"])
        else:
            out.extend(_go_order(messages[f["type"][1:]], table, messages))
    return out


_MESSAGES, _KINDS = _compile(SCHEMA)


def supported_kinds() -> List[Tuple[str, str]]:
    """(apiVersion, kind) pairs decode() understands; apiVersion "*" for option kinds such as DeleteOptions."""
    out = []
    for k in _KINDS:
        gv, _, kind = k.rpartition("/")
        out.append((gv or "*", kind))
    return out


# --- decoding ------------------------------------------------------------------


def _decode_message(
    buf: bytes, pos: int, end: int, msg: _Message, out: Dict[str, Any], finish: bool = True
) -> Dict[str, Any]:
    """Decode msg's fields from buf[pos:end] into out; with finish, add what Go prints for absent
    fields and put the keys in Go order (an inlined struct leaves that to its parent)."""
    by_key = msg.by_key
    v: Any
    while pos < end:
        b = buf[pos]
        if b < 0x80:
            key = b
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        f = by_key.get(key)
        if f is None:
            num = key >> 3
            if num == 0:
                raise ProtobufError(f"proto: {msg.name.rpartition('.')[2]}: illegal tag 0 (wire type {key & 7})")
            if num in msg.numbers:
                raise ProtobufError(f"proto: wrong wireType = {key & 7} for field {msg.numbers[num]}")
            pos = _skip(buf, pos, end, key & 7, num)
            continue
        name, code, sub, repeated, drop = f
        if code <= _LAST_DELIMITED:
            b = buf[pos]
            if b < 0x80:
                pos += 1
                start, pos = pos, pos + b
            else:
                n, start = _varint(buf, pos)
                pos = start + n
            if pos > end:
                raise ProtobufError("proto: unexpected EOF")
            if code == _STRING:
                v = buf[start:pos].decode("utf-8", "replace")
            elif code == _MSG:
                if repeated:
                    v = _decode_message(buf, start, pos, sub, {})
                else:  # a repeated occurrence merges into the first, as in Go
                    prev = out.get(name)
                    v = _decode_message(buf, start, pos, sub, prev if prev.__class__ is dict else {})
            elif code == _MAP:
                d = out.get(name)
                if d is None:
                    d = out[name] = {}
                k, val = _map_entry(buf, start, pos, sub)
                d[k] = val
                continue
            elif code == _SPECIAL:
                v = sub[0](buf, start, pos)
            elif code == _BYTES:
                v = base64.b64encode(buf[start:pos]).decode()
            else:  # _INLINE: an embedded struct encoding/json prints in place
                _decode_message(buf, start, pos, sub, out, False)
                continue
        elif code <= _BOOL:  # int32, int64, bool: the common scalars, read inline
            b = buf[pos]
            if b < 0x80:
                v = b
                pos += 1
            else:
                v, pos = _varint(buf, pos)
            if code == _BOOL:
                v = v != 0
            elif code == _INT32:
                v = _int32(v) if v > 0x7FFFFFFF else v
            elif v > 0x7FFFFFFFFFFFFFFF:
                v -= 0x10000000000000000
        elif code < _PACKED:
            v, pos = _scalar(code, buf, pos)
        else:
            start, stop = _length(buf, pos, end)
            lst = out.get(name)
            if lst is None:
                lst = out[name] = []
            p = start
            while p < stop:
                v, p = _scalar(code - _PACKED, buf, p)
                lst.append(v)
            if p != stop:
                raise ProtobufError("proto: unexpected EOF")
            pos = stop
            continue
        if repeated:
            lst = out.get(name)
            if lst is None:
                out[name] = [v]
            else:
                lst.append(v)
        elif drop and not v:
            out.pop(name, None)
        else:
            out[name] = v
    if pos != end:
        raise ProtobufError("proto: unexpected EOF")
    if not finish:
        return out
    added = False
    for name, factory in msg.absent:
        if name:
            if name not in out:
                out[name] = factory()
                added = True
        else:  # an inlined struct: its zero fields, where not on the wire
            for k, v in factory().items():
                if k not in out:
                    out[k] = v
                    added = True
    if (added or msg.reorder) and len(out) > 1:
        rank = msg.rank
        keys = sorted(out, key=rank.__getitem__)
        return {k: out[k] for k in keys}
    return out


def _map_entry(buf: bytes, pos: int, end: int, sub: Tuple[int, int, Any]) -> Tuple[Any, Any]:
    key_code, val_code, val_sub = sub
    k: Any = _SCALAR_ZERO.get(key_code, 0)
    val: Any = _MISSING
    while pos < end:
        tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if num == 1 and wire == _WIRE_TYPE[key_code]:
            if wire == 2:
                a, pos = _length(buf, pos, end)
                k = _string(buf, a, pos)
            else:
                k, pos = _scalar(key_code, buf, pos)
        elif num == 2 and wire == _WIRE_TYPE[val_code]:
            if wire == 2:
                a, pos = _length(buf, pos, end)
                if val_code == _STRING:
                    val = _string(buf, a, pos)
                elif val_code == _BYTES:
                    val = base64.b64encode(buf[a:pos]).decode()
                elif val_code == _SPECIAL:
                    val = val_sub[0](buf, a, pos)
                else:
                    val = _decode_message(buf, a, pos, val_sub, {})
            else:
                val, pos = _scalar(val_code, buf, pos)
        elif num in (1, 2):
            raise ProtobufError(f"proto: wrong wireType = {wire} for map entry field {num}")
        else:
            pos = _skip(buf, pos, end, wire, num)
    if pos != end:
        raise ProtobufError("proto: unexpected EOF")
    if val is _MISSING:  # Go leaves the map value at its zero
        if val_code == _MSG:
            val = val_sub.zero()
        elif val_code == _SPECIAL:
            val = val_sub[1]
        else:
            val = _SCALAR_ZERO.get(val_code, 0)
    return k, val


_MISSING = object()


def _envelope(buf: bytes) -> Tuple[str, str, Tuple[int, int]]:
    """(apiVersion, kind, span of raw) of the runtime.Unknown after the magic."""
    api_version = kind = content_encoding = content_type = ""
    raw = (0, 0)
    pos, end = len(MAGIC), len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        if key == 0x0A:  # typeMeta
            a, pos = _length(buf, pos, end)
            p = a
            while p < pos:
                k2, p = _varint(buf, p)
                if k2 == 0x0A:
                    s, p = _length(buf, p, pos)
                    api_version = _string(buf, s, p)
                elif k2 == 0x12:
                    s, p = _length(buf, p, pos)
                    kind = _string(buf, s, p)
                else:
                    p = _skip(buf, p, pos, k2 & 7, k2 >> 3)
            if p != pos:
                raise ProtobufError("proto: unexpected EOF")
        elif key == 0x12:
            raw = _length(buf, pos, end)
            pos = raw[1]
        elif key == 0x1A:
            a, pos = _length(buf, pos, end)
            content_encoding = _string(buf, a, pos)
        elif key == 0x22:
            a, pos = _length(buf, pos, end)
            content_type = _string(buf, a, pos)
        else:
            pos = _skip(buf, pos, end, key & 7, key >> 3)
    if pos != end:
        raise ProtobufError("proto: unexpected EOF")
    if content_encoding:
        raise ProtobufError(f"unsupported content encoding {content_encoding!r} in the protobuf envelope")
    if content_type and content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise ProtobufError(f"unsupported content type {content_type!r} in the protobuf envelope")
    return api_version, kind, raw


def decode(body: bytes) -> Dict[str, Any]:
    """The object a `k8s\\x00`-prefixed protobuf body holds, as the dict its JSON form would load as."""
    buf = bytes(body)
    if not buf:
        raise ProtobufError("empty data")
    if not buf.startswith(MAGIC):
        raise ProtobufError(
            "provided data does not appear to be a protobuf message, expected prefix [" + " ".join(map(str, MAGIC)) + "]"
        )
    if buf == MAGIC:
        raise ProtobufError("empty body")
    try:
        api_version, kind, (start, stop) = _envelope(buf)
        if not kind:
            raise ProtobufError("Object 'Kind' is missing in the protobuf envelope")
        name = _KINDS.get(f"{api_version}/{kind}") or _KINDS.get(kind)
        if name is None:
            raise UnknownKindError(f'no kind "{kind}" is registered for version "{api_version}"')
        obj = _decode_message(buf, start, stop, _MESSAGES[name], {})
    except IndexError:
        raise ProtobufError("proto: unexpected EOF") from None
    except RecursionError:
        raise ProtobufError("proto: message nested too deeply") from None
    out: Dict[str, Any] = {"kind": kind, "apiVersion": api_version} if api_version else {"kind": kind}
    out.update(obj)
    return out
