"""rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding, ClusterRoleBinding: defaults and validation.

As pkg/apis/rbac/v1 defaults and pkg/apis/rbac/validation: names are path
segments (`system:controller:x` is valid); every rule needs verbs, and
either nonResourceURLs (ClusterRoles only, never with resources) or
apiGroups and resources; a binding's roleRef is an rbac.authorization.k8s.io
Role or ClusterRole (ClusterRoleBindings: ClusterRole only) and may not
change; subjects are User, Group (apiGroup rbac.authorization.k8s.io) or
ServiceAccount (apiGroup "", with a namespace in a ClusterRoleBinding).
Subject and roleRef apiGroups are defaulted as upstream. Escalation
prevention needs the requesting user and is `apiserver.authz.escalation`'s.
"""

from __future__ import annotations

from typing import Any, Dict, List

import orjson

from megaplane.apimachinery.errors import field_error
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.schema.validation import Cause, validate_label_selector

__all__ = ["RoleStrategy", "RoleBindingStrategy"]

GROUP = "rbac.authorization.k8s.io"


def _strings(v: Any) -> List[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def validate_rules(rules: Any, namespaced: bool, path: str = "rules") -> List[Cause]:
    causes: List[Cause] = []
    if rules is None:
        return causes
    if not isinstance(rules, list):
        return [field_error("", path, None, "must be a list", "FieldValueInvalid", shown="")]
    for i, rule in enumerate(rules):
        p = f"{path}[{i}]"
        if not isinstance(rule, dict):
            causes.append(field_error("", p, None, "must be an object", shown=""))
            continue
        if not _strings(rule.get("verbs")):
            causes.append(field_error("", p + ".verbs", None, "verbs must contain at least one value",
                                      "FieldValueRequired"))
        urls = _strings(rule.get("nonResourceURLs"))
        if urls:
            shown = "[]string{" + ", ".join(f'"{u}"' for u in urls) + "}"
            if namespaced:
                causes.append(field_error("", p + ".nonResourceURLs", None,
                                          "namespaced rules cannot apply to non-resource URLs", shown=shown))
            if _strings(rule.get("apiGroups")) or _strings(rule.get("resources")) or \
                    _strings(rule.get("resourceNames")):
                causes.append(field_error("", p + ".nonResourceURLs", None,
                                          "rules cannot apply to both regular resources and non-resource URLs",
                                          shown=shown))
            continue
        if not _strings(rule.get("apiGroups")):
            causes.append(field_error("", p + ".apiGroups", None, "resource rules must supply at least one api group",
                                      "FieldValueRequired"))
        if not _strings(rule.get("resources")):
            causes.append(field_error("", p + ".resources", None, "resource rules must supply at least one resource",
                                      "FieldValueRequired"))
    return causes


def _default_subjects(obj: Dict[str, Any]) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for s in obj.get("subjects") or ():
        if isinstance(s, dict) and "apiGroup" not in s:
            if s.get("kind") in ("User", "Group"):
                s["apiGroup"] = GROUP
            elif s.get("kind") == "ServiceAccount":
                s["apiGroup"] = ""


def validate_binding(obj: Dict[str, Any], cluster: bool) -> List[Cause]:
    causes: List[Cause] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        ref = {}
    if ref.get("apiGroup") != GROUP:
        causes.append(field_error("", "roleRef.apiGroup", ref.get("apiGroup", ""), f'supported values: "{GROUP}"',
                                  "FieldValueNotSupported"))
    kinds = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.get("kind") not in kinds:
        causes.append(field_error("", "roleRef.kind", ref.get("kind", ""),
                                  "supported values: " + ", ".join(f'"{k}"' for k in kinds), "FieldValueNotSupported"))
    if not ref.get("name"):
        causes.append(field_error("", "roleRef.name", None, "", "FieldValueRequired"))
    subjects = obj.get("subjects")
    for i, s in enumerate(subjects if isinstance(subjects, list) else ()):
        p = f"subjects[{i}]"
        if not isinstance(s, dict):
            causes.append(field_error("", p, None, "must be an object", shown=""))
            continue
        if not s.get("name"):
            causes.append(field_error("", p + ".name", None, "", "FieldValueRequired"))
        kind = s.get("kind")
        if kind == "ServiceAccount":
            if s.get("apiGroup"):
                causes.append(field_error("", p + ".apiGroup", s.get("apiGroup"), 'supported values: ""',
                                          "FieldValueNotSupported"))
            if cluster and not s.get("namespace"):
                causes.append(field_error("", p + ".namespace", None, "", "FieldValueRequired"))
        elif kind in ("User", "Group"):
            if s.get("apiGroup") != GROUP:
                causes.append(field_error("", p + ".apiGroup", s.get("apiGroup", ""), f'supported values: "{GROUP}"',
                                          "FieldValueNotSupported"))
        else:
            causes.append(field_error("", p + ".kind", kind or "",
                                      'supported values: "ServiceAccount", "User", "Group"', "FieldValueNotSupported"))
    return causes


def _go_role_ref(ref: Any) -> str:
    ref = ref if isinstance(ref, dict) else {}
    return (f'rbac.RoleRef{{APIGroup:{orjson.dumps(ref.get("apiGroup", "")).decode()}, '
            f'Kind:{orjson.dumps(ref.get("kind", "")).decode()}, Name:{orjson.dumps(ref.get("name", "")).decode()}}}')


class RoleStrategy(Strategy):
    """Role and ClusterRole (the latter may aggregate: aggregationRule's selectors are validated)."""

    def _validate(self, obj: Dict[str, Any]) -> None:
        causes = validate_rules(obj.get("rules"), self.resource.namespaced)
        agg = obj.get("aggregationRule")
        if isinstance(agg, dict):
            selectors = agg.get("clusterRoleSelectors")
            for i, sel in enumerate(selectors if isinstance(selectors, list) else ()):
                causes += validate_label_selector(sel, f"aggregationRule.clusterRoleSelectors[{i}]")
        self.refuse(obj, causes)

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self._validate(obj)

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        self._validate(obj)


class RoleBindingStrategy(Strategy):
    """RoleBinding and ClusterRoleBinding: roleRef immutable."""

    def defaults(self, obj: Dict[str, Any]) -> None:
        super().defaults(obj)
        _default_subjects(obj)

    def prepare_for_create(self, obj: Dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        self.refuse(obj, validate_binding(obj, not self.resource.namespaced))

    def prepare_for_update(self, obj: Dict[str, Any], old: Dict[str, Any], subresource: str) -> None:
        super().prepare_for_update(obj, old, subresource)
        causes = validate_binding(obj, not self.resource.namespaced)
        if obj.get("roleRef") != old.get("roleRef"):
            causes.append(field_error("", "roleRef", None, "cannot change roleRef",
                                      shown=_go_role_ref(obj.get("roleRef"))))
        self.refuse(obj, causes)
