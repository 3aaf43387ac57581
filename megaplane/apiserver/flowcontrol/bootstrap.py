"""Upstream's bootstrap flow-control configuration: the priority levels and flow schemas in force.

The values are kube-apiserver's (k8s.io/apiserver pkg/apis/flowcontrol/bootstrap/default.go): the
mandatory `exempt` and `catch-all` objects plus the suggested ones, as `flowcontrol.apiserver.k8s.io/v1`
documents. They are both the configuration the dispatcher runs (`classifier`, `controller`) and the
objects the API serves read-only, so what `kubectl get flowschemas` shows is what is enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "API_VERSION",
    "PriorityLevel",
    "ResourceRule",
    "Subject",
    "FlowSchema",
    "PRIORITY_LEVELS",
    "FLOW_SCHEMAS",
    "priority_level_document",
    "flow_schema_document",
]

API_VERSION = "flowcontrol.apiserver.k8s.io/v1"
ALL = "*"
# Upstream's well-known identities (k8s.io/apiserver pkg/authentication/user, serviceaccount).
MASTERS = "system:masters"
NODES = "system:nodes"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNTS = "system:serviceaccounts"
CONTROLLER_MANAGER = "system:kube-controller-manager"
SCHEDULER = "system:kube-scheduler"


@dataclass(frozen=True)
class PriorityLevel:
    """One PriorityLevelConfiguration. `exempt` levels are never limited; `queues == 0` means Reject."""

    name: str
    exempt: bool = False
    nominal_concurrency_shares: int = 0
    lendable_percent: int = 0
    queues: int = 0
    hand_size: int = 0
    queue_length_limit: int = 0

    @property
    def queuing(self) -> bool:
        return self.queues > 0


@dataclass(frozen=True)
class Subject:
    """A rule's subject: kind is User, Group or ServiceAccount; `namespace` only for ServiceAccount."""

    kind: str
    name: str
    namespace: str = ""


@dataclass(frozen=True)
class ResourceRule:
    verbs: Tuple[str, ...]
    api_groups: Tuple[str, ...]
    resources: Tuple[str, ...]
    namespaces: Tuple[str, ...] = ()
    cluster_scope: bool = False


@dataclass(frozen=True)
class NonResourceRule:
    verbs: Tuple[str, ...]
    urls: Tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    subjects: Tuple[Subject, ...]
    resource_rules: Tuple[ResourceRule, ...] = ()
    non_resource_rules: Tuple[NonResourceRule, ...] = ()


@dataclass(frozen=True)
class FlowSchema:
    name: str
    priority_level: str
    matching_precedence: int
    #: "ByUser", "ByNamespace" or "" (no distinguisher: one flow).
    distinguisher: str
    rules: Tuple[Rules, ...]


def _limited(name: str, shares: int, lendable: int, queues: int = 0, hand: int = 0, length: int = 0) -> PriorityLevel:
    return PriorityLevel(name, False, shares, lendable, queues, hand, length)


PRIORITY_LEVELS: Tuple[PriorityLevel, ...] = (
    PriorityLevel("exempt", exempt=True),
    _limited("system", 30, 33, 64, 6, 50),
    _limited("node-high", 40, 25, 64, 6, 50),
    _limited("leader-election", 10, 0, 16, 4, 50),
    _limited("workload-high", 40, 50, 128, 6, 50),
    _limited("workload-low", 100, 90, 128, 6, 50),
    _limited("global-default", 20, 50, 128, 6, 50),
    _limited("catch-all", 5, 0),  # LimitResponse Reject: no queues
)

_RESOURCES_ALL = (ResourceRule((ALL,), (ALL,), (ALL,), (ALL,), True),)
_NON_RESOURCES_ALL = (NonResourceRule((ALL,), (ALL,)),)


def _groups(*names: str) -> Tuple[Subject, ...]:
    return tuple(Subject("Group", n) for n in names)


def _users(*names: str) -> Tuple[Subject, ...]:
    return tuple(Subject("User", n) for n in names)


def _kube_system_sa(*names: str) -> Tuple[Subject, ...]:
    return tuple(Subject("ServiceAccount", n, "kube-system") for n in names)


def _all(*subjects: Subject) -> Tuple[Rules, ...]:
    return (Rules(subjects, _RESOURCES_ALL, _NON_RESOURCES_ALL),)


_GCU = ("get", "create", "update")

FLOW_SCHEMAS: Tuple[FlowSchema, ...] = (
    FlowSchema("exempt", "exempt", 1, "", (Rules(_groups(MASTERS), _RESOURCES_ALL, _NON_RESOURCES_ALL),)),
    FlowSchema("probes", "exempt", 2, "", (
        Rules(_groups(UNAUTHENTICATED, AUTHENTICATED), (),
              (NonResourceRule(("get",), ("/healthz", "/readyz", "/livez")),)),)),
    FlowSchema("system-leader-election", "leader-election", 100, "ByUser", (
        Rules(_users(CONTROLLER_MANAGER, SCHEDULER) + _kube_system_sa(ALL),
              (ResourceRule(_GCU, ("coordination.k8s.io",), ("leases",), (ALL,)),)),)),
    FlowSchema("endpoint-controller", "workload-high", 150, "ByUser", (
        Rules(_users(CONTROLLER_MANAGER) + _kube_system_sa("endpoint-controller", "endpointslicemirroring-controller"),
              (ResourceRule(_GCU, ("",), ("endpoints",), (ALL,)),)),)),
    FlowSchema("workload-leader-election", "leader-election", 200, "ByUser", (
        Rules(_kube_system_sa(ALL), (
            ResourceRule(_GCU, ("",), ("endpoints", "configmaps"), (ALL,)),
            ResourceRule(_GCU, ("coordination.k8s.io",), ("leases",), (ALL,)),
        )),)),
    FlowSchema("system-node-high", "node-high", 400, "ByUser", (
        Rules(_groups(NODES), (
            ResourceRule((ALL,), ("",), ("nodes", "nodes/status"), (ALL,), True),
            ResourceRule((ALL,), ("coordination.k8s.io",), ("leases",), (ALL,)),
        )),)),
    FlowSchema("system-nodes", "system", 500, "ByUser", _all(*_groups(NODES))),
    FlowSchema("kube-controller-manager", "workload-high", 800, "ByNamespace", _all(*_users(CONTROLLER_MANAGER))),
    FlowSchema("kube-scheduler", "workload-high", 800, "ByNamespace", _all(*_users(SCHEDULER))),
    FlowSchema("kube-system-service-accounts", "workload-high", 900, "ByNamespace", _all(*_kube_system_sa(ALL))),
    FlowSchema("service-accounts", "workload-low", 9000, "ByUser", _all(*_groups(SERVICE_ACCOUNTS))),
    FlowSchema("global-default", "global-default", 9900, "ByUser", _all(*_groups(UNAUTHENTICATED, AUTHENTICATED))),
    FlowSchema("catch-all", "catch-all", 10000, "ByUser", _all(*_groups(UNAUTHENTICATED, AUTHENTICATED))),
)

# Objects the configuration producer keeps in line with this file (upstream's annotation).
_AUTO_UPDATE = {"apf.kubernetes.io/autoupdate-spec": "true"}


def priority_level_document(pl: PriorityLevel) -> Dict[str, Any]:
    """The PriorityLevelConfiguration object, as kube-apiserver stores its bootstrap copy."""
    spec: Dict[str, Any]
    if pl.exempt:
        spec = {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}
    else:
        response: Dict[str, Any] = {"type": "Reject"}
        if pl.queuing:
            response = {"type": "Queue", "queuing": {
                "queues": pl.queues, "handSize": pl.hand_size, "queueLengthLimit": pl.queue_length_limit}}
        spec = {"type": "Limited", "limited": {
            "nominalConcurrencyShares": pl.nominal_concurrency_shares,
            "lendablePercent": pl.lendable_percent,
            "limitResponse": response}}
    return {"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration",
            "metadata": {"name": pl.name, "annotations": dict(_AUTO_UPDATE)}, "spec": spec, "status": {}}


def _subject_document(s: Subject) -> Dict[str, Any]:
    if s.kind == "ServiceAccount":
        return {"kind": s.kind, "serviceAccount": {"name": s.name, "namespace": s.namespace}}
    return {"kind": s.kind, s.kind.lower(): {"name": s.name}}


def _rules_document(r: Rules) -> Dict[str, Any]:
    doc: Dict[str, Any] = {"subjects": [_subject_document(s) for s in r.subjects]}
    if r.resource_rules:
        doc["resourceRules"] = []
        for rr in r.resource_rules:
            one: Dict[str, Any] = {"verbs": list(rr.verbs), "apiGroups": list(rr.api_groups),
                                   "resources": list(rr.resources)}
            if rr.cluster_scope:
                one["clusterScope"] = True
            if rr.namespaces:
                one["namespaces"] = list(rr.namespaces)
            doc["resourceRules"].append(one)
    if r.non_resource_rules:
        doc["nonResourceRules"] = [{"verbs": list(n.verbs), "nonResourceURLs": list(n.urls)}
                                   for n in r.non_resource_rules]
    return doc


def flow_schema_document(fs: FlowSchema) -> Dict[str, Any]:
    """The FlowSchema object, with the Dangling condition the configuration controller writes."""
    spec: Dict[str, Any] = {
        "priorityLevelConfiguration": {"name": fs.priority_level},
        "matchingPrecedence": fs.matching_precedence,
        "rules": [_rules_document(r) for r in fs.rules],
    }
    if fs.distinguisher:
        spec["distinguisherMethod"] = {"type": fs.distinguisher}
    condition = {
        "type": "Dangling", "status": "False", "reason": "Found",
        "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{fs.priority_level}" '
                   "and it exists",
    }
    return {"apiVersion": API_VERSION, "kind": "FlowSchema",
            "metadata": {"name": fs.name, "annotations": dict(_AUTO_UPDATE)}, "spec": spec,
            "status": {"conditions": [condition]}}


def level_named(name: str) -> Optional[PriorityLevel]:
    for pl in PRIORITY_LEVELS:
        if pl.name == name:
            return pl
    return None


def schemas_by_precedence() -> List[FlowSchema]:
    """Upstream's matching order: precedence, then name."""
    return sorted(FLOW_SCHEMAS, key=lambda fs: (fs.matching_precedence, fs.name))
