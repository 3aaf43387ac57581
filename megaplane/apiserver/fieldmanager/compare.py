"""Which fields an object sets, and which fields changed between two objects.

`field_set(obj, t)` is structured-merge-diff's TypedValue.ToFieldSet: every
scalar, every atomic part, every list item, and the map entries that are
not struct fields (or are null / empty), as members. `compare(old, new, t)`
is TypedValue.Compare: the fields added, modified and removed, a leaf
compared by value, a map or list item present on one side only being
itself added or removed, empty or null containers on both sides compared
as leaves (so {} vs null counts).

Both leave out what the field manager strips (upstream's stripMeta):
apiVersion, kind, and the server-set parts of metadata; and the fields a
write cannot set (`reset`: status through the main resource, everything
but status through the status subresource).

A create is compared against the kind's zero value, which in Go has its
value (non-pointer) structs present and empty; `ZERO` stands for such a
struct, so the first writer does not own `spec` itself, as upstream's
managed fields of a created object show.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from megaplane.apiserver.fieldmanager import fieldpath
from megaplane.apiserver.fieldmanager.fieldpath import FieldSet
from megaplane.apiserver.fieldmanager.typemodel import LIST, MAP, UNTYPED, Type

__all__ = ["compare", "field_set", "ZERO", "MISSING", "item_element", "Comparison", "STRIPPED_METADATA"]


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING: Any = _Sentinel("MISSING")
ZERO: Any = _Sentinel("ZERO")

#: metadata fields nobody owns (stripMeta), besides metadata itself as a member.
STRIPPED_METADATA = frozenset(
    ("name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation", "managedFields",
     "resourceVersion")
)
_STRIPPED_ROOT = frozenset(("apiVersion", "kind"))

# Go value structs (present, empty, in a zero object) on the way from the root of the common kinds; the
# schemas do not say which struct fields are pointers, and this only decides whether a creator owns the
# struct itself as well as what is in it.
_VALUE_STRUCTS = frozenset(
    ("metadata", "spec", "status", "template", "strategy", "updateStrategy", "nodeInfo", "daemonEndpoints",
     "kubeletEndpoint", "jobTemplate")
)

# Go slices without omitempty: null in a zero object (PodSpec.containers), so their items are added, not the list.
_NULL_LISTS = frozenset(("containers",))

_NONE = 0
_ADDED = 1
_MODIFIED = 2
_REMOVED = 3


class Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self, added: FieldSet, modified: FieldSet, removed: FieldSet) -> None:
        self.added = added
        self.modified = modified
        self.removed = removed

    def empty(self) -> bool:
        return not self.added and not self.modified and not self.removed

    def changed(self) -> FieldSet:
        return fieldpath.union(self.added, self.modified)


def item_element(t: Type, item: Any, index: int) -> str:
    """The path element of a list item: by its keys (associative list), its value (set), else its index."""
    lt = t.list_type
    if lt == "map" and isinstance(item, dict):
        keys: Dict[str, Any] = {}
        for k in t.keys:
            v = item.get(k, MISSING)
            if v is MISSING:
                v = t.key_defaults.get(k, MISSING)
            if v is not MISSING:
                keys[k] = v
        return fieldpath.key_element(keys)
    if lt == "set":
        return fieldpath.value_element(item)
    return fieldpath.index_element(index)


def _deduce(v: Any) -> str:
    if isinstance(v, dict):
        return MAP
    if isinstance(v, list):
        return LIST
    return "scalar"


def _leaf(lhs: Any, rhs: Any) -> int:
    if lhs is ZERO:
        lhs = {}
    if lhs is MISSING:
        return _NONE if rhs is MISSING else _ADDED
    if rhs is MISSING:
        return _REMOVED
    return _MODIFIED if lhs != rhs else _NONE


def _put(out: FieldSet, pe: str, member: bool, children: Optional[FieldSet]) -> None:
    if member:
        if children:
            children["."] = {}
            out[pe] = children
        else:
            out[pe] = {}
    elif children:
        out[pe] = children


Result = Tuple[int, Optional[FieldSet], Optional[FieldSet], Optional[FieldSet]]


def _cmp(lhs: Any, rhs: Any, t: Type) -> Result:
    kind = t.kind
    if kind == UNTYPED:
        kind = _deduce(rhs if rhs is not MISSING else lhs)
        if kind == LIST:
            return _leaf(lhs, rhs), None, None, None  # deduced lists are atomic
    # A null container is there but empty: its items are added or removed, not the container itself.
    if kind == MAP and not t.atomic:
        lm = {} if lhs is ZERO or lhs is None else lhs
        rm = {} if rhs is None else rhs
        if (lm is MISSING or isinstance(lm, dict)) and (rm is MISSING or isinstance(rm, dict)):
            if (lm is not MISSING and lm) or (rm is not MISSING and rm):
                return _cmp_map(lm, rm, t, lhs is ZERO)
        return _leaf(lhs, rhs), None, None, None
    if kind == LIST and not t.atomic:
        lm = [] if lhs is None else lhs
        rm = [] if rhs is None else rhs
        if (lm is MISSING or isinstance(lm, list)) and (rm is MISSING or isinstance(rm, list)):
            if (lm is not MISSING and lm) or (rm is not MISSING and rm):
                return _cmp_list(lm, rm, t)
        return _leaf(lhs, rhs), None, None, None
    return _leaf(lhs, rhs), None, None, None


def _cmp_children(
    items: List[Tuple[str, Any, Any, Type]]
) -> Tuple[FieldSet, FieldSet, FieldSet]:
    added: FieldSet = {}
    modified: FieldSet = {}
    removed: FieldSet = {}
    for pe, lv, rv, ct in items:
        if lv is rv:
            continue  # the same object on both sides (unchanged subtree shared by the caller)
        flag, ca, cm, cr = _cmp(lv, rv, ct)
        _put(added, pe, flag == _ADDED, ca)
        _put(modified, pe, flag == _MODIFIED, cm)
        _put(removed, pe, flag == _REMOVED, cr)
    return added, modified, removed


def _cmp_map(lhs: Any, rhs: Any, t: Type, zero: bool) -> Result:
    flag = _ADDED if lhs is MISSING else _REMOVED if rhs is MISSING else _NONE
    lm = {} if lhs is MISSING else lhs
    rm = {} if rhs is MISSING else rhs
    items = []
    for k, lv in lm.items():
        items.append(("f:" + k, lv, rm.get(k, MISSING), t.child(k)))
    for k, rv in rm.items():
        if k not in lm:
            lv = MISSING
            if zero and t.is_field(k):
                lv = ZERO if k in _VALUE_STRUCTS else None if k in _NULL_LISTS else MISSING
            items.append(("f:" + k, lv, rv, t.child(k)))
    a, m, r = _cmp_children(items)
    return flag, a, m, r


def _index(t: Type, items: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if items is MISSING or not items:
        return out
    for i, item in enumerate(items):
        pe = item_element(t, item, i)
        if pe not in out:  # repeated items: the first counts, as upstream
            out[pe] = item
    return out


def _cmp_list(lhs: Any, rhs: Any, t: Type) -> Result:
    flag = _ADDED if lhs is MISSING else _REMOVED if rhs is MISSING else _NONE
    lx = _index(t, lhs)
    rx = _index(t, rhs)
    et = t.item()
    items = [(pe, lv, rx.get(pe, MISSING), et) for pe, lv in lx.items()]
    items.extend((pe, MISSING, rv, et) for pe, rv in rx.items() if pe not in lx)
    a, m, r = _cmp_children(items)
    return flag, a, m, r


def _root_items(old: Any, new: Any, t: Type, reset: str, zero: bool) -> List[Tuple[str, Any, Any, Type]]:
    items = []
    keys = list(new) + [k for k in old if k not in new]
    for k in keys:
        if k in _STRIPPED_ROOT or (reset == "status" and k == "status") or (reset == "spec" and k not in ("status", "metadata")):
            continue
        lv = old.get(k, ZERO if zero and k in _VALUE_STRUCTS else MISSING)
        rv = new.get(k, MISSING)
        if k == "metadata":
            lm = {} if lv is MISSING or lv is ZERO or not isinstance(lv, dict) else lv
            rm = {} if not isinstance(rv, dict) else rv
            mt = t.child("metadata")
            for mk in list(rm) + [x for x in lm if x not in rm]:
                if mk in STRIPPED_METADATA:
                    continue
                items.append(("f:metadata\x00f:" + mk, lm.get(mk, MISSING), rm.get(mk, MISSING), mt.child(mk)))
            continue
        items.append(("f:" + k, lv, rv, t.child(k)))
    return items


def _nest_metadata(s: FieldSet) -> FieldSet:
    """Move the flattened metadata entries under f:metadata (which is never a member itself)."""
    meta: FieldSet = {}
    for pe in [p for p in s if p.startswith("f:metadata\x00")]:
        meta[pe[len("f:metadata\x00"):]] = s.pop(pe)
    if meta:
        s["f:metadata"] = meta
    return s


def compare(old: Any, new: Dict[str, Any], t: Type, reset: str = "") -> Comparison:
    """What changed from `old` (a stored object, or ZERO for a create) to `new`.

    `reset`: "status" leaves status out (writes through the main resource), "spec" leaves out all but
    status and metadata (writes through the status subresource)."""
    zero = old is ZERO
    a, m, r = _cmp_children(_root_items({} if zero else old, new, t, reset, zero))
    return Comparison(_nest_metadata(a), _nest_metadata(m), _nest_metadata(r))


# -- the fields an object sets ------------------------------------------------------------------------


def _set_of(v: Any, t: Type) -> Optional[FieldSet]:
    """The children set of value `v` of type `t` (None: a leaf, owned as the path itself)."""
    kind = t.kind
    if kind == UNTYPED:
        kind = _deduce(v)
        if kind == LIST:
            return None
    if kind == MAP and not t.atomic and isinstance(v, dict):
        out: FieldSet = {}
        for k, cv in v.items():
            ct = t.child(k)
            children = _set_of(cv, ct)
            member = children is None or cv is None or (isinstance(cv, dict) and not cv) or not t.is_field(k)
            _put(out, "f:" + k, member, children)
        return out
    if kind == LIST and not t.atomic and isinstance(v, list):
        out = {}
        et = t.item()
        for i, item in enumerate(v):
            children = _set_of(item, et)
            _put(out, item_element(t, item, i), True, children)
        return out
    return None


def field_set(obj: Dict[str, Any], t: Type, reset: str = "") -> FieldSet:
    """The fields `obj` (an applied configuration) sets, stripped as `compare`'s are."""
    out: FieldSet = {}
    for k, v in obj.items():
        if k in _STRIPPED_ROOT or (reset == "status" and k == "status") or (reset == "spec" and k not in ("status", "metadata")):
            continue
        if k == "metadata":
            if isinstance(v, dict):
                mt = t.child("metadata")
                meta: FieldSet = {}
                for mk, mv in v.items():
                    if mk in STRIPPED_METADATA:
                        continue
                    ct = mt.child(mk)
                    children = _set_of(mv, ct)
                    member = children is None or mv is None or (isinstance(mv, dict) and not mv) or not mt.is_field(mk)
                    _put(meta, "f:" + mk, member, children)
                if meta:
                    out["f:metadata"] = meta
            continue
        children = _set_of(v, t.child(k))
        member = children is None or v is None or (isinstance(v, dict) and not v) or not t.is_field(k)
        _put(out, "f:" + k, member, children)
    return out
