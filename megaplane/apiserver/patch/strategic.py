"""Strategic merge patch: the apply half of k8s.io/apimachinery/pkg/util/strategicpatch.

`apply_strategic_merge_patch(doc, patch, schema)` merges a patch into a document the way
kube-apiserver does for built-in kinds: maps merge, lists merge or are replaced according to
the schema's `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` (from
`megaplane.apiserver.schema.definitions`, in place of Go struct tags), and the directives
`$patch`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`
do what upstream makes them do, element order included.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from megaplane.apiserver.patch.decode import (
    RAW_BODY,
    STRATEGIC_MERGE_PATCH,
    check_document_depth,
    check_strategic_patch,
    decode_patch,
)
from megaplane.apiserver.patch.errors import PatchError, bad_request, invalid, rejected
from megaplane.apiserver.patch.values import clone, go_eq, go_kind, go_s, go_type, go_v, scalar_key
from megaplane.apiserver.schema import definitions as _schema

__all__ = ["apply_strategic_merge_patch"]

# The functions below keep the shape of upstream's (mergeMap, mergeSlice, mergePatchIntoOriginal,
# normalizeElementOrder...) and, like them, work in place: the public entry point hands them private
# copies of the document and of the patch. Schemas are `megaplane.apiserver.schema.definitions` dicts; None means
# "no information", which gives every field an empty patch strategy (maps merge, lists are
# replaced, directives still work): upstream's behaviour for a field its schema does not describe.

_ABSENT = object()  # a member the original does not have (unlike one that is JSON null)
_DIRECTIVE = "$patch"
_DELETE_PREFIX = "$deleteFromPrimitiveList"
_ORDER_PREFIX = "$setElementOrder"
_RETAIN_KEYS = "$retainKeys"

_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_ORDER_LIST = "invalid patch format of setElementOrder list"


def apply_strategic_merge_patch(doc: dict, patch: dict, schema: Optional[dict]) -> dict:
    """Apply a Kubernetes strategic merge patch to `doc`, whose kind's schema is `schema`.

    `schema` is the kind's definition from `megaplane.apiserver.schema.definitions`, e.g.
    `definitions()[definition_for("", "v1", "Pod")]`, or None when there is none (the patch then
    behaves like a JSON merge patch that also understands the `$patch` directives).
    `patch` may be the raw body as bytes. Raises PatchError (400 for a malformed patch or
    directive, or nested deeper than MAX_DEPTH; 422 for a patch that does not fit the object).
    """
    if isinstance(patch, RAW_BODY):
        patch = decode_patch(patch, STRATEGIC_MERGE_PATCH)
    else:
        check_strategic_patch(patch)
    check_document_depth(doc)
    original = clone(doc) if doc is not None else {}
    if patch is None:
        return original
    return _merge_map(original, clone(patch), _object_schema(schema))


def _object_schema(schema: Optional[dict]) -> Optional[dict]:
    return _schema.resolve(schema) if schema is not None else None


def _field(schema: Optional[dict], key: str) -> Tuple[Optional[dict], str, str]:
    """(property schema, patch strategy without retainKeys, merge key) of field `key`.

    Upstream: LookupPatchMetadataForStruct/ForSlice + extractRetainKeysPatchStrategy. retainKeys is
    dropped from the strategy because applying a patch never looks at it: `$retainKeys` directives
    act wherever the patch carries them.
    """
    prop = _schema.property_schema(schema, key)
    if prop is None:
        return None, "", ""
    strategies = [s for s in _schema.list_strategy(prop).split(",") if s]
    others = [s for s in strategies if s != "retainKeys"]
    if len(strategies) > 2 or len(others) > 1:
        raise invalid(f"unexpected patch strategy: [{' '.join(strategies)}]")
    return prop, (others[0] if others else ""), _schema.list_merge_key(prop) or ""


def _items_schema(prop: Optional[dict]) -> Optional[dict]:
    if prop is None:
        return None
    items = _schema.resolve(prop).get("items")
    return _schema.resolve(items) if isinstance(items, dict) else None


def _strip_prefix(key: str, prefix: str, error: str) -> str:
    """extractKey: "$prefix/field" -> "field" (anything else is a malformed directive)."""
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise bad_request(error)
    return rest


def _merge_map(original: dict, patch: dict, schema: Optional[dict]) -> dict:
    """mergeMap: merge `patch` into `original` (in place) and return the result."""
    if _DIRECTIVE in patch:
        return _map_directive(patch)
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)

    for key, value in list(patch.items()):
        delete_list = key.startswith(_DELETE_PREFIX)
        if delete_list:
            key = _strip_prefix(key, _DELETE_PREFIX, _BAD_PRIMITIVE_LIST)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key, _ABSENT)
        if current is _ABSENT or go_kind(current) != go_kind(value):
            # Nothing to merge with: the patch value goes in, minus nulls and directives. (A
            # deletion list for a list that is not there deletes nothing.)
            if not delete_list:
                _discard_nulls(value)
                value, keep = _remove_directives(value)
                if keep:
                    original[key] = value
                else:
                    original.pop(key, None)
            continue
        if isinstance(current, dict):
            prop, strategy, _ = _field(schema, key)
            original[key] = value if strategy == "replace" else _merge_map(current, value, _object_schema(prop))
        elif isinstance(current, list):
            prop, strategy, merge_key = _field(schema, key)
            original[key] = _merge_list(current, value, _items_schema(prop), strategy, merge_key, delete_list)[0]
        else:
            original[key] = value
    return original


def _map_directive(patch: dict) -> dict:
    """handleDirectiveInMergeMap: `$patch` in a map replaces it or empties it; nothing else exists.

    `$patch: merge` (which some documentation calls the default) is refused by upstream, here too.
    """
    directive = patch[_DIRECTIVE]
    if directive == "replace":
        del patch[_DIRECTIVE]
        return patch
    if directive == "delete":
        return {}
    raise invalid(f"unknown patch type: {go_s(directive)} in map: {go_v(patch)}")


def _apply_retain_keys(original: dict, patch: dict) -> None:
    """applyRetainKeysDirective: drop the fields of `original` not listed in `$retainKeys`.

    Every field the patch sets must be listed (nulls and parallel lists aside).
    """
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise bad_request(_BAD_RETAIN_KEYS)
    keep = {scalar_key(k) for k in retained if not isinstance(k, (dict, list))}
    for key, value in patch.items():
        if value is None or key.startswith(_DELETE_PREFIX) or key.startswith(_ORDER_PREFIX):
            continue
        if scalar_key(key) not in keep:
            raise bad_request(_BAD_RETAIN_KEYS)
    for key in list(original):
        if scalar_key(key) not in keep:
            del original[key]


def _merge_ordered_lists(original: dict, patch: dict, schema: Optional[dict]) -> None:
    """mergePatchIntoOriginal: merge each list that has a `$setElementOrder/<field>` and order it.

    The order list comes first, then the order of the patch list, then the order of the live list
    (see normalizeElementOrder). The merged lists leave the patch so the main loop skips them.
    """
    for directive in [k for k in patch if k.startswith(_ORDER_PREFIX)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise invalid(f"expected a []interface {{}}, but received a {go_type(order)}")
        key = _strip_prefix(directive, _ORDER_PREFIX, _BAD_ORDER_LIST)
        in_original, in_patch = key in original, key in patch
        for value in (original.get(key, []), patch.get(key, [])):
            if not isinstance(value, list):
                raise invalid(f"expected a []interface {{}}, but received a {go_type(value)}")
        current: list = original.get(key, [])
        patch_list: list = patch.get(key, [])
        prop, strategy, merge_key = _field(schema, key)
        _check_order(patch_list, order, merge_key)

        merged: list
        live: list
        if in_original and not in_patch:
            merged, live = current, current
        elif in_patch and not in_original:
            merged, live = _remove_directives(patch_list)[0], []
        elif in_original and in_patch:
            merged, live = _merge_list(current, patch_list, _items_schema(prop), strategy, merge_key, False)
        else:
            continue

        if merge_key:
            ordered, server_only = _partition_maps(merged, order, merge_key)
        else:
            ordered, server_only = _partition_primitives(merged, order)
        kind = _element_kind(current, patch_list)
        original[key] = _normalize_order(ordered, server_only, order, live, merge_key, kind)
        patch.pop(key, None)


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """validatePatchWithSetOrderList: the patch list must follow the order list (deletions aside)."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        items, _ = _split_deletions(patch_list)
    i = j = 0
    while i < len(items) and j < len(order):
        if isinstance(items[i], dict) and _DIRECTIVE in items[i]:
            i += 1
            continue
        if _merge_key_equal(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items) and j >= len(order):
        raise invalid(
            f"The order in patch list:\n{go_v(patch_list)}\n doesn't match {_ORDER_PREFIX} list:\n{go_v(order)}\n"
        )


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return go_eq(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise invalid(f"expected a map[string]interface {{}}, but received a {go_type(item)}")
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return go_eq(left[merge_key], right[merge_key])


def _no_merge_key(item: dict, merge_key: str) -> PatchError:
    return invalid(f"map: {go_v(item)} does not contain declared merge key: {merge_key}")


def _merge_list(
    current: list, patch: list, items: Optional[dict], strategy: str, merge_key: str, delete_list: bool
) -> Tuple[list, list]:
    """mergeSliceHandler: merge lists whose strategy is merge, replace the others.

    Returns the merged list and the live list as the caller sees it afterwards (see _merge_maps).
    """
    if strategy == "merge" or delete_list:
        return _merge_slice(current, patch, items, merge_key, delete_list)
    return patch, current


def _merge_slice(current: list, patch: list, items: Optional[dict], merge_key: str, delete_list: bool) -> Tuple[list, list]:
    """mergeSlice: lists of primitives merge as sets, lists of maps element-wise by merge key."""
    if not current and not patch:
        return current, current
    kind = _element_kind(current, patch)
    if kind != "map":
        if delete_list:
            doomed = {scalar_key(v) for v in patch}
            return [v for v in current if scalar_key(v) not in doomed], current
        merged = _unique(current + patch)
        ordered, server_only = _partition_primitives(merged, patch)
        return _normalize_order(ordered, server_only, patch, current, "", kind), current
    if not merge_key:
        raise invalid("cannot merge lists without merge key for struct")
    return _merge_maps(current, patch, items, merge_key)


def _merge_maps(current: list, patch: list, items: Optional[dict], merge_key: str) -> Tuple[list, list]:
    """mergeSliceWithSpecialElements + mergeSliceWithoutSpecialElements + the final ordering.

    Upstream edits the live list in place through Go slices: deletions shift the elements of the
    array behind the caller's slice, and new elements are appended into the room that frees until
    the array is full. mergePatchIntoOriginal later orders server-only elements by that array, so
    which elements land where decides the order a `$setElementOrder` patch produces (upstream's test
    "add map and delete map from merging list" depends on it). `backing` plays that array, and is
    returned as what the caller sees.
    """
    backing = list(current)
    capacity = len(backing)
    length = len(backing)
    plain: List[dict] = []
    replace = False
    for element in patch:
        if _DIRECTIVE not in element:
            plain.append(element)
            continue
        directive = element[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            while True:
                i = _find_by_key(backing, length, merge_key, element[merge_key])
                if i < 0:
                    break
                backing[i : length - 1] = backing[i + 1 : length]  # the last slot keeps a stale copy
                length -= 1
        elif directive == "replace":
            replace = True  # the whole list becomes the patch's plain elements
        elif directive == "merge":
            raise invalid("merging lists cannot yet be specified in the patch")
        else:
            raise invalid(f"unknown patch type: {go_s(directive)} in map: {go_v(element)}")

    if replace:
        merged = plain
        server_order = plain
        plain = []
    else:
        server_order = backing[:length]
        work = backing  # shares `backing` until an append needs more room than it has
        # Whether every patch element merged into a live one, in live order (a kubelet's status patch):
        # then the ordering below yields the live order unchanged, and is skipped.
        in_place = len(plain) == len(patch)
        last = -1
        for element in plain:
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            i = _find_by_key(work, length, merge_key, element[merge_key])
            if i >= 0:
                work[i] = _merge_map(work[i], element, items)
                in_place = in_place and i > last
                last = i
                continue
            in_place = False
            if work is backing and length < capacity:
                work[length] = element
                length += 1
            else:
                if work is backing:
                    work = backing[:length]  # Go's append copies to a new array here
                work.append(element)
                length += 1
        merged = work[:length]
        if in_place and _distinct_keys(merged, merge_key):
            return merged, backing

    ordered, server_only = _partition_maps(merged, plain, merge_key)
    return _normalize_order(ordered, server_only, plain, server_order, merge_key, "map"), backing


def _distinct_keys(elements: list, merge_key: str) -> bool:
    """Every element a map with a scalar merge key, no key twice (so positions by key are unambiguous)."""
    seen = set()
    for element in elements:
        if not isinstance(element, dict) or merge_key not in element:
            return False
        value = element[merge_key]
        if isinstance(value, (dict, list)):
            return False
        key = scalar_key(value)
        if key in seen:
            return False
        seen.add(key)
    return True


def _find_by_key(elements: list, length: int, merge_key: str, value: Any) -> int:
    """findMapInSliceBasedOnKeyValue over elements[:length]: index of the first match, or -1."""
    for i in range(length):
        element = elements[i]
        if not isinstance(element, dict):
            raise invalid(f"value for key {i} is not a map")
        if merge_key in element and go_eq(element[merge_key], value):
            return i
    return -1


def _element_kind(*lists: list) -> str:
    """sliceElementType: the one Go type of all elements (lists of lists are refused)."""
    kind = None
    for values in lists:
        for value in values:
            this = go_kind(value)
            if kind is None:
                if this == "slice":
                    raise rejected("lists of lists are not supported")
                kind = this
            elif this != kind:
                raise invalid(f"list element types are not identical: {go_v(list(lists))}")
    if kind is None:
        raise invalid("no elements in any of the given slices")
    return kind


def _unique(values: list) -> list:
    """deduplicateScalars (order does not matter: _normalize_order sorts the result)."""
    seen = set()
    out = []
    for value in values:
        key = scalar_key(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _partition_primitives(values: list, by: list) -> Tuple[list, list]:
    """partitionPrimitivesByPresentInList: (values found in `by`, the others)."""
    present = {scalar_key(v) for v in by if not isinstance(v, (dict, list))}
    inside = [v for v in values if not isinstance(v, (dict, list)) and scalar_key(v) in present]
    outside = [v for v in values if isinstance(v, (dict, list)) or scalar_key(v) not in present]
    return inside, outside


def _partition_maps(values: list, by: list, merge_key: str) -> Tuple[list, list]:
    """partitionMapsByPresentInList: (elements whose merge key appears in `by`, the others)."""
    inside: list = []
    outside: list = []
    for value in values:
        if not isinstance(value, dict):
            raise invalid(f"expected a map[string]interface {{}}, but received a {go_type(value)}")
        if merge_key not in value:
            raise _no_merge_key(value, merge_key)
        (inside if _find_by_key(by, len(by), merge_key, value[merge_key]) >= 0 else outside).append(value)
    return inside, outside


def _split_deletions(values: list) -> Tuple[list, list]:
    """extractToDeleteItems: (elements, elements marked `$patch: delete`)."""
    kept: list = []
    deleted: list = []
    for value in values:
        if not isinstance(value, dict):
            raise invalid(f"expected a map[string]interface {{}}, but received a {go_type(value)}")
        (deleted if value.get(_DIRECTIVE) == "delete" else kept).append(value)
    return kept, deleted


def _positions(order: list, merge_key: str, kind: str) -> Callable[[Any], int]:
    """index(): the position in `order` of an element (by merge key for maps), -1 if absent."""

    def ident(value: Any) -> Any:
        if kind == "map":
            return value.get(merge_key) if isinstance(value, dict) else None
        return value

    first: Dict[Tuple[str, Any], int] = {}
    unhashable = False
    for i, value in enumerate(order):
        v = ident(value)
        if isinstance(v, (dict, list)):
            unhashable = True
            continue
        first.setdefault(scalar_key(v), i)

    def position(value: Any) -> int:
        v = ident(value)
        if isinstance(v, (dict, list)) or unhashable:
            return next((i for i, o in enumerate(order) if go_eq(ident(o), v)), -1)
        return first.get(scalar_key(v), -1)

    return position


def _sort_by(values: list, order: list, merge_key: str, kind: str) -> list:
    """normalizeSliceOrder: sort `values` by their position in `order`, deletions last.

    Upstream's comparator is only a true order when every element is found in `order`; the callers
    guarantee that, so a stable sort by position is the same thing.
    """
    deleted: list = []
    if kind == "map":
        for value in values + order:
            if not isinstance(value, dict):
                raise invalid(f"expected a map[string]interface {{}}, but received a {go_type(value)}")
            if merge_key not in value:
                raise _no_merge_key(value, merge_key)
        values, deleted = _split_deletions(values)
    position = _positions(order, merge_key, kind)
    ranked = sorted(values, key=lambda v: (p if (p := position(v)) >= 0 else len(order)))
    return ranked + deleted


def _normalize_order(ordered: list, server_only: list, order: list, live: list, merge_key: str, kind: str) -> list:
    """normalizeElementOrder + mergeSortedSlice.

    Elements named in the patch (`ordered`) keep the patch's order, the others the live order; the
    two runs are then interleaved by the live order. An element the live list does not have is
    never "after" anything, so it goes before the server-only elements still waiting: this is why
    a plain patch puts a new list element first, unless a `$setElementOrder` says otherwise.
    """
    right = _sort_by(ordered, order, merge_key, kind)
    left = _sort_by(server_only, live, merge_key, kind)
    position = _positions(live, merge_key, kind)
    out = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = position(left[i]), position(right[j])
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _discard_nulls(value: Any) -> None:
    """discardNullValuesFromPatch: drop null members of maps, through maps and lists (in place)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _remove_directives(value: Any) -> Tuple[Any, bool]:
    """removeDirectives: (value without maps that carry `$patch`, whether to keep the value at all).

    Used where a patch value has nothing to merge with. Only `$patch` is looked for: other
    directive keys (`$retainKeys`, parallel lists) stay, as upstream leaves them for the typed
    decode that follows to drop.
    """
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        for key in list(value):
            inner, keep = _remove_directives(value[key])
            if keep:
                value[key] = inner
            else:
                del value[key]
        return value, True
    if isinstance(value, list):
        out = []
        for v in value:
            inner, keep = _remove_directives(v)
            if keep:
                out.append(inner)
        return out, True
    return value, True
