"""The RBAC printers (rbac.authorization.k8s.io/v1): printRole / printClusterRole (name, created at) and
printRoleBinding / printClusterRoleBinding (name, role, age; wide: users, groups, service accounts).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import (
    _DESC_AGE,
    Obj,
    Printer,
    _age,
    _age_col,
    _col,
    _d,
    _name,
    _name_col,
    _s,
)

_ROLE_COLUMNS = [_name_col(), _col("Created At", "date", _DESC_AGE)]
_BINDING_COLUMNS = [
    _name_col(),
    _col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global "
         "namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is "
         "immutable."),
    _age_col(),
    _col("Users", "string", "Users in the roleBinding", 1),
    _col("Groups", "string", "Groups in the roleBinding", 1),
    _col("ServiceAccounts", "string", "ServiceAccounts in the roleBinding", 1),
]


def _print_role(role: Obj, now: datetime.datetime) -> List[Any]:
    return [_name(role), _s(_d(role.get("metadata")).get("creationTimestamp"))]


def _print_binding(binding: Obj, now: datetime.datetime) -> List[Any]:
    ref = _d(binding.get("roleRef"))
    users: List[str] = []
    groups: List[str] = []
    sas: List[str] = []
    subjects = binding.get("subjects")
    for s in subjects if isinstance(subjects, list) else ():
        s = _d(s)
        kind, name = s.get("kind"), _s(s.get("name"))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            sas.append(f"{_s(s.get('namespace'))}/{name}")
    return [_name(binding), f"{_s(ref.get('kind'))}/{_s(ref.get('name'))}", _age(binding, now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("rbac.authorization.k8s.io", "roles"): (_ROLE_COLUMNS, _print_role),
    ("rbac.authorization.k8s.io", "clusterroles"): (_ROLE_COLUMNS, _print_role),
    ("rbac.authorization.k8s.io", "rolebindings"): (_BINDING_COLUMNS, _print_binding),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): (_BINDING_COLUMNS, _print_binding),
}
