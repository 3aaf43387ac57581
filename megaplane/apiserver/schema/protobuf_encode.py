"""Response bodies in Kubernetes' protobuf encoding: stored JSON objects as kube-apiserver would send them.

Owns the encoder direction of `megaplane.apiserver.schema.protobuf` (which
decodes request bodies), from the same table (`_generated/protobuf_schema.py`):
an object's JSON form (the dict `orjson.loads` gives for a stored object)
becomes the bytes gogo-protobuf's generated `Marshal` writes for the Go
struct that JSON decodes into, so a client sees what kube-apiserver sends.

gogo's rules, which are the decoder's in reverse:

* fields in field-number order (the generated code writes them backwards
  into a sized buffer, which reads forwards by number);
* a plain Go value (`value` scalar) is always written, zero or not, and
  whether or not the JSON had it (`omitempty` is a JSON matter only);
* a pointer (`ptr`) is written when the JSON has it non-null, zero too;
* a Go struct field (`struct`) is always written: its own zero fields
  when the JSON lacks it, so an absent `status` still costs its bytes;
* repeated fields: one entry per item (proto2 repeated scalars unpacked);
  none for an empty or null slice;
* maps: one entry {key = 1, value = 2} per key, sorted by key as the
  generated code sorts them; a nil []byte value has no value field;
* inlined structs (`json:",inline"`) are sub-messages read from the
  parent's JSON keys.

The special types: metav1.Time as a Timestamp {seconds = 1, nanos = 2},
both written, empty for Go's zero time (JSON null); MicroTime likewise with
its microseconds; Duration {duration = 1} in nanoseconds; Quantity
{string = 1}; IntOrString {type = 1, intVal = 2, strVal = 3}, all written;
RawExtension and FieldsV1 {raw = 1}: the compact JSON of the value, absent
for null; ExtraValue {repeated items = 1}.

The envelope is the `k8s\\x00` magic and a runtime.Unknown {typeMeta =
{apiVersion, kind}, raw, contentEncoding = "", contentType = ""}. Lists are
the kind's List message {metadata ListMeta = 1, repeated items = 2}, built
from the items' encodings without re-encoding them (`list_body`); watch
frames are a 4-byte big-endian length and a bare meta/v1 WatchEvent {type,
object = RawExtension{raw = the object's envelope}} (the stream framer
writes the raw message, no magic, as upstream's protobuf stream
serializer does).

Deviations: keys the table does not know are dropped (protobuf cannot carry
them; the JSON response would have them); a Quantity is sent as stored
(the server stores canonical strings); times with sub-second digits keep
them only for MicroTime, as Go's RFC 3339 JSON form of a Time has none.
"""

from __future__ import annotations

import base64
import calendar
import datetime
import re
import struct
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import orjson

from megaplane.apiserver.schema._generated.protobuf_schema import SCHEMA

__all__ = [
    "CONTENT_TYPE",
    "STREAM_CONTENT_TYPE",
    "EncodeError",
    "encodable",
    "encode",
    "encode_json",
    "envelope",
    "list_body",
    "watch_frame",
    "object_raw",
]

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
STREAM_CONTENT_TYPE = "application/vnd.kubernetes.protobuf;stream=watch"
MAGIC = b"k8s\x00"


class EncodeError(ValueError):
    """An object whose JSON does not fit its kind's protobuf message (a value of the wrong type)."""


# --- wire primitives -------------------------------------------------------------------------

# Varints below 2**14 are most lengths and counts: precomputed.
_SMALL = [bytes([i]) for i in range(128)] + [bytes([i & 0x7F | 0x80, i >> 7]) for i in range(128, 1 << 14)]


def _uvarint(v: int) -> bytes:
    if 0 <= v < 16384:
        return _SMALL[v]
    v &= 0xFFFFFFFFFFFFFFFF  # negative int32/int64: ten bytes of two's complement, as Go writes them
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _delimited(tag: bytes, data: bytes) -> bytes:
    n = len(data)
    return tag + (_SMALL[n] if n < 16384 else _uvarint(n)) + data


# Field codes
(
    _STRING, _BYTES, _MSG, _MAP, _INLINE, _TIME, _MICROTIME, _DURATION, _QUANTITY, _INTORSTRING, _RAW,
    _EXTRA, _INT, _BOOL, _UINT32, _SINT32, _SINT64, _DOUBLE, _FLOAT, _FIXED32, _FIXED64, _SFIXED32, _SFIXED64,
) = range(23)  # fmt: skip

_SCALARS = {
    "string": _STRING, "bytes": _BYTES, "int32": _INT, "int64": _INT, "enum": _INT, "uint64": _INT,
    "bool": _BOOL, "uint32": _UINT32, "sint32": _SINT32, "sint64": _SINT64, "double": _DOUBLE,
    "float": _FLOAT, "fixed32": _FIXED32, "fixed64": _FIXED64, "sfixed32": _SFIXED32, "sfixed64": _SFIXED64,
}  # fmt: skip
_SPECIAL_CODES = {
    "time": _TIME, "microtime": _MICROTIME, "duration": _DURATION, "quantity": _QUANTITY,
    "intorstring": _INTORSTRING, "rawextension": _RAW, "fieldsv1": _RAW, "extravalue": _EXTRA,
}  # fmt: skip
_WIRE = {_DOUBLE: 1, _FIXED64: 1, _SFIXED64: 1, _FLOAT: 5, _FIXED32: 5, _SFIXED32: 5}
_FIXED_FORMATS = {_DOUBLE: "<d", _FIXED64: "<Q", _SFIXED64: "<q", _FLOAT: "<f", _FIXED32: "<I", _SFIXED32: "<i"}


def _wire_type(code: int) -> int:
    if code >= _INT:
        return _WIRE.get(code, 0)
    return 2


# --- the special types ---------------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")
_times: Dict[str, bytes] = {}


def _timestamp(text: Any, micro: bool) -> bytes:
    """The Timestamp message of an RFC 3339 time (memoised: objects share their timestamps)."""
    key = text if not micro else "µ" + str(text)
    out = _times.get(key)
    if out is not None:
        return out
    if not isinstance(text, str):
        raise EncodeError(f"Time: {text!r} is not a string")
    m = _RFC3339.match(text)
    if m is None:
        raise EncodeError(f"Time: {text!r} is not RFC 3339")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    nanos = int(frac[:9].ljust(9, "0")) if frac and micro else 0
    if micro:
        nanos -= nanos % 1000  # MicroTime keeps microseconds
    out = b"\x08" + _uvarint(seconds) + b"\x10" + _uvarint(nanos)
    if len(_times) > 65536:  # bounded: a burst of distinct times does not grow it without end
        _times.clear()
    _times[key] = out
    return out


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
               "h": 3600 * 10**9}


def _duration_nanos(text: Any) -> int:
    """Go's time.ParseDuration."""
    if not isinstance(text, str) or not text:
        raise EncodeError(f"Duration: {text!r} is not a duration")
    sign = 1
    s = text
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise EncodeError(f"Duration: {text!r} is not a duration")
        num, unit = m.groups()
        whole, _, frac = num.partition(".")
        scale = _UNIT_NANOS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        pos = m.end()
    return sign * total


def _int_or_string(v: Any) -> bytes:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise EncodeError(f"IntOrString: {v!r} is neither")
    if isinstance(v, int):
        return b"\x08\x00\x10" + _uvarint(v) + b"\x1a\x00"
    return b"\x08\x01\x10\x00" + _delimited(b"\x1a", v.encode())


def _raw(v: Any) -> bytes:
    if v is None:
        return b""
    return _delimited(b"\x0a", orjson.dumps(v))


def _extra(v: Any) -> bytes:
    return b"".join(_delimited(b"\x0a", s.encode()) for s in v or ())


# --- the plan ------------------------------------------------------------------------------------


class _Field:
    __slots__ = ("key", "tag", "code", "sub", "repeated", "nullable", "fixed")

    def __init__(self, key: str, tag: bytes, code: int, sub: Any, repeated: bool, nullable: bool) -> None:
        self.key = key
        self.tag = tag
        self.code = code
        self.sub = sub  # _Message, or (key code, value code, value sub) of a map
        self.repeated = repeated
        self.nullable = nullable  # a Go pointer, slice or map: nothing when absent
        self.fixed = _FIXED_FORMATS.get(code)


# Codes of the plan's repeated fields (the plan dispatches on one code per field).
_RSTRING, _RMSG, _RVALUE = 100, 101, 102


class _Message:
    __slots__ = ("name", "fields", "_zero", "_plan")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: List[_Field] = []
        self._zero: Optional[bytes] = None
        self._plan: Optional[List[Tuple[str, int, bytes, bytes, _Field]]] = None

    def zero(self) -> bytes:
        """What gogo writes for the zero struct (its value fields and struct fields)."""
        if self._zero is None:
            self._zero = _encode(self, {})
        return self._zero

    def plan(self) -> List[Tuple[str, int, bytes, bytes, _Field]]:
        """Per field in number order: (json key, code, tag, the bytes written when the JSON lacks it, field).

        Built on first use, after the whole table is compiled (a struct field's absent bytes are its
        message's zero encoding)."""
        if self._plan is None:
            plan = []
            for f in self.fields:
                code, tag = f.code, f.tag
                absent = b""
                if f.repeated:
                    code = _RSTRING if code == _STRING else _RMSG if code == _MSG else _RVALUE
                elif code == _INLINE:
                    pass
                elif not f.nullable:
                    if code == _MSG:
                        absent = _delimited(tag, f.sub.zero())
                    elif code in (_TIME, _MICROTIME, _RAW, _EXTRA):
                        absent = tag + b"\x00"  # Go's zero time and a nil raw marshal to nothing
                    elif code == _STRING:
                        absent = tag + b"\x00"
                    else:
                        absent = tag + _value(code, None, f)
                plan.append((f.key, code, tag, absent, f))
            self._plan = plan
        return self._plan


def _compile() -> Tuple[Dict[str, _Message], Dict[str, _Message]]:
    specials = SCHEMA["special"]
    messages = {name: _Message(name) for name in SCHEMA["messages"]}

    def code_of(type_name: str) -> Tuple[int, Any]:
        if type_name.startswith("@"):
            ref = type_name[1:]
            if ref in specials:
                return _SPECIAL_CODES[specials[ref]], None
            return _MSG, messages[ref]
        return _SCALARS[type_name], None

    for name, fields in SCHEMA["messages"].items():
        msg = messages[name]
        for f in sorted(fields, key=lambda f: f["n"]):
            sub: Any
            if f["type"] == "map":
                code = _MAP
                vcode, vsub = code_of(f["value"])
                sub = (_SCALARS[f["key"]], vcode, vsub, _uvarint(2 << 3 | _wire_type(vcode)))
            else:
                code, sub = code_of(f["type"])
            if f["json"] == "":
                code = _INLINE
            tag = _uvarint(f["n"] << 3 | _wire_type(code))
            msg.fields.append(_Field(f["json"], tag, code, sub, f.get("repeated", False), f["go"] != "value"
                                     and f["go"] != "struct"))
    kinds = {k: messages[m] for k, m in SCHEMA["kinds"].items()}
    return messages, kinds


def _scalar(code: int, v: Any, fixed: Optional[str]) -> bytes:
    if code == _INT:
        if v.__class__ is not int:
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            elif v is None:
                v = 0
            else:
                raise EncodeError(f"{v!r} is not an integer")
        return _uvarint(v)
    if code == _BOOL:
        return b"\x01" if v else b"\x00"
    if v is None:
        v = 0
    if code == _UINT32:
        return _uvarint(int(v) & 0xFFFFFFFF)
    if code == _SINT32 or code == _SINT64:
        v = int(v)
        return _uvarint((v << 1) ^ (v >> 63))
    assert fixed is not None
    return struct.pack(fixed, v)


def _encode(msg: _Message, obj: Dict[str, Any]) -> bytes:
    """The message's bytes (without tag or length) from a JSON object."""
    out: List[bytes] = []
    append = out.append
    get = obj.get
    for key, code, tag, absent, f in msg._plan or msg.plan():
        if code == _INLINE:
            append(_delimited(tag, _encode(f.sub, obj)))
            continue
        v: Any = get(key)
        if v is None:
            if absent:
                append(absent)
            continue
        if code == _STRING:
            b = v.encode()
            n = len(b)
            append(tag + (_SMALL[n] if n < 16384 else _uvarint(n)) + b)
        elif code == _MSG:
            b = _encode(f.sub, v)
            n = len(b)
            append(tag + (_SMALL[n] if n < 16384 else _uvarint(n)) + b)
        elif code == _INT:
            if v.__class__ is int and 0 <= v < 16384:
                append(tag + _SMALL[v])
            else:
                append(tag + _scalar(code, v, None))
        elif code == _BOOL:
            append(tag + (b"\x01" if v else b"\x00"))
        elif code == _RMSG:
            sub = f.sub
            for item in v:
                b = _encode(sub, item) if item else sub.zero()
                n = len(b)
                append(tag + (_SMALL[n] if n < 16384 else _uvarint(n)) + b)
        elif code == _MAP:
            if v:
                _map(f, v, append)
        elif code == _RSTRING:
            for item in v:
                b = item.encode()
                n = len(b)
                append(tag + (_SMALL[n] if n < 16384 else _uvarint(n)) + b)
        elif code == _RVALUE:
            code = f.code
            for item in v:
                append(tag + _value(code, item, f))
        else:
            append(tag + _value(code, v, f))
    return b"".join(out)


def _value(code: int, v: Any, f: _Field) -> bytes:
    """A non-string, non-message value's bytes after its tag (length-prefixed where delimited)."""
    if code >= _INT:
        return _scalar(code, v, f.fixed)
    if code == _TIME or code == _MICROTIME:
        if v is None:
            return b"\x00"
        ts = _timestamp(v, code == _MICROTIME)
        return _SMALL[len(ts)] + ts
    if code == _QUANTITY:
        s = b"0" if v is None else str(v).encode()
        return _uvarint(len(s) + 1 + len(_uvarint(len(s)))) + b"\x0a" + _uvarint(len(s)) + s
    if code == _INTORSTRING:
        b = _int_or_string(0 if v is None else v)
        return _uvarint(len(b)) + b
    if code == _DURATION:
        b = b"\x08" + _uvarint(0 if v is None else _duration_nanos(v))
        return _uvarint(len(b)) + b
    if code == _RAW:
        b = _raw(v)
        return _uvarint(len(b)) + b
    if code == _EXTRA:
        b = _extra(v)
        return _uvarint(len(b)) + b
    if code == _BYTES:
        b = base64.b64decode(v) if v else b""
        return _uvarint(len(b)) + b
    if code == _STRING:
        b = ("" if v is None else v).encode()
        return _uvarint(len(b)) + b
    raise EncodeError(f"field {f.key!r}: no encoding for code {code}")  # pragma: no cover


def _map(f: _Field, d: Dict[str, Any], append: Callable[[bytes], None]) -> None:
    kcode, vcode, vsub, vtag = f.sub
    tag = f.tag
    for k in sorted(d):
        v = d[k]
        key = b"\x0a" + _value(_STRING, k, f) if kcode == _STRING else b"\x08" + _scalar(kcode, k, None)
        if vcode == _STRING:
            entry = key + vtag + _value(_STRING, v, f)
        elif vcode == _MSG:
            entry = key + _delimited(vtag, _encode(vsub, v) if v else vsub.zero())
        elif vcode == _BYTES and v is None:
            entry = key  # a nil []byte: no value field
        else:
            entry = key + vtag + _value(vcode, v, f)
        append(_delimited(tag, entry))


_MESSAGES, _KINDS = _compile()


# --- objects, lists, watch frames ------------------------------------------------------------


def encodable(api_version: str, kind: str) -> bool:
    """Whether this kind has a protobuf message here (built-in kinds; custom resources have none)."""
    return f"{api_version}/{kind}" in _KINDS or kind in ("Status", "WatchEvent")


def _message_of(api_version: str, kind: str) -> _Message:
    msg = _KINDS.get(f"{api_version}/{kind}") or _KINDS.get(kind)
    if msg is None:
        raise EncodeError(f'no protobuf message for kind "{kind}" of version "{api_version}"')
    return msg


def _envelope(api_version: str, kind: str, raw_parts: Iterable[bytes], raw_len: int) -> bytes:
    av, k = api_version.encode(), kind.encode()
    type_meta = _delimited(b"\x0a", av) + _delimited(b"\x12", k)
    return b"".join((MAGIC, _delimited(b"\x0a", type_meta), b"\x12", _uvarint(raw_len), *raw_parts, b"\x1a\x00\x22\x00"))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """The response body around an object's bare message (object_raw)."""
    return _envelope(api_version, kind, (raw,), len(raw))


def object_raw(api_version: str, kind: str, obj: Dict[str, Any]) -> bytes:
    """The bare message of an object (no envelope): what a list's items and the envelope's raw hold."""
    try:
        return _encode(_message_of(api_version, kind), obj)
    except EncodeError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, struct.error) as exc:
        raise EncodeError(f"{kind}: {exc}") from None  # a JSON value of a type the field cannot hold


def encode(api_version: str, kind: str, obj: Dict[str, Any]) -> bytes:
    """A whole protobuf response body for one object: magic, runtime.Unknown, the message."""
    raw = object_raw(api_version, kind, obj)
    return _envelope(api_version, kind, (raw,), len(raw))


def encode_json(data: bytes, api_version: str = "", kind: str = "") -> bytes:
    """encode() of a JSON body; apiVersion and kind from the object unless given."""
    obj = orjson.loads(data)
    return encode(api_version or obj.get("apiVersion", ""), kind or obj.get("kind", ""), obj)


def list_body(
    api_version: str, list_kind: str, items: Iterable[bytes], revision: int, cont: str = "",
    remaining: Optional[int] = None,
) -> bytes:
    """A <Kind>List body from the items' bare messages (object_raw), joined without re-encoding."""
    meta = _delimited(b"\x0a", b"") + _delimited(b"\x12", str(revision).encode()) + _delimited(b"\x1a", cont.encode())
    if remaining is not None:
        meta += b"\x20" + _uvarint(remaining)
    parts: List[bytes] = [_delimited(b"\x0a", meta)]
    size = len(parts[0])
    for item in items:
        n = len(item)
        head = b"\x12" + (_SMALL[n] if n < 16384 else _uvarint(n))
        parts.append(head)
        parts.append(item)
        size += len(head) + n
    return _envelope(api_version, list_kind, parts, size)


def watch_frame(etype: str, envelope: bytes) -> bytes:
    """One `;stream=watch` frame: length, then WatchEvent{type, object: RawExtension{raw: envelope}}."""
    raw = _delimited(b"\x0a", envelope)
    event = _delimited(b"\x0a", etype.encode()) + _delimited(b"\x12", raw)
    return struct.pack(">I", len(event)) + event
