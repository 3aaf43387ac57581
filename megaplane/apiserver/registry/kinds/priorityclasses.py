"""PriorityClasses (scheduling.k8s.io/v1): defaults, upstream's validation, and the system classes kept.

As pkg/registry/scheduling/priorityclass and pkg/apis/scheduling/validation:

* create (ValidatePriorityClass): a name with the `system-` prefix must be
  one of the two system classes with its exact value and globalDefault
  false; any other class may not exceed HighestUserDefinablePriority
  (1,000,000,000); preemptionPolicy, defaulted to PreemptLowerPriority, is
  PreemptLowerPriority or Never;
* update (ValidatePriorityClassUpdate): value and preemptionPolicy are
  immutable; nothing else is checked again (a system class's description
  or labels may change, as upstream);
* delete: the system classes are refused (the REST storage's Delete). As
  upstream, that guard is on DELETE of one object only: a deletecollection
  goes through the generic store and does not pass it.

`value` is a plain int32 in Go (no omitempty): a class stored without it
has value 0 and is always served with one (the Python client requires it).
At most one globalDefault class is the Priority admission plugin's check
(`registry.priority`), since it has to see the other classes.
"""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.priorityclasses import (
    HIGHEST_USER_DEFINABLE_PRIORITY,
    PREEMPTION_POLICIES,
    SYSTEM_PRIORITY_CLASS_PREFIX,
    SYSTEM_PRIORITY_CLASSES,
    known_system_priority_class_error,
)
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.schema.validation import Cause

__all__ = ["PriorityClassStrategy", "validate_priority_class", "validate_priority_class_update"]

_GROUP, _KIND = "scheduling.k8s.io", "PriorityClass"


def _preemption_policy_errors(policy: Any) -> List[Cause]:
    """ValidatePreemptionPolicy."""
    if policy in PREEMPTION_POLICIES:
        return []
    if policy == "":
        return [field_error("", "preemptionPolicy", None, "", "FieldValueRequired")]
    supported = ", ".join(f'"{p}"' for p in PREEMPTION_POLICIES)
    return [field_error("", "preemptionPolicy", policy, f"supported values: {supported}", "FieldValueNotSupported")]


def validate_priority_class(obj: Dict[str, Any]) -> List[Cause]:
    """ValidatePriorityClass, past the object metadata (the store checks that)."""
    causes: List[Cause] = []
    name = str((obj.get("metadata") or {}).get("name") or "")
    value = obj.get("value") or 0
    if name.startswith(SYSTEM_PRIORITY_CLASS_PREFIX):
        why = known_system_priority_class_error(name, value, bool(obj.get("globalDefault")))
        if why is not None:
            causes.append(field_error("", "metadata.name", None,
                                      f"priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are "
                                      f"reserved for system use only. error: {why}", "FieldValueForbidden"))
    elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
        causes.append(field_error("", "value", None, "maximum allowed value of a user defined priority is "
                                  f"{HIGHEST_USER_DEFINABLE_PRIORITY}", "FieldValueForbidden"))
    if obj.get("preemptionPolicy") is not None:
        causes += _preemption_policy_errors(obj["preemptionPolicy"])
    return causes


def validate_priority_class_update(obj: Dict[str, Any], old: Dict[str, Any]) -> List[Cause]:
    """ValidatePriorityClassUpdate: value and preemptionPolicy stay as they were."""
    causes: List[Cause] = []
    if (obj.get("value") or 0) != (old.get("value") or 0):
        causes.append(field_error("", "value", None, "may not be changed in an update.", "FieldValueForbidden"))
    policy = obj.get("preemptionPolicy")
    if policy != old.get("preemptionPolicy"):
        causes.append(field_error("", "preemptionPolicy", policy, "field is immutable"))
    return causes


class PriorityClassStrategy(Strategy):
    def defaults(self, obj: Dict[str, Any]) -> None:
        """SetDefaults_PriorityClass: preemptionPolicy PreemptLowerPriority when unset."""
        super().defaults(obj)
        if obj.get("preemptionPolicy") is None:
            obj["preemptionPolicy"] = PREEMPTION_POLICIES[0]

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)  # metadata.generation 1 (the table's `generation`), as upstream's
        self.refuse(obj, validate_priority_class(obj))

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        self.refuse(obj, validate_priority_class_update(obj, old))

    def fill_zero_values(self, obj: Dict[str, Any]) -> None:
        super().fill_zero_values(obj)
        obj.setdefault("value", 0)

    def before_delete(self, name: str) -> None:
        if name in SYSTEM_PRIORITY_CLASSES:
            raise errors.forbidden(_GROUP, "priorityclasses", name,
                                   "this is a system priority class and cannot be deleted")
