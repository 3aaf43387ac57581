"""Client certificates (--client-ca-file): the user is the subject's CN, the groups its O's.

The TLS handshake has verified the chain against the CA already (see
`http.tls`); what is left per request is reading the subject, which is
parsed once per certificate and remembered (the connection hands every
request the same DER bytes object, whose hash Python keeps). A
certificate without the clientAuth usage is refused, and one whose
validity ends while its connection stays open is refused from then on.
"""

from __future__ import annotations

import time
from typing import Dict, Optional, Tuple

from megaplane.apimachinery import errors
from megaplane.apimachinery.user import ALL_AUTHENTICATED, UserInfo

__all__ = ["CertificateAuthenticator"]

# Certificates remembered at most (a client per entry; cleared past it, re-parsed on next use).
MAX_CACHED = 4096


class CertificateAuthenticator:
    def __init__(self) -> None:
        # DER -> (user or None when the certificate names no user, not-after as a unix time)
        self._cache: Dict[bytes, Tuple[Optional[UserInfo], float]] = {}

    def authenticate(self, der: bytes) -> Optional[UserInfo]:
        """The certificate's user; None if it has no CN; raises 401 for one that may not authenticate."""
        entry = self._cache.get(der)
        if entry is None:
            entry = self._parse(der)
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[der] = entry
        user, not_after = entry
        if time.time() > not_after:
            raise errors.StatusError(401, "Unauthorized", "Unauthorized")
        return user

    @staticmethod
    def _parse(der: bytes) -> Tuple[Optional[UserInfo], float]:
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        cert = x509.load_der_x509_certificate(der)
        try:
            usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = None
        if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages and \
                ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
            # x509: certificate specifies an incompatible key usage
            return None, 0.0
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        not_after = cert.not_valid_after_utc.timestamp()
        if not names or not names[0]:
            return None, not_after
        groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
        return UserInfo(names[0], groups=groups + (ALL_AUTHENTICATED,)), not_after
