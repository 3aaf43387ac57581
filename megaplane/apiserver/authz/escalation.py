"""RBAC escalation prevention: no one grants, through a role or a binding, rights they do not hold.

As pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased:
a create or update of a Role or ClusterRole passes when the user is in
system:masters, may `escalate` that role, or already holds every rule it
lists (in the role's namespace, or cluster-wide); an aggregationRule needs
full authority. A binding passes when the user may `bind` its roleRef, or
holds every rule of the referenced role. Otherwise 403:
`user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC
permissions not currently held:` and the missing rules, one per line.
Writes whose rules (or subjects) do not change are not checked again.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.user import SYSTEM_MASTERS, UserInfo
from megaplane.apiserver.authz.decision import ALLOW_KIND
from megaplane.apiserver.authz.rules import compact, covers, describe_rule

__all__ = ["EscalationCheck"]

GROUP = "rbac.authorization.k8s.io"
_FULL_AUTHORITY = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]


def _go_strings(values: Any) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


class EscalationCheck:
    """A registry WriteGuard over the server's ModeAuthorizer (its `rbac` holds the user's rules)."""

    def __init__(self, authorizer: Any) -> None:
        self.authorizer = authorizer

    def _rules_of(self, user: UserInfo, namespace: str) -> Any:
        rbac = self.authorizer.rbac
        return rbac.rules_for(user, namespace) if rbac is not None else ()

    def _refuse(self, resource: Resource, name: str, user: UserInfo, missing: List[Dict[str, Any]]) -> None:
        lines = sorted(describe_rule(r) for r in compact(missing))
        why = (f'user "{user.name}" (groups={_go_strings(user.groups)}) is attempting to grant RBAC permissions not '
               "currently held:\n" + "\n".join(lines))
        raise errors.forbidden(resource.group, resource.plural, name, why)

    def check_write(self, resource: Resource, subresource: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]],
                    opts: Any) -> None:
        if resource.group != GROUP:
            return
        user = getattr(opts, "user", None)
        if user is None or SYSTEM_MASTERS in user.groups:
            return
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace", "") if resource.namespaced else ""
        if resource.plural in ("roles", "clusterroles"):
            if old is not None and old.get("rules") == obj.get("rules") and \
                    old.get("aggregationRule") == obj.get("aggregationRule"):
                return
            decision = self.authorizer.decide(user, "escalate", GROUP, resource.plural, "", namespace, name)
            if decision[0] == ALLOW_KIND:
                return
            held = self._rules_of(user, namespace)
            if obj.get("aggregationRule") and covers(held, _FULL_AUTHORITY):
                raise errors.forbidden(GROUP, resource.plural, name,
                                       "must have cluster-admin privileges to use the aggregationRule")
            missing = covers(held, obj.get("rules") or [])
            if missing:
                self._refuse(resource, name, user, missing)
            return
        # rolebindings, clusterrolebindings
        if old is not None and old.get("subjects") == obj.get("subjects"):
            return
        ref = obj.get("roleRef") or {}
        kind, role = ref.get("kind", ""), ref.get("name", "")
        plural = "clusterroles" if kind == "ClusterRole" else "roles"
        decision = self.authorizer.decide(user, "bind", GROUP, plural, "", namespace, role)
        if decision[0] == ALLOW_KIND:
            return
        rbac = self.authorizer.rbac
        if rbac is None:
            return
        rbac.cluster_rules(user)  # brings the index up to date
        if kind == "ClusterRole":
            rules = rbac.cluster_roles.get(role)
        else:
            rules = rbac.roles.get((namespace, role))
        if rules is None:
            raise errors.not_found(GROUP, plural, role)
        missing = covers(self._rules_of(user, namespace), [r.source for r in rules])
        if missing:
            self._refuse(resource, name, user, missing)


