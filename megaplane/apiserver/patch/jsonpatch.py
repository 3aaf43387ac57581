"""JSON patch (RFC 6902) the way gopkg.in/evanphx/json-patch.v4 applies it for kube-apiserver.

`apply_json_patch(doc, patch)` applies a list of operations (or the raw body) to a document,
with upstream's departures from the RFC kept on purpose (listed below), and answers every
operation that does not apply with upstream's one generic 422.
"""

from __future__ import annotations

import re
from typing import Any, List, Tuple

from megaplane.apiserver.patch.decode import (
    JSON_PATCH,
    RAW_BODY,
    check_document_depth,
    check_json_patch,
    decode_patch,
)
from megaplane.apiserver.patch.errors import rejected
from megaplane.apiserver.patch.limits import MAX_COPY_BYTES, MAX_DEPTH, first_too_deep
from megaplane.apiserver.patch.values import clone, clone_with_size, json_equal, json_type

__all__ = ["apply_json_patch"]

# Upstream departs from the RFC in ways clients can see, all kept here:
# - `replace` of a missing object member adds it (only a missing parent or array index fails);
# - array indices are parsed like Go's strconv.Atoi ("+1", "01" are fine) and may be negative,
#   counting from the end (SupportNegativeIndices defaults to true);
# - a path without a leading "/" silently drops its first token; "" (the whole document) works
#   only for `replace` (with an object or array) and `test`;
# - an operation without "value" adds/replaces null; `copy` from a missing member copies null;
# - `test` of a missing member against null (or no value) passes.
# Every failure becomes the same 422 Status; the library's message goes to PatchError.detail.


class _OpFailed(Exception):
    """An operation failed; the argument is evanphx's error text."""


_ABSENT = object()  # an operation member that is not there (unlike one that is JSON null)
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_UNESCAPE_RE = re.compile(r"~[01]")


def _unescape(token: str) -> str:
    # A single left-to-right pass ("~01" is "~1"), as RFC 6901 requires and strings.Replacer does.
    return _UNESCAPE_RE.sub(lambda m: "/" if m.group() == "~1" else "~", token)


def _atoi(key: str) -> int:
    if not _INT_RE.match(key):
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": invalid syntax')
    value = int(key)
    if not -(2**63) <= value < 2**63:
        raise _OpFailed(f'strconv.Atoi: parsing "{key}": value out of range')
    return value


def _invalid_index(idx: int) -> _OpFailed:
    return _OpFailed(f"Unable to access invalid index: {idx}: invalid index referenced")


def _index(ary: list, key: str) -> int:
    """partialArray.get/set/remove's reading of an index into an existing element."""
    idx = _atoi(key)
    if idx < 0:
        if idx < -len(ary):
            raise _invalid_index(idx)
        idx += len(ary)
    if idx >= len(ary):
        raise _invalid_index(idx)
    return idx


def _get(container: Any, key: str) -> Any:
    """container.get: None for a missing or null member; errors only for a bad array index."""
    if isinstance(container, dict):
        return container.get(key)
    return container[_index(container, key)]


def _add(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    try:
        idx = _atoi(key)
    except _OpFailed as e:
        raise _OpFailed(f"value was not a proper array index: '{key}': {e}") from None
    size = len(container) + 1
    if idx >= size or idx < -size:
        raise _invalid_index(idx)
    if idx < 0:
        idx += size
    container.insert(idx, value)


def _remove(container: Any, key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _OpFailed(f"Unable to remove nonexistent key: {key}: missing value")
        del container[key]
        return
    del container[_index(container, key)]


def _find(root: Any, path: str) -> Tuple[Any, str]:
    """findObject: the container holding the last token of `path`, or (None, "")."""
    tokens = path.split("/")
    if len(tokens) < 2:
        return None, ""
    node = root
    for token in tokens[1:-1]:
        try:
            node = _get(node, _unescape(token))
        except _OpFailed:
            return None, ""
        if not isinstance(node, (dict, list)):
            return None, ""
    return node, _unescape(tokens[-1])


def _member(op: dict, name: str, missing: str) -> str:
    value = op.get(name)
    if value is None:
        raise _OpFailed(missing)
    return value  # a string: decode checked the types


def _apply_operation(box: List[Any], op: Any, copied_bytes: List[int]) -> None:
    """Apply one operation to box[0] (a one-element list, so `replace ""` can swap the document).

    copied_bytes[0] is the running total of bytes the patch's `copy` operations added so far.
    """
    op = op or {}
    kind = op.get("op") if isinstance(op.get("op"), str) else "unknown"
    value = op.get("value", _ABSENT)
    inserted = None if value is _ABSENT else clone(value)
    no_path = "operation missing path field: missing value"
    no_from = "operation, missing from field: missing value"

    if kind == "add":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed:
            raise _OpFailed("add operation failed to decode path: missing value") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f'add operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _add(con, key, inserted)
        except _OpFailed as e:
            raise _OpFailed(f"error in add for path: '{path}': {e}") from None

    elif kind == "remove":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed:
            raise _OpFailed("remove operation failed to decode path: missing value") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f'remove operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _remove(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in remove for path: '{path}': {e}") from None

    elif kind == "replace":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed as e:
            raise _OpFailed(f"replace operation failed to decode path: {e}") from None
        if path == "":
            if not isinstance(inserted, (dict, list)):
                raise _OpFailed("replace operation value must be object or array: %!w(<nil>)")
            box[0] = inserted
            return
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"replace operation does not apply: doc is missing path: {path}: missing value")
        if isinstance(con, dict):
            con[key] = inserted  # upstream: a missing member is simply set
            return
        try:
            con[_index(con, key)] = inserted
        except _OpFailed:
            raise _OpFailed(f"replace operation does not apply: doc is missing key: {path}: missing value") from None

    elif kind == "move":
        try:
            source = _member(op, "from", no_from)
        except _OpFailed as e:
            raise _OpFailed(f"move operation failed to decode from: {e}") from None
        con, key = _find(box[0], source)
        if con is None:
            raise _OpFailed(f"move operation does not apply: doc is missing from path: {source}: missing value")
        try:
            moved = _get(con, key)
            _remove(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in move for path: '{key}': {e}") from None  # sic: the key, not the path
        try:
            path = _member(op, "path", no_path)
        except _OpFailed as e:
            raise _OpFailed(f"move operation failed to decode path: {e}") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"move operation does not apply: doc is missing destination path: {path}: missing value")
        try:
            _add(con, key, moved)
        except _OpFailed as e:
            raise _OpFailed(f"error in move for path: '{path}': {e}") from None

    elif kind == "test":
        try:
            path = _member(op, "path", no_path)
        except _OpFailed as e:
            raise _OpFailed(f"test operation failed to decode path: {e}") from None
        if path == "":
            if value is _ABSENT or not json_equal(box[0], value):
                raise _OpFailed(f"testing value {path} failed: test failed")
            return
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"test operation does not apply: is missing path: {path}: missing value")
        try:
            current = _get(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in test for path: '{path}': {e}") from None
        if current is None:
            passed = value is _ABSENT or value is None
        else:
            passed = value is not _ABSENT and json_equal(current, value)
        if not passed:
            raise _OpFailed(f"testing value {path} failed: test failed")

    elif kind == "copy":
        try:
            source = _member(op, "from", no_from)
        except _OpFailed as e:
            raise _OpFailed(f"copy operation failed to decode from: {e}") from None
        con, key = _find(box[0], source)
        if con is None:
            raise _OpFailed(f"copy operation does not apply: doc is missing from path: {source}: missing value")
        try:
            original = _get(con, key)
        except _OpFailed as e:
            raise _OpFailed(f"error in copy for from: '{source}': {e}") from None
        try:
            path = _member(op, "path", no_path)
        except _OpFailed:
            raise _OpFailed("copy operation failed to decode path: missing value") from None
        con, key = _find(box[0], path)
        if con is None:
            raise _OpFailed(f"copy operation does not apply: doc is missing destination path: {path}: missing value")
        copied, size = clone_with_size(original)
        copied_bytes[0] += size
        if copied_bytes[0] > MAX_COPY_BYTES:  # json-patch's AccumulatedCopySizeLimit (see limits.py)
            raise _OpFailed(
                f"Unable to complete the copy, the accumulated size increase of copy is {copied_bytes[0]}, "
                f"exceeding the limit {MAX_COPY_BYTES}"
            )
        try:
            _add(con, key, copied)
        except _OpFailed as e:
            raise _OpFailed(f"error while adding value during copy: {e}") from None

    else:
        raise _OpFailed(f"Unexpected kind: {kind}")


def apply_json_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations, or the raw body as bytes) to `doc`.

    Raises PatchError: 400 for a patch that does not decode as a list of operations (or nests
    deeper than MAX_DEPTH), 413 past MAX_JSON_PATCH_OPERATIONS, 422 (upstream's generic message;
    the cause in `.detail`) for an operation that does not apply: a failed `test`, a missing path,
    an unknown `op`, copies adding more than MAX_COPY_BYTES in all, a result nested deeper than
    MAX_DEPTH...
    """
    if isinstance(patch, RAW_BODY):
        patch = decode_patch(patch, JSON_PATCH)
    else:
        check_json_patch(patch)
    check_document_depth(doc)
    box = [clone(doc)]
    if not isinstance(box[0], (dict, list)):
        raise rejected(f"json: cannot unmarshal {json_type(box[0])} into Go value of type jsonpatch.partialDoc")
    copied_bytes = [0]
    try:
        for op in patch or ():
            _apply_operation(box, op, copied_bytes)
    except _OpFailed as e:
        raise rejected(str(e)) from None
    if first_too_deep(box[0]) is not None:
        # Upstream would store it; megaplane cannot encode it (see limits.MAX_DEPTH), and says so
        # the way upstream answers a patch that does not apply.
        raise rejected(f"the patched object nests deeper than {MAX_DEPTH} levels")
    return box[0]
