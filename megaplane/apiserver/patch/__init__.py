"""PATCH bodies: JSON patch, JSON merge patch and strategic merge patch, as kube-apiserver applies them.

This module owns the three patch algorithms of the PATCH verb and the
errors they raise, and nothing around them (reading the object,
admission, validation, storing the result belong to the verb handler):

- `apply_json_patch`: RFC 6902, with the behaviour of the library
  kube-apiserver uses (gopkg.in/evanphx/json-patch.v4), quirks included;
- `apply_merge_patch`: RFC 7386, as evanphx's `MergePatch` does it;
- `apply_strategic_merge_patch`: the apply half of
  k8s.io/apimachinery/pkg/util/strategicpatch, driven by the
  `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`
  annotations of `megaplane.apiserver.schema.definitions` instead of Go struct tags;
- `decode_patch`: the decoding step kube-apiserver runs on the request
  body before any of those (what a malformed body is answered with).

Each `apply_*` takes decoded JSON values (or the raw body as `bytes`, which
is then put through `decode_patch` first), never mutates its arguments and
returns a new object. A patch that cannot be applied raises `PatchError`
carrying the code, reason and message of the Status kube-apiserver answers.

The code follows upstream's algorithms step by step rather than the RFC
text where the two differ, because clients (kubectl, client-go, kustomize)
are written against kube-apiserver's behaviour: comments name the upstream
function each piece stands for and say where upstream is quirky on purpose.
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import orjson

from megaplane.apiserver.schema import definitions as _schema

__all__ = [
    "PatchError",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "decode_patch",
    "apply_json_patch",
    "go_syntax_error",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# kube-apiserver refuses longer JSON patches (handlers/patch.go, maxJSONPatchOperations).
MAX_JSON_PATCH_OPERATIONS = 10000

_BYTES = (bytes, bytearray, memoryview)


# --------------------------------------------------------------------------------------------------
# Errors


class PatchError(ValueError):
    """A patch that cannot be applied. `message` is the text for the Kubernetes Status (HTTP 422 for
    a patch that does not apply, 400 for a malformed patch); `reason` is "Invalid" or "BadRequest".

    `code` is the HTTP status (422, 400, or 413 with reason "RequestEntityTooLarge" for an
    over-long JSON patch). `detail` is the underlying library error when upstream's Status does not
    show it: kube-apiserver answers every JSON patch that fails to apply with one generic message
    and drops the cause, which is still worth having in logs.
    """

    def __init__(self, message: str, reason: str = "Invalid", code: Optional[int] = None, detail: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.code = code if code is not None else (400 if reason == "BadRequest" else 422)
        self.detail = detail

    def __repr__(self) -> str:
        return f"PatchError({self.code}, {self.reason!r}, {self.message!r}, detail={self.detail!r})"


# What NewGenericServerResponse(422, ...) says: upstream uses it for a JSON patch that fails to apply
# and for two strategic merge errors, and it puts no trace of the cause in the Status.
_REJECTED = "the server rejected our request due to an error in our request"


def _bad_request(message: str) -> PatchError:
    return PatchError(message, "BadRequest", 400)


def _rejected(detail: str) -> PatchError:
    return PatchError(_REJECTED, "Invalid", 422, detail)


def _invalid(message: str) -> PatchError:
    # Strategic merge errors upstream does not classify (interpretStrategicMergePatchError's default
    # case) reach the client as a bare error: message = the error text, HTTP 500, no reason. They
    # are all "this patch does not fit this object", so they are reported as 422 Invalid here.
    return PatchError(message, "Invalid", 422)


# --------------------------------------------------------------------------------------------------
# JSON values as Go sees them: copies, types, equality, %v formatting, decoding errors


def _clone(value: Any) -> Any:
    """A deep copy of a JSON value (orjson round trip: several times faster than copy.deepcopy)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, non-JSON values
        return _clone_slow(value)


def _clone_slow(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone_slow(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone_slow(v) for v in value]
    return value


def _kind(value: Any) -> str:
    """The Go dynamic type a decoded JSON value has upstream (ints are int64: decoding preserves them)."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


_GO_TYPE_NAMES = {"map": "map[string]interface {}", "slice": "[]interface {}", "nil": "<nil>"}


def _go_type(value: Any) -> str:
    kind = _kind(value)
    return _GO_TYPE_NAMES.get(kind, kind)


def _go_eq(a: Any, b: Any) -> bool:
    """Go's == on two interface{} values: same dynamic type and same value (1 != 1.0, 1 != true)."""
    return _kind(a) == _kind(b) and a == b


def _scalar_key(value: Any) -> Tuple[str, Any]:
    return (_kind(value), value)


def _json_equal(a: Any, b: Any) -> bool:
    """Structural JSON equality for the `test` operation (booleans are not numbers)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return _kind(a) == _kind(b) and a == b


def _json_type(value: Any) -> str:
    """The word encoding/json uses for a JSON value in "cannot unmarshal X into ..." errors."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return "number"


def _go_float(value: float) -> str:
    """fmt's %v of a float64: the shortest digits, in %e form when the decimal exponent is < -4
    or >= 6 (strconv decides with precision 6 when printing the shortest form: 1e+06, 100000)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp10 = len(text) + int(exponent) - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    point = exp10 + 1
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def _go_v(value: Any) -> str:
    """fmt's %v of a decoded JSON value, as upstream's error messages print maps and lists."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    return str(value)


def _go_s(value: Any) -> str:
    """fmt's %s: strings as they are, other scalars flagged the way fmt flags a wrong verb."""
    if isinstance(value, str):
        return value
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, (bool, int, float)):
        return f"%!s({_go_type(value)}={_go_v(value)})"
    return _go_v(value)


def _quote_char(c: int) -> str:
    """encoding/json's quoteChar: how a syntax error shows the offending byte."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        body = "\\\\"
    elif 0x20 <= c < 0x7F or (c >= 0xA1 and c != 0xAD):
        body = chr(c)
    else:
        escapes = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
        body = escapes.get(c) or (f"\\x{c:02x}" if c < 0x80 else f"\\u{c:04x}")
    return f"'{body}'"


_SPACE = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'bfnrt\\/"')
_LITERALS = {ord("t"): "true", ord("f"): "false", ord("n"): "null"}


def go_syntax_error(data: bytes) -> Optional[str]:
    """The message of the SyntaxError Go's encoding/json reports for `data`, or None if Go accepts it.

    A transcription of encoding/json's scanner state machine (scanner.go): the apiserver answers a
    malformed body with exactly this text, and kubectl prints it.
    """
    stack: List[str] = []  # parse states: "key", "value" (inside an object), "array"
    state = "begin_value"
    literal = ""  # remaining letters of true/false/null
    word = ""
    hex_left = 0
    end_top = False

    def err(c: int, context: str) -> str:
        return f"invalid character {_quote_char(c)} {context}"

    def step(c: int) -> Optional[str]:
        nonlocal state, literal, word, hex_left, end_top
        while True:  # some states hand the byte on to the next one ("re-dispatch")
            if state == "end_top":
                return None if c in _SPACE else err(c, "after top-level value")
            if state == "begin_value_or_empty":
                if c in _SPACE:
                    return None
                if c == ord("]"):
                    state = "end_value"
                    continue
                state = "begin_value"
            if state == "begin_string_or_empty":
                if c in _SPACE:
                    return None
                if c == ord("}"):
                    stack[-1] = "value"
                    state = "end_value"
                    continue
                state = "begin_string"
            if state == "begin_value":
                if c in _SPACE:
                    return None
                if c == ord("{"):
                    stack.append("key")
                    state = "begin_string_or_empty"
                elif c == ord("["):
                    stack.append("array")
                    state = "begin_value_or_empty"
                elif c == ord('"'):
                    state = "in_string"
                elif c == ord("-"):
                    state = "neg"
                elif c == ord("0"):
                    state = "zero"
                elif ord("1") <= c <= ord("9"):
                    state = "one"
                elif c in _LITERALS:
                    word = _LITERALS[c]
                    literal = word[1:]
                    state = "literal"
                else:
                    return err(c, "looking for beginning of value")
                return None
            if state == "begin_string":
                if c in _SPACE:
                    return None
                if c == ord('"'):
                    state = "in_string"
                    return None
                return err(c, "looking for beginning of object key string")
            if state == "end_value":
                if not stack:
                    state = "end_top"
                    end_top = True
                    continue
                if c in _SPACE:
                    return None
                top = stack[-1]
                if top == "key":
                    if c == ord(":"):
                        stack[-1] = "value"
                        state = "begin_value"
                        return None
                    return err(c, "after object key")
                if top == "value":
                    if c == ord(","):
                        stack[-1] = "key"
                        state = "begin_string"
                        return None
                    if c == ord("}"):
                        stack.pop()
                        state = "end_value" if stack else "end_top"
                        end_top = not stack
                        return None
                    return err(c, "after object key:value pair")
                if c == ord(","):
                    state = "begin_value"
                    return None
                if c == ord("]"):
                    stack.pop()
                    state = "end_value" if stack else "end_top"
                    end_top = not stack
                    return None
                return err(c, "after array element")
            if state == "in_string":
                if c == ord('"'):
                    state = "end_value"
                elif c == ord("\\"):
                    state = "in_string_esc"
                elif c < 0x20:
                    return err(c, "in string literal")
                return None
            if state == "in_string_esc":
                if c in _ESCAPES:
                    state = "in_string"
                    return None
                if c == ord("u"):
                    state, hex_left = "in_string_esc_u", 4
                    return None
                return err(c, "in string escape code")
            if state == "in_string_esc_u":
                if c not in _HEX:
                    return err(c, "in \\u hexadecimal character escape")
                hex_left -= 1
                if hex_left == 0:
                    state = "in_string"
                return None
            if state == "neg":
                if c == ord("0"):
                    state = "zero"
                    return None
                if ord("1") <= c <= ord("9"):
                    state = "one"
                    return None
                return err(c, "in numeric literal")
            if state == "one":
                if c in _DIGITS:
                    return None
                state = "zero"
            if state == "zero":
                if c == ord("."):
                    state = "dot"
                    return None
                if c in (ord("e"), ord("E")):
                    state = "exp"
                    return None
                state = "end_value"
                continue
            if state == "dot":
                if c in _DIGITS:
                    state = "dot0"
                    return None
                return err(c, "after decimal point in numeric literal")
            if state == "dot0":
                if c in _DIGITS:
                    return None
                if c in (ord("e"), ord("E")):
                    state = "exp"
                    return None
                state = "end_value"
                continue
            if state == "exp":
                state = "exp_sign"
                if c in (ord("+"), ord("-")):
                    return None
            if state == "exp_sign":
                if c in _DIGITS:
                    state = "exp0"
                    return None
                return err(c, "in exponent of numeric literal")
            if state == "exp0":
                if c in _DIGITS:
                    return None
                state = "end_value"
                continue
            if state == "literal":
                if c != ord(literal[0]):
                    return err(c, f"in literal {word} (expecting {_quote_char(ord(literal[0]))})")
                literal = literal[1:]
                if not literal:
                    state = "end_value"
                return None
            raise AssertionError(state)

    for byte in data:
        problem = step(byte)
        if problem is not None:
            return problem
    if end_top:
        return None
    problem = step(ord(" "))  # what Go's scanner.eof does: a space ends a pending number
    if problem is not None:
        return problem
    return None if end_top else "unexpected end of JSON input"


def _loads(body: Any, prefix: str) -> Any:
    """Decode a request body; a malformed one is a 400 with Go's wording, after `prefix`."""
    data = bytes(body)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        problem = go_syntax_error(data)
        if problem is None:
            # Go accepts invalid UTF-8 (it substitutes U+FFFD); orjson does not.
            try:
                return orjson.loads(data.decode("utf-8", "replace"))
            except orjson.JSONDecodeError:
                problem = str(e)
        raise _bad_request(prefix + problem) from None


# --------------------------------------------------------------------------------------------------
# Decoding a PATCH body


def decode_patch(body: Any, patch_type: str) -> Any:
    """Decode and check a PATCH body of `patch_type` (one of the three content types above).

    Mirrors what kube-apiserver does before patching, with the default field validation ("Warn"):
    it decodes the body strictly into the Go type of the patch, and answers 400 with the decoder's
    message when that fails. Unknown fields and duplicate keys, which only produce warnings there,
    are accepted silently.
    """
    if patch_type == JSON_PATCH:
        patch = _loads(body, "error decoding patch: ")
        _check_json_patch(patch)
        return patch
    if patch_type == MERGE_PATCH:
        patch = _loads(body, "error decoding patch: ")
        if patch is None:
            # The strict decode accepts `null`; evanphx's MergePatch then refuses it.
            raise _bad_request("Invalid JSON Patch")
        if not isinstance(patch, dict):
            raise _bad_request(
                f"error decoding patch: json: cannot unmarshal {_json_type(patch)} "
                "into Go value of type map[string]interface {}"
            )
        return patch
    if patch_type == STRATEGIC_MERGE_PATCH:
        patch = _loads(body, "")  # strategicPatchObject reports decoding errors without a prefix
        _check_strategic_patch(patch)
        return patch
    raise ValueError(f"unknown patch type {patch_type!r}")


def _check_json_patch(patch: Any) -> None:
    """The strict decode of a JSON patch into []jsonPatchOp (op, path and from must be strings)."""
    if patch is None:
        return  # decodes to an empty patch
    if not isinstance(patch, list):
        raise _bad_request(
            f"error decoding patch: json: cannot unmarshal {_json_type(patch)} "
            "into Go value of type []handlers.jsonPatchOp"
        )
    for op in patch:
        if op is None:
            continue
        if not isinstance(op, dict):
            raise _bad_request(
                f"error decoding patch: json: cannot unmarshal {_json_type(op)} "
                "into Go value of type handlers.jsonPatchOp"
            )
        for name, value in op.items():
            if name in ("op", "path", "from") and value is not None and not isinstance(value, str):
                raise _bad_request(
                    f"error decoding patch: json: cannot unmarshal {_json_type(value)} "
                    f"into Go struct field jsonPatchOp.{name} of type string"
                )
    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch)}",
            "RequestEntityTooLarge",
            413,
        )


def _check_strategic_patch(patch: Any) -> None:
    if patch is not None and not isinstance(patch, dict):
        raise _bad_request(f"json: cannot unmarshal {_json_type(patch)} into Go value of type map[string]interface {{}}")


# --------------------------------------------------------------------------------------------------
# JSON patch (RFC 6902) the way gopkg.in/evanphx/json-patch.v4 applies it
#
# Upstream departs from the RFC in ways clients can see, all kept here:
# - `replace` of a missing object member adds it (only a missing parent or array index fails);
# - array indices are parsed like Go's strconv.Atoi ("+1", "01" are fine) and may be negative,
#   counting from the end (SupportNegativeIndices defaults to true);
# - a path without a leading "/" silently drops its first token; "" (the whole document) works
#   only for `replace` (with an object or array) and `test`;
# - an operation without "value" adds/replaces null; `copy` from a missing member copies null;
# - `test` of a missing member against null (or no value) passes.
# Every failure becomes the same 422 Status; the library's message goes to PatchError.detail.


class _OpFailed(Exception):
    """An operation failed; the argument is evanphx's error text."""


_ABSENT = object()  # an operation member that is not there (unlike one that is JSON null)
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_UNESCAPE_RE = re.compile(r"~[01]")


def _unescape(token: str) -> str:
    # A single left-to-right pass ("~01" is "~1"), as RFC 6901 requires and strings.Replacer does.
    return _UNESCAPE_RE.sub(lambda m: "/" if m.group() == "~1" else "~", token)


def _atoi(key: str) -> int:
    if not _INT_RE.match(key):
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": invalid syntax')
    value = int(key)
    if not -(2**63) <= value < 2**63:
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": value out of range')
    return value


def _invalid_index(idx: int) -> _OpFailed:
    return _OpFailed(f"Unable to access invalid index: {idx}: invalid index referenced")


def _index(ary: list, key: str) -> int:
    """partialArray.get/set/remove's reading of an index into an existing element."""
    idx = _atoi(key)
    if idx < 0:
        if idx < -len(ary):
            raise _invalid_index(idx)
        idx += len(ary)
    if idx >= len(ary):
        raise _invalid_index(idx)
    return idx


def _get(container: Any, key: str) -> Any:
    """container.get: None for a missing or null member; errors only for a bad array index."""
    if isinstance(container, dict):
        return container.get(key)
    return container[_index(container, key)]


def _add(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    try:
        idx = _atoi(key)
    except _OpFailed as e:
        raise _OpFailed(f"value was not a proper array index: '{key}': {e}") from None
    size = len(container) + 1
    if idx >= size or idx < -size:
        raise _invalid_index(idx)
    if idx < 0:
        idx += size
    container.insert(idx, value)


def _remove(container: Any, key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _OpFailed(f"Unable to remove nonexistent key: {key}: missing value")
        del container[key]
        return
    del container[_index(container, key)]


def _find(root: Any, path: str) -> Tuple[Any, str]:
    """findObject: the container holding the last token of `path`, or (None, "")."""
    tokens = path.split("/")
    if len(tokens) < 2:
        return None, ""
    node = root
    for token in tokens[1:-1]:
        try:
            node = _get(node, _unescape(token))
        except _OpFailed:
            return None, ""
        if not isinstance(node, (dict, list)):
            return None, ""
    return node, _unescape(tokens[-1])


def _member(op: dict, name: str, missing: str) -> str:
    value = op.get(name)
    if value is None:
        raise _OpFailed(missing)
    return value  # a string: decode checked the types


def _apply_operation(box: List[Any], op: Any) -> None:
    """Apply one operation to box[0] (a one-element list, so `replace ""` can swap the document)."""
    op = op or {}
    kind = op.get("op") if isinstance(op.get("op"), str) else "unknown"
    value = op.get("value", _ABSENT)
    inserted = None if value is _ABSENT else _clone(value)
    no_path = "operation missing path field: missing value"
    no_from = "operation, missing from field: missing value"

    if kind == "add":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed:
            raise _OpFailed("add operation failed to decode path: missing value") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f'add operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _add(con, key, inserted)
        except _OpFailed as e:
            raise _OpFailed(f"error in add for path: '{path}': {e}") from None

    elif kind == "remove":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed:
            raise _OpFailed("remove operation failed to decode path: missing value") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f'remove operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _remove(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in remove for path: '{path}': {e}") from None

    elif kind == "replace":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed as e:
            raise _OpFailed(f"replace operation failed to decode path: {e}") from None
        if path == "":
            if not isinstance(inserted, (dict, list)):
                raise _OpFailed("replace operation value must be object or array: %!w(<nil>)")
            box[0] = inserted
            return
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"replace operation does not apply: doc is missing path: {path}: missing value")
        if isinstance(con, dict):
            con[key] = inserted  # upstream: a missing member is simply set
            return
        try:
            con[_index(con, key)] = inserted
        except _OpFailed:
            raise _OpFailed(f"replace operation does not apply: doc is missing key: {path}: missing value") from None

    elif kind == "move":
        try:
            source = _member(op, "from", no_from)
        except _OpFailed as e:
            raise _OpFailed(f"move operation failed to decode from: {e}") from None
        con, key = _find(box[0], source)
        if con is None:
            raise _OpFailed(f"move operation does not apply: doc is missing from path: {source}: missing value")
        try:
            moved = _get(con, key)
            _remove(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in move for path: '{key}': {e}") from None  # sic: the key, not the path
        try:
            path = _member(op, "path", no_path)
        except _OpFailed as e:
            raise _OpFailed(f"move operation failed to decode path: {e}") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"move operation does not apply: doc is missing destination path: {path}: missing value")
        try:
            _add(con, key, moved)
        except _OpFailed as e:
            raise _OpFailed(f"error in move for path: '{path}': {e}") from None

    elif kind == "test":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed as e:
            raise _OpFailed(f"test operation failed to decode path: {e}") from None
        if path == "":
            if value is _ABSENT or not _json_equal(box[0], value):
                raise _OpFailed(f"testing value {path} failed: test failed")
            return
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"test operation does not apply: is missing path: {path}: missing value")
        try:
            current = _get(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in test for path: '{path}': {e}") from None
        if current is None:
            passed = value is _ABSENT or value is None
        else:
            passed = value is not _ABSENT and _json_equal(current, value)
        if not passed:
            raise _OpFailed(f"testing value {path} failed: test failed")

    elif kind == "copy":
        try:
            source = _member(op, "from", no_from)
        except _OpFailed as e:
            raise _OpFailed(f"copy operation failed to decode from: {e}") from None
        con, key = _find(box[0], source)
        if con is None:
            raise _OpFailed(f"copy operation does not apply: doc is missing from path: {source}: missing value")
        try:
            copied = _clone(_get(con, key))
        except _OpFailed as e:
            raise _OpFailed(f"error in copy for from: '{source}': {e}") from None
        try:
            path = _member(op, "path", no_path)
        except _OpFailed:
            raise _OpFailed("copy operation failed to decode path: missing value") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"copy operation does not apply: doc is missing destination path: {path}: missing value")
        try:
            _add(con, key, copied)
        except _OpFailed as e:
            raise _OpFailed(f"error while adding value during copy: {e}") from None

    else:
        raise _OpFailed(f"Unexpected kind: {kind}")


def apply_json_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations, or the raw body as bytes) to `doc`.

    Raises PatchError: 400 for a patch that does not decode as a list of operations, 413 past
    MAX_JSON_PATCH_OPERATIONS, 422 (upstream's generic message; the cause in `.detail`) for an
    operation that does not apply: a failed `test`, a missing path, an unknown `op`...
    """
    if isinstance(patch, _BYTES):
        patch = decode_patch(patch, JSON_PATCH)
    else:
        _check_json_patch(patch)
    box = [_clone(doc)]
    if not isinstance(box[0], (dict, list)):
        raise _rejected(f"json: cannot unmarshal {_json_type(box[0])} into Go value of type jsonpatch.partialDoc")
    try:
        for op in patch or ():
            _apply_operation(box, op)
    except _OpFailed as e:
        raise _rejected(str(e)) from None
    return box[0]


# --------------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386) the way evanphx's MergePatch applies it
#
# One upstream quirk shows: where the patch value is copied in (the target member is missing, null
# or not an object) it is pruned of nulls recursively, through arrays too (objects inside arrays
# lose their null members) -- but an array replacing an object is copied as it is.


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]  # null elements stay
    return value


def _merge_docs(doc: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif doc.get(key) is None:
            doc[key] = _prune_nulls(value)
        else:
            doc[key] = _merge_value(doc[key], value)


def _merge_value(current: Any, patch: Any) -> Any:
    if not isinstance(current, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return patch
    _merge_docs(current, patch)
    return current


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch to `doc`.

    With decoded values this is plain RFC 7386 (a non-object patch replaces the document). Given
    the raw body as bytes, the body is first checked the way kube-apiserver checks a merge patch
    body: it must be a JSON object (PatchError 400 otherwise).
    """
    if isinstance(patch, _BYTES):
        patch = decode_patch(patch, MERGE_PATCH)
    patch = _clone(patch)
    if not isinstance(patch, dict):
        return _prune_nulls(patch)
    if not isinstance(doc, dict):
        return _prune_nulls(patch)
    result = _clone(doc)
    _merge_docs(result, patch)
    return result


# --------------------------------------------------------------------------------------------------
# Strategic merge patch: the apply half of k8s.io/apimachinery/pkg/util/strategicpatch
#
# The functions below keep the shape of upstream's (mergeMap, mergeSlice, mergePatchIntoOriginal,
# normalizeElementOrder...) and, like them, work in place: the public entry point hands them private
# copies of the document and of the patch. Schemas are `megaplane.apiserver.schema.definitions` dicts; None means
# "no information", which gives every field an empty patch strategy (maps merge, lists are
# replaced, directives still work): upstream's behaviour for a field its schema does not describe.

_DIRECTIVE = "$patch"
_DELETE_PREFIX = "$deleteFromPrimitiveList"
_ORDER_PREFIX = "$setElementOrder"
_RETAIN_KEYS = "$retainKeys"

_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_ORDER_LIST = "invalid patch format of setElementOrder list"


def apply_strategic_merge_patch(doc: dict, patch: dict, schema: Optional[dict]) -> dict:
    """Apply a Kubernetes strategic merge patch to `doc`, whose kind's schema is `schema`.

    `schema` is the kind's definition from `megaplane.apiserver.schema.definitions`, e.g.
    `definitions()[definition_for("", "v1", "Pod")]`, or None when there is none (the patch then
    behaves like a JSON merge patch that also understands the `$patch` directives).
    `patch` may be the raw body as bytes. Raises PatchError (400 for a malformed patch or
    directive, 422 for a patch that does not fit the object).
    """
    if isinstance(patch, _BYTES):
        patch = decode_patch(patch, STRATEGIC_MERGE_PATCH)
    else:
        _check_strategic_patch(patch)
    original = _clone(doc) if doc is not None else {}
    if patch is None:
        return original
    return _merge_map(original, _clone(patch), _object_schema(schema))


def _object_schema(schema: Optional[dict]) -> Optional[dict]:
    return _schema.resolve(schema) if schema is not None else None


def _field(schema: Optional[dict], key: str) -> Tuple[Optional[dict], str, str]:
    """(property schema, patch strategy without retainKeys, merge key) of field `key`.

    Upstream: LookupPatchMetadataForStruct/ForSlice + extractRetainKeysPatchStrategy. retainKeys is
    dropped from the strategy because applying a patch never looks at it: `$retainKeys` directives
    act wherever the patch carries them.
    """
    prop = _schema.property_schema(schema, key)
    if prop is None:
        return None, "", ""
    strategies = [s for s in _schema.list_strategy(prop).split(",") if s]
    others = [s for s in strategies if s != "retainKeys"]
    if len(strategies) > 2 or len(others) > 1:
        raise _invalid(f"unexpected patch strategy: [{' '.join(strategies)}]")
    return prop, (others[0] if others else ""), _schema.list_merge_key(prop) or ""


def _items_schema(prop: Optional[dict]) -> Optional[dict]:
    if prop is None:
        return None
    items = _schema.resolve(prop).get("items")
    return _schema.resolve(items) if isinstance(items, dict) else None


def _strip_prefix(key: str, prefix: str, error: str) -> str:
    """extractKey: "$prefix/field" -> "field" (anything else is a malformed directive)."""
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise _bad_request(error)
    return rest


def _merge_map(original: dict, patch: dict, schema: Optional[dict]) -> dict:
    """mergeMap: merge `patch` into `original` (in place) and return the result."""
    if _DIRECTIVE in patch:
        return _map_directive(patch)
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)

    for key, value in list(patch.items()):
        delete_list = key.startswith(_DELETE_PREFIX)
        if delete_list:
            key = _strip_prefix(key, _DELETE_PREFIX, _BAD_PRIMITIVE_LIST)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key, _ABSENT)
        if current is _ABSENT or _kind(current) != _kind(value):
            # Nothing to merge with: the patch value goes in, minus nulls and directives. (A
            # deletion list for a list that is not there deletes nothing.)
            if not delete_list:
                _discard_nulls(value)
                value, keep = _remove_directives(value)
                if keep:
                    original[key] = value
                else:
                    original.pop(key, None)
            continue
        if isinstance(current, dict):
            prop, strategy, _ = _field(schema, key)
            original[key] = value if strategy == "replace" else _merge_map(current, value, _object_schema(prop))
        elif isinstance(current, list):
            prop, strategy, merge_key = _field(schema, key)
            original[key] = _merge_list(current, value, _items_schema(prop), strategy, merge_key, delete_list)[0]
        else:
            original[key] = value
    return original


def _map_directive(patch: dict) -> dict:
    """handleDirectiveInMergeMap: `$patch` in a map replaces it or empties it; nothing else exists.

    `$patch: merge` (which some documentation calls the default) is refused by upstream, here too.
    """
    directive = patch[_DIRECTIVE]
    if directive == "replace":
        del patch[_DIRECTIVE]
        return patch
    if directive == "delete":
        return {}
    raise _invalid(f"unknown patch type: {_go_s(directive)} in map: {_go_v(patch)}")


def _apply_retain_keys(original: dict, patch: dict) -> None:
    """applyRetainKeysDirective: drop the fields of `original` not listed in `$retainKeys`.

    Every field the patch sets must be listed (nulls and parallel lists aside).
    """
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise _bad_request(_BAD_RETAIN_KEYS)
    keep = {_scalar_key(k) for k in retained if not isinstance(k, (dict, list))}
    for key, value in patch.items():
        if value is None or key.startswith(_DELETE_PREFIX) or key.startswith(_ORDER_PREFIX):
            continue
        if _scalar_key(key) not in keep:
            raise _bad_request(_BAD_RETAIN_KEYS)
    for key in list(original):
        if _scalar_key(key) not in keep:
            del original[key]


def _merge_ordered_lists(original: dict, patch: dict, schema: Optional[dict]) -> None:
    """mergePatchIntoOriginal: merge each list that has a `$setElementOrder/<field>` and order it.

    The order list comes first, then the order of the patch list, then the order of the live list
    (see normalizeElementOrder). The merged lists leave the patch so the main loop skips them.
    """
    for directive in [k for k in patch if k.startswith(_ORDER_PREFIX)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise _invalid(f"expected a []interface {{}}, but received a {_go_type(order)}")
        key = _strip_prefix(directive, _ORDER_PREFIX, _BAD_ORDER_LIST)
        in_original, in_patch = key in original, key in patch
        for value in (original.get(key, []), patch.get(key, [])):
            if not isinstance(value, list):
                raise _invalid(f"expected a []interface {{}}, but received a {_go_type(value)}")
        current: list = original.get(key, [])
        patch_list: list = patch.get(key, [])
        prop, strategy, merge_key = _field(schema, key)
        _check_order(patch_list, order, merge_key)

        merged: list
        live: list
        if in_original and not in_patch:
            merged, live = current, current
        elif in_patch and not in_original:
            merged, live = _remove_directives(patch_list)[0], []
        elif in_original and in_patch:
            merged, live = _merge_list(current, patch_list, _items_schema(prop), strategy, merge_key, False)
        else:
            continue

        if merge_key:
            ordered, server_only = _partition_maps(merged, order, merge_key)
        else:
            ordered, server_only = _partition_primitives(merged, order)
        kind = _element_kind(current, patch_list)
        original[key] = _normalize_order(ordered, server_only, order, live, merge_key, kind)
        patch.pop(key, None)


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """validatePatchWithSetOrderList: the patch list must follow the order list (deletions aside)."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        items, _ = _split_deletions(patch_list)
    i = j = 0
    while i < len(items) and j < len(order):
        if isinstance(items[i], dict) and _DIRECTIVE in items[i]:
            i += 1
            continue
        if _merge_key_equal(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items) and j >= len(order):
        raise _invalid(
            f"The order in patch list:\n{_go_v(patch_list)}\n doesn't match {_ORDER_PREFIX} list:\n{_go_v(order)}\n"
        )


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _go_eq(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _invalid(f"expected a map[string]interface {{}}, but received a {_go_type(item)}")
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return _go_eq(left[merge_key], right[merge_key])


def _no_merge_key(item: dict, merge_key: str) -> PatchError:
    return _invalid(f"map: {_go_v(item)} does not contain declared merge key: {merge_key}")


def _merge_list(
    current: list, patch: list, items: Optional[dict], strategy: str, merge_key: str, delete_list: bool
) -> Tuple[list, list]:
    """mergeSliceHandler: merge lists whose strategy is merge, replace the others.

    Returns the merged list and the live list as the caller sees it afterwards (see _merge_maps).
    """
    if strategy == "merge" or delete_list:
        return _merge_slice(current, patch, items, merge_key, delete_list)
    return patch, current


def _merge_slice(current: list, patch: list, items: Optional[dict], merge_key: str, delete_list: bool) -> Tuple[list, list]:
    """mergeSlice: lists of primitives merge as sets, lists of maps element-wise by merge key."""
    if not current and not patch:
        return current, current
    kind = _element_kind(current, patch)
    if kind != "map":
        if delete_list:
            doomed = {_scalar_key(v) for v in patch}
            return [v for v in current if _scalar_key(v) not in doomed], current
        merged = _unique(current + patch)
        ordered, server_only = _partition_primitives(merged, patch)
        return _normalize_order(ordered, server_only, patch, current, "", kind), current
    if not merge_key:
        raise _invalid("cannot merge lists without merge key for struct")
    return _merge_maps(current, patch, items, merge_key)


def _merge_maps(current: list, patch: list, items: Optional[dict], merge_key: str) -> Tuple[list, list]:
    """mergeSliceWithSpecialElements + mergeSliceWithoutSpecialElements + the final ordering.

    Upstream edits the live list in place through Go slices: deletions shift the elements of the
    array behind the caller's slice, and new elements are appended into the room that frees until
    the array is full. mergePatchIntoOriginal later orders server-only elements by that array, so
    which elements land where decides the order a `$setElementOrder` patch produces (upstream's test
    "add map and delete map from merging list" depends on it). `backing` plays that array, and is
    returned as what the caller sees.
    """
    backing = list(current)
    capacity = len(backing)
    length = len(backing)
    plain: List[dict] = []
    replace = False
    for element in patch:
        if _DIRECTIVE not in element:
            plain.append(element)
            continue
        directive = element[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            while True:
                i = _find_by_key(backing, length, merge_key, element[merge_key])
                if i < 0:
                    break
                backing[i : length - 1] = backing[i + 1 : length]  # the last slot keeps a stale copy
                length -= 1
        elif directive == "replace":
            replace = True  # the whole list becomes the patch's plain elements
        elif directive == "merge":
            raise _invalid("merging lists cannot yet be specified in the patch")
        else:
            raise _invalid(f"unknown patch type: {_go_s(directive)} in map: {_go_v(element)}")

    if replace:
        merged = plain
        server_order = plain
        plain = []
    else:
        server_order = backing[:length]
        work = backing  # shares `backing` until an append needs more room than it has
        for element in plain:
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            i = _find_by_key(work, length, merge_key, element[merge_key])
            if i >= 0:
                work[i] = _merge_map(work[i], element, items)
            elif work is backing and length < capacity:
                work[length] = element
                length += 1
            else:
                if work is backing:
                    work = backing[:length]  # Go's append copies to a new array here
                work.append(element)
                length += 1
        merged = work[:length]

    ordered, server_only = _partition_maps(merged, plain, merge_key)
    return _normalize_order(ordered, server_only, plain, server_order, merge_key, "map"), backing


def _find_by_key(elements: list, length: int, merge_key: str, value: Any) -> int:
    """findMapInSliceBasedOnKeyValue over elements[:length]: index of the first match, or -1."""
    for i in range(length):
        element = elements[i]
        if not isinstance(element, dict):
            raise _invalid(f"value for key {i} is not a map")
        if merge_key in element and _go_eq(element[merge_key], value):
            return i
    return -1


def _element_kind(*lists: list) -> str:
    """sliceElementType: the one Go type of all elements (lists of lists are refused)."""
    kind = None
    for values in lists:
        for value in values:
            this = _kind(value)
            if kind is None:
                if this == "slice":
                    raise _rejected("lists of lists are not supported")
                kind = this
            elif this != kind:
                raise _invalid(f"list element types are not identical: {_go_v(list(lists))}")
    if kind is None:
        raise _invalid("no elements in any of the given slices")
    return kind


def _unique(values: list) -> list:
    """deduplicateScalars (order does not matter: _normalize_order sorts the result)."""
    seen = set()
    out = []
    for value in values:
        key = _scalar_key(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _partition_primitives(values: list, by: list) -> Tuple[list, list]:
    """partitionPrimitivesByPresentInList: (values found in `by`, the others)."""
    present = {_scalar_key(v) for v in by if not isinstance(v, (dict, list))}
    inside = [v for v in values if not isinstance(v, (dict, list)) and _scalar_key(v) in present]
    outside = [v for v in values if isinstance(v, (dict, list)) or _scalar_key(v) not in present]
    return inside, outside


def _partition_maps(values: list, by: list, merge_key: str) -> Tuple[list, list]:
    """partitionMapsByPresentInList: (elements whose merge key appears in `by`, the others)."""
    inside: list = []
    outside: list = []
    for value in values:
        if not isinstance(value, dict):
            raise _invalid(f"expected a map[string]interface {{}}, but received a {_go_type(value)}")
        if merge_key not in value:
            raise _no_merge_key(value, merge_key)
        (inside if _find_by_key(by, len(by), merge_key, value[merge_key]) >= 0 else outside).append(value)
    return inside, outside


def _split_deletions(values: list) -> Tuple[list, list]:
    """extractToDeleteItems: (elements, elements marked `$patch: delete`)."""
    kept: list = []
    deleted: list = []
    for value in values:
        if not isinstance(value, dict):
            raise _invalid(f"expected a map[string]interface {{}}, but received a {_go_type(value)}")
        (deleted if value.get(_DIRECTIVE) == "delete" else kept).append(value)
    return kept, deleted


def _positions(order: list, merge_key: str, kind: str) -> Callable[[Any], int]:
    """index(): the position in `order` of an element (by merge key for maps), -1 if absent."""

    def ident(value: Any) -> Any:
        if kind == "map":
            return value.get(merge_key) if isinstance(value, dict) else None
        return value

    first: Dict[Tuple[str, Any], int] = {}
    unhashable = False
    for i, value in enumerate(order):
        v = ident(value)
        if isinstance(v, (dict, list)):
            unhashable = True
            continue
        first.setdefault(_scalar_key(v), i)

    def position(value: Any) -> int:
        v = ident(value)
        if isinstance(v, (dict, list)) or unhashable:
            return next((i for i, o in enumerate(order) if _go_eq(ident(o), v)), -1)
        return first.get(_scalar_key(v), -1)

    return position


def _sort_by(values: list, order: list, merge_key: str, kind: str) -> list:
    """normalizeSliceOrder: sort `values` by their position in `order`, deletions last.

    Upstream's comparator is only a true order when every element is found in `order`; the callers
    guarantee that, so a stable sort by position is the same thing.
    """
    deleted: list = []
    if kind == "map":
        for value in values + order:
            if not isinstance(value, dict):
                raise _invalid(f"expected a map[string]interface {{}}, but received a {_go_type(value)}")
            if merge_key not in value:
                raise _no_merge_key(value, merge_key)
        values, deleted = _split_deletions(values)
    position = _positions(order, merge_key, kind)
    ranked = sorted(values, key=lambda v: (p if (p := position(v)) >= 0 else len(order)))
    return ranked + deleted


def _normalize_order(ordered: list, server_only: list, order: list, live: list, merge_key: str, kind: str) -> list:
    """normalizeElementOrder + mergeSortedSlice.

    Elements named in the patch (`ordered`) keep the patch's order, the others the live order; the
    two runs are then interleaved by the live order. An element the live list does not have is
    never "after" anything, so it goes before the server-only elements still waiting: this is why
    a plain patch puts a new list element first, unless a `$setElementOrder` says otherwise.
    """
    right = _sort_by(ordered, order, merge_key, kind)
    left = _sort_by(server_only, live, merge_key, kind)
    position = _positions(live, merge_key, kind)
    out = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = position(left[i]), position(right[j])
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _discard_nulls(value: Any) -> None:
    """discardNullValuesFromPatch: drop null members of maps, through maps and lists (in place)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _remove_directives(value: Any) -> Tuple[Any, bool]:
    """removeDirectives: (value without maps that carry `$patch`, whether to keep the value at all).

    Used where a patch value has nothing to merge with. Only `$patch` is looked for: other
    directive keys (`$retainKeys`, parallel lists) stay, as upstream leaves them for the typed
    decode that follows to drop.
    """
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        for key in list(value):
            inner, keep = _remove_directives(value[key])
            if keep:
                value[key] = inner
            else:
                del value[key]
        return value, True
    if isinstance(value, list):
        out = []
        for v in value:
            inner, keep = _remove_directives(v)
            if keep:
                out.append(inner)
        return out, True
    return value, True
