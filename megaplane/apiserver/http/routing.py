"""URL paths to what a request is about: the apiserver's RequestInfo, for the resources we serve.

/api/v1/namespaces/{ns}/pods/{name}/status -> resource pods, namespace ns,
name, subresource status; the verb comes from the method plus whether a
name is present (GET without a name is list, or watch when ?watch=true).
Paths that are not resources (discovery, /version, /healthz, /metrics,
/openapi) are `kind="other"` and handled by the server directly.

Which verbs a path serves is decided here, as the apiserver's installer
registers routes: a namespaced kind at cluster scope (/api/v1/configmaps)
has only list and watch routes, so any other method is 405 and a name
under it is 404; a namespace segment that is empty
(/api/v1/namespaces//secrets) still matches the namespaced route (go-restful
lets a path parameter be empty), where every verb that needs a storage key
fails as the registry's NamespaceKeyFunc does: 400 "Namespace parameter
required." - so neither form can reach every namespace's objects at once.
"""

from __future__ import annotations

from typing import Dict, Optional
from urllib.parse import parse_qsl, unquote

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import SERVED_GROUPS, Resource, by_path

# /api and every /apis/<group> are go-restful web services upstream: an unknown path under one gets
# a JSON Status 404; a path under no group falls through to the plain-text NotFound handler.
# SERVED_GROUPS is the resource table's live set (groups of custom resources come and go).

__all__ = ["RequestInfo", "parse_path", "parse_query"]

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
# The only routes the installer registers for a namespaced kind outside /namespaces/{namespace}/.
_CLUSTER_SCOPE_VERBS = frozenset(("list", "watch"))
_NOT_ALLOWED = "the server does not allow this method on the requested resource"


class RequestInfo:
    __slots__ = ("resource", "namespace", "name", "subresource", "verb", "group", "version", "plural")

    def __init__(self) -> None:
        self.resource: Optional[Resource] = None
        self.namespace = ""
        self.name = ""
        self.subresource = ""
        self.verb = ""
        self.group = ""
        self.version = ""
        self.plural = ""

    def __repr__(self) -> str:
        return (
            f"<RequestInfo {self.verb} {self.group}/{self.version} {self.plural} ns={self.namespace!r} "
            f"name={self.name!r} sub={self.subresource!r}>"
        )


def parse_query(query: str) -> Dict[str, str]:
    if not query:
        return {}
    return dict(parse_qsl(query, keep_blank_values=True))


def parse_path(method: str, path: str, query: Dict[str, str]) -> Optional[RequestInfo]:
    """RequestInfo for a resource path, None for a non-resource path. Unknown resources raise 404."""
    parts = path.strip("/").split("/")
    if "%" in path:
        parts = [unquote(p) for p in parts]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    info = RequestInfo()
    if parts[0] == "api":
        if len(parts) < 3:
            return None
        info.group, info.version = "", parts[1]
        rest = parts[2:]
    else:
        if len(parts) < 4:
            return None
        info.group, info.version = parts[1], parts[2]
        rest = parts[3:]
    watch_path = False
    if rest and rest[0] == "watch":  # legacy /watch/ paths
        watch_path = True
        rest = rest[1:]
    in_namespace = False
    if len(rest) >= 2 and rest[0] == "namespaces" and not (len(rest) == 2 or (len(rest) == 3 and rest[2] in ("status", "finalize"))):
        info.namespace = rest[1]
        in_namespace = True
        rest = rest[2:]
    if not rest:
        return None
    info.plural = rest[0]
    resource = by_path(info.group, info.version, info.plural)
    if resource is None and info.group not in SERVED_GROUPS:
        return None  # no API group owns this path: the server's plain-text 404
    if resource is None:
        raise errors.StatusError(
            404, "NotFound", "the server could not find the requested resource", {}
        )
    info.resource = resource
    if len(rest) > 1:
        info.name = rest[1]
    if len(rest) > 2:
        info.subresource = rest[2]
        if info.subresource not in resource.subresources:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", {})
    if len(rest) > 3:
        raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", {})
    if info.namespace and not resource.namespaced:
        raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", {})
    if method in ("GET", "HEAD"):
        if info.name:
            info.verb = "watch" if watch_path else "get"
        else:
            w = query.get("watch", "")
            info.verb = "watch" if watch_path or w in ("1", "true", "True") else "list"
    elif method == "DELETE":
        info.verb = "delete" if info.name else "deletecollection"
    else:
        verb = _VERBS.get(method)
        if verb is None:
            raise errors.method_not_allowed(_NOT_ALLOWED)
        if verb == "create" and info.name and not info.subresource:
            raise errors.method_not_allowed(_NOT_ALLOWED)
        if verb in ("update", "patch") and not info.name:
            raise errors.method_not_allowed(_NOT_ALLOWED)
        info.verb = verb
    if resource.namespaced:
        _check_namespace_scope(info, in_namespace)
    return info


def _check_namespace_scope(info: RequestInfo, in_namespace: bool) -> None:
    """Refuse what no route of a namespaced kind serves (see the module docstring)."""
    if not in_namespace:
        if info.name:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", {})
        if info.verb not in _CLUSTER_SCOPE_VERBS:
            raise errors.method_not_allowed(_NOT_ALLOWED)
    elif not info.namespace and info.verb not in _CLUSTER_SCOPE_VERBS:
        raise errors.bad_request("Namespace parameter required.")
