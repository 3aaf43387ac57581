"""Decoding a PATCH body: the checks kube-apiserver makes on the request body before any patching.

`decode_patch(body, patch_type)` parses the body for one of the three patch media types and
refuses, with upstream's 400 / 413 wording, what upstream's strict decode refuses.
"""

from __future__ import annotations

from typing import Any

import orjson

from megaplane.apiserver.patch.errors import PatchError, bad_request, rejected
from megaplane.apiserver.patch.limits import MAX_DEPTH, MAX_JSON_PATCH_OPERATIONS, first_too_deep
from megaplane.apiserver.patch.scanner import go_syntax_error
from megaplane.apiserver.patch.values import json_type

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "RAW_BODY",
    "decode_patch",
    "check_json_patch",
    "check_strategic_patch",
    "check_depth",
    "check_document_depth",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

RAW_BODY = (bytes, bytearray, memoryview)


def _loads(body: Any, prefix: str) -> Any:
    """Decode a request body; a malformed or too deep one is a 400 with Go's wording, after `prefix`."""
    data = bytes(body)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        problem = go_syntax_error(data, MAX_DEPTH)
        if problem is not None:
            raise bad_request(prefix + problem) from None
        # Go accepts invalid UTF-8 (it substitutes U+FFFD); orjson does not.
        try:
            value = orjson.loads(data.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            raise bad_request(prefix + str(e)) from None
    check_depth(value, prefix)
    return value


def check_depth(value: Any, prefix: str) -> None:
    """Refuse a patch nested deeper than MAX_DEPTH as Go's decoder refuses one beyond its limit (see limits.py)."""
    opening = first_too_deep(value)
    if opening is not None:
        raise bad_request(f"{prefix}invalid character '{opening}' exceeded max depth")


def check_document_depth(doc: Any) -> None:
    """Refuse to patch an object nested deeper than MAX_DEPTH (none can come from storage, whose encoder
    stops there), so the recursive merges never run out of stack; 422 as a patch that does not apply."""
    if first_too_deep(doc) is not None:
        raise rejected(f"the object to patch nests deeper than {MAX_DEPTH} levels")


def decode_patch(body: Any, patch_type: str) -> Any:
    """Decode and check a PATCH body of `patch_type` (one of the three content types above).

    Mirrors what kube-apiserver does before patching, with the default field validation ("Warn"):
    it decodes the body strictly into the Go type of the patch, and answers 400 with the decoder's
    message when that fails. Unknown fields and duplicate keys, which only produce warnings there,
    are accepted silently.
    """
    if patch_type == JSON_PATCH:
        patch = _loads(body, "error decoding patch: ")
        check_json_patch(patch)
        return patch
    if patch_type == MERGE_PATCH:
        patch = _loads(body, "error decoding patch: ")
        if patch is None:
            # The strict decode accepts `null`; evanphx's MergePatch then refuses it.
            raise bad_request("Invalid JSON Patch")
        if not isinstance(patch, dict):
            raise bad_request(
                f"error decoding patch: json: cannot unmarshal {json_type(patch)} "
                "into Go value of type map[string]interface {}"
            )
        return patch
    if patch_type == STRATEGIC_MERGE_PATCH:
        patch = _loads(body, "")  # strategicPatchObject reports decoding errors without a prefix
        check_strategic_patch(patch)
        return patch
    raise ValueError(f"unknown patch type {patch_type!r}")


def check_json_patch(patch: Any) -> None:
    """The strict decode of a JSON patch into []jsonPatchOp (op, path and from must be strings)."""
    if patch is None:
        return  # decodes to an empty patch
    check_depth(patch, "error decoding patch: ")
    if not isinstance(patch, list):
        raise bad_request(
            f"error decoding patch: json: cannot unmarshal {json_type(patch)} "
            "into Go value of type []handlers.jsonPatchOp"
        )
    for op in patch:
        if op is None:
            continue
        if not isinstance(op, dict):
            raise bad_request(
                f"error decoding patch: json: cannot unmarshal {json_type(op)} "
                "into Go value of type handlers.jsonPatchOp"
            )
        for name, value in op.items():
            if name in ("op", "path", "from") and value is not None and not isinstance(value, str):
                raise bad_request(
                    f"error decoding patch: json: cannot unmarshal {json_type(value)} "
                    f"into Go struct field jsonPatchOp.{name} of type string"
                )
    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch)}",
            "RequestEntityTooLarge",
            413,
        )


def check_strategic_patch(patch: Any) -> None:
    check_depth(patch, "")
    if patch is not None and not isinstance(patch, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(patch)} into Go value of type map[string]interface {{}}")
