"""The kinds' 1.32 schemas compiled for walking objects: which fields exist, which are integers.

`kind_node(group, version, kind)` is the root `Node` of a built-in kind
(None for kinds without a published schema, i.e. custom resources). A node
says which keys an object may have and the node of each, the value node of
a map, the element node of a list, whether the part is free-form (not
looked into: ``x-kubernetes-preserve-unknown-fields``, RawExtension,
FieldsV1, IntOrString, Quantity, Time...) and, for integer fields, the Go
type the typed object holds them in (int32 or int64) and the Go struct the
field belongs to, as encoding/json names them in its errors.

`struct_type(root)` is a msgspec type accepting exactly the objects with
no unknown field and only integers their Go type can hold, so the common
(clean) object is answered by one conversion in C; anything else takes the
ordered walk in `fieldvalidation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Dict, List, Optional, Tuple

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
    whose content is not checked; `int_type` is "int32" / "int64" for an
    integer field; `go_name` the Go struct name of an object with fields.
    """

    __slots__ = ("props", "extra", "items", "free", "int_type", "go_name", "keys", "nested", "leaf")

    def __init__(self) -> None:
        self.props: Optional[Dict[str, "Node"]] = None
        self.extra: Optional["Node"] = None
        self.items: Optional["Node"] = None
        self.free = False
        self.int_type = ""
        self.go_name = ""
        # For the fast pass: the allowed keys, the children that need a look
        # (objects, lists, integers), and whether this node never needs one.
        self.keys: frozenset = frozenset()
        self.nested: Dict[str, "Node"] = {}
        self.leaf = False


_NODES: Dict[int, Node] = {}
_KINDS: Dict[tuple, Optional[Node]] = {}
_GO_NAMES: Dict[int, str] = {}


def _go_name(resolved: Dict[str, Any]) -> str:
    """io.k8s.api.coordination.v1.LeaseSpec -> LeaseSpec (the Go type encoding/json names)."""
    if not _GO_NAMES:
        for name, d in schema.definitions().items():
            _GO_NAMES[id(d)] = name.rsplit(".", 1)[-1]
    return _GO_NAMES.get(id(resolved), "")


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
    if schema.schema_types(s) == ["integer"]:
        node.int_type = "int32" if s.get("format") == "int32" else "int64"
        return node
    props = s.get("properties")
    extra = s.get("additionalProperties")
    if props is not None:
        node.go_name = _go_name(s)
        node.props = {name: _compile(sub) for name, sub in props.items()}
    if isinstance(extra, dict):
        node.extra = _compile(extra)
    items = s.get("items")
    if isinstance(items, dict):
        node.items = _compile(items)
    return node


def _finish(node: Node, seen: set) -> None:
    """Fill the fast-pass fields once the whole graph is compiled (it may be cyclic)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    node.keys = frozenset(node.props or ())
    for child in [*(node.props or {}).values(), node.extra, node.items]:
        if child is not None:
            _finish(child, seen)
    node.leaf = node.free or (
        node.props is None and node.extra is None and node.items is None and not node.int_type
    )
    node.nested = {k: c for k, c in (node.props or {}).items() if not c.leaf}


def kind_node(group: str, version: str, kind: str) -> Optional[Node]:
    """The compiled schema of a built-in kind, None when upstream publishes none."""
    k = (group, version, kind)
    if k not in _KINDS:
        name = schema.definition_for(group, version, kind)
        node = _compile(schema.definitions()[name]) if name is not None else None
        if node is not None:
            _finish(node, set())
        _KINDS[k] = node
    return _KINDS[k]


class _NoStruct(Exception):
    """The schema has a part a struct cannot express (recursion, fields plus a value schema)."""


_STRUCTS: Dict[int, Any] = {}
_NODE_TYPES: Dict[int, Any] = {}


def struct_type(root: Node) -> Any:
    """msgspec type accepting exactly the values a clean walk accepts, or None if the schema has no such form.

    Leaves are `Any` (not looked into), integers are ints in their Go type's
    range, objects with fixed fields are structs that forbid unknown fields,
    maps are dicts and lists lists; every value may be null. Whatever fails
    the conversion takes the walk, which gives the answer.
    """
    key = id(root)
    if key not in _STRUCTS:
        try:
            _STRUCTS[key] = _to_type(root, set())
        except _NoStruct:
            _STRUCTS[key] = None
    return _STRUCTS[key]


def _to_type(node: Node, visiting: set) -> Any:
    if node.leaf:
        return Any
    if node.int_type:
        lo, hi = INT_RANGES[node.int_type]
        return Annotated[int, msgspec.Meta(ge=lo, le=hi)]
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
