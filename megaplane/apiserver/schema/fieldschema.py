"""The kinds' 1.32 schemas compiled for walking objects: which fields exist, which are integers.

`kind_node(group, version, kind)` is the root `Node` of a built-in kind
(None for kinds without a published schema, i.e. custom resources). A node
says which keys an object may have and the node of each, the value node of
a map, the element node of a list, whether the part is free-form (not
looked into: ``x-kubernetes-preserve-unknown-fields``, RawExtension,
FieldsV1, IntOrString, Quantity...), the JSON type the typed object takes
there and the Go type it decodes into (``[]v1.Container``, ``int32``,
``map[string]string``), as encoding/json names them in its errors. Named
Go scalar types (v1.Protocol, ...) are not in the schemas; they are shown
as their underlying type.

`struct_type(root)` is a msgspec type accepting exactly the objects with
no unknown field and every value of its field's JSON type (integers within
their Go type's range), so the common (clean) object is answered by one
conversion in C; anything else takes the ordered walk in `fieldvalidation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Dict, List, Optional, Set, Tuple, Union

import msgspec

from megaplane.apiserver.schema import definitions as schema

__all__ = ["Node", "kind_node", "struct_type", "INT_RANGES"]

#: The values each Go integer type holds.
INT_RANGES: Dict[str, Tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


class Node:
    """A schema compiled for walking.

    `props` None means "not an object with fixed fields"; `extra` is the value
    node of a map; `items` the element node of a list; `free` marks parts
    whose content is not checked; `json_type` the JSON type a value must have
    ("object", "array", "string", "boolean", "number", "integer", "int-or-string"; "" for any);
    `int_type` is "int32" / "int64" for an integer field; `go_name` the Go
    struct name of an object with fields; `go_type` the Go type for errors;
    `time` marks metav1.Time (its own UnmarshalJSON words the error).
    """

    __slots__ = ("props", "extra", "items", "free", "json_type", "int_type", "go_name", "go_type", "time", "keys",
                 "nested", "leaf")

    def __init__(self) -> None:
        self.props: Optional[Dict[str, "Node"]] = None
        self.extra: Optional["Node"] = None
        self.items: Optional["Node"] = None
        self.free = False
        self.json_type = ""
        self.int_type = ""
        self.go_name = ""
        self.go_type = ""
        self.time = False
        # For the fast pass: the allowed keys, the children that need a look
        # (objects, lists, integers), and whether this node never needs one.
        self.keys: frozenset[str] = frozenset()
        self.nested: Dict[str, "Node"] = {}
        self.leaf = False


_NODES: Dict[int, Node] = {}
_KINDS: Dict[Tuple[str, str, str], Optional[Node]] = {}
_GO_NAMES: Dict[int, str] = {}


def _go_name(resolved: Dict[str, Any]) -> str:
    """io.k8s.api.coordination.v1.LeaseSpec -> v1.LeaseSpec (the package and type encoding/json names)."""
    if not _GO_NAMES:
        for name, d in schema.definitions().items():
            parts = name.rsplit(".", 2)
            _GO_NAMES[id(d)] = ".".join(parts[-2:])
    return _GO_NAMES.get(id(resolved), "")


_SCALARS = {"string": "string", "boolean": "bool", "number": "float64"}


def _is_int_or_string(s: Dict[str, Any]) -> bool:
    alternatives = s.get("oneOf")
    if not isinstance(alternatives, list) or len(alternatives) != 2:
        return False
    return sorted(t for alt in alternatives for t in schema.schema_types(alt)) == ["integer", "string"]


def _compile(sch: Dict[str, Any]) -> Node:
    s = schema.resolve(sch)
    key = id(s)
    node = _NODES.get(key)
    if node is not None:
        return node
    node = _NODES[key] = Node()  # registered first: schemas are recursive (JSONSchemaProps)
    if s.get("x-kubernetes-preserve-unknown-fields"):
        node.free = True
        return node
    types = schema.schema_types(s)
    if _is_int_or_string(s):
        # intstr.IntOrString decodes a string, or else an int32, itself: its error has no struct field.
        node.json_type = "int-or-string"
        node.int_type = "int32"
        node.go_type = "int32"
        return node
    if types == ["integer"]:
        node.json_type = "integer"
        node.int_type = node.go_type = "int32" if s.get("format") == "int32" else "int64"
        return node
    if len(types) == 1 and types[0] in _SCALARS:
        node.json_type = types[0]
        node.go_type = _SCALARS[types[0]]
        node.time = s.get("format") == "date-time"
        return node
    props = s.get("properties")
    extra = s.get("additionalProperties")
    if props is not None:
        node.go_type = _go_name(s)
        node.go_name = node.go_type.rsplit(".", 1)[-1]
        node.props = {name: _compile(sub) for name, sub in props.items()}
        node.json_type = "object"
    if isinstance(extra, dict):
        node.extra = _compile(extra)
        node.json_type = "object"
    items = s.get("items")
    if isinstance(items, dict):
        node.items = _compile(items)
        node.json_type = "array"
    return node


def _finish(node: Node, seen: Set[int]) -> None:
    """Fill the fast-pass fields once the whole graph is compiled (it may be cyclic)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    node.keys = frozenset(node.props or ())
    for child in [*(node.props or {}).values(), node.extra, node.items]:
        if child is not None:
            _finish(child, seen)
    if node.free:
        node.json_type = ""
    node.leaf = not node.json_type
    node.nested = {k: c for k, c in (node.props or {}).items() if not c.leaf}


def _fill_go_types(node: Node, seen: Set[int]) -> None:
    """Maps and lists are named by their element ([]v1.Container, map[string]string); structs end the recursion."""
    if id(node) in seen:
        return
    seen.add(id(node))
    for child in [*(node.props or {}).values(), node.extra, node.items]:
        if child is not None:
            _fill_go_types(child, seen)
    if node.props is None and node.extra is not None:
        node.go_type = "map[string]" + (node.extra.go_type or "interface {}")
    elif node.items is not None:
        node.go_type = "[]" + (node.items.go_type or "interface {}")


def kind_node(group: str, version: str, kind: str) -> Optional[Node]:
    """The compiled schema of a built-in kind, None when upstream publishes none."""
    k = (group, version, kind)
    if k not in _KINDS:
        name = schema.definition_for(group, version, kind)
        node = _compile(schema.definitions()[name]) if name is not None else None
        if node is not None:
            _finish(node, set())
            _fill_go_types(node, set())
        _KINDS[k] = node
    return _KINDS[k]


class _NoStruct(Exception):
    """The schema has a part a struct cannot express (recursion, fields plus a value schema)."""


_STRUCTS: Dict[int, Any] = {}
_NODE_TYPES: Dict[int, Any] = {}
_PY_SCALARS: Dict[str, Any] = {"string": str, "boolean": bool, "number": float}


def struct_type(root: Node) -> Any:
    """msgspec type accepting exactly the values a clean walk accepts, or None if the schema has no such form.

    Leaves are `Any` (not looked into), integers are ints in their Go type's
    range, strings str, booleans bool, numbers float (an int is one), objects
    with fixed fields are structs that forbid unknown fields, maps are dicts
    and lists lists; scalars may be null, objects and lists may not (a null
    there is decoded by the walk). Whatever fails
    the conversion takes the walk, which gives the answer.
    """
    key = id(root)
    if key not in _STRUCTS:
        try:
            _STRUCTS[key] = _to_type(root, set())
        except _NoStruct:
            _STRUCTS[key] = None
    return _STRUCTS[key]


def _nullable(node: Node, visiting: Set[int]) -> Any:
    """Scalars may be null; a null object or list is refused, so it takes the walk, which decodes it as Go does."""
    t = _to_type(node, visiting)
    return t if node.json_type in ("object", "array") else Optional[t]


def _to_type(node: Node, visiting: Set[int]) -> Any:
    if node.leaf:
        return Any
    if node.int_type:
        lo, hi = INT_RANGES[node.int_type]
        ranged = Annotated[int, msgspec.Meta(ge=lo, le=hi)]
        return Union[str, ranged] if node.json_type == "int-or-string" else ranged
    if node.json_type in _PY_SCALARS:
        return _PY_SCALARS[node.json_type]
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
            fields = [(f"f{i}", _nullable(node.props[n], visiting), None) for i, n in enumerate(names)]
            t: Any = msgspec.defstruct(
                "Fields", fields, forbid_unknown_fields=True, rename={f"f{i}": n for i, n in enumerate(names)},
                gc=False,
            )
        elif node.extra is not None:
            t = Dict[str, _nullable(node.extra, visiting)]  # type: ignore[misc]
        elif node.items is not None:
            t = List[_nullable(node.items, visiting)]  # type: ignore[misc]
        else:
            t = Any
        _NODE_TYPES[id(node)] = t
        return t
    finally:
        visiting.discard(id(node))
