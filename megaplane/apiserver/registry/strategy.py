"""What each kind does on create and update, as upstream's REST strategies do.

Upstream's registry strategies (pkg/registry/*/strategy.go) decide, per
kind: which fields a create may not set (status starts empty, or as the
kind's initial status), what an update of the main resource keeps from the
old object (status, for kinds with a status subresource), what a status
update keeps (everything but status), and when metadata.generation moves
(spec changes of workloads). This module is that table, on plain dicts.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.meta import now_rfc3339
from megaplane.apimachinery.resources import Resource

__all__ = ["prepare_for_create", "prepare_for_update", "IMMUTABLE_META"]

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
    meta["creationTimestamp"] = now_rfc3339()
    if resource.generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    status = _initial_status(resource, obj)
    if status is not None:
        obj["status"] = status
    if resource.group == "" and resource.plural == "namespaces":
        spec = obj.setdefault("spec", {})
        spec["finalizers"] = ["kubernetes"]


def prepare_for_update(
    resource: Resource, obj: Dict[str, Any], old: Dict[str, Any], subresource: str
) -> None:
    """Keep what this kind of update may not change; move generation as the kind's strategy does."""
    meta = obj.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    g, p = resource.group, resource.plural
    for k in IMMUTABLE_META:  # rest.BeforeUpdate: the server's own metadata comes from the stored object
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    if "generation" in old_meta:
        meta["generation"] = old_meta["generation"]
    else:
        meta.pop("generation", None)
    if old_meta.get("deletionTimestamp"):
        added = sorted(set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ()))
        if added:
            listed = ", ".join(f'"{f}"' for f in added)
            raise errors.invalid(g, resource.kind, meta.get("name", ""), [field_error(
                "", "metadata.finalizers", None,
                f"no new finalizers can be added if the object is being deleted, found new finalizers []string{{{listed}}}",
                "FieldValueForbidden")])
    if subresource == "status":
        # The status strategies: everything but status (and metadata) comes from the stored object;
        # Deployments keep their labels, pods their owner references.
        for k in list(obj):
            if k not in ("apiVersion", "kind", "metadata", "status"):
                del obj[k]
        for k, v in old.items():
            if k not in ("apiVersion", "kind", "metadata", "status"):
                obj[k] = v
        kept = ("labels",) if (g, p) == ("apps", "deployments") else ("ownerReferences",) if (g, p) == ("", "pods") else ()
        for k in kept:
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if (g, p) == ("", "pods") and not (obj.get("status") or {}).get("qosClass"):
            qos = (old.get("status") or {}).get("qosClass")
            if qos:
                obj.setdefault("status", {})["qosClass"] = qos
        return
    if resource.has_status and "status" in old:
        obj["status"] = old["status"]
    elif resource.has_status:
        obj.pop("status", None)
    if (g, p) == ("", "namespaces"):
        # spec.finalizers changes only through /finalize.
        obj["spec"] = old.get("spec") or {}
    if _spec_changed(resource, obj, old):
        meta["generation"] = old_meta.get("generation", 1) + 1


def _spec_changed(resource: Resource, obj: Dict[str, Any], old: Dict[str, Any]) -> bool:
    """Whether this update moves metadata.generation (per upstream strategy)."""
    if not resource.generation:
        return False
    g, p = resource.group, resource.plural
    if (g, p) == ("discovery.k8s.io", "endpointslices"):
        # Anything outside metadata, or the labels.
        outside = any(obj.get(k) != old.get(k) for k in set(obj) | set(old) if k not in ("metadata", "apiVersion", "kind"))
        return outside or (obj["metadata"].get("labels") != (old.get("metadata") or {}).get("labels"))
    if obj.get("spec") != old.get("spec"):
        return True
    if (g, p) == ("apps", "deployments"):
        # Annotations are copied to the ReplicaSets, so changing them is a new generation too.
        return obj["metadata"].get("annotations") != (old.get("metadata") or {}).get("annotations")
    return False
