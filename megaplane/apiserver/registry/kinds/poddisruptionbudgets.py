"""PodDisruptionBudgets (policy/v1): upstream's spec and status validation, and the status counters' zeros.

As pkg/registry/policy/poddisruptionbudget/strategy.go and
pkg/apis/policy/validation: a spec sets at most one of minAvailable and
maxUnavailable, each a non-negative integer or a percentage of at most
100%; the selector is a valid label selector; unhealthyPodEvictionPolicy
is IfHealthyBudget or AlwaysAllow. A status write (the disruption
controller's, or the eviction's decrement) keeps its counters
non-negative and its conditions well-formed. Spec changes move
metadata.generation (the resource table's `generation`), which the
eviction compares with status.observedGeneration.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from megaplane.apimachinery.errors import field_error
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.schema.validation import Cause, validate_label_selector

__all__ = ["PodDisruptionBudgetStrategy", "UNHEALTHY_POD_EVICTION_POLICIES", "validate_spec", "validate_status"]

UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
#: The status counters Go always writes (no omitempty): the Python client requires them.
STATUS_COUNTERS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")

_PERCENT = re.compile(r"^[0-9]+%$")
_PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
                "regex used for validation is '[0-9]+%')")
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_REASON_MSG = ("a condition reason must start with alphabetic character, optionally followed by a string of "
               "alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. "
               "'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used "
               "for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')")
_CONDITION_STATUSES = ("False", "True", "Unknown")


def _go_int_or_string(value: Any) -> str:
    """How field.Invalid prints an intstr.IntOrString (its String() has a pointer receiver: %#v)."""
    if isinstance(value, str):
        return f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:"{value}"}}'
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def _int_or_percent_errors(value: Any, path: str) -> List[Cause]:
    """ValidatePositiveIntOrPercent and IsNotMoreThan100Percent."""
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [field_error("", path, value, _PERCENT_MSG, shown=_go_int_or_string(value))]
        if int(value[:-1]) > 100:
            return [field_error("", path, value, "must not be greater than 100%", shown=_go_int_or_string(value))]
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            return [field_error("", path, value, "must be greater than or equal to 0", shown=str(value))]
        return []
    return [field_error("", path, value, "must be an integer or percentage (e.g '5%')")]


def _go_spec(spec: Dict[str, Any]) -> str:
    """%#v of the internal PodDisruptionBudgetSpec (its pointers shown as set or nil)."""
    def ptr(go_type: str, key: str) -> str:
        return f"(*{go_type})({'0xc000000000' if spec.get(key) is not None else 'nil'})"
    return (f"policy.PodDisruptionBudgetSpec{{MinAvailable:{ptr('intstr.IntOrString', 'minAvailable')}, "
            f"Selector:{ptr('v1.LabelSelector', 'selector')}, "
            f"MaxUnavailable:{ptr('intstr.IntOrString', 'maxUnavailable')}, "
            f"UnhealthyPodEvictionPolicy:{ptr('policy.UnhealthyPodEvictionPolicyType', 'unhealthyPodEvictionPolicy')}}}")


def validate_spec(spec: Any) -> List[Cause]:
    """ValidatePodDisruptionBudgetSpec."""
    if not isinstance(spec, dict):
        return []
    causes: List[Cause] = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        causes.append(field_error("", "spec", None, "minAvailable and maxUnavailable cannot be both set",
                                  shown=_go_spec(spec)))
    if min_available is not None:
        causes += _int_or_percent_errors(min_available, "spec.minAvailable")
    if max_unavailable is not None:
        causes += _int_or_percent_errors(max_unavailable, "spec.maxUnavailable")
    causes += validate_label_selector(spec.get("selector"), "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        supported = ", ".join(f'"{p}"' for p in UNHEALTHY_POD_EVICTION_POLICIES)
        causes.append(field_error("", "spec.unhealthyPodEvictionPolicy", policy, f"supported values: {supported}",
                                  "FieldValueNotSupported"))
    return causes


def _condition_errors(conditions: Any) -> List[Cause]:
    """metav1 ValidateConditions: each condition's type, status, reason, lastTransitionTime; types unique."""
    causes: List[Cause] = []
    seen = set()
    for i, c in enumerate(conditions if isinstance(conditions, list) else ()):
        if not isinstance(c, dict):
            continue
        at = f"status.conditions[{i}]"
        ctype = c.get("type") or ""
        if not ctype:
            causes.append(field_error("", f"{at}.type", "", "name part must be non-empty"))
        if ctype in seen:
            causes.append(field_error("", f"{at}.type", ctype, "", "FieldValueDuplicate"))
        seen.add(ctype)
        if c.get("status") not in _CONDITION_STATUSES:
            supported = ", ".join(f'"{s}"' for s in _CONDITION_STATUSES)
            causes.append(field_error("", f"{at}.status", c.get("status") or "", f"supported values: {supported}",
                                      "FieldValueNotSupported"))
        generation = c.get("observedGeneration")
        if isinstance(generation, int) and generation < 0:
            causes.append(field_error("", f"{at}.observedGeneration", generation,
                                      "must be greater than or equal to zero", shown=str(generation)))
        if not c.get("lastTransitionTime"):
            causes.append(field_error("", f"{at}.lastTransitionTime", None, "must be set", "FieldValueRequired"))
        reason = c.get("reason") or ""
        if not reason:
            causes.append(field_error("", f"{at}.reason", None, "must be set", "FieldValueRequired"))
        else:
            if not _REASON.match(reason):
                causes.append(field_error("", f"{at}.reason", reason, _REASON_MSG))
            if len(reason) > 1024:
                causes.append(field_error("", f"{at}.reason", None, "may not be more than 1024 bytes",
                                          "FieldValueTooLong"))
        if len(str(c.get("message") or "")) > 32768:
            causes.append(field_error("", f"{at}.message", None, "may not be more than 32768 bytes",
                                      "FieldValueTooLong"))
    return causes


def validate_status(status: Any) -> List[Cause]:
    """ValidatePodDisruptionBudgetStatusUpdate (policy/v1): conditions, and counters never negative."""
    if not isinstance(status, dict):
        return []
    causes = _condition_errors(status.get("conditions"))
    for counter in STATUS_COUNTERS:
        value = status.get(counter)
        if isinstance(value, int) and value < 0:
            causes.append(field_error("", f"status.{counter}", value, "must be greater than or equal to 0",
                                      shown=str(value)))
    return causes


class PodDisruptionBudgetStrategy(Strategy):
    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return {counter: 0 for counter in STATUS_COUNTERS}

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self.refuse(obj, validate_spec(obj.get("spec")))

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        if subresource == "status":
            self.refuse(obj, validate_status(obj.get("status")))
        else:
            self.refuse(obj, validate_spec(obj.get("spec")))

    def fill_zero_values(self, obj: Dict[str, Any]) -> None:
        super().fill_zero_values(obj)
        status = obj.get("status")
        if isinstance(status, dict):
            for counter in STATUS_COUNTERS:
                status.setdefault(counter, 0)
