"""metav1.Condition lists (apimachinery's api/meta conditions.go), and the PDB's DisruptionAllowed rule.

`set_status_condition` is apimeta.SetStatusCondition: a new type is
appended, an existing one takes the new reason, message and
observedGeneration, and its lastTransitionTime moves only when its status
does. `update_disruption_allowed_condition` / `disruption_allowed_up_to_date`
are component-helpers' apps/poddisruptionbudget helpers, which the API
server's eviction and the disruption controller both apply to a
PodDisruptionBudget status, so they live here, below both.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, MutableMapping, Optional

__all__ = [
    "DISRUPTION_ALLOWED",
    "disruption_allowed_up_to_date",
    "find_status_condition",
    "set_status_condition",
    "update_disruption_allowed_condition",
]

#: policy.DisruptionAllowedCondition and its reasons.
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"

Obj = Dict[str, Any]


def find_status_condition(status: Mapping[str, Any], ctype: str) -> Optional[Obj]:
    for c in status.get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def set_status_condition(status: MutableMapping[str, Any], condition: Mapping[str, Any], now: str) -> None:
    """SetStatusCondition on status["conditions"]; `now` (RFC 3339) is the transition time if one happens."""
    conditions: List[Obj] = [dict(c) for c in status.get("conditions") or () if isinstance(c, dict)]
    for c in conditions:
        if c.get("type") == condition["type"]:
            if c.get("status") != condition["status"]:
                c["lastTransitionTime"] = condition.get("lastTransitionTime") or now
            for key in ("status", "reason", "message", "observedGeneration"):
                if key in condition:
                    c[key] = condition[key]
            if not c.get("observedGeneration"):
                c.pop("observedGeneration", None)  # omitempty
            break
    else:
        new = {"type": condition["type"], "status": condition["status"],
               "observedGeneration": condition.get("observedGeneration", 0),
               "lastTransitionTime": condition.get("lastTransitionTime") or now,
               "reason": condition.get("reason", ""), "message": condition.get("message", "")}
        if not new["observedGeneration"]:
            del new["observedGeneration"]  # omitempty
        conditions.append(new)
    status["conditions"] = conditions


def update_disruption_allowed_condition(status: MutableMapping[str, Any], now: str) -> None:
    """DisruptionAllowed: True/SufficientPods while disruptionsAllowed > 0, else False/InsufficientPods."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    set_status_condition(status, {
        "type": DISRUPTION_ALLOWED,
        "status": "True" if allowed else "False",
        "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS,
        "message": "",
        "observedGeneration": int(status.get("observedGeneration") or 0),
    }, now)


def disruption_allowed_up_to_date(pdb: Mapping[str, Any]) -> bool:
    """ConditionsAreUpToDate: the condition agrees with disruptionsAllowed and the generation was observed."""
    status = pdb.get("status") or {}
    cond = find_status_condition(status, DISRUPTION_ALLOWED)
    if cond is None:
        return False
    if int(status.get("observedGeneration") or 0) != int((pdb.get("metadata") or {}).get("generation") or 0):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS
    return cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS
