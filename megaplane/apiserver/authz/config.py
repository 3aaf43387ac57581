"""--authorization-mode, and building the authorizer it names over a registry.

`build(registry, config)` answers the server's `RequestAuthorizer`: the
AllowAll seam for AlwaysAllow alone (nothing to check), else a
`modes.ModeAuthorizer` over the listed authorizers (Node and RBAC read the
registry's watch caches). It also registers what authorization owns on the
registry: the authorization.k8s.io reviews and, with RBAC, the escalation
check, with Node, NodeRestriction admission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Tuple

from megaplane.apiserver.authz import AllowAll
from megaplane.apiserver.authz.escalation import EscalationCheck
from megaplane.apiserver.authz.modes import AlwaysAllow, AlwaysDeny, ModeAuthorizer
from megaplane.apiserver.authz.node import NodeAuthorizer
from megaplane.apiserver.authz.noderestriction import NodeRestriction
from megaplane.apiserver.authz.rbac import RBACAuthorizer
from megaplane.apiserver.authz.reviews import register as register_reviews

__all__ = ["AuthorizationConfig", "build"]


@dataclass
class AuthorizationConfig:
    #: --authorization-mode, in order (kube-apiserver's default is AlwaysAllow; `megaplane up` passes Node,RBAC).
    modes: List[str] = field(default_factory=lambda: ["AlwaysAllow"])


def build(registry: Any, config: AuthorizationConfig) -> Tuple[Any, ModeAuthorizer]:
    """(the server's request authorizer, the ModeAuthorizer): the former is AllowAll for AlwaysAllow alone."""
    authorizers: List[Any] = []
    rbac = node = None
    for mode in config.modes:
        if mode == "AlwaysAllow":
            authorizers.append(AlwaysAllow())
        elif mode == "AlwaysDeny":
            authorizers.append(AlwaysDeny())
        elif mode == "Node":
            node = NodeAuthorizer(registry.cache_for)
            authorizers.append(node)
        elif mode == "RBAC":
            rbac = RBACAuthorizer(registry.cache_for)
            authorizers.append(rbac)
        else:
            raise ValueError(f"authorization-mode {mode!r} is not a valid mode")
    authorizer = ModeAuthorizer(authorizers, rbac, node)
    register_reviews(registry, authorizer)
    registry.admission.guards.append(EscalationCheck(authorizer))
    if node is not None:
        registry.admission.guards.append(NodeRestriction())
    if config.modes == ["AlwaysAllow"]:
        return AllowAll(), authorizer
    return authorizer, authorizer
