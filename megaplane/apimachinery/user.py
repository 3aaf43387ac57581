"""Who a request is from: the authenticated user (k8s.io/apiserver's user.Info) and the well-known names.

Authentication produces a `UserInfo`; authorization, admission and audit
read it. The names are upstream's, so RBAC bindings written for
kube-apiserver (groups such as `system:masters`, `system:nodes`) mean the
same here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

__all__ = [
    "UserInfo",
    "ANONYMOUS",
    "APISERVER_USER",
    "SYSTEM_MASTERS",
    "ALL_AUTHENTICATED",
    "ALL_UNAUTHENTICATED",
    "NODES_GROUP",
    "NODE_USER_PREFIX",
    "SERVICE_ACCOUNTS_GROUP",
    "SERVICE_ACCOUNT_USER_PREFIX",
    "LOOPBACK_USER",
    "UNAUTHENTICATED_USER",
]

ANONYMOUS = "system:anonymous"
APISERVER_USER = "system:apiserver"
SYSTEM_MASTERS = "system:masters"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
SERVICE_ACCOUNT_USER_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    """user.Info: a name, a uid, groups and extra attributes (as SubjectAccessReview and audit show them)."""

    name: str
    uid: str = ""
    groups: Tuple[str, ...] = ()
    extra: Dict[str, Tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

    def in_group(self, group: str) -> bool:
        return group in self.groups


#: The API server's own loopback identity (kube-apiserver's privileged loopback client).
LOOPBACK_USER = UserInfo(APISERVER_USER, groups=(SYSTEM_MASTERS, ALL_AUTHENTICATED))
#: A request that carried no credentials, when anonymous requests are enabled.
UNAUTHENTICATED_USER = UserInfo(ANONYMOUS, groups=(ALL_UNAUTHENTICATED,))
