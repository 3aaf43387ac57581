"""OpenAPI documents for the served resources: /openapi/v3 (index and per group-version) and /openapi/v2.

This module owns turning a list of served resources (`ResourceInfo`) plus the
Kubernetes 1.32 object schemas (`megaplane.apiserver.schema.definitions`) into the JSON bodies
that upstream's kube-apiserver serves at:

* ``GET /openapi/v3``: the index, ``{"paths": {"api/v1": {"serverRelativeURL":
  "/openapi/v3/api/v1?hash=<SHA512>"}, ...}}``;
* ``GET /openapi/v3/<api/v1 | apis/<group>/<version>>``: one OpenAPI 3.0
  document per group-version (paths + ``components.schemas``);
* ``GET /openapi/v2``: one Swagger 2.0 document for everything (JSON only).

What clients rely on (from reading kubectl 1.32 / client-go):

* kubectl's field-validation check (cli-runtime ``queryParamVerifierV3``)
  fetches the index, takes the entry ``api/v1`` or ``apis/<g>/<v>``, fetches
  that document and scans ``paths`` for a **PATCH** operation whose
  ``x-kubernetes-group-version-kind`` (a single ``{group, kind, version}``
  object, not a list) is the kind being sent; the first such operation decides:
  if its ``parameters`` name ``fieldValidation``, kubectl sends
  ``fieldValidation=Strict`` and lets the server reject unknown fields.
  Go map iteration is random, so *every* PATCH operation of a kind (the
  resource and its ``status`` subresource) must list the parameter.
* ``kubectl explain`` (v3 template) looks up the GVK from the operations on
  ``/api[s]/.../<resource>[/{name}]`` or the namespaced variants, then finds
  the component schema whose ``x-kubernetes-group-version-kind`` *list*
  contains it and walks ``properties``/``items``/``additionalProperties``,
  following ``$ref`` (siblings such as ``description`` allowed). It compares
  ``type`` with ``"object"``, so ``type`` must be a single string.

The schemas come from kubernetes-validate's JSON-schema flavour, so they are
converted back to OpenAPI form here: nullable type lists collapse to one type,
the "strict" flavour's ``additionalProperties: false`` is dropped (it is not
in upstream's documents), the ``enum`` that flavour adds to ``apiVersion`` /
``kind`` is dropped, and the ``oneOf`` encodings of IntOrString / Quantity go
back to upstream's string forms.

Documents are built lazily, once per `OpenAPI` instance, and cached as bytes;
the index hashes are SHA-512 of those bytes (stable for a given resource list).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from megaplane.apiserver.schema import definitions as schema

__all__ = ["ResourceInfo", "OpenAPI", "ALL_VERBS", "gv_path"]

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


def gv_path(group: str, version: str) -> str:
    """The index key / document path of a group-version ("api/v1", "apis/apps/v1")."""
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


# --------------------------------------------------------------------------------------
# Subresources: which kind their operations carry and which verbs they have.
# None as kind means "same kind as the parent" (status-like subresources).

_SUBRESOURCES: Dict[str, Tuple[Optional[Tuple[str, str, str]], Tuple[str, ...]]] = {
    "status": (None, ("get", "update", "patch")),
    "scale": (("autoscaling", "v1", "Scale"), ("get", "update", "patch")),
    "binding": (("", "v1", "Binding"), ("create",)),
    "eviction": (("policy", "v1", "Eviction"), ("create",)),
    "ephemeralcontainers": (None, ("get", "update", "patch")),
    "resize": (None, ("get", "update", "patch")),
    "approval": (None, ("get", "update", "patch")),
}
_DEFAULT_SUBRESOURCE: Tuple[Optional[Tuple[str, str, str]], Tuple[str, ...]] = (
    None,
    ("get", "update", "patch"),
)

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
_PRODUCES = ("application/json", "application/yaml")
_PRODUCES_WATCH = ("application/json", "application/yaml", "application/json;stream=watch")

# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# Schema conversion: kubernetes-validate JSON schema -> OpenAPI (v3 components / v2 definitions)

# Types that are a string or a number on the wire. OpenAPI 2 has no oneOf, so upstream's v2
# document calls them strings; its v3 documents keep the oneOf and no top-level type (which
# is what makes `kubectl explain` print <IntOrString> / <map[string]Quantity>).
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_SPECIAL_DEFS: Dict[Tuple[str, str], Schema] = {
    (_INT_OR_STRING, "v2"): {
        "description": "IntOrString holds either an int32 or a string. Encoded as a JSON number or string.",
        "type": "string",
        "format": "int-or-string",
    },
    (_INT_OR_STRING, "v3"): {
        "description": "IntOrString holds either an int32 or a string. Encoded as a JSON number or string.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    (_QUANTITY, "v2"): {
        "description": "Quantity is a fixed-point number with an optional suffix (e.g. 100m, 1Gi, 2.5e3). "
        "Encoded as a string; plain JSON numbers are accepted on input.",
        "type": "string",
    },
    (_QUANTITY, "v3"): {
        "description": "Quantity is a fixed-point number with an optional suffix (e.g. 100m, 1Gi, 2.5e3). "
        "Encoded as a string; plain JSON numbers are accepted on input.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}
_REF_V3 = "#/components/schemas/"
_REF_V2 = "#/definitions/"


def _convert(node: Any, ref_prefix: str, drop_type_enums: bool = False) -> Any:
    """Convert one JSON-schema node (recursively) to OpenAPI form; see the module docstring."""
    if isinstance(node, list):
        return [_convert(x, ref_prefix) for x in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = ref_prefix + value.rsplit("/", 1)[-1]
        elif key == "type":
            if isinstance(value, list):
                types = [t for t in value if t != "null"]
                if types:
                    out[key] = types[0]
            else:
                out[key] = value
        elif key == "additionalProperties":
            # `false` comes from the "strict" flavour; upstream leaves structs open in the
            # document (unknown fields are the decoder's business, see fieldvalidation.py).
            if isinstance(value, dict):
                out[key] = _convert(value, ref_prefix)
            elif value is True:
                out[key] = True
        elif key == "properties":
            props = {}
            for name, sub in value.items():
                conv = _convert(sub, ref_prefix)
                if drop_type_enums and name in ("apiVersion", "kind") and isinstance(conv, dict):
                    conv.pop("enum", None)
                props[name] = conv
            out[key] = props
        elif key.startswith("x-kubernetes-") or key in ("enum", "required", "description", "format"):
            out[key] = value  # data, not schemas: copy as is
        else:
            out[key] = _convert(value, ref_prefix)
    return out


@functools.lru_cache(maxsize=None)
def _converted_definition(name: str, ref_prefix: str) -> Schema:
    special = _SPECIAL_DEFS.get((name, "v3" if ref_prefix == _REF_V3 else "v2"))
    if special is not None:
        return dict(special)
    d = schema.definitions()[name]
    return _convert(d, ref_prefix, drop_type_enums="x-kubernetes-group-version-kind" in d)  # type: ignore[no-any-return]


def _refs(node: Any, acc: set) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            acc.add(ref.rsplit("/", 1)[-1])
        for key, value in node.items():
            if key not in ("enum", "x-kubernetes-group-version-kind"):
                _refs(value, acc)
    elif isinstance(node, list):
        for x in node:
            _refs(x, acc)


def _closure(roots: Iterable[str], ref_prefix: str, extra: Dict[str, Schema]) -> Dict[str, Schema]:
    """Every definition reachable from `roots`, converted (`extra` holds synthesized ones)."""
    out: Dict[str, Schema] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        if name in extra:
            d = extra[name]
        elif name in schema.definitions():
            d = _converted_definition(name, ref_prefix)
        else:
            continue
        out[name] = d
        found: set = set()
        _refs(d, found)
        todo.extend(sorted(found - out.keys()))
    return {k: out[k] for k in sorted(out)}


# --------------------------------------------------------------------------------------
# Operations, described once and rendered as v3 or v2.


@dataclass
class _Op:
    method: str  # get/put/post/patch/delete
    operation_id: str
    description: str
    action: str  # x-kubernetes-action
    gvk: Dict[str, str]
    tag: str
    params: Tuple[str, ...] = ()
    body: Optional[str] = None  # definition name of the request body
    body_types: Tuple[str, ...] = ("*/*",)
    responses: Tuple[Tuple[str, str, Optional[str]], ...] = ()  # (code, description, definition)
    produces: Tuple[str, ...] = _PRODUCES


@dataclass
class _PathItem:
    path: str
    path_params: Tuple[Tuple[str, str], ...]  # (name, description)
    ops: List[_Op]
    shared_params: Tuple[str, ...] = ("pretty",)


class OpenAPI:
    """Builds and caches the OpenAPI documents for a fixed list of served resources."""

    def __init__(self, resources: List[ResourceInfo]) -> None:
        self._resources = list(resources)
        self._lock = threading.Lock()
        self._v3: Optional[Dict[str, bytes]] = None
        self._v3_hashes: Dict[str, str] = {}
        self._v3_index: Optional[bytes] = None
        self._v2: Optional[bytes] = None
        # Definitions for kinds the 1.32 schemas lack (e.g. custom resources): a free-form object,
        # so explain and the field-validation check still find a schema for the kind.
        self._synth: Dict[str, Schema] = {}

    # ---- public API

    def group_versions(self) -> List[str]:
        """Document paths served under /openapi/v3/ ("api/v1", "apis/apps/v1", ...)."""
        return sorted(self._documents_v3())

    def v3_index(self) -> bytes:
        """JSON body of GET /openapi/v3."""
        docs = self._documents_v3()
        with self._lock:
            if self._v3_index is None:
                paths = {
                    p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={self._v3_hashes[p]}"}
                    for p in sorted(docs)
                }
                self._v3_index = _dumps({"paths": paths})
            return self._v3_index

    def v3_document(self, path: str) -> Optional[bytes]:
        """JSON body of GET /openapi/v3/<path> ("api/v1", "/apis/apps/v1"); None if not served."""
        return self._documents_v3().get(path.split("?", 1)[0].strip("/"))

    def v3_hash(self, path: str) -> Optional[str]:
        """The hash in the index for a document path (servers use it as ETag / to redirect stale hashes)."""
        self._documents_v3()
        return self._v3_hashes.get(path.split("?", 1)[0].strip("/"))

    def v2_document(self) -> bytes:
        """JSON body of GET /openapi/v2 (Swagger 2.0, every group-version in one document)."""
        with self._lock:
            if self._v2 is None:
                self._v2 = _dumps(self._build_v2())
            return self._v2

    # ---- building

    def _documents_v3(self) -> Dict[str, bytes]:
        with self._lock:
            if self._v3 is None:
                docs: Dict[str, bytes] = {}
                for (group, version), items in self._by_gv().items():
                    body = _dumps(self._build_v3(group, version, items))
                    key = gv_path(group, version)
                    docs[key] = body
                    self._v3_hashes[key] = hashlib.sha512(body).hexdigest().upper()
                self._v3 = docs
            return self._v3

    def _by_gv(self) -> Dict[Tuple[str, str], List[ResourceInfo]]:
        out: Dict[Tuple[str, str], List[ResourceInfo]] = {}
        for r in self._resources:
            out.setdefault((r.group, r.version), []).append(r)
        return out

    def _definition(self, group: str, version: str, kind: str) -> str:
        name = schema.definition_for(group, version, kind)
        if name is not None:
            return name
        # Synthesize a name in upstream's style (reverse-DNS group) for a kind without a schema.
        rev = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
        name = f"{rev}.{version}.{kind}"
        if name not in self._synth:
            self._synth[name] = {
                "description": f"{kind} ({group or 'core'}/{version}); no schema is published for this kind.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-group-version-kind": [_gvk(group, version, kind)],
            }
        return name

    def _path_items(self, group: str, version: str, items: List[ResourceInfo]) -> List[_PathItem]:
        camel, tag_prefix = _friendly_group(group)
        vcap = version[:1].upper() + version[1:]
        infix = f"{camel}{vcap}"  # CoreV1, AppsV1, CoordinationV1
        tag = f"{tag_prefix}_{version}"
        prefix = "/api/" + version if group == "" else f"/apis/{group}/{version}"
        out: List[_PathItem] = [
            _PathItem(
                path=prefix + "/",
                path_params=(),
                shared_params=(),
                ops=[
                    _Op(
                        "get",
                        f"get{infix}APIResources",
                        "get available resources",
                        "",
                        {},
                        tag,
                        responses=(("200", "OK", _API_RESOURCE_LIST), ("401", "Unauthorized", None)),
                    )
                ],
            )
        ]
        for r in sorted(items, key=lambda r: r.resource):
            out.extend(self._resource_paths(r, prefix, infix, tag))
        return out

    def _resource_paths(self, r: ResourceInfo, prefix: str, infix: str, tag: str) -> List[_PathItem]:
        kind, verbs = r.kind, set(r.verbs)
        gvk = _gvk(r.group, r.version, kind)
        obj = self._definition(r.group, r.version, kind)
        lst = schema.definition_for(r.group, r.version, kind + "List") or obj
        ns = "Namespaced" if r.namespaced else ""
        ns_param = (("namespace", "object name and auth scope, such as for teams and projects"),)
        name_param = (("name", f"name of the {kind}"),)
        coll = f"{prefix}/namespaces/{{namespace}}/{r.resource}" if r.namespaced else f"{prefix}/{r.resource}"
        coll_params = ns_param if r.namespaced else ()
        ok = ("200", "OK", obj)
        unauth = ("401", "Unauthorized", None)
        items: List[_PathItem] = []

        ops: List[_Op] = []
        if "list" in verbs:
            ops.append(
                _Op(
                    "get",
                    f"list{infix}{ns}{kind}",
                    f"list or watch objects of kind {kind}",
                    "list",
                    gvk,
                    tag,
                    params=_LIST_PARAMS,
                    responses=(("200", "OK", lst), unauth),
                    produces=_PRODUCES_WATCH,
                )
            )
        if "create" in verbs:
            ops.append(
                _Op(
                    "post",
                    f"create{infix}{ns}{kind}",
                    f"create a {kind}",
                    "post",
                    gvk,
                    tag,
                    params=_WRITE_PARAMS,
                    body=obj,
                    responses=(ok, ("201", "Created", obj), ("202", "Accepted", obj), unauth),
                )
            )
        if "deletecollection" in verbs:
            ops.append(
                _Op(
                    "delete",
                    f"delete{infix}Collection{ns}{kind}",
                    f"delete collection of {kind}",
                    "deletecollection",
                    gvk,
                    tag,
                    params=_DELETECOLLECTION_PARAMS,
                    body=_DELETE_OPTIONS,
                    responses=(("200", "OK", _STATUS), unauth),
                )
            )
        if ops:
            items.append(_PathItem(coll, coll_params, ops))

        ops = []
        if "get" in verbs:
            ops.append(
                _Op(
                    "get",
                    f"read{infix}{ns}{kind}",
                    f"read the specified {kind}",
                    "get",
                    gvk,
                    tag,
                    responses=(ok, unauth),
                )
            )
        if "update" in verbs:
            ops.append(
                _Op(
                    "put",
                    f"replace{infix}{ns}{kind}",
                    f"replace the specified {kind}",
                    "put",
                    gvk,
                    tag,
                    params=_WRITE_PARAMS,
                    body=obj,
                    responses=(ok, ("201", "Created", obj), unauth),
                )
            )
        if "patch" in verbs:
            ops.append(
                _Op(
                    "patch",
                    f"patch{infix}{ns}{kind}",
                    f"partially update the specified {kind}",
                    "patch",
                    gvk,
                    tag,
                    params=_PATCH_PARAMS,
                    body=_PATCH,
                    body_types=_PATCH_TYPES,
                    responses=(ok, ("201", "Created", obj), unauth),
                )
            )
        if "delete" in verbs:
            ops.append(
                _Op(
                    "delete",
                    f"delete{infix}{ns}{kind}",
                    f"delete a {kind}",
                    "delete",
                    gvk,
                    tag,
                    params=_DELETE_PARAMS,
                    body=_DELETE_OPTIONS,
                    responses=(("200", "OK", _STATUS), ("202", "Accepted", _STATUS), unauth),
                )
            )
        if ops:
            items.append(_PathItem(coll + "/{name}", name_param + coll_params, ops))

        if r.namespaced and "list" in verbs:
            items.append(
                _PathItem(
                    f"{prefix}/{r.resource}",
                    (),
                    [
                        _Op(
                            "get",
                            f"list{infix}{kind}ForAllNamespaces",
                            f"list or watch objects of kind {kind}",
                            "list",
                            gvk,
                            tag,
                            responses=(("200", "OK", lst), unauth),
                            produces=_PRODUCES_WATCH,
                        )
                    ],
                    shared_params=_LIST_PARAMS + ("pretty",),
                )
            )

        if "watch" in verbs:
            # The deprecated /watch/ paths: still in upstream's documents, so clients that
            # enumerate operations see the same shape.
            watch_resp = (("200", "OK", _WATCH_EVENT), unauth)
            wprefix = f"{prefix}/watch"
            wcoll = (
                f"{wprefix}/namespaces/{{namespace}}/{r.resource}"
                if r.namespaced
                else f"{wprefix}/{r.resource}"
            )
            shared = _LIST_PARAMS + ("pretty",)
            desc_list = f"watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
            desc_one = f"watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
            items.append(
                _PathItem(
                    wcoll,
                    coll_params,
                    [
                        _Op(
                            "get",
                            f"watch{infix}{ns}{kind}List",
                            desc_list,
                            "watchlist",
                            gvk,
                            tag,
                            responses=watch_resp,
                            produces=_PRODUCES_WATCH,
                        )
                    ],
                    shared_params=shared,
                )
            )
            items.append(
                _PathItem(
                    wcoll + "/{name}",
                    name_param + coll_params,
                    [
                        _Op(
                            "get",
                            f"watch{infix}{ns}{kind}",
                            desc_one,
                            "watch",
                            gvk,
                            tag,
                            responses=watch_resp,
                            produces=_PRODUCES_WATCH,
                        )
                    ],
                    shared_params=shared,
                )
            )
            if r.namespaced:
                items.append(
                    _PathItem(
                        f"{wprefix}/{r.resource}",
                        (),
                        [
                            _Op(
                                "get",
                                f"watch{infix}{kind}ListForAllNamespaces",
                                desc_list,
                                "watchlist",
                                gvk,
                                tag,
                                responses=watch_resp,
                                produces=_PRODUCES_WATCH,
                            )
                        ],
                        shared_params=shared,
                    )
                )

        for sub in r.subresources:
            items.extend(self._subresource_paths(r, sub, coll, coll_params, infix, ns, tag))
        return items

    def _subresource_paths(
        self,
        r: ResourceInfo,
        sub: str,
        coll: str,
        coll_params: Tuple[Tuple[str, str], ...],
        infix: str,
        ns: str,
        tag: str,
    ) -> List[_PathItem]:
        sub_gvk, sub_verbs = _SUBRESOURCES.get(sub, _DEFAULT_SUBRESOURCE)
        g, v, k = sub_gvk if sub_gvk is not None else (r.group, r.version, r.kind)
        gvk = _gvk(g, v, k)
        obj = self._definition(g, v, k)
        op_kind = f"{r.kind}{sub[:1].upper()}{sub[1:]}"  # PodStatus, DeploymentScale, PodBinding
        what = f"{sub} of the specified {r.kind}"
        ok = ("200", "OK", obj)
        unauth = ("401", "Unauthorized", None)
        ops: List[_Op] = []
        if "get" in sub_verbs:
            ops.append(
                _Op(
                    "get",
                    f"read{infix}{ns}{op_kind}",
                    f"read {what}",
                    "get",
                    gvk,
                    tag,
                    responses=(ok, unauth),
                )
            )
        if "update" in sub_verbs:
            ops.append(
                _Op(
                    "put",
                    f"replace{infix}{ns}{op_kind}",
                    f"replace {what}",
                    "put",
                    gvk,
                    tag,
                    params=_WRITE_PARAMS,
                    body=obj,
                    responses=(ok, ("201", "Created", obj), unauth),
                )
            )
        if "patch" in sub_verbs:
            ops.append(
                _Op(
                    "patch",
                    f"patch{infix}{ns}{op_kind}",
                    f"partially update {what}",
                    "patch",
                    gvk,
                    tag,
                    params=_PATCH_PARAMS,
                    body=_PATCH,
                    body_types=_PATCH_TYPES,
                    responses=(ok, ("201", "Created", obj), unauth),
                )
            )
        if "create" in sub_verbs:
            ops.append(
                _Op(
                    "post",
                    f"create{infix}{ns}{op_kind}",
                    f"create {sub} of a {r.kind}",
                    "post",
                    gvk,
                    tag,
                    params=_WRITE_PARAMS,
                    body=obj,
                    responses=(ok, ("201", "Created", obj), ("202", "Accepted", obj), unauth),
                )
            )
        name_param = (("name", f"name of the {k}"),)
        return [_PathItem(f"{coll}/{{name}}/{sub}", name_param + coll_params, ops)]

    # ---- rendering

    def _build_v3(self, group: str, version: str, items: List[ResourceInfo]) -> Dict[str, Any]:
        ref = _REF_V3
        path_items = self._path_items(group, version, items)
        paths: Dict[str, Any] = {}
        roots: set = set()
        for pi in path_items:
            entry: Dict[str, Any] = {}
            for op in pi.ops:
                entry[op.method] = _render_op_v3(op, ref, roots)
            params = [_param_v3(n, d, "path", "string", True) for n, d in pi.path_params]
            params += [_query_param_v3(p) for p in pi.shared_params]
            if params:
                entry["parameters"] = params
            paths[pi.path] = entry
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
            "paths": paths,
            "components": {
                "schemas": _closure(roots, ref, self._synth),
                "securitySchemes": {
                    "BearerToken": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "authorization",
                        "description": "Bearer Token authentication",
                    }
                },
            },
            "security": [{"BearerToken": []}],
        }

    def _build_v2(self) -> Dict[str, Any]:
        ref = _REF_V2
        paths: Dict[str, Any] = {}
        roots: set = set()
        for (group, version), items in sorted(self._by_gv().items()):
            for pi in self._path_items(group, version, items):
                entry: Dict[str, Any] = {}
                for op in pi.ops:
                    entry[op.method] = _render_op_v2(op, ref, roots)
                params = [_param_v2(n, d, "path", "string", True) for n, d in pi.path_params]
                params += [_query_param_v2(p) for p in pi.shared_params]
                if params:
                    entry["parameters"] = params
                paths[pi.path] = entry
        return {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
            "paths": paths,
            "definitions": _closure(roots, ref, self._synth),
            "securityDefinitions": {
                "BearerToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "authorization",
                    "description": "Bearer Token authentication",
                }
            },
            "security": [{"BearerToken": []}],
        }


def _param_v3(name: str, description: str, where: str, typ: str, required: bool) -> Dict[str, Any]:
    p: Dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "schema": {"type": typ, "uniqueItems": True},
    }
    if required:
        p["required"] = True
    return p


def _param_v2(name: str, description: str, where: str, typ: str, required: bool) -> Dict[str, Any]:
    p: Dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "type": typ,
        "uniqueItems": True,
    }
    if required:
        p["required"] = True
    return p


def _query_param_v3(name: str) -> Dict[str, Any]:
    where, typ, description = _PARAMS[name]
    return _param_v3(name, description, where, typ, False)


def _query_param_v2(name: str) -> Dict[str, Any]:
    where, typ, description = _PARAMS[name]
    return _param_v2(name, description, where, typ, False)


def _op_common(op: _Op) -> Dict[str, Any]:
    out: Dict[str, Any] = {"description": op.description, "operationId": op.operation_id, "tags": [op.tag]}
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk:
        # A single object here (a list on component schemas): kubectl reads it as map[string]string.
        out["x-kubernetes-group-version-kind"] = dict(op.gvk)
    return out


def _render_op_v3(op: _Op, ref: str, roots: set) -> Dict[str, Any]:
    out = _op_common(op)
    if op.params:
        out["parameters"] = [_query_param_v3(p) for p in op.params]
    if op.body:
        roots.add(op.body)
        out["requestBody"] = {
            "content": {t: {"schema": {"$ref": ref + op.body}} for t in op.body_types},
            "required": True,
        }
    responses: Dict[str, Any] = {}
    for code, desc, definition in op.responses:
        resp: Dict[str, Any] = {"description": desc}
        if definition:
            roots.add(definition)
            resp["content"] = {t: {"schema": {"$ref": ref + definition}} for t in op.produces}
        responses[code] = resp
    out["responses"] = responses
    return out


def _render_op_v2(op: _Op, ref: str, roots: set) -> Dict[str, Any]:
    out = _op_common(op)
    params = [_query_param_v2(p) for p in op.params]
    if op.body:
        roots.add(op.body)
        params.insert(0, {"name": "body", "in": "body", "required": True, "schema": {"$ref": ref + op.body}})
        out["consumes"] = list(op.body_types)
    else:
        out["consumes"] = ["*/*"]
    if params:
        out["parameters"] = params
    out["produces"] = list(op.produces)
    out["schemes"] = ["https"]
    responses: Dict[str, Any] = {}
    for code, desc, definition in op.responses:
        resp: Dict[str, Any] = {"description": desc}
        if definition:
            roots.add(definition)
            resp["schema"] = {"$ref": ref + definition}
        responses[code] = resp
    out["responses"] = responses
    return out


def _dumps(doc: Any) -> bytes:
    # Sorted keys: byte-stable output, so the index hashes only change when content does.
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
