"""Upstream's bootstrap RBAC policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), as data.

The ClusterRoles and ClusterRoleBindings kube-apiserver 1.32 reconciles at
start: cluster-admin, the aggregated admin/edit/view, discovery, basic-user,
public-info-viewer, the component roles (scheduler, controller-manager,
node, node-proxier, monitoring, ...) and one `system:controller:<name>`
role per controller megaplane runs, bound to its ServiceAccount in
kube-system (kube-controller-manager's --use-service-account-credentials).
Each object carries `rbac.authorization.kubernetes.io/autoupdate: "true"`
and the `kubernetes.io/bootstrapping: rbac-defaults` label.
`reconcile.ensure_policy` writes them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["cluster_roles", "cluster_role_bindings", "NODE_RULES", "CONTROLLER_SERVICE_ACCOUNTS",
           "AUTOUPDATE", "controller_user"]

Obj = Dict[str, Any]
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_Strs = Union[str, Sequence[str]]

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _l(v: _Strs) -> List[str]:
    return [v] if isinstance(v, str) else list(v)


def R(groups: _Strs, resources: _Strs, verbs: _Strs, names: Optional[_Strs] = None) -> Obj:
    rule: Obj = {"verbs": _l(verbs), "apiGroups": _l(groups), "resources": _l(resources)}
    if names:
        rule["resourceNames"] = _l(names)
    return rule


def U(urls: _Strs, verbs: _Strs = "get") -> Obj:
    return {"verbs": _l(verbs), "nonResourceURLs": _l(urls)}


EVENTS = R(("", "events.k8s.io"), "events", ("create", "patch", "update"))

_AGGREGATE_TO_ADMIN = [
    R("authorization.k8s.io", "localsubjectaccessreviews", "create"),
    R("rbac.authorization.k8s.io", ("rolebindings", "roles"), RW),
]
_AGGREGATE_TO_EDIT = [
    R("", ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"), READ),
    R("", "serviceaccounts", "impersonate"),
    R("", ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"), WRITE),
    R("", "pods/eviction", "create"),
    R("", ("configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale",
           "secrets", "serviceaccounts", "services", "services/proxy"), WRITE),
    R("", "serviceaccounts/token", "create"),
    R("apps", ("daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
               "replicasets/scale", "statefulsets", "statefulsets/scale"), WRITE),
    R("autoscaling", "horizontalpodautoscalers", WRITE),
    R("batch", ("cronjobs", "jobs"), WRITE),
    R("extensions", ("daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
                     "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"), WRITE),
    R("policy", "poddisruptionbudgets", WRITE),
    R("networking.k8s.io", ("ingresses", "networkpolicies"), WRITE),
    R("coordination.k8s.io", "leases", RW),
]
_AGGREGATE_TO_VIEW = [
    R("", ("configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
           "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
           "services/status"), READ),
    R("", ("bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
           "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"), READ),
    R("", "namespaces", READ),
    R("discovery.k8s.io", "endpointslices", READ),
    R("apps", ("controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
               "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
               "statefulsets/scale", "statefulsets/status"), READ),
    R("autoscaling", ("horizontalpodautoscalers", "horizontalpodautoscalers/status"), READ),
    R("batch", ("cronjobs", "cronjobs/status", "jobs", "jobs/status"), READ),
    R("extensions", ("daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
                     "ingresses", "ingresses/status", "networkpolicies", "replicasets", "replicasets/scale",
                     "replicasets/status", "replicationcontrollers/scale"), READ),
    R("policy", ("poddisruptionbudgets", "poddisruptionbudgets/status"), READ),
    R("networking.k8s.io", ("ingresses", "ingresses/status", "networkpolicies"), READ),
]

#: system:node's rules: what the Node authorizer allows a node identity beyond its graph checks (NodeRules()).
NODE_RULES = [
    R("authentication.k8s.io", "tokenreviews", "create"),
    R("authorization.k8s.io", ("localsubjectaccessreviews", "subjectaccessreviews"), "create"),
    R("", "services", READ),
    R("", "nodes", ("create", "get", "list", "watch")),
    R("", "nodes/status", ("patch", "update")),
    R("", "nodes", ("patch", "update")),
    R("", "events", ("create", "patch", "update")),
    R("", "pods", READ),
    R("", "pods", ("create", "delete")),
    R("", "pods/status", ("patch", "update")),
    R("", "pods/eviction", "create"),
    R("", ("configmaps", "secrets"), READ),
    R("", ("persistentvolumeclaims", "persistentvolumes"), "get"),
    R("", "endpoints", "get"),
    R("certificates.k8s.io", "certificatesigningrequests", ("create", "get", "list", "watch")),
    R("coordination.k8s.io", "leases", ("create", "delete", "get", "patch", "update")),
    R("storage.k8s.io", "volumeattachments", "get"),
    R("", "serviceaccounts/token", "create"),
    R("", "persistentvolumeclaims/status", ("get", "patch", "update")),
    R("storage.k8s.io", "csidrivers", READ),
    R("storage.k8s.io", "csinodes", ("create", "delete", "get", "patch", "update")),
    R("node.k8s.io", "runtimeclasses", READ),
]

_ROLES: List[Tuple[str, List[Obj]]] = [
    ("cluster-admin", [R("*", "*", "*"), U("*", "*")]),
    ("system:aggregate-to-admin", _AGGREGATE_TO_ADMIN),
    ("system:aggregate-to-edit", _AGGREGATE_TO_EDIT),
    ("system:aggregate-to-view", _AGGREGATE_TO_VIEW),
    ("system:auth-delegator", [R("authentication.k8s.io", "tokenreviews", "create"),
                               R("authorization.k8s.io", "subjectaccessreviews", "create")]),
    ("system:basic-user", [R("authorization.k8s.io", ("selfsubjectaccessreviews", "selfsubjectrulesreviews"), "create"),
                           R("authentication.k8s.io", "selfsubjectreviews", "create")]),
    ("system:discovery", [U(("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                             "/readyz", "/version", "/version/"))]),
    ("system:heapster", [R("", ("events", "namespaces", "nodes", "pods"), READ), R("extensions", "deployments", READ)]),
    ("system:kube-aggregator", [R("", ("endpoints", "services"), READ)]),
    ("system:kube-controller-manager", [
        EVENTS,
        R("coordination.k8s.io", "leases", "create"),
        R("coordination.k8s.io", "leases", ("get", "update"), "kube-controller-manager"),
        R("", ("secrets", "serviceaccounts"), "create"),
        R("", "secrets", "delete"),
        R("", ("configmaps", "namespaces", "secrets", "serviceaccounts"), "get"),
        R("", ("secrets", "serviceaccounts"), "update"),
        R("authentication.k8s.io", "tokenreviews", "create"),
        R("authorization.k8s.io", "subjectaccessreviews", "create"),
        R("*", "*", ("list", "watch")),
        R("", "serviceaccounts/token", "create"),
    ]),
    ("system:kube-dns", [R("", ("endpoints", "services"), ("list", "watch"))]),
    ("system:kube-scheduler", [
        EVENTS,
        R("coordination.k8s.io", "leases", "create"),
        R("coordination.k8s.io", "leases", ("get", "update"), "kube-scheduler"),
        R("", "nodes", READ),
        R("", "pods", ("delete", "get", "list", "watch")),
        R("", ("bindings", "pods/binding"), "create"),
        R("", "pods/status", ("patch", "update")),
        R("", ("replicationcontrollers", "services"), READ),
        R(("apps", "extensions"), "replicasets", READ),
        R("apps", "statefulsets", READ),
        R("policy", "poddisruptionbudgets", READ),
        R("", ("persistentvolumeclaims", "persistentvolumes"), READ),
        R("authentication.k8s.io", "tokenreviews", "create"),
        R("authorization.k8s.io", "subjectaccessreviews", "create"),
        R("storage.k8s.io", "csinodes", READ),
        R("", "namespaces", READ),
        R("storage.k8s.io", "csidrivers", READ),
        R("storage.k8s.io", "csistoragecapacities", READ),
    ]),
    ("system:kubelet-api-admin", [R("", "nodes", READ), R("", "nodes", "proxy"),
                                  R("", ("nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"), "*")]),
    ("system:monitoring", [U(("/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz",
                              "/readyz/*"))]),
    ("system:node", NODE_RULES),
    ("system:node-bootstrapper", [R("certificates.k8s.io", "certificatesigningrequests",
                                    ("create", "get", "list", "watch"))]),
    ("system:node-problem-detector", [R("", "nodes", "get"), R("", "nodes/status", "patch"), EVENTS]),
    ("system:node-proxier", [R("", ("endpoints", "services"), ("list", "watch")), R("", "nodes", READ), EVENTS,
                             R("discovery.k8s.io", "endpointslices", ("list", "watch"))]),
    ("system:persistent-volume-provisioner", [
        R("", "persistentvolumes", ("create", "delete", "get", "list", "watch")),
        R("", "persistentvolumeclaims", ("get", "list", "update", "watch")),
        R("storage.k8s.io", "storageclasses", READ), R("", "events", "watch"), EVENTS]),
    ("system:public-info-viewer", [U(("/healthz", "/livez", "/readyz", "/version", "/version/"))]),
    ("system:service-account-issuer-discovery", [U(("/.well-known/openid-configuration", "/openid/v1/jwks"))]),
    ("system:volume-scheduler", [R("", "persistentvolumes", ("get", "list", "patch", "update", "watch")),
                                 R("storage.k8s.io", "storageclasses", READ),
                                 R("", "persistentvolumeclaims", ("get", "list", "patch", "update", "watch"))]),
]

# megaplane's own: the simulated fleet's one shared identity (apimachinery.user.FLEET_USER in FLEET_GROUP) writes
# for many nodes, so it gets system:node's rules without the Node authorizer's per-node checks (NodeRestriction's
# content checks still apply), and may list and watch the node Leases it renews (a restarted fleet finds its
# Leases; a kubelet only gets its own).
FLEET_ROLE = "system:megaplane:fleet"
# What the Node authorizer allows a node only for objects its pods reference (Secrets, ConfigMaps, volumes,
# tokens) is left out: the fleet gets no graph check, so none of those.
_GRAPH_GUARDED = {"configmaps", "secrets", "persistentvolumeclaims", "persistentvolumes", "serviceaccounts/token",
                  "volumeattachments", "persistentvolumeclaims/status"}
_FLEET_RULES = [dict(r, resources=[x for x in r["resources"] if x not in _GRAPH_GUARDED]) for r in NODE_RULES
                if any(x not in _GRAPH_GUARDED for x in r["resources"])]
_ROLES.append((FLEET_ROLE, _FLEET_RULES + [R("coordination.k8s.io", "leases", ("list", "watch"))]))

# (role, the label that aggregates it into a higher role, its own aggregate-to label or None)
_AGGREGATED = [
    ("admin", "rbac.authorization.k8s.io/aggregate-to-admin", None),
    ("edit", "rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-admin"),
    ("view", "rbac.authorization.k8s.io/aggregate-to-view", "rbac.authorization.k8s.io/aggregate-to-edit"),
]
_AGGREGATES_INTO = {"system:aggregate-to-admin": "rbac.authorization.k8s.io/aggregate-to-admin",
                    "system:aggregate-to-edit": "rbac.authorization.k8s.io/aggregate-to-edit",
                    "system:aggregate-to-view": "rbac.authorization.k8s.io/aggregate-to-view"}

#: megaplane controller -> its upstream ServiceAccount name in kube-system (system:controller:<that>).
CONTROLLER_SERVICE_ACCOUNTS = {
    "namespace-controller": "namespace-controller",
    "serviceaccount-controller": "service-account-controller",
    "replicaset-controller": "replicaset-controller",
    "deployment-controller": "deployment-controller",
    "disruption-controller": "disruption-controller",
    "endpoints-controller": "endpoint-controller",
    "endpointslice-controller": "endpointslice-controller",
    "daemonset-controller": "daemon-set-controller",
    "statefulset-controller": "statefulset-controller",
    "garbage-collector-controller": "generic-garbage-collector",
    "job-controller": "job-controller",
    "ttl-after-finished-controller": "ttl-after-finished-controller",
    "cronjob-controller": "cronjob-controller",
    "node-lifecycle-controller": "node-controller",
    "taint-eviction-controller": "taint-eviction-controller",
    "pod-garbage-collector-controller": "pod-garbage-collector",
    "clusterrole-aggregation-controller": "clusterrole-aggregation-controller",
    "resourcequota-controller": "resourcequota-controller",
}

_CONTROLLER_ROLES: Dict[str, List[Obj]] = {
    "clusterrole-aggregation-controller": [
        R("rbac.authorization.k8s.io", "clusterroles", ("escalate", "get", "list", "patch", "update", "watch"))],
    "cronjob-controller": [
        R("batch", "cronjobs", ("get", "list", "update", "watch")),
        R("batch", "jobs", ("create", "delete", "get", "list", "patch", "update", "watch")),
        R("batch", "cronjobs/status", "update"), R("batch", "cronjobs/finalizers", "update"),
        R("", "pods", ("delete", "list", "watch")), EVENTS],
    "daemon-set-controller": [
        R(("apps", "extensions"), "daemonsets", READ), R(("apps", "extensions"), "daemonsets/status", "update"),
        R(("apps", "extensions"), "daemonsets/finalizers", "update"), R("", "nodes", ("list", "watch")),
        R("", "pods", ("create", "delete", "list", "patch", "watch")), R("", "pods/binding", "create"),
        R("apps", "controllerrevisions", ("create", "delete", "get", "list", "patch", "update", "watch")), EVENTS],
    "deployment-controller": [
        R(("apps", "extensions"), "deployments", ("get", "list", "update", "watch")),
        R(("apps", "extensions"), "deployments/status", "update"),
        R(("apps", "extensions"), "deployments/finalizers", "update"),
        R(("apps", "extensions"), "replicasets", ("create", "delete", "get", "list", "patch", "update", "watch")),
        R("", "pods", ("get", "list", "update", "watch")), EVENTS],
    "disruption-controller": [
        R(("apps", "extensions"), "deployments", READ), R(("apps", "extensions"), "replicasets", READ),
        R("", "replicationcontrollers", READ), R("policy", "poddisruptionbudgets", READ), R("apps", "statefulsets", READ),
        R("policy", "poddisruptionbudgets/status", "update"), R("", "pods/status", ("patch", "update")),
        R("*", "*/scale", "get"), EVENTS],
    "endpoint-controller": [
        R("", ("pods", "services"), READ),
        R("", "endpoints", ("create", "delete", "get", "list", "update", "watch")),
        R("", "endpoints/restricted", "create"), EVENTS],
    "endpointslice-controller": [
        R("", ("nodes", "pods", "services"), READ), R("", "services/finalizers", "update"),
        R("discovery.k8s.io", "endpointslices", ("create", "delete", "get", "list", "update", "watch")), EVENTS],
    "generic-garbage-collector": [R("*", "*", ("delete", "get", "list", "patch", "update", "watch")), EVENTS],
    "job-controller": [
        R("batch", "jobs", ("get", "list", "patch", "update", "watch")), R("batch", "jobs/status", "update"),
        R("batch", "jobs/finalizers", "update"), R("", "pods", ("create", "delete", "list", "patch", "watch")), EVENTS],
    "namespace-controller": [
        R("", "namespaces", ("delete", "get", "list", "watch")),
        R("", ("namespaces/finalize", "namespaces/status"), "update"),
        R("*", "*", ("delete", "deletecollection", "get", "list", "watch"))],
    "node-controller": [
        R("", "nodes", ("delete", "get", "list", "patch", "update", "watch")),
        R("", "nodes/status", ("patch", "update")), R("", "pods/status", ("patch", "update")),
        R("", "pods", ("delete", "get", "list", "watch")), EVENTS,
        # megaplane's addition: the canary Lease whose round trip tells the controller it still sees the cluster
        # (controllers.nodelifecycle.sight); without it every canary write is refused and no node is ever judged.
        R("coordination.k8s.io", "leases", "create"),
        R("coordination.k8s.io", "leases", ("get", "update"), "node-lifecycle-controller")],
    "pod-garbage-collector": [
        R("", "pods", ("delete", "list", "watch")), R("", "nodes", READ), R("", "pods/status", "patch")],
    "replicaset-controller": [
        R(("apps", "extensions"), "replicasets", ("get", "list", "update", "watch")),
        R(("apps", "extensions"), "replicasets/status", "update"),
        R(("apps", "extensions"), "replicasets/finalizers", "update"),
        R("", "pods", ("create", "delete", "list", "patch", "watch")), EVENTS],
    "resourcequota-controller": [
        R("*", "*", ("list", "watch")), R("", "resourcequotas/status", "update"), EVENTS],
    "service-account-controller": [R("", "serviceaccounts", "create"), EVENTS],
    "statefulset-controller": [
        R("", "pods", ("list", "watch")), R("apps", "statefulsets", READ), R("apps", "statefulsets/status", "update"),
        R("apps", "statefulsets/finalizers", "update"), R("", "pods", ("create", "delete", "get", "patch", "update")),
        R("apps", "controllerrevisions", ("create", "delete", "get", "list", "patch", "update", "watch")),
        R("", "persistentvolumeclaims", ("create", "get", "list", "watch")),
        R("", "persistentvolumeclaims", ("delete", "update")), R("", "pods/finalizers", "update"), EVENTS],
    "taint-eviction-controller": [
        R("", "pods/status", ("patch", "update")), R("", "pods", ("delete", "get", "list")), EVENTS,
        # megaplane's addition: a deletion is decided on the node read fresh, not on a cache (tainteviction).
        R("", "nodes", "get")],
    "ttl-after-finished-controller": [R("batch", "jobs", ("delete", "get", "list", "watch")), EVENTS],
}

# name -> subjects ((kind, name[, namespace]))
_BINDINGS: List[Tuple[str, List[Tuple[str, ...]]]] = [
    ("cluster-admin", [("Group", "system:masters")]),
    ("system:monitoring", [("Group", "system:monitoring")]),
    ("system:discovery", [("Group", "system:authenticated")]),
    ("system:basic-user", [("Group", "system:authenticated")]),
    ("system:public-info-viewer", [("Group", "system:authenticated"), ("Group", "system:unauthenticated")]),
    ("system:node-proxier", [("User", "system:kube-proxy")]),
    ("system:kube-controller-manager", [("User", "system:kube-controller-manager")]),
    ("system:kube-dns", [("ServiceAccount", "kube-dns", "kube-system")]),
    ("system:kube-scheduler", [("User", "system:kube-scheduler")]),
    ("system:volume-scheduler", [("User", "system:kube-scheduler")]),
    # Deprecated upstream since 1.8 and kept without subjects: nodes are the Node authorizer's.
    ("system:node", []),
    ("system:service-account-issuer-discovery", [("Group", "system:serviceaccounts")]),
    (FLEET_ROLE, [("Group", "system:megaplane:fleets")]),
]


def controller_user(controller: str) -> Tuple[str, Tuple[str, ...]]:
    """The user name and groups a controller runs as (its ServiceAccount in kube-system)."""
    sa = CONTROLLER_SERVICE_ACCOUNTS.get(controller, controller)
    return (f"system:serviceaccount:kube-system:{sa}",
            ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"))


def _meta(name: str, labels: Optional[Dict[str, str]] = None) -> Obj:
    return {"name": name, "labels": dict(_LABELS, **(labels or {})), "annotations": {AUTOUPDATE: "true"}}


def _role(name: str, rules: List[Obj], labels: Optional[Dict[str, str]] = None) -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(name, labels),
            "rules": [dict(r) for r in rules]}


def cluster_roles() -> List[Obj]:
    """Fresh copies of the bootstrap ClusterRoles (the caller may change them)."""
    out: List[Obj] = []
    for name, selector, into in _AGGREGATED:
        role = _role(name, [], {into: "true"} if into else None)
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {selector: "true"}}]}
        out.append(role)
    for name, rules in _ROLES:
        into = _AGGREGATES_INTO.get(name)
        out.append(_role(name, rules, {into: "true"} if into else None))
    for sa, rules in _CONTROLLER_ROLES.items():
        out.append(_role("system:controller:" + sa, rules))
    return out


def _subject(s: Tuple[str, ...]) -> Obj:
    if s[0] == "ServiceAccount":
        return {"kind": "ServiceAccount", "name": s[1], "namespace": s[2]}
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": s[0], "name": s[1]}


def _binding(name: str, role: str, subjects: List[Tuple[str, ...]]) -> Obj:
    obj: Obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}}
    if subjects:
        obj["subjects"] = [_subject(s) for s in subjects]
    return obj


def cluster_role_bindings() -> List[Obj]:
    out = [_binding(name, name, subjects) for name, subjects in _BINDINGS]
    for sa in _CONTROLLER_ROLES:
        out.append(_binding("system:controller:" + sa, "system:controller:" + sa,
                            [("ServiceAccount", sa, "kube-system")]))
    return out
