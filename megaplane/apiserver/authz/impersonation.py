"""Impersonation: `Impersonate-User`, `-Group`, `-Uid` and `-Extra-<key>` headers (kubectl --as, --as-group).

As k8s.io/apiserver's WithImpersonation: the authenticated user must be
allowed the `impersonate` verb on each thing asked for: `users` (or
`serviceaccounts` in its namespace for `system:serviceaccount:<ns>:<name>`)
and `groups` in the core group, `uids` and `userextras/<key>` in
authentication.k8s.io; a refusal is the usual 403 (`users "bob" is
forbidden: User "alice" cannot impersonate resource "users" in API group ""
at the cluster scope`). The request then runs as the impersonated user:
the groups given (a ServiceAccount's own groups when none are), plus
system:authenticated unless it is system:anonymous.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Tuple

from megaplane.apimachinery import errors
from megaplane.apimachinery.user import (
    ALL_AUTHENTICATED,
    ANONYMOUS,
    SERVICE_ACCOUNT_USER_PREFIX,
    SERVICE_ACCOUNTS_GROUP,
    UserInfo,
)
from megaplane.apiserver.http.messages import Request

__all__ = ["wants_impersonation", "impersonate"]

_EXTRA = "impersonate-extra-"


def wants_impersonation(headers: Dict[str, str]) -> bool:
    """As buildImpersonationRequests: an empty Impersonate-User (or -Uid) is no user (Go trims header values and
    tests the length); an Impersonate-Group header counts even when empty."""
    # Every request asks: the header names are scanned in C (map over the keys), not by a generator.
    if not any(map(str.startswith, headers, _PREFIXES)):
        return False
    return bool(headers.get("impersonate-user", "").strip()) or "impersonate-group" in headers \
        or bool(headers.get("impersonate-uid", "").strip()) or any(k.startswith(_EXTRA) for k in headers)


_PREFIXES = itertools.repeat("impersonate-")


def _values(header: str) -> List[str]:
    return [v.strip() for v in header.split(",") if v.strip()] if header else []


def impersonate(req: Request, authz: Any) -> None:
    """Replace req.user by the user its headers ask for, once each part is authorized (else 403)."""
    h = req.headers
    acting = req.user
    name = h.get("impersonate-user", "").strip()
    groups = _values(h.get("impersonate-group", ""))
    uid = h.get("impersonate-uid", "").strip()
    extra: Dict[str, Tuple[str, ...]] = {k[len(_EXTRA):]: tuple(_values(v)) for k, v in h.items() if k.startswith(_EXTRA)}
    if not name:
        raise errors.StatusError(500, "InternalError", "Internal error occurred: requested impersonation of groups, "
                                 "uid or extra without impersonating a user")
    if name.startswith(SERVICE_ACCOUNT_USER_PREFIX) and name.count(":") == 3:
        ns, sa = name[len(SERVICE_ACCOUNT_USER_PREFIX):].split(":", 1)
        authz.check(acting, "impersonate", "", "serviceaccounts", "", ns, sa)
        if not groups:
            groups = [SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{ns}"]
    else:
        authz.check(acting, "impersonate", "", "users", "", "", name)
    for g in groups:
        authz.check(acting, "impersonate", "", "groups", "", "", g)
    if uid:
        authz.check(acting, "impersonate", "authentication.k8s.io", "uids", "", "", uid)
    for key, values in extra.items():
        for v in values:
            authz.check(acting, "impersonate", "authentication.k8s.io", "userextras", key, "", v)
    if name != ANONYMOUS and ALL_AUTHENTICATED not in groups:
        groups.append(ALL_AUTHENTICATED)
    req.user = UserInfo(name, uid, tuple(groups), extra)
