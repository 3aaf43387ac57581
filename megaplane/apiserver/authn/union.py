"""The request authenticator: client certificate, then bearer token, then anonymous (kube-apiserver's order).

As upstream's union with fail-on-error before anonymous: a request whose
certificate or token names a user is that user; one whose credentials are
invalid is a 401 (even with --anonymous-auth); one with none is
system:anonymous in system:unauthenticated when --anonymous-auth is on,
else a 401. The 401 body is upstream's Status, message "Unauthorized".
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from megaplane.apimachinery import errors
from megaplane.apimachinery.user import UNAUTHENTICATED_USER, UserInfo
from megaplane.apiserver.authn.serviceaccount import ServiceAccountTokens
from megaplane.apiserver.authn.tokenfile import TokenFile
from megaplane.apiserver.authn.x509 import CertificateAuthenticator
from megaplane.apiserver.http.messages import Request

__all__ = ["RequestAuthentication", "unauthorized"]


def unauthorized() -> errors.StatusError:
    return errors.StatusError(401, "Unauthorized", "Unauthorized")


class RequestAuthentication:
    def __init__(self, certificates: Optional[CertificateAuthenticator], token_file: Optional[TokenFile],
                 service_accounts: Optional[ServiceAccountTokens], anonymous: bool,
                 api_audiences: Sequence[str] = ()) -> None:
        self.api_audiences = tuple(api_audiences)
        self.certificates = certificates
        self.token_file = token_file
        self.service_accounts = service_accounts
        self.anonymous = anonymous

    def authenticate(self, req: Request) -> UserInfo:
        preset: Optional[UserInfo] = req.user  # the plain HTTP port's (http.tls.connection_credentials)
        if preset is not None:
            return preset
        failed = False
        der = req.peer_certificate
        if der is not None and self.certificates is not None:
            try:
                user = self.certificates.authenticate(der)
            except errors.StatusError:
                failed = True
            else:
                if user is not None:
                    return user
        header = req.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                found = self.check_token(token, None)  # raises 401 for a token an authenticator refuses
                if found is not None:
                    return found[0]
                failed = True
        if failed or not self.anonymous:
            raise unauthorized()
        return UNAUTHENTICATED_USER

    def check_token(self, token: str, audiences: Optional[Sequence[str]]
                    ) -> Optional[Tuple[UserInfo, Tuple[str, ...]]]:
        """(user, audiences) for a token one of the token authenticators accepts; None if none knows it.

        A ServiceAccount token that is ours but invalid raises 401. Static tokens are valid for the API
        audiences only (upstream's WrapAudienceAgnosticToken): a review for other audiences refuses them.
        """
        if self.token_file is not None:
            user = self.token_file.authenticate_token(token)
            if user is not None:
                if audiences is None:
                    return user, self.api_audiences
                valid = tuple(a for a in audiences if a in self.api_audiences)
                if not valid and self.api_audiences:
                    raise unauthorized()  # token audiences are invalid for the target audiences
                return user, valid
        if self.service_accounts is not None:
            return self.service_accounts.authenticate_token(token, audiences)
        return None
