"""Hostile-input limits of patching: operation count, bytes a JSON patch may copy, nesting depth.

kube-apiserver bounds what one PATCH can make the server do, and so does megaplane, with the
same codes and wording:

- `MAX_JSON_PATCH_OPERATIONS` (10000): handlers/patch.go `maxJSONPatchOperations`; a longer
  JSON patch is refused before it is applied, 413 RequestEntityTooLarge "Request entity too
  large: The allowed maximum operations in a JSON patch is 10000, got N".
- `MAX_COPY_BYTES` (3 MiB): the total size the `copy` operations of one JSON patch may add.
  k8s.io/apiserver pkg/server/config.go defaults `JSONPatchMaxCopyBytes` to 3 MiB, the same
  as `MaxRequestBodyBytes`, and stores it in json-patch's `AccumulatedCopySizeLimit`;
  evanphx/json-patch then fails the copy that takes the running total past it with an
  `AccumulatedCopySizeError`, which the apiserver answers like every JSON patch that does not
  apply: 422 with the generic "the server rejected our request due to an error in our request".
  Without the limit, 23 copies doubling an array make a 1 KB patch build gigabytes.
- `MAX_DEPTH` (254): how deep containers may nest in a patch body, the object patched and
  the patched result. Upstream's JSON decoder refuses bodies nested deeper than 10000
  (encoding/json `maxNestingDepth`, also in sigs.k8s.io/json) with the SyntaxError "invalid
  character '{' exceeded max depth", a 400. megaplane refuses from 255 levels with the same
  wording: its JSON encoder (orjson) writes at most 254 levels, so nothing deeper could be
  stored or served, and the recursive merge algorithms stay far from Python's recursion
  limit below that depth.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import orjson

__all__ = ["MAX_JSON_PATCH_OPERATIONS", "MAX_COPY_BYTES", "MAX_DEPTH", "GO_MAX_NESTING_DEPTH", "first_too_deep"]

MAX_JSON_PATCH_OPERATIONS = 10000
MAX_COPY_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 254
# encoding/json's maxNestingDepth: upstream's decoder limit, the default of go_syntax_error.
GO_MAX_NESTING_DEPTH = 10000

# The deepest nesting orjson.dumps encodes: a value it encodes is no deeper than this.
_ORJSON_MAX_DEPTH = 254


def first_too_deep(value: Any, limit: int = MAX_DEPTH) -> Optional[str]:
    """"{" or "[": the container that opens level `limit + 1` first in document order; None if none does.

    That is the byte Go's scanner reports ("invalid character '{' exceeded max depth"). The walk
    is iterative, so any depth is measured safely; a value orjson can encode is known to be
    shallow enough without walking it.
    """
    if not isinstance(value, (dict, list)):
        return None
    if limit >= _ORJSON_MAX_DEPTH:
        try:
            orjson.dumps(value)
            return None
        except (TypeError, orjson.JSONEncodeError):  # too deep, or an int beyond 64 bits
            pass
    stack: List[Tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return "{" if isinstance(node, dict) else "["
        children = list(node.values()) if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in reversed(children) if isinstance(c, (dict, list)))
    return None
