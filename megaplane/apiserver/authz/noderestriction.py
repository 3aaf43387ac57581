"""NodeRestriction admission: a node writes only its own Node, its own Lease and pods bound to it.

As plugin/pkg/admission/noderestriction, for users the Node authorizer
knows as nodes (`system:node:<name>` in system:nodes):

* nodes: create or update only the Node named as itself; on create no
  labels under `node-restriction.kubernetes.io/`, nor kubernetes.io /
  k8s.io labels other than a kubelet's own (hostname, os, arch, instance
  type, topology, `kubelet.kubernetes.io/`, `node.kubernetes.io/`), on
  update no change to such labels nor to its taints;
* pods: create only mirror pods (annotation `kubernetes.io/config.mirror`)
  bound to itself; status updates only of pods bound to itself; no other
  pod update;
* leases: only in kube-node-lease, only the Lease named as itself.

Refusals are admission's 403 `<resource> "<name>" is forbidden: node "x" ...`.

The simulated fleet's one shared identity (`FLEET_USER` in `FLEET_GROUP`)
writes for many nodes, so it gets the same checks but for which node:
the labels and taints rules, mirror pods only, status updates only of
pods bound to some node, Leases only in kube-node-lease.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.user import FLEET_GROUP
from megaplane.apiserver.authz.node import LEASE_NAMESPACE, node_name

__all__ = ["NodeRestriction"]

RESTRICTED_PREFIX = "node-restriction.kubernetes.io/"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


# k8s.io/kubelet's well-known labels a kubelet may set on its own Node (IsKubeletLabel), and the label
# namespaces wholly its own.
_KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os", "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region", "topology.kubernetes.io/zone"))
_KUBELET_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _forbidden_label(key: str) -> bool:
    """getForbiddenLabels: node-restriction.kubernetes.io/ ones, and kubernetes.io / k8s.io ones that are not a
    kubelet's."""
    if "/" not in key:
        return False
    ns = key.split("/", 1)[0]
    if ns == RESTRICTED_PREFIX[:-1] or ns.endswith("." + RESTRICTED_PREFIX[:-1]):
        return True
    official = any(ns == d or ns.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))
    if not official or key in _KUBELET_LABELS:
        return False
    return not any(ns == d or ns.endswith("." + d) for d in _KUBELET_NAMESPACES)


def _restricted(labels: Any) -> Dict[str, Any]:
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and _forbidden_label(k)}


class NodeRestriction:
    """A registry WriteGuard."""

    def check_write(self, resource: Resource, subresource: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]],
                    opts: Any) -> None:
        user = getattr(opts, "user", None)
        node = node_name(user)
        fleet = node is None and user is not None and FLEET_GROUP in user.groups
        if (node is None and not fleet) or resource.group not in ("", "coordination.k8s.io"):
            return
        if fleet:
            node = user.name
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        plural = resource.plural

        def refuse(why: str) -> None:
            raise errors.forbidden(resource.group, plural, name, why)

        if resource.group == "coordination.k8s.io":
            if plural != "leases":
                return
            if meta.get("namespace") != LEASE_NAMESPACE:
                refuse(f'can only access leases in the "{LEASE_NAMESPACE}" namespace')
            if name != node and not fleet:
                refuse("can only access node lease with the same name as the requesting node")
            return
        if plural == "nodes":
            if name != node and not fleet:
                refuse(f'node "{node}" is not allowed to modify node "{name}"')
            if old is None:
                bad = sorted(_restricted(meta.get("labels")))
                if bad:
                    refuse(f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}')
                return
            if subresource:
                return
            before, after = _restricted((old.get("metadata") or {}).get("labels")), _restricted(meta.get("labels"))
            changed: List[str] = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if changed:
                refuse(f'node "{node}" is not allowed to modify labels: {", ".join(changed)}')
            if (obj.get("spec") or {}).get("taints") != (old.get("spec") or {}).get("taints"):
                refuse(f'node "{node}" is not allowed to modify taints')
            return
        if plural == "pods":
            if old is None:
                if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
                    refuse(f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only create '
                           "mirror pods")
                bound = (obj.get("spec") or {}).get("nodeName")
                if (bound != node and not fleet) or not bound:
                    refuse(f'node "{node}" can only create pods with spec.nodeName set to itself')
                return
            if subresource == "status":
                bound = (old.get("spec") or {}).get("nodeName")
                if (bound != node and not fleet) or not bound:
                    refuse(f'node "{node}" can only update pod status for pods with their own node as spec.nodeName')
                return
            refuse(f'unexpected operation "UPDATE", node "{node}" can only create and delete mirror pods')
