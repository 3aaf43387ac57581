"""Authentication: who sent a request (client certificates, bearer tokens, ServiceAccount tokens, anonymous).

The server asks its `RequestAuthenticator` for every request before
routing it; the answer is a `megaplane.apimachinery.user.UserInfo` put on
`Request.user`, or a 401 StatusError. A request that arrives with its user
already set (the plain HTTP port: `http.tls.connection_credentials`) keeps
it. The authenticators live one concept per module: x509 (client
certificates), tokenfile (static tokens), serviceaccount (JWTs),
tokenrequest (serviceaccounts/token), reviews (SelfSubjectReview,
TokenReview), union (their order), config (the flags). Without configured authenticators
every request is the anonymous user (kube-apiserver's defaults: no
authenticator flags, --anonymous-auth=true).
"""

from __future__ import annotations

from typing import Optional, Protocol

from megaplane.apimachinery.user import UNAUTHENTICATED_USER, UserInfo
from megaplane.apiserver.http.messages import Request

__all__ = ["RequestAuthenticator", "AnonymousOnly"]


class RequestAuthenticator(Protocol):
    def authenticate(self, req: Request) -> UserInfo:
        """The request's user; raises a 401 StatusError for missing or invalid credentials when anonymous is off."""


class AnonymousOnly:
    """No authenticator configured: every request is system:anonymous."""

    def authenticate(self, req: Request) -> UserInfo:
        user: Optional[UserInfo] = req.user  # set by the transport for the plain HTTP port
        return user if user is not None else UNAUTHENTICATED_USER
