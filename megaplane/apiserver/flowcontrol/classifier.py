"""Which flow schema, and so which priority level, a request belongs to.

Matching follows upstream (k8s.io/apiserver pkg/util/flowcontrol/rule.go): schemas in
matchingPrecedence order, the first whose rules match wins; a resource rule matches on verb, API
group, resource (`nodes/status` for a subresource) and namespace, and a request without a namespace
only matches rules with `clusterScope`.

Subjects need an authenticated user, and megaplane has no authentication yet. Until it does, each
subject is evaluated through a stand-in that only says yes where the request itself shows who sends
such traffic (`subject_stand_in`):

- `system:authenticated` / `system:unauthenticated`: everyone, as upstream.
- `system:nodes`: requests in `kube-node-lease` (node heartbeats) and requests on one named Node
  (a kubelet acts on its own Node and its status; listing all nodes is not node traffic).
- `system:kube-controller-manager`, `system:kube-scheduler`, service accounts of `kube-system`:
  requests in the `kube-system` namespace (leader election leases, the controllers' own objects).
- `system:masters`, `system:serviceaccounts` and anything else: never (nothing in a request shows it).

So lease renewals in kube-node-lease and named node/status writes land in node-high, kube-system
leases in leader-election, and the rest in global-default, as the same traffic would upstream from its
usual senders. A header never chooses a priority (a client could name itself privileged); the
User-Agent only distinguishes flows of ByUser schemas (which queues a client shares), in place of
the user name.

The answer depends only on (verb, group, resource, namespace class, named), so it is computed once per
such key and then looked up: one dict probe per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from megaplane.apiserver.flowcontrol.bootstrap import (
    ALL,
    AUTHENTICATED,
    CONTROLLER_MANAGER,
    NODES,
    SCHEDULER,
    UNAUTHENTICATED,
    FlowSchema,
    PriorityLevel,
    ResourceRule,
    Subject,
    level_named,
    schemas_by_precedence,
)

__all__ = ["Classification", "Classifier", "namespace_class"]

NODE_LEASE_NAMESPACE = "kube-node-lease"
SYSTEM_NAMESPACE = "kube-system"
# Namespaces the stand-ins tell apart; every other namespace behaves alike ("*").
_SPECIAL_NAMESPACES = (NODE_LEASE_NAMESPACE, SYSTEM_NAMESPACE)

Key = Tuple[str, str, str, str, bool]


@dataclass(frozen=True)
class Classification:
    schema: FlowSchema
    level: PriorityLevel
    #: The flow distinguisher: "ByUser", "ByNamespace" or "" (the schema is one flow).
    distinguisher: str


def namespace_class(namespace: str) -> str:
    """"" (cluster scope), one of the namespaces the stand-ins know, or "*" for any other."""
    if not namespace:
        return ""
    return namespace if namespace in _SPECIAL_NAMESPACES else "*"


def subject_stand_in(subject: Subject, group: str, resource: str, ns_class: str, named: bool) -> bool:
    """Whether `subject` would plausibly have sent this request (see the module docstring)."""
    if subject.kind == "Group":
        if subject.name in (AUTHENTICATED, UNAUTHENTICATED):
            return True
        if subject.name == NODES:
            return ns_class == NODE_LEASE_NAMESPACE or (group == "" and resource.startswith("nodes") and named)
        return False
    if subject.kind == "User":
        return subject.name in (CONTROLLER_MANAGER, SCHEDULER) and ns_class == SYSTEM_NAMESPACE
    if subject.kind == "ServiceAccount":
        return subject.namespace == SYSTEM_NAMESPACE and ns_class == SYSTEM_NAMESPACE
    return False


def _rule_matches(rule: ResourceRule, verb: str, group: str, resource: str, ns_class: str) -> bool:
    if ALL not in rule.verbs and verb not in rule.verbs:
        return False
    if ALL not in rule.api_groups and group not in rule.api_groups:
        return False
    if ALL not in rule.resources and resource not in rule.resources:
        return False
    if not ns_class:
        return rule.cluster_scope
    # A namespace class "*" stands for namespaces no rule names: only a "*" rule matches it.
    return ALL in rule.namespaces or (ns_class != "*" and ns_class in rule.namespaces)


class Classifier:
    """Resource requests to (flow schema, priority level), memoised per request shape."""

    def __init__(self) -> None:
        self.schemas = schemas_by_precedence()
        self._memo: Dict[Key, Classification] = {}

    def classify(self, verb: str, group: str, resource: str, namespace: str, named: bool) -> Classification:
        """`resource` is the plural, with "/subresource" appended for a subresource request."""
        key = (verb, group, resource, namespace_class(namespace), named)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._match(*key)
        return found

    def _match(self, verb: str, group: str, resource: str, ns_class: str, named: bool) -> Classification:
        for fs in self.schemas:
            for rules in fs.rules:
                if not any(subject_stand_in(s, group, resource, ns_class, named) for s in rules.subjects):
                    continue
                if any(_rule_matches(rr, verb, group, resource, ns_class) for rr in rules.resource_rules):
                    level = level_named(fs.priority_level)
                    assert level is not None, f"flow schema {fs.name} names a missing priority level"
                    return Classification(fs, level, fs.distinguisher)
        raise AssertionError("the catch-all flow schema matches every request")
