"""kube-apiserver's authentication flags, and building the request authenticator they describe.

`build(registry, config)` makes the authenticator the server asks for every
request (client certificates, static tokens, ServiceAccount tokens, then
anonymous) and registers the create-only endpoints authentication owns:
authentication.k8s.io/v1 SelfSubjectReview and TokenReview, and the
serviceaccounts/token subresource (TokenRequest) when a signing key is
given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

from megaplane.apimachinery.resources import lookup
from megaplane.apimachinery.user import UserInfo
from megaplane.apiserver.authn import AnonymousOnly, RequestAuthenticator
from megaplane.apiserver.authn.reviews import SelfSubjectReviews, TokenReviews
from megaplane.apiserver.authn.serviceaccount import (
    ServiceAccountTokens,
    TokenSigner,
    load_private_key,
    load_public_keys,
)
from megaplane.apiserver.authn.tokenfile import TokenFile, load_token_file
from megaplane.apiserver.authn.tokenrequest import TokenRequests
from megaplane.apiserver.authn.union import RequestAuthentication
from megaplane.apiserver.authn.x509 import CertificateAuthenticator
from megaplane.apiserver.registry.registry import Registry

__all__ = ["AuthenticationConfig", "build"]


@dataclass
class AuthenticationConfig:
    #: --anonymous-auth: requests without credentials are system:anonymous (else 401).
    anonymous_auth: bool = True
    #: --client-ca-file: client certificates signed by this CA authenticate (CN user, O groups). The TLS
    #: context loads it (http.tls.server_ssl_context); here it only switches the x509 authenticator on.
    client_ca_file: str = ""
    #: --token-auth-file: static bearer tokens (CSV token,user,uid,"group1,group2").
    token_auth_file: str = ""
    #: --service-account-key-file (repeatable): PEM public keys (or certificates, private keys) that verify tokens.
    service_account_key_files: List[str] = field(default_factory=list)
    #: --service-account-signing-key-file: the private key TokenRequest signs with (its public key verifies too).
    service_account_signing_key_file: str = ""
    #: --service-account-issuer (repeatable): the first is put in new tokens; all are accepted.
    service_account_issuers: List[str] = field(default_factory=list)
    #: --api-audiences: tokens must be for one of these (default: the issuers, as upstream).
    api_audiences: List[str] = field(default_factory=list)
    #: --service-account-lookup: a token is valid only while its ServiceAccount (and bound objects) exist.
    service_account_lookup: bool = True
    #: --service-account-max-token-expiration (seconds; 0: none): longer requests are cut to it.
    service_account_max_token_expiration: float = 0

    def audiences(self) -> List[str]:
        return list(self.api_audiences or self.service_account_issuers)

    def check_files(self) -> None:
        """Read every file the flags name; a missing or malformed one is a ValueError naming it."""
        try:
            if self.token_auth_file:
                load_token_file(self.token_auth_file)
            if self.service_account_signing_key_file:
                TokenSigner(load_private_key(self.service_account_signing_key_file))
            for path in self.service_account_key_files:
                load_public_keys(path)
            if self.client_ca_file:
                with open(self.client_ca_file, "rb"):
                    pass
        except OSError as exc:
            raise ValueError(f"{exc.filename}: {exc.strerror}") from None
        except (TypeError, ValueError) as exc:  # cryptography's unreadable keys
            raise ValueError(str(exc)) from None


def build(registry: Registry, config: AuthenticationConfig) -> RequestAuthenticator:
    """The request authenticator for `config`; registers the authentication.k8s.io endpoints on `registry`.

    Files that do not load raise ValueError/OSError (the server does not start), as kube-apiserver exits.
    """
    certificates = CertificateAuthenticator() if config.client_ca_file else None
    token_file: Optional[TokenFile] = load_token_file(config.token_auth_file) if config.token_auth_file else None
    audiences = config.audiences()
    service_accounts: Optional[ServiceAccountTokens] = None
    signer: Optional[TokenSigner] = None
    if config.service_account_signing_key_file:
        signer = TokenSigner(load_private_key(config.service_account_signing_key_file))
    keys: List[Any] = [k for path in config.service_account_key_files for k in load_public_keys(path)]
    if signer is not None and not config.service_account_key_files:
        keys.append(signer.key.public_key())  # upstream defaults the key files to the signing key
    if keys or signer is not None:
        if not config.service_account_issuers:
            raise ValueError("--service-account-issuer is required with service account keys")
        service_accounts = ServiceAccountTokens(registry, keys, config.service_account_issuers, audiences,
                                                config.service_account_lookup)
    authenticator: RequestAuthenticator
    if certificates is None and token_file is None and service_accounts is None and config.anonymous_auth:
        authenticator = AnonymousOnly()
        union: Optional[RequestAuthentication] = None
    else:
        union = RequestAuthentication(certificates, token_file, service_accounts, config.anonymous_auth, audiences)
        authenticator = union

    def check_token(token: str, wanted: Sequence[str]) -> Optional[Tuple[UserInfo, Tuple[str, ...]]]:
        return union.check_token(token, wanted) if union is not None else None

    ssr, tr = lookup("authentication.k8s.io", "selfsubjectreviews"), lookup("authentication.k8s.io", "tokenreviews")
    accounts = lookup("", "serviceaccounts")
    assert ssr is not None and tr is not None and accounts is not None
    registry.serve_create(ssr, "", SelfSubjectReviews())
    registry.serve_create(tr, "", TokenReviews(check_token, audiences))
    if signer is not None:
        registry.serve_create(accounts, "token", TokenRequests(
            registry, signer, config.service_account_issuers[0], audiences,
            config.service_account_max_token_expiration))
    return authenticator
