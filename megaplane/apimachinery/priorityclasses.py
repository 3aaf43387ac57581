"""The scheduling.k8s.io priority vocabulary: the system PriorityClasses and the bounds of a priority.

As upstream's pkg/apis/scheduling (types.go, v1/helpers.go): values above
`HIGHEST_USER_DEFINABLE_PRIORITY` belong to the system; the two system
classes are the only PriorityClasses whose names may start with `system-`,
and each has a fixed value and `globalDefault: false`. The API server
validates against these, its bootstrap creates them, and components may
read them; so they live here, below all three.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS",
    "HIGHEST_USER_DEFINABLE_PRIORITY",
    "PREEMPTION_POLICIES",
    "SYSTEM_CLUSTER_CRITICAL",
    "SYSTEM_CRITICAL_PRIORITY",
    "SYSTEM_NODE_CRITICAL",
    "SYSTEM_PRIORITY_CLASSES",
    "SYSTEM_PRIORITY_CLASS_PREFIX",
    "known_system_priority_class_error",
    "system_priority_class_objects",
]

HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL_PRIORITY = 2 * HIGHEST_USER_DEFINABLE_PRIORITY
#: A pod's priority when it names no class and no class is the global default.
DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS = 0
SYSTEM_PRIORITY_CLASS_PREFIX = "system-"
SYSTEM_NODE_CRITICAL = "system-node-critical"
SYSTEM_CLUSTER_CRITICAL = "system-cluster-critical"
#: core/v1 PreemptionPolicy values, in the order upstream's validation lists them.
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")

#: name -> (value, description), as kube-apiserver creates them.
SYSTEM_PRIORITY_CLASSES: Dict[str, Tuple[int, str]] = {
    SYSTEM_NODE_CRITICAL: (SYSTEM_CRITICAL_PRIORITY + 1000,
                           "Used for system critical pods that must not be moved from their current node."),
    SYSTEM_CLUSTER_CRITICAL: (SYSTEM_CRITICAL_PRIORITY,
                              "Used for system critical pods that must run in the cluster, but can be moved to "
                              "another node if necessary."),
}


def known_system_priority_class_error(name: str, value: Any, global_default: bool) -> Optional[str]:
    """IsKnownSystemPriorityClass: None if (name, value, globalDefault) is a system class as it must be."""
    known = SYSTEM_PRIORITY_CLASSES.get(name)
    if known is None:
        return f"{name} is not a known system priority class"
    if value != known[0]:
        return f"value of {name} PriorityClass must be {known[0]}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return None


def system_priority_class_objects() -> List[Dict[str, Any]]:
    """The scheduling.k8s.io/v1 objects kube-apiserver's bootstrap-system-priority-classes hook creates."""
    return [{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
             "value": value, "description": description}
            for name, (value, description) in SYSTEM_PRIORITY_CLASSES.items()]
