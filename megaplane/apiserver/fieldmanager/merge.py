"""Merging an applied configuration into the live object, and pruning what its applier let go of.

`merge(live, config, t)` is TypedValue.Merge (ruleKeepRHS): the config's
value wins at every leaf (scalars, atomic maps and lists), granular maps
are merged key by key, set and associative lists item by item with
upstream's ordering (the live order, with the config's items placed where
the config puts them relative to the items both share).

`prune(merged, t, last, owned)` removes what the applier applied last time
(`last`), left out this time, and nobody else owns (`owned`: every
manager's set, the applier's new one included), as merge.Updater.prune
with addBackOwnedItems and addBackDanglingItems: a struct's named fields
count as members of the sets, so a struct left out goes with everything
in it unless someone owns something inside; items are removed whole.

Values are not changed in place: the result shares the unchanged parts of
its inputs.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from megaplane.apiserver.fieldmanager.compare import MISSING, item_element
from megaplane.apiserver.fieldmanager.fieldpath import FieldSet
from megaplane.apiserver.fieldmanager.typemodel import LIST, MAP, UNTYPED, Type

__all__ = ["merge", "prune"]


def _granular(t: Type, v: Any) -> str:
    kind = t.kind
    if kind == UNTYPED:
        return MAP if isinstance(v, dict) else ""
    if t.atomic:
        return ""
    return kind


def merge(lhs: Any, rhs: Any, t: Type) -> Any:
    if rhs is MISSING:
        return lhs
    if lhs is MISSING or lhs is None:
        return rhs
    kind = _granular(t, rhs)
    if kind == MAP and isinstance(lhs, dict) and isinstance(rhs, dict):
        out = dict(lhs)
        for k, rv in rhs.items():
            lv = lhs.get(k, MISSING)
            out[k] = merge(lv, rv, t.child(k)) if lv is not MISSING else rv
        return out
    if kind == LIST and isinstance(lhs, list) and isinstance(rhs, list):
        return _merge_list(lhs, rhs, t)
    return rhs


def _index(t: Type, items: List[Any]) -> Tuple[List[str], Dict[str, Any]]:
    order: List[str] = []
    seen: Dict[str, Any] = {}
    for i, item in enumerate(items):
        pe = item_element(t, item, i)
        if pe in seen:
            continue
        seen[pe] = item
        order.append(pe)
    return order, seen


def _merge_list(lhs: List[Any], rhs: List[Any], t: Type) -> List[Any]:
    """visitListItems of the merging walker: its order, item for item."""
    et = t.item()
    r_order, r_seen = _index(t, rhs)
    l_order, l_seen = _index(t, lhs)
    shared = [pe for pe in r_order if pe in l_seen]
    next_shared: Optional[str] = shared[0] if shared else None
    si = 1
    out: List[Any] = []
    li = ri = 0
    ln, rn = len(l_order), len(r_order)

    def advance() -> Optional[str]:
        nonlocal si
        if si < len(shared):
            si += 1
            return shared[si - 1]
        return None

    while li < ln or ri < rn:
        if li < ln and ri < rn:
            pe = l_order[li]
            if pe == r_order[ri]:
                out.append(merge(l_seen[pe], r_seen[pe], et))
                li += 1
                ri += 1
                next_shared = advance()
                continue
            if pe in r_seen and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < ln:
            pe = l_order[li]
            if pe not in r_seen:
                out.append(l_seen[pe])
                li += 1
                continue
        if ri < rn:
            pe = r_order[ri]
            out.append(merge(l_seen.get(pe, MISSING), r_seen[pe], et))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = advance()
    return out


def _owns(node: Optional[FieldSet], named: bool) -> bool:
    return node is not None and (named or not node or "." in node)


def prune(value: Any, t: Type, last: FieldSet, owned: FieldSet, root: bool = True) -> Any:
    """`value` without what `last` has and `owned` does not (see the module docstring)."""
    kind = t.kind
    if kind == UNTYPED:
        kind = MAP if isinstance(value, dict) else ""
    if t.atomic or not last:
        return value
    if kind == MAP and isinstance(value, dict):
        out: Optional[Dict[str, Any]] = None
        for k, v in value.items():
            pe = "f:" + k
            ln = last.get(pe)
            if ln is None:
                continue
            named = t.is_field(k)
            on = owned.get(pe) if owned else None
            if root and k in ("apiVersion", "kind"):
                continue
            if _owns(ln, named) and not _owns(on, named):
                if out is None:
                    out = dict(value)
                del out[k]
                continue
            if ln:
                nv = prune(v, t.child(k), {x: y for x, y in ln.items() if x != "."}, on or {}, False)
                if nv is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = nv
        return value if out is None else out
    if kind == LIST and isinstance(value, list):
        et = t.item()
        items: List[Any] = []
        changed = False
        for i, item in enumerate(value):
            pe = item_element(t, item, i)
            ln = last.get(pe)
            if ln is None:
                items.append(item)
                continue
            on = owned.get(pe) if owned else None
            if _owns(ln, False) and not _owns(on, False):
                changed = True
                continue
            if ln:
                nv = prune(item, et, {x: y for x, y in ln.items() if x != "."}, on or {}, False)
                if nv is not item:
                    changed = True
                items.append(nv)
            else:
                items.append(item)
        return items if changed else value
    return value
