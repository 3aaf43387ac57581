"""JSON merge patch (RFC 7386) the way evanphx's MergePatch applies it for kube-apiserver.

`apply_merge_patch(doc, patch)` merges a patch object into a document (or replaces it with a
non-object patch), pruning nulls where upstream prunes them.
"""

from __future__ import annotations

from typing import Any

from megaplane.apiserver.patch.decode import (
    MERGE_PATCH,
    RAW_BODY,
    check_depth,
    check_document_depth,
    decode_patch,
)
from megaplane.apiserver.patch.values import clone

__all__ = ["apply_merge_patch"]

# One upstream quirk shows: where the patch value is copied in (the target member is missing, null
# or not an object) it is pruned of nulls recursively, through arrays too (objects inside arrays
# lose their null members) -- but an array replacing an object is copied as it is.


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]  # null elements stay
    return value


def _merge_docs(doc: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif doc.get(key) is None:
            doc[key] = _prune_nulls(value)
        else:
            doc[key] = _merge_value(doc[key], value)


def _merge_value(current: Any, patch: Any) -> Any:
    if not isinstance(current, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return patch
    _merge_docs(current, patch)
    return current


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch to `doc`.

    With decoded values this is plain RFC 7386 (a non-object patch replaces the document). Given
    the raw body as bytes, the body is first checked the way kube-apiserver checks a merge patch
    body: it must be a JSON object (PatchError 400 otherwise). Either way a patch nested deeper
    than MAX_DEPTH is a 400 and such a document a 422 (see limits.py).
    """
    if isinstance(patch, RAW_BODY):
        patch = decode_patch(patch, MERGE_PATCH)
    else:
        check_depth(patch, "error decoding patch: ")
    check_document_depth(doc)
    patch = clone(patch)
    if not isinstance(patch, dict):
        return _prune_nulls(patch)
    if not isinstance(doc, dict):
        return _prune_nulls(patch)
    result = clone(doc)
    _merge_docs(result, patch)
    return result
