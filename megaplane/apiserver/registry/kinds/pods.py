"""Pods: initial status with the QoS class, status updates keep owner references, graceful deletion."""

from __future__ import annotations

from typing import Any, Dict, Optional

from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["PodStrategy", "qos_class"]


def qos_class(spec: Dict[str, Any]) -> str:
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


class PodStrategy(Strategy):
    status_keeps_metadata = ("ownerReferences",)

    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def prepare_for_status_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        super().prepare_for_status_update(obj, old)
        if not (obj.get("status") or {}).get("qosClass"):
            qos = (old.get("status") or {}).get("qosClass")
            if qos:
                obj.setdefault("status", {})["qosClass"] = qos

    def grace_period(self, obj: Dict[str, Any], opts: Dict[str, Any]) -> int:
        """Pods on a node get their terminationGracePeriodSeconds (or the request's, if given)."""
        spec = obj.get("spec") or {}
        if "gracePeriodSeconds" in opts and opts["gracePeriodSeconds"] is not None:
            grace = int(opts["gracePeriodSeconds"])
        else:
            grace = int(spec.get("terminationGracePeriodSeconds", 30))
        # Not on a node, or finished: nothing to wait for (upstream deletes at once).
        if not spec.get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        return max(grace, 0)
