"""PATCH bodies: JSON patch, JSON merge patch and strategic merge patch, as kube-apiserver applies them.

This package owns the three patch algorithms of the PATCH verb and the
errors they raise, and nothing around them (reading the object,
admission, validation, storing the result belong to the verb handler):

- `apply_json_patch` (jsonpatch.py): RFC 6902, with the behaviour of the
  library kube-apiserver uses (gopkg.in/evanphx/json-patch.v4), quirks included;
- `apply_merge_patch` (mergepatch.py): RFC 7386, as evanphx's `MergePatch` does it;
- `apply_strategic_merge_patch` (strategic.py): the apply half of
  k8s.io/apimachinery/pkg/util/strategicpatch, driven by the
  `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`
  annotations of `megaplane.apiserver.schema.definitions` instead of Go struct tags;
- `decode_patch` (decode.py): the decoding step kube-apiserver runs on the request
  body before any of those (what a malformed body is answered with), using
  `go_syntax_error` (scanner.py) for Go's wording of a syntax error;
- `PatchError` (errors.py), and the Go-flavoured value helpers they share (values.py);
- the hostile-input limits (limits.py): `MAX_JSON_PATCH_OPERATIONS`, `MAX_COPY_BYTES` (what
  the `copy` operations of one JSON patch may add) and `MAX_DEPTH` (nesting of patch bodies,
  patched objects and results), each answered with upstream's code and wording.

Each `apply_*` takes decoded JSON values (or the raw body as `bytes`, which
is then put through `decode_patch` first), never mutates its arguments and
returns a new object. A patch that cannot be applied raises `PatchError`
carrying the code, reason and message of the Status kube-apiserver answers.

The code follows upstream's algorithms step by step rather than the RFC
text where the two differ, because clients (kubectl, client-go, kustomize)
are written against kube-apiserver's behaviour: comments name the upstream
function each piece stands for and say where upstream is quirky on purpose.
"""

from __future__ import annotations

from megaplane.apiserver.patch.decode import (
    JSON_PATCH,
    MAX_JSON_PATCH_OPERATIONS,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    decode_patch,
)
from megaplane.apiserver.patch.errors import PatchError
from megaplane.apiserver.patch.jsonpatch import apply_json_patch
from megaplane.apiserver.patch.limits import MAX_COPY_BYTES, MAX_DEPTH
from megaplane.apiserver.patch.mergepatch import apply_merge_patch
from megaplane.apiserver.patch.scanner import go_syntax_error
from megaplane.apiserver.patch.strategic import apply_strategic_merge_patch

__all__ = [
    "PatchError",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MAX_COPY_BYTES",
    "MAX_DEPTH",
    "decode_patch",
    "apply_json_patch",
    "go_syntax_error",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
]
