"""Paths and operations: what upstream's installer publishes for each served resource, version-neutral.

`_path_items` describes a group-version's paths once, as `_PathItem`s holding `_Op`s (method,
operationId, x-kubernetes-action, GVK, parameters, body and responses, named as upstream names
them); v3.py and v2.py render those into their document formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from megaplane.apiserver.schema import definitions as schema
from megaplane.apiserver.schema.openapi.common import (
    _API_RESOURCE_LIST,
    _DELETE_OPTIONS,
    _DELETE_PARAMS,
    _DELETECOLLECTION_PARAMS,
    _LIST_PARAMS,
    _PATCH,
    _PATCH_PARAMS,
    _PATCH_TYPES,
    _PATCH_TYPES_CUSTOM,
    _PRODUCES,
    _PRODUCES_WATCH,
    _STATUS,
    _WATCH_EVENT,
    _WRITE_PARAMS,
    ResourceInfo,
    _friendly_group,
    _gvk,
)

# Subresources: which kind their operations carry and which verbs they have.
# None as kind means "same kind as the parent" (status-like subresources).
_SUBRESOURCES: Dict[str, Tuple[Optional[Tuple[str, str, str]], Tuple[str, ...]]] = {
    "status": (None, ("get", "update", "patch")),
    "scale": (("autoscaling", "v1", "Scale"), ("get", "update", "patch")),
    "binding": (("", "v1", "Binding"), ("create",)),
    "eviction": (("policy", "v1", "Eviction"), ("create",)),
    "token": (("authentication.k8s.io", "v1", "TokenRequest"), ("create",)),
    "ephemeralcontainers": (None, ("get", "update", "patch")),
    "resize": (None, ("get", "update", "patch")),
    "approval": (None, ("get", "update", "patch")),
}
_DEFAULT_SUBRESOURCE: Tuple[Optional[Tuple[str, str, str]], Tuple[str, ...]] = (
    None,
    ("get", "update", "patch"),
)


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


def _op_common(op: _Op) -> Dict[str, Any]:
    out: Dict[str, Any] = {"description": op.description, "operationId": op.operation_id, "tags": [op.tag]}
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk:
        # A single object here (a list on component schemas): kubectl reads it as map[string]string.
        out["x-kubernetes-group-version-kind"] = dict(op.gvk)
    return out


def _path_items(definition: Callable[[str, str, str], str], group: str, version: str, items: List[ResourceInfo]) -> List[_PathItem]:
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
        out.extend(_resource_paths(definition, r, prefix, infix, tag))
    return out


def _resource_paths(definition: Callable[[str, str, str], str], r: ResourceInfo, prefix: str, infix: str, tag: str) -> List[_PathItem]:
    kind, verbs = r.kind, set(r.verbs)
    gvk = _gvk(r.group, r.version, kind)
    obj = definition(r.group, r.version, kind)
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
                body_types=_PATCH_TYPES if r.strategic_merge else _PATCH_TYPES_CUSTOM,
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
        items.extend(_subresource_paths(definition, r, sub, coll, coll_params, infix, ns, tag))
    return items


def _subresource_paths(
    definition: Callable[[str, str, str], str],
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
    obj = definition(g, v, k)
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
                body_types=_PATCH_TYPES if r.strategic_merge else _PATCH_TYPES_CUSTOM,
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
