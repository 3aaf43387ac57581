"""JSON values as Go sees them: deep copies, dynamic types, equality and fmt's %v / %s.

Upstream's patch code runs on `interface{}` values decoded by encoding/json, and its error
messages print them with fmt; these helpers reproduce those types (ints are int64, 1 != 1.0)
and that formatting for the decoded Python values the patch algorithms work on.
"""

from __future__ import annotations

import decimal
import math
from typing import Any, Tuple

import orjson

__all__ = [
    "clone",
    "clone_with_size",
    "go_kind",
    "go_type",
    "go_eq",
    "scalar_key",
    "json_equal",
    "json_type",
    "go_v",
    "go_s",
]


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (orjson round trip: several times faster than copy.deepcopy)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, deeper than orjson nests
        return _clone_slow(value)


def clone_with_size(value: Any) -> Tuple[Any, int]:
    """A deep copy and the length of the value's compact JSON encoding.

    json-patch counts a `copy` as the bytes of the copied value's JSON (deepCopy), so this is what
    the accumulated copy size limit adds up.
    """
    try:
        data = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return _clone_slow(value), _encoded_size(value)
    return orjson.loads(data), len(data)


def _clone_slow(value: Any) -> Any:
    # Iterative: a JSON patch can nest a document deeper than Python's recursion limit (copies).
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    pending = [(value, root)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, (dict, list)):
                item_copy: Any = {} if isinstance(item, dict) else []
                pending.append((item, item_copy))
                item = item_copy
            if isinstance(target, dict):
                target[key] = item
            else:
                target.append(item)
    return root


def _encoded_size(value: Any) -> int:
    """len(compact JSON of `value`), for what orjson cannot encode (too deep, ints beyond 64 bits)."""
    size = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            size += 2 + max(len(item) - 1, 0) + sum(len(orjson.dumps(k)) + 1 for k in item)
            pending.extend(item.values())
        elif isinstance(item, list):
            size += 2 + max(len(item) - 1, 0)
            pending.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            size += len(str(item))
        else:
            size += len(orjson.dumps(item))
    return size


# Decoded JSON holds exactly these types, so one dict lookup answers nearly every call (strategic merge
# asks for the kind of every list element and merge key it compares: ~90 times per Node status patch).
_KIND_OF_TYPE = {dict: "map", list: "slice", type(None): "nil", bool: "bool", int: "int64", float: "float64",
                 str: "string"}


def go_kind(value: Any) -> str:
    """The Go dynamic type a decoded JSON value has upstream (ints are int64: decoding preserves them)."""
    kind = _KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return kind
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


def go_type(value: Any) -> str:
    kind = go_kind(value)
    return _GO_TYPE_NAMES.get(kind, kind)


def go_eq(a: Any, b: Any) -> bool:
    """Go's == on two interface{} values: same dynamic type and same value (1 != 1.0, 1 != true)."""
    if type(a) is type(b):
        return bool(a == b)
    return go_kind(a) == go_kind(b) and a == b


def scalar_key(value: Any) -> Tuple[str, Any]:
    return (go_kind(value), value)


def json_equal(a: Any, b: Any) -> bool:
    """Structural JSON equality for the `test` operation (booleans are not numbers)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return go_kind(a) == go_kind(b) and a == b


def json_type(value: Any) -> str:
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


def go_v(value: Any) -> str:
    """fmt's %v of a decoded JSON value, as upstream's error messages print maps and lists."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    return str(value)


def go_s(value: Any) -> str:
    """fmt's %s: strings as they are, other scalars flagged the way fmt flags a wrong verb."""
    if isinstance(value, str):
        return value
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, (bool, int, float)):
        return f"%!s({go_type(value)}={go_v(value)})"
    return go_v(value)
