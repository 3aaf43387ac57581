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
    "INSECURE_USER",
    "ADMIN_USER",
    "KUBE_SCHEDULER_USER",
    "KUBE_CONTROLLER_MANAGER_USER",
    "FLEET_USER",
    "FLEET_GROUP",
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
#: Requests on the plain HTTP port (--port): upstream's insecure port ran them as this privileged user.
INSECURE_USER = UserInfo("system:unsecured", groups=(SYSTEM_MASTERS, ALL_AUTHENTICATED))

# The identities `megaplane up` issues client certificates for (CN = user, O = groups), as kubeadm's.
ADMIN_USER = "kubernetes-admin"  # O=system:masters
KUBE_SCHEDULER_USER = "system:kube-scheduler"
KUBE_CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
#: The simulated fleet's one shared identity (all its nodes write through one client): user FLEET_USER in
#: groups FLEET_GROUP and NODES_GROUP. Not a system:node:<name> user, so the Node authorizer has no opinion
#: on it; authorization decides from its groups what a fleet may write.
FLEET_USER = "system:megaplane:fleet"
FLEET_GROUP = "system:megaplane:fleets"
