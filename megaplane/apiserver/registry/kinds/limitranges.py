"""LimitRanges (core/v1): upstream's defaults (SetDefaults_LimitRangeItem) and ValidateLimitRange.

Container items default `default` to `max` and `defaultRequest` to
`default`, then to `min`, resource by resource. Validation: one item per
type; Pod items take no defaults; min <= defaultRequest <= default <= max
and maxLimitRequestRatio >= 1, with upstream's messages.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Dict, List

from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.quantity import QuantityError, parse_quantity
from megaplane.apimachinery.quota import dict_at
from megaplane.apiserver.registry.kinds.resourcequotas import validate_resource_list
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.schema.validation import Cause

__all__ = ["LimitRangeStrategy", "default_limit_range"]

_LISTS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")


def default_limit_range(obj: Dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for item in spec.get("limits") or ():
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = item.setdefault("default", {})
        request = item.setdefault("defaultRequest", {})
        if not isinstance(default, dict) or not isinstance(request, dict):
            continue
        for k, v in (item.get("max") or {}).items():
            default.setdefault(k, v)
        for k, v in default.items():
            request.setdefault(k, v)
        for k, v in (item.get("min") or {}).items():
            request.setdefault(k, v)


def _q(value: Any) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError:
        return Fraction(0)


def validate_limit_range(obj: Dict[str, Any]) -> List[Cause]:
    causes: List[Cause] = []
    spec = dict_at(obj, "spec")
    seen = set()
    for i, item in enumerate(spec.get("limits") or ()):
        if not isinstance(item, dict):
            continue
        at = f"spec.limits[{i}]"
        kind = item.get("type")
        if kind in seen:
            causes.append(field_error("", f"{at}.type", kind, "", "FieldValueDuplicate"))
        seen.add(kind)
        for name in _LISTS:
            causes += validate_resource_list(item.get(name), f"{at}.{name}", quota=False)
        if kind == "Pod":
            for name in ("default", "defaultRequest"):
                if item.get(name):
                    causes.append(field_error("", f"{at}.{name}", None,
                                              "may not be specified when `type` is 'Pod'", "FieldValueForbidden"))
        lists = {n: dict_at(item, n) for n in _LISTS}
        keys = set().union(*(set(v) for v in lists.values()))
        for k in sorted(keys):
            mx, mn = lists["max"].get(k), lists["min"].get(k)
            dflt, req = lists["default"].get(k), lists["defaultRequest"].get(k)
            ratio = lists["maxLimitRequestRatio"].get(k)
            if mn is not None and mx is not None and _q(mn) > _q(mx):
                causes.append(field_error("", f"{at}.min[{k}]", mn, f"min value {mn} is greater than max value {mx}"))
            if req is not None and mn is not None and _q(mn) > _q(req):
                causes.append(field_error("", f"{at}.defaultRequest[{k}]", req,
                                          f"min value {mn} is greater than default request value {req}"))
            if req is not None and mx is not None and _q(req) > _q(mx):
                causes.append(field_error("", f"{at}.defaultRequest[{k}]", req,
                                          f"default request value {req} is greater than max value {mx}"))
            if req is not None and dflt is not None and _q(req) > _q(dflt):
                causes.append(field_error("", f"{at}.defaultRequest[{k}]", req,
                                          f"default request value {req} is greater than default limit value {dflt}"))
            if dflt is not None and mx is not None and _q(dflt) > _q(mx):
                causes.append(field_error("", f"{at}.default[{k}]", mx,
                                          f"default value {dflt} is greater than max value {mx}"))
            if dflt is not None and mn is not None and _q(mn) > _q(dflt):
                causes.append(field_error("", f"{at}.default[{k}]", mn,
                                          f"min value {mn} is greater than default value {dflt}"))
            if ratio is not None:
                if _q(ratio) < 1:
                    causes.append(field_error("", f"{at}.maxLimitRequestRatio[{k}]", ratio,
                                              f"ratio {ratio} is less than 1"))
                if mx is not None and mn is not None and _q(mn) > 0:
                    bound = _q(mx) / _q(mn)
                    if _q(ratio) > bound:
                        causes.append(field_error("", f"{at}.maxLimitRequestRatio[{k}]", ratio,
                                                  f"ratio {ratio} is greater than max/min = {float(bound):f}"))
    return causes


class LimitRangeStrategy(Strategy):
    def defaults(self, obj: Dict[str, Any]) -> None:
        super().defaults(obj)
        default_limit_range(obj)

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self.refuse(obj, validate_limit_range(obj))

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        self.refuse(obj, validate_limit_range(obj))
