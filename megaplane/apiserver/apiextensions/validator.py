"""A custom resource against its version's openAPIV3Schema: kube-openapi's SchemaValidator, with upstream's messages.

Each failure is one field.Error cause in the order kube-openapi's validators
report them (type first: a value of the wrong type is not checked further),
converted as apiextensions-apiserver's kubeOpenAPIResultToFieldErrors does:
a type failure is `Invalid value: "<type found>": <path> in body must be of
type <type>: "<type found>"`, required is `Required value`, enum is
`Unsupported value`, maxLength `Too long`, maxItems `Too many`, the rest
`Invalid value: <value>: <kube-openapi's message>`. metadata is not walked
(ObjectMeta has its own validation); apiVersion and kind are the URL's.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import re
import uuid
from functools import lru_cache
from typing import Any, Dict, List, Optional

import orjson

from megaplane.apimachinery.errors import field_error

__all__ = ["validate", "go_value", "json_type"]

Cause = Dict[str, Any]
Schema = Dict[str, Any]


def json_type(value: Any) -> str:
    """The JSON type kube-openapi infers for a decoded value (an integral float is an integer, as the
    unstructured decoder makes it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def go_value(value: Any) -> str:
    """A bad value as field.Error prints it (%v for numbers and bools, %q for strings, %#v otherwise)."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_inner(v) for v in value) + "}"
    return "map[string]interface {}{" + ", ".join(f"{orjson.dumps(k).decode()}:{_go_inner(v)}"
                                                for k, v in sorted(value.items())) + "}"


def _go_inner(value: Any) -> str:
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}"
    if isinstance(value, float):
        return _go_float(value)
    return go_value(value)


def _go_float(f: float) -> str:
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    text = repr(f)
    if "e" in text:
        mant, exp = text.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    return text


def _num(v: Any) -> str:
    return _go_float(float(v)) if isinstance(v, float) else str(v)


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return field_error("", path, value, detail, shown=go_value(value))


def _type_invalid(path: str, found: str, detail: str) -> Cause:
    return field_error("", path, found, detail, shown=go_value(found))


def _too_many(path: str, actual: int, most: int) -> Cause:
    return {"reason": "FieldValueTooMany", "message": f"Too many: {actual}: must have at most {most} items",
            "field": path}


@lru_cache(maxsize=512)
def _pattern(p: str) -> Optional["re.Pattern[str]"]:
    try:
        return re.compile(p)
    except re.error:
        return None


def _date_time(s: str) -> bool:
    try:
        datetime.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return "T" in s.upper() or " " in s


def _date(s: str) -> bool:
    try:
        datetime.date.fromisoformat(s)
    except ValueError:
        return False
    return len(s) == 10


def _byte(s: str) -> bool:
    try:
        base64.b64decode(s, validate=True)
    except ValueError:
        return False
    return True


def _uuid(s: str) -> bool:
    try:
        uuid.UUID(s)
    except ValueError:
        return False
    return len(s) == 36


def _ip(version: int) -> Any:
    def check(s: str) -> bool:
        try:
            return ipaddress.ip_address(s).version == version
        except ValueError:
            return False
    return check


_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]{0,62})(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,62}))*\.?$")
# String formats kube-openapi's strfmt registry checks (the others pass, as upstream's unknown formats do).
_STRING_FORMATS = {
    "date-time": _date_time,
    "date": _date,
    "byte": _byte,
    "uuid": _uuid,
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "hostname": lambda s: len(s) <= 255 and bool(_HOSTNAME.match(s)),
}
_INT_BOUNDS = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}


def validate(obj: Dict[str, Any], schema: Schema) -> List[Cause]:
    """Every cause `obj` (a whole custom resource) fails its schema with; [] when it is valid."""
    out: List[Cause] = []
    props = schema.get("properties") or {}
    root = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    trimmed = dict(schema)
    trimmed["properties"] = {k: v for k, v in props.items() if k not in ("apiVersion", "kind", "metadata")}
    trimmed["required"] = [r for r in schema.get("required") or () if r not in ("apiVersion", "kind", "metadata")]
    _node(root, trimmed, "", out)
    return out


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _node(value: Any, s: Schema, path: str, out: List[Cause]) -> None:
    typ = s.get("type", "")
    int_or_string = s.get("x-kubernetes-int-or-string")
    if value is None:  # a null needs nullable (or no type)
        if typ and not s.get("nullable"):
            out.append(_type_invalid(path, "null", f'{path} in body must be of type {typ}: "null"'))
        return
    found = json_type(value)
    # kube-openapi's type validator lets the zero value of any Go type through (0, "", false).
    zero = not isinstance(value, (list, dict)) and value in (0, "", False)
    if int_or_string:
        if found not in ("integer", "string"):
            out.append(_type_invalid(path, found, f'{path} in body must be of type integer,string: "{found}"'))
            return
    elif typ and not zero:
        if found != typ and not (typ == "number" and found == "integer"):
            out.append(_type_invalid(path, found, f'{path} in body must be of type {typ}: "{found}"'))
            return
    fmt = s.get("format", "")
    if fmt and isinstance(value, str) and fmt in _STRING_FORMATS and not _STRING_FORMATS[fmt](value):
        out.append(_type_invalid(path, value, f'{path} in body must be of type {fmt}: {orjson.dumps(value).decode()}'))
    if isinstance(value, str):
        _string(value, s, path, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _number(value, s, fmt, path, out)
    if "enum" in s and value not in s["enum"]:
        allowed = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in s["enum"]]
        out.append(field_error("", path, value, "supported values: " + ", ".join(orjson.dumps(a).decode()
                                                                                   for a in allowed),
                               "FieldValueNotSupported", shown=go_value(value)))
    if isinstance(value, list):
        _array(value, s, path, out)
    elif isinstance(value, dict):
        _object(value, s, path, out)


def _string(value: str, s: Schema, path: str, out: List[Cause]) -> None:
    most = s.get("maxLength")
    if isinstance(most, int) and len(value) > most:
        out.append(field_error("", path, value, f"may not be more than {most} {'byte' if most == 1 else 'bytes'}",
                               "FieldValueTooLong"))
    least = s.get("minLength")
    if isinstance(least, int) and len(value) < least:
        out.append(_invalid(path, value, f"{path} in body should be at least {least} chars long"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        rx = _pattern(pattern)
        if rx is not None and not rx.search(value):
            out.append(_invalid(path, value, f"{path} in body should match '{pattern}'"))


def _number(value: Any, s: Schema, fmt: str, path: str, out: List[Cause]) -> None:
    bounds = _INT_BOUNDS.get(fmt)
    if bounds and not bounds[0] <= value <= bounds[1]:
        out.append(_type_invalid(path, value, f"{path} in body must be of type {fmt}: {orjson.dumps(value).decode()}"))
    mult = s.get("multipleOf")
    if isinstance(mult, (int, float)) and mult and (value / mult) != int(value / mult):
        out.append(_invalid(path, value, f"{path} in body should be a multiple of {_num(mult)}"))
    high = s.get("maximum")
    if isinstance(high, (int, float)):
        if s.get("exclusiveMaximum") and value >= high:
            out.append(_invalid(path, value, f"{path} in body should be less than {_num(high)}"))
        elif value > high:
            out.append(_invalid(path, value, f"{path} in body should be less than or equal to {_num(high)}"))
    low = s.get("minimum")
    if isinstance(low, (int, float)):
        if s.get("exclusiveMinimum") and value <= low:
            out.append(_invalid(path, value, f"{path} in body should be greater than {_num(low)}"))
        elif value < low:
            out.append(_invalid(path, value, f"{path} in body should be greater than or equal to {_num(low)}"))


def _array(value: List[Any], s: Schema, path: str, out: List[Cause]) -> None:
    least = s.get("minItems")
    if isinstance(least, int) and len(value) < least:
        out.append(_invalid(path, value, f"{path} in body should have at least {least} items"))
    most = s.get("maxItems")
    if isinstance(most, int) and len(value) > most:
        out.append(_too_many(path, len(value), most))
    if s.get("uniqueItems"):
        seen = [orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in value]
        if len(set(seen)) != len(seen):
            out.append(_invalid(path, value, f"{path} in body shouldn't contain duplicates"))
    items = s.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _node(item, items, f"{path}[{i}]", out)


def _object(value: Dict[str, Any], s: Schema, path: str, out: List[Cause]) -> None:
    if s.get("x-kubernetes-embedded-resource"):
        # An embedded object names its kind (objectmeta's validateEmbeddedResource).
        for key in ("apiVersion", "kind"):
            if not value.get(key):
                out.append(field_error("", _child(path, key), None, "must not be empty", "FieldValueRequired"))
    least, most = s.get("minProperties"), s.get("maxProperties")
    if isinstance(most, int) and len(value) > most:
        out.append(_invalid(path, value, f"{path} in body should have at most {most} properties"))
    if isinstance(least, int) and len(value) < least:
        out.append(_invalid(path, value, f"{path} in body should have at least {least} properties"))
    for req in s.get("required") or ():
        if req not in value:
            out.append(field_error("", _child(path, req), None, "", "FieldValueRequired"))
    props = s.get("properties") or {}
    extra = s.get("additionalProperties")
    for k, v in value.items():
        sub = props.get(k)
        if sub is None and isinstance(extra, dict):
            sub = extra
        if isinstance(sub, dict):
            if s.get("x-kubernetes-embedded-resource") and k == "metadata":
                continue
            _node(v, sub, _child(path, k), out)
