"""ResourceQuotas (core/v1): upstream's ValidateResourceQuota on create, update and status update.

As pkg/registry/core/resourcequota and pkg/apis/core/validation: a create
starts with an empty status (the resource quota controller fills
status.hard and status.used; admission updates used); spec.hard and the
status lists hold standard quota resources (or qualified names such as
`count/deployments.apps`, `requests.example.com/gpu`) with non-negative
quantities, integers for the counts; spec.scopes are upstream's scopes,
BestEffort/NotBestEffort and Terminating/NotTerminating exclusive.
"""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.quantity import QuantityError, parse_quantity
from megaplane.apimachinery.quota import (
    STANDARD_QUOTA_RESOURCES,
    STANDARD_SCOPES,
    dict_at,
    is_integer_resource,
)
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.schema.validation import Cause

__all__ = ["ResourceQuotaStrategy", "validate_resource_list"]

_CONFLICTING = (("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating"))


def validate_resource_list(value: Any, path: str, quota: bool = True) -> List[Cause]:
    """Each name a (quota) resource name, each quantity non-negative (integral for counts)."""
    causes: List[Cause] = []
    if not isinstance(value, dict):
        return causes
    for name, q in value.items():
        at = f"{path}[{name}]"
        if quota and "/" not in name and name not in STANDARD_QUOTA_RESOURCES:
            causes.append(field_error("", at, name, "must be a standard resource for quota"))
            continue
        try:
            amount = parse_quantity(q)
        except QuantityError:
            causes.append(field_error("", at, q, "must be a valid quantity"))
            continue
        if amount < 0:
            causes.append(field_error("", at, q, "must be greater than or equal to 0"))
        elif quota and is_integer_resource(name) and amount.denominator != 1:
            causes.append(field_error("", at, q, "must be an integer"))
    return causes


def validate_quota(obj: Dict[str, Any]) -> List[Cause]:
    spec = dict_at(obj, "spec")
    causes = validate_resource_list(spec.get("hard"), "spec.hard")
    scopes = [s for s in spec.get("scopes") or () if isinstance(s, str)]
    for i, scope in enumerate(scopes):
        if scope not in STANDARD_SCOPES:
            causes.append(field_error("", f"spec.scopes[{i}]", scope, "unsupported scope"))
    sel = spec.get("scopeSelector")
    if isinstance(sel, dict):
        for i, expr in enumerate(sel.get("matchExpressions") or ()):
            if isinstance(expr, dict):
                scopes.append(str(expr.get("scopeName") or ""))
                if expr.get("scopeName") not in STANDARD_SCOPES:
                    causes.append(field_error("", f"spec.scopeSelector.matchExpressions[{i}].scopeName",
                                              expr.get("scopeName"), "unsupported scope"))
    for a, b in _CONFLICTING:
        if a in scopes and b in scopes:
            causes.append(field_error("", "spec.scopes", None, "conflicting scopes",
                                      shown="[]core.ResourceQuotaScope{" + ", ".join(f'"{s}"' for s in scopes) + "}"))
    status = dict_at(obj, "status")
    causes += validate_resource_list(status.get("hard"), "status.hard")
    causes += validate_resource_list(status.get("used"), "status.used")
    return causes


class ResourceQuotaStrategy(Strategy):
    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self.refuse(obj, validate_quota(obj))

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        self.refuse(obj, validate_quota(obj))
