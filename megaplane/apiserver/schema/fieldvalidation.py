"""Server-side field validation: what decoding into a typed object does to unknown fields and integers.

This module owns the ``fieldValidation`` query parameter of create / update /
patch (``Ignore``, ``Warn``, ``Strict``) and the pruning that comes with it:
upstream decodes a built-in kind's body into its Go struct, so fields the
struct has no place for are dropped and every value must be of the JSON type
its Go field decodes from (integers within int32 / int64).

* `prune` is the call of every write path (after a patch is applied, on its
  result): it removes unknown fields from the object in place, so stored
  bytes hold only known fields, applies the directive to them (``Strict``
  raises `FieldValidationError`, HTTP 400; ``Warn`` and the empty default
  return the ``Warning:`` header texts; ``Ignore`` drops them silently), and
  raises `FieldTypeError` (400 whatever the directive) for a value of the
  wrong JSON type (a string for a list of containers, a number for a label
  value) or an integer field holding a fraction or a number outside int32 /
  int64, with encoding/json's text (``json: cannot unmarshal string into Go
  struct field PodSpec.spec.containers of type []v1.Container``). The patch handler shows both as 422 on the
  field "patch" (`patch_invalid`).
* `unknown_fields` / `validate` report without changing anything: paths in
  upstream's format (``spec.containers[0].foo``; map entries add ``.key``),
  document order, capped at 100 and de-duplicated, as upstream's strict
  JSON decoder (sigs.k8s.io/json) does.

Free-form parts of the schema are not walked: maps (``additionalProperties``
schemas such as labels, annotations, ``data``), objects with neither
properties nor a value schema (RawExtension, FieldsV1, apiextensions JSON),
``x-kubernetes-preserve-unknown-fields``, and scalars whose JSON form may be
an object in error (IntOrString, Quantity). A value of the wrong JSON type
is not an unknown field: `unknown_fields` skips it, `prune` refuses it.
String formats are not checked here (base64 of ``[]byte``, RFC 3339 times). Kinds without a published schema (custom resources) have no
unknown fields here.

Duplicate fields can only be seen in the raw JSON text; the server detects
those elsewhere and may pass them in (``duplicates=``) so one strict error or
one set of warnings covers both, as upstream reports them together.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import msgspec
import orjson

from megaplane.apimachinery.errors import StatusError, field_error
from megaplane.apiserver.schema.fieldschema import INT_RANGES, Node, kind_node, struct_type

__all__ = [
    "DIRECTIVES",
    "FieldTypeError",
    "FieldValidationError",
    "InvalidDirectiveError",
    "unknown_fields",
    "prune",
    "patch_invalid",
    "validate",
    "decode_error_message",
]

STRICT = "Strict"
WARN = "Warn"
IGNORE = "Ignore"
# "" is what a request without the parameter carries; upstream treats it as Warn.
DIRECTIVES = ("", IGNORE, STRICT, WARN)

# sigs.k8s.io/json stops collecting strict errors after this many.
MAX_ERRORS = 100


class FieldValidationError(Exception):
    """Strict field validation failed: HTTP 400, reason BadRequest.

    `errors` are the individual messages ('unknown field "spec.foo"', 'duplicate
    field "spec.replicas"'); str(self) is upstream's strict decoding text. The API
    server wraps it per kind with `decode_error_message`.
    """

    code = 400
    reason = "BadRequest"

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("strict decoding error: " + ", ".join(self.errors))

    @property
    def message(self) -> str:
        return str(self)


class InvalidDirectiveError(ValueError):
    """fieldValidation had a value other than Ignore / Warn / Strict.

    Upstream validates the query parameters before decoding the body and answers
    **422 Invalid** (not 400) on the options kind of the verb, e.g.::

        CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Foo":
        supported values: "", "Ignore", "Strict", "Warn"

    `status()` returns the full metav1.Status body.
    """

    code = 422
    reason = "Invalid"

    def __init__(self, directive: str, options_kind: str = "CreateOptions") -> None:
        self.directive = directive
        self.options_kind = options_kind
        supported = ", ".join(_go_quote(d) for d in sorted(DIRECTIVES))
        self.cause = f"Unsupported value: {_go_quote(directive)}: supported values: {supported}"
        super().__init__(f'{options_kind}.meta.k8s.io "" is invalid: fieldValidation: {self.cause}')

    def status(self) -> Dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": str(self),
            "reason": self.reason,
            "details": {
                "group": "meta.k8s.io",
                "kind": self.options_kind,
                "causes": [
                    {"reason": "FieldValueNotSupported", "message": self.cause, "field": "fieldValidation"}
                ],
            },
            "code": self.code,
        }


def decode_error_message(kind: str, version: str, detail: str) -> str:
    """Upstream's wrapper for body decoding errors of a create/update:
    'Pod in version "v1" cannot be handled as a Pod: strict decoding error: ...'."""
    return f"{kind} in version {_go_quote(version)} cannot be handled as a {kind}: {detail}"


def unknown_fields(group: str, version: str, kind: str, obj: Any) -> List[str]:
    """Dotted paths of the fields of `obj` that the kind's schema does not have."""
    found = _find(group, version, kind, obj)
    return [] if found is None else _dedupe(found.unknown)


def prune(
    group: str,
    version: str,
    kind: str,
    obj: Any,
    directive: str = "",
    *,
    duplicates: Iterable[str] = (),
    options_kind: str = "CreateOptions",
) -> List[str]:
    """What decoding `obj` into its typed object does, applied to the dict: the one call of every write.

    Unknown fields are removed from `obj` in place (so stored bytes hold only
    known fields) and the directive is applied to them: the warnings to send
    for Warn / "", nothing for Ignore, FieldValidationError for Strict (then
    `obj` is left untouched). A value its Go field cannot hold (the wrong JSON
    type; a fraction or an out-of-range number in an integer field) raises
    FieldTypeError whatever the directive, before any strict error, as the
    typed decoder fails first; `obj` is then left untouched too. A clean object costs one msgspec conversion; only an object
    with something to report is walked, once.
    """
    if directive not in DIRECTIVES:
        raise InvalidDirectiveError(directive, options_kind)
    found = _find(group, version, kind, obj)
    if found is not None and found.type_error:
        raise FieldTypeError(found.type_error)
    if directive == IGNORE or (found is None and not duplicates):
        errors: List[str] = []  # a clean object (the common case): nothing to report
    else:
        errors = _report(found.unknown if found is not None else [], duplicates)
        if directive == STRICT and errors:
            raise FieldValidationError(errors)
    if found is not None:
        for parent, key in found.drops:
            parent.pop(key, None)  # YAML aliases can put one dict in several places
        for container, at, zero in found.zeros:
            if zero is _ABSENT:
                container.pop(at, None)
            else:
                container[at] = zero
    return errors


def patch_invalid(patched: Any, detail: str) -> StatusError:
    """How the patch handler refuses a patched object that does not decode (handlers/patch.go).

    A JSON or merge patch whose result fails the typed (strict) decoding is
    422 Invalid on the field "patch", showing the patched object's JSON, with
    the decoder's text (a strict decoding error or the type error).
    """
    cause = field_error("", "patch", None, detail, shown=_go_quote(orjson.dumps(patched).decode()))
    return StatusError(422, "Invalid", f' "" is invalid: patch: {cause["message"]}', {"causes": [cause]})


class FieldTypeError(Exception):
    """A value cannot be held by its field's Go type: HTTP 400 BadRequest, whatever the directive.

    str(self) is encoding/json's UnmarshalTypeError text, e.g.
    'json: cannot unmarshal number 1.5 into Go struct field LeaseSpec.spec.leaseDurationSeconds
    of type int32'; the API server wraps it per kind with `decode_error_message`.
    """

    code = 400
    reason = "BadRequest"

    @property
    def message(self) -> str:
        return str(self)


class _Findings:
    """What the walk found: unknown paths (for messages), where they are (to drop), the first type error,
    and the nulls the typed object decodes to something else (`zeros`: container, key or index, value)."""

    __slots__ = ("unknown", "drops", "type_error", "zeros")

    def __init__(self) -> None:
        self.unknown: List[str] = []
        self.drops: List[Tuple[Dict[str, Any], str]] = []
        self.type_error = ""
        self.zeros: List[Tuple[Any, Any, Any]] = []


def _find(group: str, version: str, kind: str, obj: Any) -> Optional[_Findings]:
    """None when `obj` is clean (the common case); else what the ordered walk found."""
    root = kind_node(group, version, kind)
    if root is None or not isinstance(obj, dict):
        return None
    # Almost every object is clean: msgspec, converting to structs that forbid
    # unknown fields and hold integers in their Go range, answers that in C
    # (a set-difference pass where the schema has no struct form); only an
    # object with something to report, or a value of an unexpected type, pays
    # for the walk.
    fast = struct_type(root)
    if fast is not None:
        try:
            msgspec.convert(obj, fast)
            return None
        except msgspec.ValidationError:
            pass
    elif _clean(obj, root):
        return None
    found = _Findings()
    _walk(obj, root, [], [], "", found)
    return found if found.drops or found.type_error or found.zeros else None


def _clean(value: Any, node: Node) -> bool:
    """True when `value` has nothing to report (checked with set operations)."""
    if node.leaf:
        return True
    if value is None:
        return node.json_type not in ("object", "array")
    if not _type_ok(value, node):
        return False
    if node.int_type and type(value) is int:
        lo, hi = INT_RANGES[node.int_type]
        return bool(lo <= value <= hi)
    if isinstance(value, dict):
        props = node.props
        extra = node.extra
        if props is None:
            if extra is None or extra.leaf:
                return True
            return all(_clean(v, extra) for v in value.values())
        if extra is None and not value.keys() <= node.keys:
            return False
        for name, child in node.nested.items():
            sub = value.get(name)
            if sub is not None and not _clean(sub, child):
                return False
        if extra is not None and not extra.leaf:
            for k, v in value.items():
                if k not in props and not _clean(v, extra):
                    return False
        return True
    if isinstance(value, list):
        items = node.items
        if items is None or items.leaf:
            return True
        return all(_clean(v, items) for v in value)
    return True


_PY_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}


def _type_ok(value: Any, node: Node) -> bool:
    """`value` (not None) has the JSON type the node's Go type decodes from."""
    want = node.json_type
    if want == "number":
        return type(value) is int or type(value) is float
    if want == "int-or-string":
        return type(value) is str or type(value) is int
    return type(value) is _PY_TYPES[want]


def _walk(value: Any, node: Node, path: List[str], fields: List[str], struct: str, found: _Findings) -> None:
    """Collect what `value` has to report, in document order; paths are built only when one is found.

    `path` is upstream's strict-error path (indices, map keys); `fields` and
    `struct` are encoding/json's error context: the struct field names from
    the root and the Go struct holding the current field. The first type
    error ends the walk: the decoder's error is all that is answered then.
    """
    if found.type_error:
        return
    if value is None:
        return  # a null the parent keeps (a scalar field: Go leaves the zero value, which it omits or shows as null)
    if not _type_ok(value, node) or (node.int_type and type(value) is not str):
        found.type_error = _type_error(value, node, struct, fields)
        return
    if isinstance(value, dict):
        props = node.props
        extra = node.extra
        if props is None:
            if extra is not None and not extra.leaf:
                for key, sub in value.items():
                    if sub is None:
                        _null_entry(value, key, extra, found)
                        continue
                    path.append(key)
                    _walk(sub, extra, path, fields, struct, found)
                    path.pop()
            return
        for key, sub in value.items():
            child = props.get(key)
            in_struct = child is not None
            if child is None:
                child = extra
                if child is None:
                    if len(found.unknown) < MAX_ERRORS:
                        found.unknown.append(".".join(path + [key]).replace(".[", "["))
                    found.drops.append((value, key))
                    continue
            if child.leaf:
                continue
            if sub is None:
                if child.json_type in ("object", "array"):
                    # A null struct, list or map field decodes to its zero value, which is not encoded.
                    found.zeros.append((value, key, _ABSENT))
                continue
            path.append(key)
            if in_struct:
                fields.append(key)
                _walk(sub, child, path, fields, node.go_name, found)
                fields.pop()
            else:
                _walk(sub, child, path, fields, struct, found)
            path.pop()
    elif isinstance(value, list):
        items = node.items
        if items is not None and not items.leaf:
            for i, sub in enumerate(value):
                if sub is None:
                    _null_entry(value, i, items, found)
                    continue
                path.append(f"[{i}]")
                _walk(sub, items, path, fields, struct, found)
                path.pop()


_ABSENT = object()
# What a null decodes to as a list element or map value: the Go zero value of the element type.
_ZEROS: Dict[str, Any] = {"string": "", "boolean": False, "integer": 0, "number": 0, "int-or-string": 0}


def _null_entry(container: Any, at: Any, node: Node, found: _Findings) -> None:
    """A null list element or map value: Go stores the element type's zero value there ({} for a struct)."""
    if node.json_type == "object" and node.props is not None:
        found.zeros.append((container, at, {}))
    elif node.json_type in _ZEROS:
        found.zeros.append((container, at, _ZEROS[node.json_type]))


_JSON_WORDS = {str: "string", bool: "bool", dict: "object", list: "array", int: "number", float: "number"}


def _type_error(value: Any, node: Node, struct: str, fields: List[str]) -> str:
    """encoding/json's error for `value` where the node's Go type is, or "" if the type holds it."""
    what = _JSON_WORDS.get(type(value), "value")
    if node.int_type and (type(value) is int or type(value) is float):
        if type(value) is int:
            lo, hi = INT_RANGES[node.int_type]
            if lo <= value <= hi:
                return ""
            what = f"number {value}"
        else:
            # orjson hands back a float for a fraction, an exponent, or an integer past 64 bits; Go's
            # ParseInt refuses all three and shows the number.
            what = f"number {_go_float(value)}"
    if node.time:  # metav1.Time.UnmarshalJSON decodes a string itself: no struct field in its error
        return f"json: cannot unmarshal {what} into Go value of type string"
    if node.json_type == "int-or-string":  # as does intstr.IntOrString, into its int32 when not a string
        return f"json: cannot unmarshal {what} into Go value of type int32"
    return f"json: cannot unmarshal {what} into Go struct field {struct}.{'.'.join(fields)} of type {node.go_type}"


def _go_float(f: float) -> str:
    """A float the way a JSON text most likely wrote it: Python's shortest form, exponents as Go writes them."""
    text = repr(f)
    if "e" not in text:
        return text
    mantissa, exp = text.split("e")
    power = int(exp)
    # strconv's 'e' format: a sign and at least two digits, encoding/json trims e-07 to e-7.
    return f"{mantissa}e+{power:02d}" if power >= 0 else f"{mantissa}e-{-power}"


def validate(
    group: str,
    version: str,
    kind: str,
    obj: Any,
    directive: str,
    *,
    duplicates: Iterable[str] = (),
    options_kind: str = "CreateOptions",
) -> List[str]:
    """Apply a fieldValidation directive to a decoded object.

    Returns the warnings to send (Warn / ""), [] for Ignore; raises
    FieldValidationError for Strict when there are unknown (or the given duplicate)
    fields, InvalidDirectiveError (a ValueError) for any other directive.
    `options_kind` names the verb's options in that error: CreateOptions,
    UpdateOptions or PatchOptions.
    """
    if directive not in DIRECTIVES:
        raise InvalidDirectiveError(directive, options_kind)
    if directive == IGNORE:
        return []
    errors = _report(unknown_fields(group, version, kind, obj), duplicates)
    if directive == STRICT:
        if errors:
            raise FieldValidationError(errors)
        return []
    return errors


def _report(unknown: Iterable[str], duplicates: Iterable[str]) -> List[str]:
    errors = [f"unknown field {_go_quote(p)}" for p in unknown]
    errors += [f"duplicate field {_go_quote(p)}" for p in duplicates]
    return _dedupe(errors)[:MAX_ERRORS]


# ---------------------------------------------------------------------------------------


def _dedupe(items: List[str]) -> List[str]:
    return list(dict.fromkeys(items))  # keeps first occurrences, in order


def _go_quote(s: str) -> str:
    """Go's %q for the strings we quote: JSON escaping matches it for printable text."""
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
