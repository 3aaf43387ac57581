"""The Node authorizer: what a kubelet (user `system:node:<name>` in group `system:nodes`) may do.

As plugin/pkg/auth/authorizer/node: its own Lease in kube-node-lease, and
everything upstream's node rules (`policy.NODE_RULES`, the system:node
role) allow. Objects tied to one node are checked against the cache: a
node may update the status of, or delete, only pods bound to it
(spec.nodeName), and update or delete only its own Node. What a request
body sets (a created Node's or Lease's name, labels, mirror pods) is
NodeRestriction admission's (`noderestriction`).

Not done: the graph upstream keeps of the Secrets, ConfigMaps, volumes and
ServiceAccount tokens pods on a node reference; node identities get no
opinion on those, so RBAC (which binds system:node to nobody) refuses them.
"""

from __future__ import annotations

from typing import Any, Optional

from megaplane.apimachinery.resources import lookup
from megaplane.apimachinery.user import NODE_USER_PREFIX, NODES_GROUP, UserInfo
from megaplane.apiserver.authz.decision import ALLOW, NO_OPINION, Decision, no_opinion
from megaplane.apiserver.authz.policy import NODE_RULES
from megaplane.apiserver.authz.rules import compile_rules

__all__ = ["NodeAuthorizer", "node_name"]

LEASE_NAMESPACE = "kube-node-lease"
_LEASE_VERBS = frozenset(("get", "create", "update", "patch", "delete"))
_GRAPH_RESOURCES = frozenset(("secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes",
                              "resourceclaims", "serviceaccounts", "volumeattachments"))


def node_name(user: Optional[UserInfo]) -> Optional[str]:
    """The node a user is (NodeIdentifier): its name after `system:node:` when it is in system:nodes."""
    if user is None or not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return None
    return user.name[len(NODE_USER_PREFIX):] or None


class NodeAuthorizer:
    def __init__(self, cache_for: Any) -> None:
        self.rules = compile_rules(NODE_RULES)
        pods = lookup("", "pods")
        assert pods is not None
        self._pods = cache_for(pods)
        self._pods_resource = pods

    def authorize(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
                  name: str) -> Decision:
        node = node_name(user)
        if node is None:
            return NO_OPINION
        if group == "coordination.k8s.io" and resource == "leases":
            if verb not in _LEASE_VERBS or subresource:
                return no_opinion("can only get, create, update, patch or delete a node lease")
            if namespace != LEASE_NAMESPACE:
                return no_opinion(f'can only access leases in the "{LEASE_NAMESPACE}" namespace')
            if verb != "create" and name != node:
                return no_opinion("can only access node lease with the same name as the requesting node")
            return ALLOW
        if not group and resource in _GRAPH_RESOURCES and not subresource:
            if verb != "get":
                return no_opinion("can only get individual resources of this type")
            return no_opinion(f"no relationship found between node '{node}' and this object")
        if not group and resource == "nodes" and name and name != node and verb in ("update", "patch", "delete"):
            return no_opinion(f'node "{node}" is not allowed to modify node "{name}"')
        if not group and resource == "pods" and name and (subresource == "status" or verb == "delete"):
            cached = self._pods.get(self._pods_resource.key(namespace, name))
            if cached is not None and cached.facts.fields.get("spec.nodeName") != node:
                if verb == "delete":
                    return no_opinion(f'node "{node}" can only delete pods with spec.nodeName set to itself')
                return no_opinion(f'node "{node}" can only update pod status for pods with their own node as '
                                  "spec.nodeName")
        for rule in self.rules:
            if rule.allows(verb, group, resource, subresource, name):
                return ALLOW
        return NO_OPINION

    def authorize_path(self, user: UserInfo, verb: str, path: str) -> Decision:
        return NO_OPINION
