"""The resource table: every kind the API server serves, and how it is stored and shown.

One `Resource` per (group, version, plural). Storage keys follow
kube-apiserver exactly (nodes under /registry/minions/, services under
/registry/services/specs/, endpoints under /registry/services/endpoints/),
so a stock kube-apiserver and megaplane can read each other's stores.
Field selectors list what upstream's field-label conversion functions
accept for each kind; anything else is refused with upstream's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, List, Optional, Set, Tuple

__all__ = ["Resource", "RESOURCES", "by_path", "lookup", "GROUP_VERSIONS", "preferred_group_versions", "SERVED_GROUPS",
           "KINDS", "add_resource", "remove_resource", "generation"]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
# What each subresource route serves (upstream installs no other verb on them: the rest is 405).
SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
    "eviction": ("create",),
    "finalize": ("update",),
    "token": ("create",),
}

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    prefix: bytes  # etcd key prefix, ending in "/"
    short_names: Tuple[str, ...] = ()
    categories: Tuple[str, ...] = ()
    subresources: Tuple[str, ...] = ()
    # metadata.generation moves when spec changes (workloads).
    generation: bool = False
    field_selectors: Tuple[str, ...] = _COMMON_FIELDS
    # Another resource whose storage this one shares (events.k8s.io Event).
    storage_of: Optional[str] = None
    verbs: Tuple[str, ...] = ALL_VERBS
    # Field label conversion: "core" and "job" kinds register their own (with their wording for an
    # unsupported label), "default" ones know metadata.name and metadata.namespace only.
    field_label_conversion: str = "default"
    # Labels the conversion renames (pods: spec.host -> spec.nodeName).
    field_aliases: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # Selectable fields stored under another name (events.k8s.io: regarding.* is involvedObject.*).
    field_storage_names: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # PUT of a missing object creates it (the strategy's AllowCreateOnUpdate).
    allow_create_on_update: bool = False
    # PUT without metadata.resourceVersion overwrites (AllowUnconditionalUpdate); leases refuse it.
    allow_unconditional_update: bool = True
    # DELETE answers with the deleted object (the store's ReturnDeletedObject), not a Status.
    returns_deleted_object: bool = False
    extra: Dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    # False: a create-only review kind (TokenReview, SubjectAccessReview, ...) answered by a handler the
    # registry is given (Registry.serve_create), never stored: no watch cache, no store, no storage prefix.
    stored: bool = True

    @cached_property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @cached_property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def key(self, namespace: str, name: str) -> bytes:
        if self.namespaced:
            return self.prefix + namespace.encode() + b"/" + name.encode()
        return self.prefix + name.encode()

    def namespace_prefix(self, namespace: str) -> bytes:
        return self.prefix + namespace.encode() + b"/" if namespace and self.namespaced else self.prefix

    def __repr__(self) -> str:
        return f"<Resource {self.group_version} {self.plural}>"


def _r(
    group: str, version: str, plural: str, singular: str, kind: str, namespaced: bool, prefix: str, **kw: Any
) -> Resource:
    return Resource(group, version, plural, singular, kind, namespaced, prefix.encode(), **kw)


_POD_FIELDS = _COMMON_FIELDS + (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = _COMMON_FIELDS + (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

RESOURCES: List[Resource] = [
    _r("", "v1", "namespaces", "namespace", "Namespace", False, "/registry/namespaces/", short_names=("ns",),
       subresources=("status", "finalize"), field_selectors=("metadata.name", "status.phase"),
       verbs=tuple(v for v in ALL_VERBS if v != "deletecollection"), returns_deleted_object=True,
       field_label_conversion="core"),
    _r("", "v1", "nodes", "node", "Node", False, "/registry/minions/", short_names=("no",), subresources=("status",),
       field_selectors=("metadata.name", "spec.unschedulable"), field_label_conversion="core"),
    _r("", "v1", "pods", "pod", "Pod", True, "/registry/pods/", short_names=("po",), categories=("all",),
       subresources=("status", "binding", "eviction"), field_selectors=_POD_FIELDS, returns_deleted_object=True,
       field_label_conversion="core", field_aliases={"spec.host": "spec.nodeName"}),
    _r("", "v1", "services", "service", "Service", True, "/registry/services/specs/", short_names=("svc",),
       categories=("all",), subresources=("status",), returns_deleted_object=True,
       field_selectors=_COMMON_FIELDS + ("spec.clusterIP", "spec.type"), field_label_conversion="core",
       allow_create_on_update=True),
    _r("", "v1", "endpoints", "endpoints", "Endpoints", True, "/registry/services/endpoints/", short_names=("ep",),
       allow_create_on_update=True),
    _r("", "v1", "configmaps", "configmap", "ConfigMap", True, "/registry/configmaps/", short_names=("cm",)),
    _r("", "v1", "secrets", "secret", "Secret", True, "/registry/secrets/", field_selectors=_COMMON_FIELDS + ("type",),
       field_label_conversion="core"),
    _r("", "v1", "events", "event", "Event", True, "/registry/events/", short_names=("ev",),
       field_selectors=_EVENT_FIELDS, field_label_conversion="core", allow_create_on_update=True),
    _r("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, "/registry/serviceaccounts/",
       short_names=("sa",), returns_deleted_object=True, subresources=("token",)),
    _r("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", True, "/registry/resourcequotas/",
       short_names=("quota",), subresources=("status",), returns_deleted_object=True),
    _r("", "v1", "limitranges", "limitrange", "LimitRange", True, "/registry/limitranges/", short_names=("limits",)),
    _r("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, "/registry/leases/",
       allow_create_on_update=True, allow_unconditional_update=False),
    _r("apps", "v1", "deployments", "deployment", "Deployment", True, "/registry/deployments/", short_names=("deploy",),
       categories=("all",), subresources=("status", "scale"), generation=True),
    _r("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, "/registry/replicasets/", short_names=("rs",),
       categories=("all",), subresources=("status", "scale"), generation=True),
    _r("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, "/registry/daemonsets/", short_names=("ds",),
       categories=("all",), subresources=("status",), generation=True),
    _r("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, "/registry/statefulsets/",
       short_names=("sts",), categories=("all",), subresources=("status", "scale"), generation=True),
    _r("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", True,
       "/registry/controllerrevisions/"),
    _r("batch", "v1", "jobs", "job", "Job", True, "/registry/jobs/", categories=("all",), subresources=("status",),
       generation=True, field_selectors=_COMMON_FIELDS + ("status.successful",), field_label_conversion="job"),
    _r("batch", "v1", "cronjobs", "cronjob", "CronJob", True, "/registry/cronjobs/", short_names=("cj",),
       categories=("all",), subresources=("status",), generation=True),
    _r("events.k8s.io", "v1", "events", "event", "Event", True, "/registry/events/", short_names=("ev",),
       storage_of="events", field_selectors=_COMMON_FIELDS + (
           "regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "regarding.apiVersion",
           "regarding.resourceVersion", "regarding.fieldPath", "reason", "reportingController", "type", "source"),
       field_label_conversion="core", allow_create_on_update=True,
       field_storage_names={
           **{f"regarding.{f}": f"involvedObject.{f}"
              for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
           "reportingController": "reportingComponent"}),
    _r("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True,
       "/registry/poddisruptionbudgets/", short_names=("pdb",), subresources=("status",), generation=True),
    _r("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True,
       "/registry/endpointslices/", generation=True),
    _r("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", False,
       "/registry/priorityclasses/", short_names=("pc",), generation=True),
    # Create-only reviews, never stored (answered by registry.serve_create handlers: apiserver.authn).
    _r("authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview", False, "", verbs=("create",),
       stored=False),
    _r("authentication.k8s.io", "v1", "selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview", False, "",
       verbs=("create",), stored=False),
    # authorization.k8s.io: create-only reviews answered by apiserver.authz.reviews.
    _r("authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview", "SubjectAccessReview", False, "",
       verbs=("create",), stored=False),
    _r("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
       "SelfSubjectAccessReview", False, "", verbs=("create",), stored=False),
    _r("authorization.k8s.io", "v1", "localsubjectaccessreviews", "localsubjectaccessreview",
       "LocalSubjectAccessReview", True, "", verbs=("create",), stored=False),
    _r("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "selfsubjectrulesreview", "SelfSubjectRulesReview",
       False, "", verbs=("create",), stored=False),
    # RBAC (apiserver.authz.rbac decides from these kinds' watch caches).
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False,
       "/registry/clusterrolebindings/"),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False,
       "/registry/clusterroles/"),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True,
       "/registry/rolebindings/"),
    _r("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True, "/registry/roles/"),
    # API Priority and Fairness: the bootstrap configuration, served read-only (apiserver.flowcontrol.objects).
    _r("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "flowschema", "FlowSchema", False,
       "/registry/flowschemas/", verbs=("get", "list", "watch")),
    _r("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", "prioritylevelconfiguration",
       "PriorityLevelConfiguration", False, "/registry/prioritylevelconfigurations/", verbs=("get", "list", "watch")),
    # CustomResourceDefinitions (apiserver.apiextensions): their custom resources join this table at runtime.
    _r("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
       "CustomResourceDefinition", False, "/registry/apiextensions.k8s.io/customresourcedefinitions/",
       short_names=("crd", "crds"), categories=("api-extensions",), subresources=("status",), generation=True),
]

_BY_PATH: Dict[Tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}

# Group versions in discovery order (core first, then groups as upstream lists them).
GROUP_VERSIONS: List[Tuple[str, str]] = []
for _res in RESOURCES:
    if (_res.group, _res.version) not in GROUP_VERSIONS:
        GROUP_VERSIONS.append((_res.group, _res.version))

#: Every API group served (routing answers a JSON 404 under one, plain text elsewhere); kept with the table.
SERVED_GROUPS: Set[str] = {g for g, _ in GROUP_VERSIONS}
#: (apiVersion, kind) of every served kind: what the scheme decodes (scheme.REGISTERED_KINDS is this set).
KINDS: Set[Tuple[str, str]] = {(r.group_version, r.kind) for r in RESOURCES}
# Bumped by every runtime change of the table: documents built from it (discovery, OpenAPI) compare it.
_generation = [0]


def by_path(group: str, version: str, plural: str) -> Optional[Resource]:
    """The resource served at /api(s)/<group>/<version>/<plural>."""
    return _BY_PATH.get((group, version, plural))


def lookup(group: str, plural: str) -> Optional[Resource]:
    """The resource of a group by plural, any served version."""
    for r in RESOURCES:
        if r.group == group and r.plural == plural:
            return r
    return None


def preferred_group_versions() -> Dict[str, str]:
    """group -> its preferred version (the first listed)."""
    out: Dict[str, str] = {}
    for g, v in GROUP_VERSIONS:
        out.setdefault(g, v)
    return out


def generation() -> int:
    """How many runtime changes the table has seen (0: only the static kinds)."""
    return _generation[0]


def add_resource(r: Resource, before_version: Optional[str] = None) -> None:
    """Serve `r` from now on (custom resources): replaces the resource at the same path, if any.

    `before_version`: a version of the same group to list this one's group version before
    (discovery lists a group's versions by priority, the first preferred)."""
    old = _BY_PATH.get((r.group, r.version, r.plural))
    if old is not None:
        RESOURCES[RESOURCES.index(old)] = r
        KINDS.discard((old.group_version, old.kind))
    else:
        RESOURCES.append(r)
    _BY_PATH[(r.group, r.version, r.plural)] = r
    KINDS.add((r.group_version, r.kind))
    gv = (r.group, r.version)
    if gv not in GROUP_VERSIONS:
        before = (r.group, before_version or "")
        if before_version and before in GROUP_VERSIONS:
            GROUP_VERSIONS.insert(GROUP_VERSIONS.index(before), gv)
        else:
            GROUP_VERSIONS.append(gv)
    SERVED_GROUPS.add(r.group)
    _generation[0] += 1


def remove_resource(r: Resource) -> None:
    """Stop serving the resource at r's path (a deleted custom resource definition); no-op if not served."""
    old = _BY_PATH.pop((r.group, r.version, r.plural), None)
    if old is None:
        return
    RESOURCES.remove(old)
    if not any(x.group_version == old.group_version and x.kind == old.kind for x in RESOURCES):
        KINDS.discard((old.group_version, old.kind))
    if not any(x.group == r.group and x.version == r.version for x in RESOURCES):
        GROUP_VERSIONS.remove((r.group, r.version))
    if not any(x.group == r.group for x in RESOURCES):
        SERVED_GROUPS.discard(r.group)
    _generation[0] += 1
