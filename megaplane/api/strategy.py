"""What each kind does on create and update, as upstream's REST strategies do.

Upstream's registry strategies (pkg/registry/*/strategy.go) decide, per
kind: which fields a create may not set (status starts empty, or as the
kind's initial status), what an update of the main resource keeps from the
old object (status, for kinds with a status subresource), what a status
update keeps (everything but status), and when metadata.generation moves
(spec changes of workloads). This module is that table, on plain dicts.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, Optional, Set

from . import errors
from .errors import field_error
from .objects import now_rfc3339
from .resources import Resource

__all__ = ["prepare_for_create", "prepare_for_update", "ClusterIPAllocator", "IMMUTABLE_META"]

# Metadata the server owns: an update cannot change these (kept from the old object).
IMMUTABLE_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def _initial_status(resource: Resource, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    g, p = resource.group, resource.plural
    if g == "" and p == "pods":
        return {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
    if g == "" and p == "namespaces":
        return {"phase": "Active"}
    if g == "" and p == "services":
        return {"loadBalancer": {}}
    if g == "" and p == "nodes":
        return obj.get("status") or {}  # a kubelet registers its node with status
    if resource.has_status:
        return {}
    return None


def _qos_class(spec: Dict[str, Any]) -> str:
    """Pod QoS class (pkg/apis/core/helper/qos): Guaranteed, Burstable or BestEffort."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests_seen = limits_seen = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        if req or lim:
            requests_seen = requests_seen or bool(req)
            limits_seen = limits_seen or bool(lim)
        for name in ("cpu", "memory"):
            if name not in lim or (name in req and req[name] != lim[name]):
                guaranteed = False
    if not requests_seen and not limits_seen:
        return "BestEffort"
    if guaranteed and limits_seen:
        return "Guaranteed"
    return "Burstable"


def prepare_for_create(resource: Resource, obj: Dict[str, Any]) -> None:
    """Reset what a create may not set; fill the kind's initial state."""
    meta = obj["metadata"]
    for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
        meta.pop(k, None)
    meta["uid"] = meta.get("uid") or ""
    meta["creationTimestamp"] = now_rfc3339()
    if resource.generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    status = _initial_status(resource, obj)
    if status is not None and not (resource.group == "" and resource.plural == "nodes"):
        obj["status"] = status
    elif status is not None:
        obj["status"] = status
    if resource.group == "" and resource.plural == "namespaces":
        spec = obj.setdefault("spec", {})
        spec["finalizers"] = ["kubernetes"]


def prepare_for_update(
    resource: Resource, obj: Dict[str, Any], old: Dict[str, Any], subresource: str
) -> None:
    """Keep what this kind of update may not change; move generation on spec changes."""
    meta = obj.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    uid = meta.get("uid")
    if uid and uid != old_meta.get("uid"):
        raise errors.invalid(
            resource.group,
            resource.kind,
            meta.get("name", ""),
            [field_error(resource.kind, "metadata.uid", uid, "field is immutable")],
        )
    for k in IMMUTABLE_META:
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    if subresource == "status":
        # ResetObjectMetaForStatus: a status write changes status only.
        for k in ("labels", "annotations", "finalizers", "ownerReferences", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        for k in list(obj):
            if k not in ("apiVersion", "kind", "metadata", "status"):
                del obj[k]
        for k, v in old.items():
            if k not in ("apiVersion", "kind", "metadata", "status"):
                obj[k] = v
        return
    if resource.has_status and "status" in old:
        obj["status"] = old["status"]
    elif resource.has_status:
        obj.pop("status", None)
    if resource.group == "" and resource.plural == "namespaces":
        # spec.finalizers changes only through /finalize.
        obj["spec"] = old.get("spec") or {}
    if resource.generation:
        generation = old_meta.get("generation", 1)
        if obj.get("spec") != old.get("spec"):
            generation += 1
        meta["generation"] = generation
    else:
        meta.pop("generation", None)
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"]


class ClusterIPAllocator:
    """Service cluster IPs from --service-cluster-ip-range, first free address first."""

    def __init__(self, cidr: str = "10.96.0.0/12") -> None:
        self.network = ipaddress.ip_network(cidr)
        self.used: Set[str] = set()
        self._next = 1

    def reserve(self, ip: str) -> None:
        self.used.add(ip)

    def release(self, ip: str) -> None:
        self.used.discard(ip)

    def allocate(self, requested: str = "") -> str:
        if requested:
            if requested in self.used:
                raise ValueError("provided IP is already allocated")
            if ipaddress.ip_address(requested) not in self.network:
                raise ValueError(f"provided IP is not in the valid range. The range of valid IPs is {self.network}")
            self.used.add(requested)
            return requested
        size = self.network.num_addresses
        for _ in range(size):
            candidate = str(self.network.network_address + self._next)
            self._next = self._next + 1 if self._next + 1 < size - 1 else 1
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
        raise ValueError("range is full")
