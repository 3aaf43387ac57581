"""Setting metadata.resourceVersion inside an object's JSON bytes without decoding them.

The role of upstream's APIObjectVersioner.UpdateObject, on bytes: objects
are stored and served as JSON bytes, so a backend that learns an object's
revision only after writing it (etcd assigns it) splices the
resourceVersion into the bytes it serves instead of decoding and encoding
the whole object::

    {"kind":"Pod","metadata":{"name":"a","resourceVersion":"7"},...}
                                                           ^^^ replaced by "42"
    {"kind":"Pod","metadata":{"name":"a"},...}
                              ^ "resourceVersion":"42", inserted here

Finding the place, in three tiers, each exact for valid JSON:

1. One-shot patterns (`_HEAD`, `_META_RV`, `_META_WITHOUT_RV`) match the
   top-level members before ``metadata`` and metadata's members before
   ``resourceVersion`` in a single regex call, as long as those members'
   values nest at most one level (labels, annotations, ownerReferences).
   That is every object megaplane encodes: ~1 us.
2. Otherwise a token scan steps over whole string tokens and brackets
   (numbers, literals, commas are skipped inside the regex engine),
   tracking depth, so a brace or key inside a string or a nested
   ``metadata`` (a pod template's) is never taken for the top-level one.
3. Otherwise orjson decode/encode: no top-level metadata (it is added), a
   resourceVersion that is not a string, or any ``\\u`` escape in the
   bytes (a key could be spelled with one, which no byte search sees).

Exact means: decoding the result gives the decoded input with
metadata.resourceVersion == str(revision). Objects with duplicate member
names are outside the contract (RFC 8259 leaves their meaning open and no
Kubernetes encoder writes them).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["set_resource_version", "resource_version_bytes"]

_WS = rb"[ \t\n\r]*"
_STR = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
_SCALAR = rb"(?:" + _STR + rb"|[-0-9.eE+]+|true|false|null)"
_PAIR = _STR + _WS + b":" + _WS + _SCALAR + _WS
_FLAT_OBJECT = rb"\{" + _WS + rb"(?:" + _PAIR + rb"(?:," + _WS + _PAIR + rb")*)?\}"
_ITEM = rb"(?:" + _SCALAR + b"|" + _FLAT_OBJECT + rb")" + _WS
_FLAT_ARRAY = rb"\[" + _WS + rb"(?:" + _ITEM + rb"(?:," + _WS + _ITEM + rb")*)?\]"
# A member value the one-shot patterns can step over: a scalar, or an object or array nested one
# level (labels, annotations, finalizers, ownerReferences). Deeper values take the token scan.
_VALUE = rb"(?:" + _SCALAR + b"|" + _FLAT_OBJECT + b"|" + _FLAT_ARRAY + rb")"


def _member_except(key: bytes) -> bytes:
    return rb"(?!" + key + _WS + rb":)" + _STR + _WS + b":" + _WS + _VALUE + _WS


# The top level up to metadata's "{": `{"apiVersion":"v1","kind":"Pod","metadata":{`.
_HEAD = re.compile(
    _WS + rb"\{" + _WS + rb"(?:" + _member_except(b'"metadata"') + b"," + _WS + rb')*"metadata"'
    + _WS + b":" + _WS + rb"\{"
)
# Inside metadata: the members before resourceVersion, then its string value (group 1).
_META_RV = re.compile(
    _WS + rb"(?:" + _member_except(b'"resourceVersion"') + b"," + _WS + rb')*"resourceVersion"'
    + _WS + b":" + _WS + b"(" + _STR + b")"
)
# Inside metadata: every member, none of them resourceVersion, up to the closing brace.
_META_WITHOUT_RV = re.compile(
    _WS + rb"(?:" + _member_except(b'"resourceVersion"')
    + rb"(?:," + _WS + _member_except(b'"resourceVersion"') + rb")*)?\}"
)
_BRACKETS = b"{}[]"
_COMPACT_METADATA = b'"metadata":{'
_COMPACT_RV = b'"resourceVersion":"'
_KEY_START = frozenset(b",{")
# The general scan: a JSON string token (escapes included) or a bracket; finditer skips the rest.
_TOKEN = re.compile(_STR + rb"|[{}\[\]]", re.S)
_STRING = re.compile(_STR, re.S)
_COLON = re.compile(_WS + b":" + _WS)
_SPACE = re.compile(_WS)

_METADATA = b'"metadata"'
_RV_KEY = b'"resourceVersion"'
_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_BRACE = ord("{")
_CLOSE_BRACE = ord("}")
_OPEN = frozenset(b"{[")


def resource_version_bytes(revision: int) -> bytes:
    """The JSON string a revision is served as: ``"42"``."""
    return b'"%d"' % revision


def set_resource_version(data: bytes, revision: int) -> bytes:
    """`data` (a JSON object) with metadata.resourceVersion set to str(revision).

    Raises ValueError if `revision` is not positive or `data` is not a JSON
    object (or its metadata is not an object). The splice trusts that bytes
    which look like an object are valid JSON (they are what a backend
    stored): for valid JSON the result is exact, for a truncated object the
    fallback's decode raises.
    """
    if revision <= 0:
        raise ValueError(f"a resourceVersion must be positive, got {revision}")
    if data.find(b"\\") < 0 or data.find(b"\\u") < 0:  # one-byte search first: it is the fast one
        spliced = _splice(data, resource_version_bytes(revision))
        if spliced is not None:
            return spliced
    return _reencode(data, revision)


def _splice(data: bytes, rv: bytes) -> bytes | None:
    """The byte-level edit, or None when only a decode can do it (see the module docstring)."""
    inner = _compact_metadata(data)
    if inner >= 0:
        at = data.find(_COMPACT_RV, inner)
        if at < 0:
            if data.find(_RV_KEY, inner) < 0:
                return _insert(data, inner, rv)
        elif data[at - 1] in _KEY_START and _no_brackets(data, inner, at):
            # A key (a quote after "," or "{" opens a string) of metadata itself (nothing nests before it).
            end = data.find(b'"', at + len(_COMPACT_RV))
            if end > 0 and data[end - 1] != _BACKSLASH:  # the value's closing quote
                return b"".join((data[: at + len(_RV_KEY) + 1], rv, data[end + 1 :]))
    else:
        head = _HEAD.match(data)
        if head is None:
            return _scan(data, rv)
        inner = head.end()
        if data.find(_RV_KEY, inner) < 0:
            return _insert(data, inner, rv)
    found = _META_RV.match(data, inner)
    if found is not None:
        return b"".join((data[: found.start(1)], rv, data[found.end(1) :]))
    if _META_WITHOUT_RV.match(data, inner) is not None:
        return _insert(data, inner, rv)
    return _scan(data, rv)


def _compact_metadata(data: bytes) -> int:
    """Just after top-level metadata's "{" when only bracket-free members precede it, else -1.

    `"metadata":{` after "," or "{" is a key (a quote after either opens a
    string); with no bracket before it but the object's own, it is at the top level.
    """
    at = data.find(_COMPACT_METADATA)
    if at <= 0 or data[0] != _BRACE or data[at - 1] not in _KEY_START or not _no_brackets(data, 1, at):
        return -1
    return at + len(_COMPACT_METADATA)


def _no_brackets(data: bytes, start: int, end: int) -> bool:
    segment = data[start:end]
    return len(segment.translate(None, _BRACKETS)) == len(segment)


def _insert(data: bytes, inner: int, rv: bytes) -> bytes:
    space = _SPACE.match(data, inner)
    assert space is not None  # _WS matches an empty run too
    after = space.end()
    sep = b"" if after < len(data) and data[after] == _CLOSE_BRACE else b","
    return b"".join((data[:inner], _RV_KEY, b":", rv, sep, data[inner:]))


def _scan(data: bytes, rv: bytes) -> bytes | None:
    """The general splice: step over string tokens and brackets, tracking the depth."""
    space = _SPACE.match(data)
    assert space is not None  # _WS matches an empty run too
    start = space.end()
    if start >= len(data) or data[start] != _BRACE:
        return None
    depth = 0
    inner = -1  # just after metadata's "{", once found
    for m in _TOKEN.finditer(data, start):
        at = m.start()
        first = data[at]
        if first in _OPEN:
            depth += 1
            continue
        if first != _QUOTE:  # a closing bracket
            depth -= 1
            if inner >= 0 and depth == 1:
                return _insert(data, inner, rv)  # metadata ended without a resourceVersion
            if depth == 0:
                return None  # no metadata: the decoder adds it
            continue
        if depth == 1 and inner < 0:
            if data[at : m.end()] != _METADATA:
                continue
            colon = _COLON.match(data, m.end())
            if colon is None:
                continue  # a value that happens to read "metadata"
            value_at = colon.end()
            if value_at >= len(data) or data[value_at] != _BRACE:
                return None  # metadata is not an object: the decoder reports it
            inner = value_at + 1
        elif depth == 2 and inner >= 0 and data[at : m.end()] == _RV_KEY:
            colon = _COLON.match(data, m.end())
            if colon is None:
                continue
            value = _STRING.match(data, colon.end())
            if value is None:
                return None  # not a string: let the decoder replace it
            return b"".join((data[: value.start()], rv, data[value.end() :]))
    return None  # ran out of bytes inside an object: not valid JSON, the decoder says so


def _reencode(data: bytes, revision: int) -> bytes:
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not a JSON object: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"not a JSON object but {type(obj).__name__}")
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ValueError(f"metadata is not an object but {type(meta).__name__}")
    meta["resourceVersion"] = str(revision)
    return orjson.dumps(obj)
