"""Which resources the client can address, and the URL path of each.

A `ResourceRef` is the client's name for one REST resource (group,
version, plural, kind, scope): enough for the HTTP transport to build a
path and for an in-process transport to find the registry store, and
nothing about how the server keeps it. `BUILTIN` lists the kinds megaplane
serves; `lookup("pods")` / `lookup("apps/v1", "deployments")` find one.
Custom resources are a `ResourceRef(...)` built by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

__all__ = ["ResourceRef", "BUILTIN", "lookup", "UnknownResourceError"]


class UnknownResourceError(LookupError):
    """`lookup` was asked for a resource that is not in the table (give a ResourceRef instead)."""


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """One REST resource: `/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    # "/api/v1" or "/apis/apps/v1": computed once, read on every request.
    base: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        object.__setattr__(self, "base", base)

    @property
    def group_version(self) -> str:
        """`v1` or `apps/v1`, as `apiVersion` spells it."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: Optional[str], name: str = "", subresource: str = "") -> str:
        """The URL path of the collection (no name) or of one object (and its subresource).

        A namespaced resource without a namespace is the all-namespaces
        collection; giving a namespace to a cluster-scoped one is refused.
        """
        if namespace:
            if not self.namespaced:
                raise ValueError(f"{self.plural} is cluster-scoped: no namespace may be given (got {namespace!r})")
            p = f"{self.base}/namespaces/{namespace}/{self.plural}"
        else:
            if name and self.namespaced:
                raise ValueError(f"{self.plural} is namespaced: a namespace is required to address {name!r}")
            p = f"{self.base}/{self.plural}"
        if name:
            p = f"{p}/{name}"
            if subresource:
                p = f"{p}/{subresource}"
        elif subresource:
            raise ValueError(f"subresource {subresource!r} needs an object name")
        return p


def _table() -> Dict[Tuple[str, str], ResourceRef]:
    entries = [
        ("", "v1", "namespaces", "Namespace", False),
        ("", "v1", "nodes", "Node", False),
        ("", "v1", "pods", "Pod", True),
        ("", "v1", "services", "Service", True),
        ("", "v1", "endpoints", "Endpoints", True),
        ("", "v1", "configmaps", "ConfigMap", True),
        ("", "v1", "secrets", "Secret", True),
        ("", "v1", "events", "Event", True),
        ("", "v1", "serviceaccounts", "ServiceAccount", True),
        ("", "v1", "resourcequotas", "ResourceQuota", True),
        ("", "v1", "limitranges", "LimitRange", True),
        ("coordination.k8s.io", "v1", "leases", "Lease", True),
        ("apps", "v1", "deployments", "Deployment", True),
        ("apps", "v1", "replicasets", "ReplicaSet", True),
        ("apps", "v1", "daemonsets", "DaemonSet", True),
        ("apps", "v1", "statefulsets", "StatefulSet", True),
        ("apps", "v1", "controllerrevisions", "ControllerRevision", True),
        ("batch", "v1", "jobs", "Job", True),
        ("batch", "v1", "cronjobs", "CronJob", True),
        ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
        ("events.k8s.io", "v1", "events", "Event", True),
        ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
        ("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False),
        ("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ]
    table: Dict[Tuple[str, str], ResourceRef] = {}
    for group, version, plural, kind, namespaced in entries:
        ref = ResourceRef(group, version, plural, kind, namespaced)
        table[(ref.group_version, plural)] = ref
    return table


BUILTIN: Dict[Tuple[str, str], ResourceRef] = _table()
"""(group_version, plural) -> ref for every built-in kind megaplane serves."""


def lookup(group_version_or_plural: str, plural: Optional[str] = None) -> ResourceRef:
    """`lookup("pods")` (core v1), `lookup("apps/v1", "deployments")`, `lookup("v1", "nodes")`.

    A bare plural also finds a non-core resource when exactly one group
    serves it (`lookup("leases")`); `events` means core v1 events.
    """
    if plural is None:
        name = group_version_or_plural
        ref = BUILTIN.get(("v1", name))
        if ref is not None:
            return ref
        found = [r for (gv, p), r in BUILTIN.items() if p == name]
        if len(found) == 1:
            return found[0]
        raise UnknownResourceError(f"no built-in resource {name!r}; known: {sorted({p for _, p in BUILTIN})}")
    ref = BUILTIN.get((group_version_or_plural, plural))
    if ref is None:
        raise UnknownResourceError(
            f"no built-in resource {plural!r} in {group_version_or_plural!r}; pass a ResourceRef for others"
        )
    return ref
