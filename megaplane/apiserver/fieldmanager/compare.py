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

from typing import Any, Dict, Optional, Tuple

import orjson

from megaplane.apiserver.fieldmanager import fieldpath
from megaplane.apiserver.fieldmanager.fieldpath import FieldSet
from megaplane.apiserver.fieldmanager.typemodel import LIST, MAP, SCALAR, UNTYPED, Type

__all__ = ["compare", "changes", "created_set", "field_set", "ZERO", "MISSING", "item_element", "Comparison", "STRIPPED_METADATA"]


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
        # KeyByFields' compact JSON built directly (the key names sorted once, in the type): this runs for
        # every item of every associative list a write compares.
        parts = []
        for k in t.sorted_keys:
            v = item.get(k, MISSING)
            if v is MISSING:
                v = t.key_defaults.get(k, MISSING)
                if v is MISSING:
                    continue
            if type(v) is str and v.isalnum():
                parts.append('"' + k + '":"' + v + '"')
            else:
                parts.append('"' + k + '":' + orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode())
        return "k:{" + ",".join(parts) + "}"
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


class _Out:
    """The added / modified / removed children of one node, made on first use (most subtrees did not change).

    The class attributes are the defaults: made without an __init__ to run (compare runs on every write)."""

    a: Optional[FieldSet] = None
    m: Optional[FieldSet] = None
    r: Optional[FieldSet] = None


def _attach(out: _Out, pe: str, flag: int, child: Optional[_Out]) -> None:
    ca = child.a if child is not None else None
    cm = child.m if child is not None else None
    cr = child.r if child is not None else None
    if flag == _ADDED or ca:
        if out.a is None:
            out.a = {}
        _put(out.a, pe, flag == _ADDED, ca)
    if flag == _MODIFIED or cm:
        if out.m is None:
            out.m = {}
        _put(out.m, pe, flag == _MODIFIED, cm)
    if flag == _REMOVED or cr:
        if out.r is None:
            out.r = {}
        _put(out.r, pe, flag == _REMOVED, cr)


def _cmp(lhs: Any, rhs: Any, t: Type, pe: str, out: _Out) -> None:
    """Record what changed at `pe` (lhs -> rhs, either MISSING) into its parent's `out`."""
    if lhs == rhs:
        return  # equal values: nothing below changed either
    _cmp_unequal(lhs, rhs, t, pe, out)


def _cmp_unequal(lhs: Any, rhs: Any, t: Type, pe: str, out: _Out) -> None:
    """`_cmp` of two values already found unequal (a map entry's: the parent compared them)."""
    kind = t.kind
    if kind == UNTYPED:
        kind = _deduce(rhs if rhs is not MISSING else lhs)
        if kind == LIST:
            kind = ""  # deduced lists are atomic
    # A null container is there but empty: its items are added or removed, not the container itself.
    if kind == MAP and not t.atomic:
        lm = {} if lhs is ZERO or lhs is None else lhs
        rm = {} if rhs is None else rhs
        if (lm is MISSING or isinstance(lm, dict)) and (rm is MISSING or isinstance(rm, dict)):
            if (lm is not MISSING and lm) or (rm is not MISSING and rm):
                flag = _ADDED if lm is MISSING else _REMOVED if rm is MISSING else _NONE
                child = _Out()
                _cmp_map({} if lm is MISSING else lm, {} if rm is MISSING else rm, t, lhs is ZERO, child)
                _attach(out, pe, flag, child)
                return
    elif kind == LIST and not t.atomic:
        lm = [] if lhs is None else lhs
        rm = [] if rhs is None else rhs
        if (lm is MISSING or isinstance(lm, list)) and (rm is MISSING or isinstance(rm, list)):
            if (lm is not MISSING and lm) or (rm is not MISSING and rm):
                flag = _ADDED if lm is MISSING else _REMOVED if rm is MISSING else _NONE
                child = _Out()
                _cmp_list(lm, rm, t, child)
                _attach(out, pe, flag, child)
                return
    flag = _leaf(lhs, rhs)
    if flag:
        _attach(out, pe, flag, None)


_NO_SKIP: "frozenset[str]" = frozenset()


def _cmp_map(lm: Dict[str, Any], rm: Dict[str, Any], t: Type, zero: bool, out: _Out,
             skip: "frozenset[str]" = _NO_SKIP) -> None:
    # Every write compares every map of the object: the common case (an entry equal on both sides) is tested
    # first, and child types are read from the type's own table (Type.child fills it).
    fields = t.fields
    for k, rv in rm.items():
        lv = lm.get(k, MISSING)
        if lv == rv or k in skip:
            continue
        if lv is MISSING and zero and t.is_field(k):
            lv = ZERO if k in _VALUE_STRUCTS else None if k in _NULL_LISTS else MISSING
            if lv is not MISSING:
                ct = fields.get(k) or t.child(k)
                if ct.kind == SCALAR:
                    if out.m is None:
                        out.m = {}
                    out.m["f:" + k] = {}
                else:
                    _cmp(lv, rv, ct, "f:" + k, out)  # None (a null list) may equal rv
                continue
        ct = fields.get(k) or t.child(k)
        kind = ct.kind
        if kind == SCALAR and lv is not MISSING:
            if out.m is None:  # a scalar on both sides that differs: modified (the common change, inline)
                out.m = {}
            out.m["f:" + k] = {}
            continue
        if kind == MAP and type(lv) is dict and type(rv) is dict and not ct.atomic:
            # Two structs or maps that differ (a spec, a status): their children, inline (what _cmp_unequal
            # does with them: the entry itself is neither added nor removed, only what is below it).
            child = _Out()
            _cmp_map(lv, rv, ct, False, child)
            if child.a:
                if out.a is None:
                    out.a = {}
                out.a["f:" + k] = child.a
            if child.m:
                if out.m is None:
                    out.m = {}
                out.m["f:" + k] = child.m
            if child.r:
                if out.r is None:
                    out.r = {}
                out.r["f:" + k] = child.r
            continue
        _cmp_unequal(lv, rv, ct, "f:" + k, out)  # lv != rv, or lv MISSING (equal to nothing)
    if lm.keys() <= rm.keys():  # nothing removed (the common case), found without a loop in Python
        return
    for k, lv in lm.items():
        if k not in rm and k not in skip:
            _cmp_unequal(lv, MISSING, t.child(k), "f:" + k, out)


def _index(t: Type, items: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if items is MISSING or not items:
        return out
    for i, item in enumerate(items):
        pe = item_element(t, item, i)
        if pe not in out:  # repeated items: the first counts, as upstream
            out[pe] = item
    return out


def _cmp_list(lhs: Any, rhs: Any, t: Type, out: _Out) -> None:
    lx = _index(t, lhs)
    rx = _index(t, rhs)
    et = t.item()
    for pe, lv in lx.items():
        _cmp(lv, rx.get(pe, MISSING), et, pe, out)
    for pe, rv in rx.items():
        if pe not in lx:
            _cmp(MISSING, rv, et, pe, out)


_SKIP_ROOT = {
    "": _STRIPPED_ROOT | {"metadata"},
    "status": _STRIPPED_ROOT | {"metadata", "status"},
}


def compare(old: Any, new: Dict[str, Any], t: Type, reset: str = "") -> Comparison:
    """What changed from `old` (a stored object, or ZERO for a create) to `new`.

    `reset`: "status" leaves status out (writes through the main resource), "spec" leaves out all but
    status and metadata (writes through the status subresource)."""
    out = _compare(old, new, t, reset)
    return Comparison(out.a or {}, out.m or {}, out.r or {})


def changes(old: Dict[str, Any], new: Dict[str, Any], t: Type, reset: str = "") -> Tuple[FieldSet, FieldSet]:
    """(compare(...).changed(), compare(...).removed): what an update's field manager needs, without the
    Comparison (every write of every kind asks)."""
    out = _compare(old, new, t, reset)
    a, m = out.a, out.m
    return (fieldpath.union(a, m) if a and m else a or m or {}), out.r or {}


def _compare(old: Any, new: Dict[str, Any], t: Type, reset: str) -> _Out:
    zero = old is ZERO
    lm: Dict[str, Any] = {} if zero else old
    out = _Out()
    if reset == "spec":
        for k in ("status",):
            _cmp(lm.get(k, ZERO if zero else MISSING), new.get(k, MISSING), t.child(k), "f:" + k, out)
    else:
        _cmp_map(lm, new, t, zero, out, _SKIP_ROOT[reset])
    lmeta = lm.get("metadata")
    rmeta = new.get("metadata")
    if lmeta != rmeta:
        lmd = lmeta if isinstance(lmeta, dict) else {}
        rmd = rmeta if isinstance(rmeta, dict) else {}
        # Most writes differ in metadata only by the stored managedFields the body leaves out (the rest of
        # what the server keeps it put back): that is found by one comparison in C before any walk.
        if "managedFields" in lmd and {**rmd, "managedFields": lmd["managedFields"]} == lmd:
            return out
        meta = _Out()
        _cmp_map(lmd, rmd, t.child("metadata"), False, meta, STRIPPED_METADATA)
        _attach(out, "f:metadata", _NONE, meta)  # metadata itself is never a member (stripMeta)
    return out


def _added(v: Any, t: Type, lhs: Any) -> Optional[FieldSet]:
    """What `compare` finds added or modified at a path a zero object has as `lhs` (MISSING, ZERO, or None for
    a null list) and the new object as `v`: the node, in upstream's order, or None for nothing."""
    if lhs is None and v is None:
        return None
    kind = t.kind
    if kind == UNTYPED:
        kind = _deduce(v)
        if kind == LIST:
            kind = ""
    if kind == MAP and not t.atomic:
        rm = {} if v is None else v
        if type(rm) is dict and rm:
            zero = lhs is ZERO
            out: FieldSet = {".": {}} if lhs is MISSING else {}
            for k in sorted(rm):
                cl = MISSING
                if zero and t.is_field(k):
                    cl = ZERO if k in _VALUE_STRUCTS else None if k in _NULL_LISTS else MISSING
                node = _added(rm[k], t.child(k), cl)
                if node is not None:
                    out["f:" + k] = node
            return _compact(out)
    elif kind == LIST and not t.atomic:
        rl = [] if v is None else v
        if type(rl) is list and rl:
            et = t.item()
            items: FieldSet = {}
            for i, item in enumerate(rl):
                pe = item_element(t, item, i)
                if pe not in items:  # repeated items: the first counts
                    items[pe] = _added(item, et, MISSING)
            out = {".": {}} if lhs is MISSING else {}
            for pe in sorted(items):
                out[pe] = items[pe]
            return _compact(out)
    if lhs is MISSING:
        return {}
    return {} if ({} if lhs is ZERO else lhs) != v else None


def _compact(node: FieldSet) -> Optional[FieldSet]:
    """{".": {}} alone is a member leaf ({}); an empty non-member is nothing."""
    if len(node) == 1 and "." in node:
        return {}
    return node if node else None


def created_set(obj: Dict[str, Any], t: Type, reset: str = "") -> FieldSet:
    """compare(ZERO, obj).changed() in upstream's order, in one pass: what a create's writer owns."""
    out: FieldSet = {}
    keys = ("status",) if reset == "spec" else sorted(obj)
    skip = _SKIP_ROOT.get(reset, _STRIPPED_ROOT)
    for k in keys:
        if k in skip or k not in obj:
            continue
        cl = MISSING
        if t.is_field(k):
            cl = ZERO if k in _VALUE_STRUCTS else None if k in _NULL_LISTS else MISSING
        node = _added(obj[k], t.child(k), cl)
        if node is not None:
            out["f:" + k] = node
    meta = obj.get("metadata")
    if isinstance(meta, dict) and meta:
        mt = t.child("metadata")
        mout: FieldSet = {}
        for k in sorted(meta):
            if k in STRIPPED_METADATA:
                continue
            node = _added(meta[k], mt.child(k), MISSING)
            if node is not None:
                mout["f:" + k] = node
        if mout:
            out["f:metadata"] = mout
    return {pe: out[pe] for pe in sorted(out)}


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
