"""Server-side field validation: finding unknown fields and applying the fieldValidation directive.

This module owns the ``fieldValidation`` query parameter of create / update /
patch (``Ignore``, ``Warn``, ``Strict``) as far as *unknown* fields go:

* `unknown_fields` walks a decoded object against the kind's 1.32 schema
  (`megaplane.apiserver.schema.definitions`) and lists the fields the typed object has no place
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

import msgspec

from megaplane.apiserver.schema import definitions as schema

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
    root = _kind_node(group, version, kind)
    if root is None or not isinstance(obj, dict):
        return []
    # Almost every object is clean: msgspec, converting to structs that forbid
    # unknown fields, answers that in C (a set-difference pass where the schema
    # has no struct form); only an object with unknown fields, or a value of an
    # unexpected type, pays for the ordered walk.
    fast = _struct_type(root)
    if fast is not None:
        try:
            msgspec.convert(obj, fast)
            return []
        except msgspec.ValidationError:
            pass
    elif _clean(obj, root):
        return []
    out: List[str] = []
    _check(obj, root, [], out)
    return _dedupe(out)


class _Node:
    """A schema compiled for walking: which keys an object may have, and their nodes.

    `props` None means "not an object with fixed fields"; `extra` is the value
    node of a map; `items` the element node of a list; `free` marks parts
    whose content is not checked (preserve-unknown-fields, RawExtension...).
    """

    __slots__ = ("props", "extra", "items", "free", "keys", "nested", "leaf")

    def __init__(self) -> None:
        self.props: Optional[Dict[str, "_Node"]] = None
        self.extra: Optional["_Node"] = None
        self.items: Optional["_Node"] = None
        self.free = False
        # For the fast pass: the allowed keys, the children that can hold
        # objects or lists, and whether this node never needs a look inside.
        self.keys: frozenset = frozenset()
        self.nested: Dict[str, "_Node"] = {}
        self.leaf = False


_NODES: Dict[int, _Node] = {}
_KINDS: Dict[tuple, Optional[_Node]] = {}


def _compile(sch: Dict[str, Any]) -> _Node:
    s = schema.resolve(sch)
    key = id(s)
    node = _NODES.get(key)
    if node is not None:
        return node
    node = _NODES[key] = _Node()  # registered first: schemas are recursive (JSONSchemaProps)
    if s.get("x-kubernetes-preserve-unknown-fields"):
        node.free = True
        return node
    props = s.get("properties")
    extra = s.get("additionalProperties")
    if props is not None:
        node.props = {name: _compile(sub) for name, sub in props.items()}
    if isinstance(extra, dict):
        node.extra = _compile(extra)
    items = s.get("items")
    if isinstance(items, dict):
        node.items = _compile(items)
    return node


def _finish(node: _Node, seen: set) -> None:
    """Fill the fast-pass fields once the whole graph is compiled (it may be cyclic)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    node.keys = frozenset(node.props or ())
    for child in [*(node.props or {}).values(), node.extra, node.items]:
        if child is not None:
            _finish(child, seen)
    node.leaf = node.free or (node.props is None and node.extra is None and node.items is None)
    node.nested = {k: c for k, c in (node.props or {}).items() if not c.leaf}


def _clean(value: Any, node: _Node) -> bool:
    """True when `value` has no unknown field (the common case, checked with set operations)."""
    if node.leaf:
        return True
    if isinstance(value, dict):
        props = node.props
        if props is None:
            extra = node.extra
            if extra is None or extra.leaf:
                return True
            return all(_clean(v, extra) for v in value.values() if isinstance(v, (dict, list)))
        if node.extra is None and not value.keys() <= node.keys:
            return False
        for name, child in node.nested.items():
            sub = value.get(name)
            if sub is not None and isinstance(sub, (dict, list)) and not _clean(sub, child):
                return False
        if node.extra is not None:
            extra = node.extra
            for k, v in value.items():
                if k not in props and isinstance(v, (dict, list)) and not _clean(v, extra):
                    return False
        return True
    if isinstance(value, list):
        items = node.items
        if items is None or items.leaf:
            return True
        return all(_clean(v, items) for v in value if isinstance(v, (dict, list)))
    return True


class _NoStruct(Exception):
    """The schema has a part a struct cannot express (recursion, fields plus a value schema)."""


_STRUCTS: Dict[int, Any] = {}


def _struct_type(root: _Node) -> Any:
    """msgspec type accepting exactly the values `_clean` accepts without a type error, or None.

    Leaves are `Any` (not looked into, as in `_clean`), objects with fixed
    fields are structs that forbid unknown fields, maps are dicts and lists
    lists; every value may be null. A value of a different JSON type fails the
    conversion where `_clean` would skip it, which only sends it down the
    slow walk, so the answer is the same.
    """
    key = id(root)
    if key not in _STRUCTS:
        try:
            _STRUCTS[key] = _to_type(root, set())
        except _NoStruct:
            _STRUCTS[key] = None
    return _STRUCTS[key]


_NODE_TYPES: Dict[int, Any] = {}


def _to_type(node: _Node, visiting: set) -> Any:
    if node.leaf:
        return Any
    known = _NODE_TYPES.get(id(node))
    if known is not None:
        return known
    if id(node) in visiting:
        raise _NoStruct()
    visiting.add(id(node))
    try:
        if node.props is not None:
            if node.extra is not None:
                raise _NoStruct()
            names = list(node.props)
            fields = [(f"f{i}", Optional[_to_type(node.props[n], visiting)], None) for i, n in enumerate(names)]
            t: Any = msgspec.defstruct(
                "Fields", fields, forbid_unknown_fields=True, rename={f"f{i}": n for i, n in enumerate(names)},
                gc=False,
            )
        elif node.extra is not None:
            t = Dict[str, Optional[_to_type(node.extra, visiting)]]  # type: ignore[misc]
        elif node.items is not None:
            t = List[Optional[_to_type(node.items, visiting)]]  # type: ignore[misc]
        else:
            t = Any
        _NODE_TYPES[id(node)] = t
        return t
    finally:
        visiting.discard(id(node))


def _kind_node(group: str, version: str, kind: str) -> Optional[_Node]:
    k = (group, version, kind)
    if k not in _KINDS:
        name = schema.definition_for(group, version, kind)
        node = _compile(schema.definitions()[name]) if name is not None else None
        if node is not None:
            _finish(node, set())
        _KINDS[k] = node
    return _KINDS[k]


def _check(value: Any, node: _Node, path: List[str], out: List[str]) -> None:
    """Collect unknown fields of `value`; paths are built only when one is found."""
    if len(out) >= MAX_ERRORS or node.free:
        return
    if isinstance(value, dict):
        props = node.props
        extra = node.extra
        if props is None:
            if extra is not None:
                for key, sub in value.items():
                    if isinstance(sub, (dict, list)):
                        path.append(key)
                        _check(sub, extra, path, out)
                        path.pop()
            return
        for key, sub in value.items():
            child = props.get(key)
            if child is None:
                child = extra
                if child is None:
                    if len(out) < MAX_ERRORS:
                        out.append(".".join(path + [key]).replace(".[", "["))
                    continue
            if isinstance(sub, (dict, list)):
                path.append(key)
                _check(sub, child, path, out)
                path.pop()
    elif isinstance(value, list):
        items = node.items
        if items is not None:
            for i, sub in enumerate(value):
                if isinstance(sub, (dict, list)):
                    path.append(f"[{i}]")
                    _check(sub, items, path, out)
                    path.pop()


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
