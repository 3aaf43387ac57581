"""What the OpenAPI documents are built from: served resources, shared names, and the query parameters.

`ResourceInfo` is one served resource, `gv_path` the document path of a group-version; the
meta.k8s.io definition names, media types, parameter descriptions and the parameter lists of
each verb are shared by the path builder and both renderers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

Schema = Dict[str, Any]

ALL_VERBS: Tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class ResourceInfo:
    """One served resource (the unit of discovery and of OpenAPI paths)."""

    group: str
    version: str
    resource: str  # plural, e.g. "pods"
    kind: str
    namespaced: bool
    subresources: Tuple[str, ...] = ()
    verbs: Tuple[str, ...] = ALL_VERBS
    #: False for custom resources: their PATCH takes no strategic merge patch (kubectl then sends a merge patch).
    strategic_merge: bool = True


def gv_path(group: str, version: str) -> str:
    """The index key / document path of a group-version ("api/v1", "apis/apps/v1")."""
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_WATCH_EVENT = _META + "WatchEvent"
_PATCH = _META + "Patch"
_API_RESOURCE_LIST = _META + "APIResourceList"

_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_PATCH_TYPES_CUSTOM = tuple(t for t in _PATCH_TYPES if t != "application/strategic-merge-patch+json")
_PRODUCES = ("application/json", "application/yaml")
_PRODUCES_WATCH = ("application/json", "application/yaml", "application/json;stream=watch")

# Parameters: (in, type, description). Rendered as v3 ({"schema": {...}}) or v2 (flat "type").
_PARAMS: Dict[str, Tuple[str, str, str]] = {
    "pretty": ("query", "string", "If 'true', the output is pretty printed."),
    "dryRun": (
        "query",
        "string",
        "When present, modifications are not persisted. The only valid value is All: run every stage "
        "of the request except storing it. Unknown values are an error.",
    ),
    "fieldManager": (
        "query",
        "string",
        "Name of the actor making the change, recorded in managedFields. At most 128 printable "
        "characters; required for apply patches.",
    ),
    "fieldValidation": (
        "query",
        "string",
        "How the server treats unknown or duplicate fields in the request object: Ignore drops them "
        "silently, Warn (the default) accepts the request and returns a warning per field, Strict "
        "rejects the request with 400 Bad Request.",
    ),
    "force": (
        "query",
        "boolean",
        "Force an apply patch: take ownership of fields managed by others. Must be unset for other patch types.",
    ),
    "gracePeriodSeconds": (
        "query",
        "integer",
        "Seconds before the object is deleted; 0 deletes immediately, unset uses the kind's default.",
    ),
    "orphanDependents": (
        "query",
        "boolean",
        "Deprecated, use propagationPolicy. Whether dependents are orphaned.",
    ),
    "propagationPolicy": (
        "query",
        "string",
        "Garbage collection of dependents: Orphan, Background or Foreground.",
    ),
    "allowWatchBookmarks": (
        "query",
        "boolean",
        "Ask for BOOKMARK watch events. Servers may ignore it; ignored when not watching.",
    ),
    "continue": (
        "query",
        "string",
        "Token from a previous chunked list to fetch the next chunk; the server answers 410 when it expired.",
    ),
    "fieldSelector": (
        "query",
        "string",
        "Restrict the objects returned by their fields. Defaults to everything.",
    ),
    "labelSelector": (
        "query",
        "string",
        "Restrict the objects returned by their labels. Defaults to everything.",
    ),
    "limit": (
        "query",
        "integer",
        "Maximum number of objects in a list response; a continue token is returned when more exist.",
    ),
    "resourceVersion": (
        "query",
        "string",
        "Constraint on which resource version the request may be served from. Defaults to unset.",
    ),
    "resourceVersionMatch": (
        "query",
        "string",
        "How resourceVersion applies to list calls (Exact or NotOlderThan). Defaults to unset.",
    ),
    "sendInitialEvents": (
        "query",
        "boolean",
        "With watch=true, start the watch with synthetic ADDED events for the current state, "
        "then a bookmark. Requires resourceVersionMatch=NotOlderThan.",
    ),
    "timeoutSeconds": ("query", "integer", "Timeout for the list/watch call."),
    "watch": (
        "query",
        "boolean",
        "Watch for changes to the described resources and stream add, update and delete notifications.",
    ),
}

_LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")
_DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy")
_DELETECOLLECTION_PARAMS = _DELETE_PARAMS + (
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
)


def _friendly_group(group: str) -> Tuple[str, str]:
    """(operationId infix, tag prefix) for a group: "" -> Core/core, rbac.authorization.k8s.io ->
    RbacAuthorization/rbacAuthorization, as upstream names its operations."""
    if group == "":
        return "Core", "core"
    name = group[: -len(".k8s.io")] if group.endswith(".k8s.io") else group
    parts = [p for p in name.replace("-", ".").split(".") if p]
    camel = "".join(p[:1].upper() + p[1:] for p in parts)
    return camel, camel[:1].lower() + camel[1:]


def _gvk(group: str, version: str, kind: str) -> Dict[str, str]:
    return {"group": group, "kind": kind, "version": version}
