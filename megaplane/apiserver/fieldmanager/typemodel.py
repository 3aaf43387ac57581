"""The type model field ownership walks: which parts are maps, lists (and of what kind), scalars.

Built from OpenAPI schemas, as kube-openapi's schemaconv builds
structured-merge-diff's schema from them:

- an object with properties is a struct; with additionalProperties a map;
  `x-kubernetes-map-type: atomic` makes either one leaf (owned whole);
- a list is `x-kubernetes-list-type` atomic (one leaf), set (items by
  value) or map (items by their `x-kubernetes-list-map-keys`); a list the
  schema says nothing about takes upstream's default from its strategic
  merge patch annotations: patch strategy merge with a merge key is a map
  keyed by it, merge without one a set, anything else atomic;
- anything free-form (no type, preserve-unknown-fields, RawExtension) is
  upstream's "deduced" type: maps are granular, lists atomic, the rest
  scalars, decided by the value found there. Objects with no schema at all
  (custom resources without one) are deduced from the root, with
  `metadata` typed as ObjectMeta.

`kind_type(group, version, kind)` is a built-in kind's root type;
`type_for_schema(schema)` compiles any OpenAPI v3 schema (a CRD version's
`openAPIV3Schema`) into one. Nodes compile their children on first use.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple

from megaplane.apiserver.schema import definitions as defs

__all__ = ["Type", "DEDUCED", "kind_type", "type_for_schema", "SCALAR", "MAP", "LIST", "UNTYPED"]

SCALAR, MAP, LIST, UNTYPED = "scalar", "map", "list", "untyped"

# Key fields upstream's schema defaults (+default="TCP") so an item that omits one has the same identity as the
# stored (defaulted) item; the vendored JSON schemas lack the defaults.
_KEY_DEFAULTS = {"protocol": "TCP"}

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class Type:
    """One node of the type model. `kind` is SCALAR, MAP, LIST or UNTYPED (deduced from the value)."""

    __slots__ = ("kind", "atomic", "list_type", "keys", "sorted_keys", "key_defaults", "_props", "_extra", "_items", "fields",
                 "_elem", "_overrides")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        #: A map / struct / list owned as one leaf.
        self.atomic = False
        #: For lists: "atomic", "set" or "map".
        self.list_type = "atomic"
        self.keys: Tuple[str, ...] = ()
        self.sorted_keys: Tuple[str, ...] = ()
        self.key_defaults: Dict[str, Any] = {}
        self._props: Optional[Dict[str, Any]] = None
        self._extra: Any = None
        self._items: Any = None
        #: The children met so far, by name (`child` fills it): the walks of every write look here first.
        self.fields: Dict[str, "Type"] = {}
        self._elem: Optional["Type"] = None
        self._overrides: Dict[str, "Type"] = {}

    def __repr__(self) -> str:
        return f"<Type {self.kind}{' atomic' if self.atomic else ''} {self.list_type if self.kind == LIST else ''}>"

    def is_field(self, name: str) -> bool:
        """A declared struct field (upstream's "named field"), not a map entry."""
        return name in self._overrides or (self._props is not None and name in self._props)

    def child(self, name: str) -> "Type":
        """The type of a map's entry / struct's field (deduced when the schema does not say)."""
        t = self.fields.get(name)
        if t is not None:
            return t
        t = self._overrides.get(name)
        if t is None:
            if self._props is not None and name in self._props:
                t = _compile(self._props[name])
            elif isinstance(self._extra, dict):
                # A map entry: one type for every key, and the keys (labels, data...) are not remembered.
                if self._elem is None:
                    self._elem = _compile(self._extra)
                return self._elem
            else:
                return DEDUCED
        self.fields[name] = t
        return t

    def item(self) -> "Type":
        """The type of a list's items."""
        if self._elem is None:
            self._elem = _compile(self._items) if isinstance(self._items, dict) else DEDUCED
        return self._elem


DEDUCED = Type(UNTYPED)
_SCALAR = Type(SCALAR)


def _compile(schema: Dict[str, Any]) -> Type:
    return _compile_cached(_Key(schema))


class _Key:
    """Identity-hashed wrapper: schemas are dicts that live as long as the model (the vendored ones forever)."""

    __slots__ = ("schema",)

    def __init__(self, schema: Dict[str, Any]) -> None:
        self.schema = schema

    def __hash__(self) -> int:
        return id(self.schema)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.schema is self.schema


@functools.lru_cache(maxsize=None)
def _compile_cached(key: _Key) -> Type:
    return _build(key.schema)


def _build(schema: Dict[str, Any]) -> Type:
    r = defs.resolve(schema)
    if r.get("x-kubernetes-int-or-string") or "oneOf" in r or "anyOf" in r:
        return _SCALAR
    list_type = schema.get("x-kubernetes-list-type") or r.get("x-kubernetes-list-type")
    map_type = schema.get("x-kubernetes-map-type") or r.get("x-kubernetes-map-type")
    t = r.get("type")
    types = [t] if isinstance(t, str) else [x for x in (t or ()) if x != "null"]
    props = r.get("properties")
    extra = r.get("additionalProperties")
    if "array" in types:
        out = Type(LIST)
        out._items = r.get("items")
        if not list_type:
            strategy = schema.get("x-kubernetes-patch-strategy", "") or ""
            key = schema.get("x-kubernetes-patch-merge-key")
            list_type = ("map" if key else "set") if "merge" in strategy.split(",") else "atomic"
            keys = (key,) if key else ()
        else:
            keys = tuple(schema.get("x-kubernetes-list-map-keys") or r.get("x-kubernetes-list-map-keys") or ())
        out.list_type = list_type
        out.atomic = list_type == "atomic"
        out.keys = keys
        out.sorted_keys = tuple(sorted(keys))
        out.key_defaults = {k: _KEY_DEFAULTS[k] for k in keys if k in _KEY_DEFAULTS}
        return out
    if props or isinstance(extra, dict):
        out = Type(MAP)
        out._props = props or None
        out._extra = extra if isinstance(extra, dict) else None
        out.atomic = map_type == "atomic"
        return out
    if "object" in types or not types or r.get("x-kubernetes-preserve-unknown-fields"):
        return DEDUCED
    return _SCALAR


@functools.lru_cache(maxsize=None)
def kind_type(group: str, version: str, kind: str) -> Type:
    """The root type of a built-in kind (deduced, with ObjectMeta, for kinds without a published schema)."""
    name = defs.definition_for(group, version, kind)
    if name is None:
        return type_for_schema(None)
    return _compile(defs.definitions()[name])


def type_for_schema(schema: Optional[Dict[str, Any]]) -> Type:
    """The root type of objects validated by an OpenAPI v3 schema (a CRD version's openAPIV3Schema).

    None (no schema) gives the deduced type; either way `metadata` is ObjectMeta, as the API server types it
    for every object. Keep the schema alive as long as the type is used (nodes are cached by its identity)."""
    if schema is None:
        root = Type(MAP)
    else:
        root = _build(schema)
        if root.kind != MAP:
            root = Type(MAP)
    meta = defs.definitions()[_OBJECT_META]
    root._overrides = {"metadata": _compile(meta)}
    if root._props is None and root._extra is None:
        # Deduced below the root: every other key is a granular map entry of deduced type.
        root._extra = {}
    return root
