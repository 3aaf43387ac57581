"""Server-side field validation: finding unknown fields and applying the fieldValidation directive.

This module owns the ``fieldValidation`` query parameter of create / update /
patch (``Ignore``, ``Warn``, ``Strict``) as far as *unknown* fields go:

* `unknown_fields` walks a decoded object against the kind's 1.32 schema
  (`megaplane.api.schema`) and lists the fields the typed object has no place
  for, in upstream's path format: ``spec.containers[0].foo``; map entries add
  ``.key`` (``spec.nodeSelector`` values are plain strings, so that only
  matters for maps of structs); order is document order, capped at 100 and
  de-duplicated, as upstream's strict JSON decoder (sigs.k8s.io/json) does.
* `validate` applies the directive: ``Strict`` raises `FieldValidationError`
  (HTTP 400 BadRequest), ``Warn`` (and the empty default) returns the warning
  strings for the ``Warning:`` response header, ``Ignore`` returns nothing.

Free-form parts of the schema are not walked: maps (``additionalProperties``
schemas such as labels, annotations, ``data``), objects with neither
properties nor a value schema (RawExtension, FieldsV1, apiextensions JSON),
``x-kubernetes-preserve-unknown-fields``, and scalars whose JSON form may be
an object in error (IntOrString, Quantity, Time). A value of the wrong JSON
type is not an unknown field (the decoder reports it differently), so it is
skipped too. Kinds without a published schema (custom resources) have no
unknown fields here.

Duplicate fields can only be seen in the raw JSON text; the server detects
those elsewhere and may pass them in (``duplicates=``) so one strict error or
one set of warnings covers both, as upstream reports them together.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence

from megaplane.api import schema

__all__ = [
    "DIRECTIVES",
    "FieldValidationError",
    "InvalidDirectiveError",
    "unknown_fields",
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
    name = schema.definition_for(group, version, kind)
    if name is None or not isinstance(obj, dict):
        return []
    out: List[str] = []
    seen: set = set()
    _walk(obj, schema.definitions()[name], "", out, seen)
    return out


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
    errors = [f"unknown field {_go_quote(p)}" for p in unknown_fields(group, version, kind, obj)]
    errors += [f"duplicate field {_go_quote(p)}" for p in duplicates]
    errors = _dedupe(errors)[:MAX_ERRORS]
    if directive == STRICT:
        if errors:
            raise FieldValidationError(errors)
        return []
    return errors


# ---------------------------------------------------------------------------------------


def _walk(value: Any, sch: Optional[Dict[str, Any]], path: str, out: List[str], seen: set) -> None:
    if sch is None or len(out) >= MAX_ERRORS:
        return
    s = schema.resolve(sch)
    if isinstance(value, dict):
        if s.get("x-kubernetes-preserve-unknown-fields"):
            return
        props = s.get("properties")
        extra = s.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):  # a map: any key, values of one schema
                for key, sub in value.items():
                    _walk(sub, extra, _join(path, key), out, seen)
            # otherwise free-form (RawExtension, FieldsV1, ...) or not an object at all
            return
        for key, sub in value.items():
            field = props.get(key)
            if field is not None:
                _walk(sub, field, _join(path, key), out, seen)
            elif isinstance(extra, dict):
                _walk(sub, extra, _join(path, key), out, seen)
            else:
                p = _join(path, key)
                if p not in seen and len(out) < MAX_ERRORS:
                    seen.add(p)
                    out.append(p)
    elif isinstance(value, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, sub in enumerate(value):
                _walk(sub, items, f"{path}[{i}]", out, seen)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


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
