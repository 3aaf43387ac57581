"""Field sets in their FieldsV1 form, and the set algebra server-side apply needs.

A set is kept exactly as `metadata.managedFields[].fieldsV1` stores it, so
the stored entries are used as they are, with no decoding per write: a
dict from path element to child node, where a path element is

- ``f:<name>``: a field of a map or struct;
- ``k:<json>``: the item of an associative list with these key fields
  (upstream's KeyByFields: the fields sorted by name, compact JSON);
- ``v:<json>``: the item of a set list with this value;
- ``i:<n>``: the item at index n (lists without identity);

and a child node is itself a set of its children, plus the key ``.`` when
the element itself is a member. A member without children is written
``{}``; a node with children and no ``.`` is only a prefix. These are the
rules of structured-merge-diff's fieldpath.Set serialization.

Sets are values: the operations never change their inputs and give back
an input unchanged (the same object) when nothing moved, so a write that
changes nothing a manager owns costs no allocation.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import orjson

__all__ = [
    "FieldSet",
    "union",
    "difference",
    "intersection",
    "members",
    "contains",
    "has_member",
    "field",
    "key_element",
    "value_element",
    "index_element",
    "path_string",
    "insert",
    "canonical",
]

#: A set of field paths (FieldsV1): path element -> child node.
FieldSet = Dict[str, Any]

_SELF = "."


def field(name: str) -> str:
    return "f:" + name


def key_element(keys: Dict[str, Any]) -> str:
    """The path element of an associative list item with these key field values."""
    return "k:" + orjson.dumps(keys, option=orjson.OPT_SORT_KEYS).decode()


def value_element(value: Any) -> str:
    return "v:" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def index_element(i: int) -> str:
    return "i:" + str(i)


def _split(node: FieldSet) -> Tuple[bool, FieldSet]:
    """(is the element a member, its children)."""
    if not node:
        return True, node
    if _SELF in node:
        return True, {k: v for k, v in node.items() if k != _SELF}
    return False, node


def _node(member: bool, children: FieldSet) -> Optional[FieldSet]:
    if not children:
        return {} if member else None
    if member:
        out: FieldSet = {_SELF: {}}
        out.update(children)
        return out
    return children


def union(a: FieldSet, b: FieldSet) -> FieldSet:
    """Every member of a or b (a itself when b adds nothing)."""
    if not b:
        return a
    if not a:
        return b
    out: Optional[FieldSet] = None
    for pe, bn in b.items():
        an = a.get(pe)
        if an is None:
            merged = bn
        elif an is bn or _covers(an, bn):
            continue  # b adds nothing here (a writer changing what it owns): nothing is built
        else:
            am, ac = _split(an)
            bm, bc = _split(bn)
            children = union(ac, bc)
            if am == (am or bm) and children is ac:
                continue
            merged = _node(am or bm, children)
        if out is None:
            out = dict(a)
        out[pe] = merged
    return a if out is None else out


def difference(a: FieldSet, b: FieldSet) -> FieldSet:
    """The members of a that are not members of b (a itself when none is removed)."""
    if not a or not b:
        return a
    out: Optional[FieldSet] = None
    for pe, bn in b.items():
        an = a.get(pe)
        if an is None or _disjoint(an, bn):
            continue  # nothing of a's here is in b (another manager's fields): nothing is built
        am, ac = _split(an)
        bm, bc = _split(bn)
        children = difference(ac, bc)
        member = am and not bm
        if member == am and children is ac:
            continue
        if out is None:
            out = dict(a)
        node = _node(member, children)
        if node is None:
            del out[pe]
        else:
            out[pe] = node
    return a if out is None else out


def intersection(a: FieldSet, b: FieldSet) -> FieldSet:
    """The members of both."""
    if not a or not b:
        return {}
    out: FieldSet = {}
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    for pe, sn in small.items():
        ln = large.get(pe)
        if ln is None:
            continue
        sm, sc = _split(sn)
        lm, lc = _split(ln)
        node = _node(sm and lm, intersection(sc, lc))
        if node is not None:
            out[pe] = node
    return out


def contains(a: FieldSet, b: FieldSet) -> bool:
    """Is every member of b a member of a."""
    for pe, bn in b.items():
        an = a.get(pe)
        if an is None or (an is not bn and not _covers(an, bn)):
            return False
    return True


def _covers(an: FieldSet, bn: FieldSet) -> bool:
    """Does node `an` hold every member of node `bn` (itself, when bn is one, and all below)? Builds nothing."""
    if (not bn or _SELF in bn) and an and _SELF not in an:
        return False
    for pe, bc in bn.items():
        if pe == _SELF:
            continue
        ac = an.get(pe)
        if ac is None or (ac is not bc and not _covers(ac, bc)):
            return False
    return True


def _disjoint(an: FieldSet, bn: FieldSet) -> bool:
    """Do nodes `an` and `bn` share no member? Builds nothing."""
    if (not an or _SELF in an) and (not bn or _SELF in bn):
        return False
    for pe, bc in bn.items():
        if pe == _SELF:
            continue
        ac = an.get(pe)
        if ac is not None and not _disjoint(ac, bc):
            return False
    return True


def has_member(s: FieldSet, path: List[str]) -> bool:
    node: Any = s
    for pe in path:
        if not isinstance(node, dict) or pe not in node:
            return False
        node = node[pe]
    return not node or _SELF in node


def insert(s: FieldSet, path: List[str]) -> None:
    """Add `path` as a member, in place (for sets being built, not shared ones)."""
    node = s
    last = len(path) - 1
    for i, pe in enumerate(path):
        child = node.get(pe)
        if i == last:
            if child is None:
                node[pe] = {}
            elif child:
                child[_SELF] = {}
            return
        if child is None:
            child = node[pe] = {}
            node = child
            continue
        if not child:  # a member leaf gains children: keep it a member
            child[_SELF] = {}
        node = child


def _rank(pe: str) -> Tuple[int, str]:
    return ("fkvi".find(pe[0]) if pe else 9, pe)


def members(s: FieldSet, prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[str, ...]]:
    """Every member path, in upstream's order (fields, then keys, values, indices; each sorted)."""
    for pe in sorted((k for k in s if k != _SELF), key=_rank):
        node = s[pe]
        path = prefix + (pe,)
        if not node or _SELF in node:
            yield path
        if node:
            yield from members(node, path)


def canonical(s: FieldSet) -> FieldSet:
    """The set with its elements in upstream's serialization order ("." first, then as `members` orders)."""
    out: FieldSet = {}
    if _SELF in s:
        out[_SELF] = {}
    for pe in sorted((k for k in s if k != _SELF), key=_rank):
        node = s[pe]
        out[pe] = canonical(node) if node else node
    return out


def _go_value(v: Any) -> str:
    """value.ToString: strings quoted as Go's %q, the rest as JSON."""
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    return orjson.dumps(v).decode()


def path_string(path: Tuple[str, ...]) -> str:
    """fieldpath.Path.String(): .spec.containers[name="nginx"].image"""
    out = []
    for pe in path:
        kind, body = pe[:2], pe[2:]
        if kind == "f:":
            out.append("." + body)
        elif kind == "k:":
            try:
                keys = orjson.loads(body)
            except orjson.JSONDecodeError:
                out.append("[" + body + "]")
                continue
            out.append("[" + ",".join(f"{k}={_go_value(v)}" for k, v in sorted(keys.items())) + "]")
        elif kind == "v:":
            out.append("[=" + body + "]")
        elif kind == "i:":
            out.append("[" + body + "]")
        else:
            out.append(pe)
    return "".join(out)
