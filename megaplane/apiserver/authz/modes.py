"""--authorization-mode: the configured authorizers, asked in order, and the 403 a refusal is.

kube-apiserver puts a privileged-group authorizer first (system:masters
may do anything), then the modes as listed: Node, RBAC, AlwaysAllow,
AlwaysDeny. The first Allow or Deny decides; when none decides the request
is refused with upstream's Forbidden Status and the authorizers' reasons.
`ModeAuthorizer` is the server's `RequestAuthorizer` for HTTP requests and
the check loopback clients and reviews call with a user of their own.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from megaplane.apimachinery.user import SYSTEM_MASTERS, UserInfo
from megaplane.apiserver.authz.decision import (
    ALLOW,
    ALLOW_KIND,
    DENY,
    DENY_KIND,
    NO_OPINION,
    Authorizer,
    Decision,
)
from megaplane.apiserver.authz.forbidden import path_forbidden, resource_forbidden
from megaplane.apiserver.http.messages import Request

__all__ = ["MODES", "parse_modes", "ModeAuthorizer", "AlwaysAllow", "AlwaysDeny", "PrivilegedGroups"]

MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")


def parse_modes(text: str) -> List[str]:
    """The comma list --authorization-mode takes; an unknown or repeated mode is an error (as upstream)."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes:
        raise ValueError("at least one authorization-mode must be passed")
    for m in modes:
        if m not in MODES:
            raise ValueError(f"authorization-mode {m!r} is not a valid mode")
    if len(set(modes)) != len(modes):
        raise ValueError(f"authorization-mode {text!r} has mode specified more than once")
    return modes


class AlwaysAllow:
    def authorize(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
                  name: str) -> Decision:
        return ALLOW

    def authorize_path(self, user: UserInfo, verb: str, path: str) -> Decision:
        return ALLOW


class AlwaysDeny:
    def authorize(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
                  name: str) -> Decision:
        return DENY

    def authorize_path(self, user: UserInfo, verb: str, path: str) -> Decision:
        return DENY


class PrivilegedGroups:
    """authorizerfactory.NewPrivilegedGroups(system:masters): always first."""

    def authorize(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
                  name: str) -> Decision:
        return ALLOW if SYSTEM_MASTERS in user.groups else NO_OPINION

    def authorize_path(self, user: UserInfo, verb: str, path: str) -> Decision:
        return ALLOW if SYSTEM_MASTERS in user.groups else NO_OPINION


class ModeAuthorizer:
    """The union of the configured authorizers, raising upstream's 403 when it does not allow."""

    def __init__(self, authorizers: Sequence[Authorizer], rbac: Any = None, node: Any = None) -> None:
        self.authorizers: Tuple[Authorizer, ...] = (PrivilegedGroups(), *authorizers)
        #: The RBAC and Node authorizers when they are modes (escalation checks and rules reviews read their rules).
        self.rbac = rbac
        self.node = node

    def decide(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
               name: str) -> Decision:
        reasons: Optional[List[str]] = None
        for a in self.authorizers:
            kind, reason = a.authorize(user, verb, group, resource, subresource, namespace, name)
            if kind == ALLOW_KIND:
                return ALLOW
            if reason:
                reasons = (reasons or []) + [reason]
            if kind == DENY_KIND:
                break
        return DENY[0], ", ".join(reasons) if reasons else ""

    def decide_path(self, user: UserInfo, verb: str, path: str) -> Decision:
        reasons: Optional[List[str]] = None
        for a in self.authorizers:
            kind, reason = a.authorize_path(user, verb, path)
            if kind == ALLOW_KIND:
                return ALLOW
            if reason:
                reasons = (reasons or []) + [reason]
            if kind == DENY_KIND:
                break
        return DENY[0], ", ".join(reasons) if reasons else ""

    def check(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
              name: str) -> None:
        """Raise the 403 StatusError unless `user` may."""
        kind, reason = self.decide(user, verb, group, resource, subresource, namespace, name)
        if kind != ALLOW_KIND:
            raise resource_forbidden(user.name, verb, group, resource, subresource, namespace, name, reason)

    # -- RequestAuthorizer --------------------------------------------------------------------------------

    def authorize_resource(self, req: Request, info: Any) -> None:
        r = info.resource
        self.check(req.user, info.verb, r.group, r.plural, info.subresource, info.namespace, info.name)

    def authorize_path(self, req: Request, path: str, verb: str) -> None:
        kind, reason = self.decide_path(req.user, verb, path)
        if kind != ALLOW_KIND:
            raise path_forbidden(req.user.name, verb, path, reason)
