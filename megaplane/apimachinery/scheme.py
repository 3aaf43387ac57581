"""The scheme: which (apiVersion, kind) pairs exist, and the decoder's check of a body's kind.

What runtime.Scheme answers when an object is decoded for a resource: the
body's apiVersion/kind, if given, must be the resource's, with the wording
upstream's decoder uses for each way they can differ.
"""

from __future__ import annotations

from typing import Any, Dict

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import KINDS, Resource

__all__ = ["REGISTERED_KINDS", "check_kind"]

# The resource table's own set: kinds added at runtime (custom resources) are registered too.
REGISTERED_KINDS = KINDS


def check_kind(obj: Dict[str, Any], resource: Resource, kind: str = "", group_version: str = "") -> None:
    """apiVersion / kind in the body must be the URL's (when given); the decoder's errors otherwise."""
    kind = kind or resource.kind
    gv = group_version or resource.group_version
    body_gv = obj.get("apiVersion") or gv
    body_kind = obj.get("kind") or kind
    if not isinstance(body_gv, str) or not isinstance(body_kind, str):
        raise errors.bad_request(
            f"the object provided is unrecognized (must be of type {resource.kind}): couldn't get version/kind; "
            f"json parse error: json: cannot unmarshal value into Go struct field .apiVersion of type string"
        )
    if body_kind == kind and body_gv != gv and resource.group and str(body_gv).rpartition("/")[0] == resource.group:
        # Another version of the same group: the scheme decodes it, then the handler refuses it.
        raise errors.bad_request(
            f"the API version in the data ({body_gv}) does not match the expected API version ({gv})"
        )
    if body_gv != gv or body_kind != kind:
        version = str(body_gv).rsplit("/", 1)[-1]
        if (body_gv, body_kind) in REGISTERED_KINDS:
            internal = (resource.group.split(".")[0] if resource.group not in ("", "events.k8s.io") else "core")
            why = f"converting ({version}.{body_kind}) to ({internal}.{kind}): unknown conversion"
        else:
            why = f'no kind "{body_kind}" is registered for version "{body_gv}" in scheme "pkg/api/legacyscheme/scheme.go:30"'
        raise errors.bad_request(f'{body_kind} in version "{version}" cannot be handled as a {kind}: {why}')
    obj["apiVersion"] = gv
    obj["kind"] = kind
