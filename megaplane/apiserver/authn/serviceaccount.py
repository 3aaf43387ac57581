"""ServiceAccount tokens: signed JWTs (RS256/ES256), as kube-apiserver issues and checks bound tokens.

`TokenSigner` signs the claims a TokenRequest asks for with
--service-account-signing-key-file; `ServiceAccountTokens` checks a bearer
token on every request: a JWT of one of --service-account-issuer, signed
by one of the --service-account-key-file keys (or the signing key's own),
for one of the --api-audiences, not expired, whose ServiceAccount (and
bound Pod or Secret, and the Pod's Node) still exist with the uids the
token names (--service-account-lookup, on as upstream); a token bound to a
Node (and no Pod) needs that Node. A bound object being deleted keeps its
tokens until a minute past its deletionTimestamp, as upstream.

The signature is checked once per token: a verified token is remembered
with its expiry and the (cache, key, uid) of each object it is bound to,
so a later request costs a dict lookup, a clock read and one watch cache
lookup per bound object (no crypto, no decoding); a token whose objects
are gone or recreated (another uid) is dropped and refused from then on.
Legacy Secret-based tokens (issuer "kubernetes/serviceaccount") are not
accepted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource, lookup
from megaplane.apimachinery.user import (
    ALL_AUTHENTICATED,
    SERVICE_ACCOUNT_USER_PREFIX,
    SERVICE_ACCOUNTS_GROUP,
    UserInfo,
)
from megaplane.apiserver.registry.registry import Registry

__all__ = ["TokenSigner", "ServiceAccountTokens", "load_private_key", "load_public_keys", "key_id",
           "service_account_user"]

log = logging.getLogger("megaplane.apiserver.authn")

Obj = Dict[str, Any]
# Verified tokens remembered at most (cleared past it: each is verified again on its next use).
MAX_CACHED = 16384
# Extra keys upstream's ServiceAccount authenticator sets on the user (serviceaccount.go).
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"


def _unauthorized() -> errors.StatusError:
    return errors.StatusError(401, "Unauthorized", "Unauthorized")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private_key(path: str) -> Any:
    """The signing key (PEM: RSA or ECDSA private key)."""
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def load_public_keys(path: str) -> List[Any]:
    """Every public key in a PEM file: public keys, certificates, or private keys (keyutil.ParsePublicKeysPEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        data = f.read()
    keys: List[Any] = []
    for block in data.split(b"-----END ")[:-1]:
        begin = block.find(b"-----BEGIN ")
        if begin < 0:
            continue
        label = block[begin + 11:block.index(b"-----", begin + 11)]
        pem = block[begin:] + b"-----END " + label + b"-----\n"
        if label == b"CERTIFICATE":
            keys.append(x509.load_pem_x509_certificate(pem).public_key())
        elif label.endswith(b"PRIVATE KEY"):
            keys.append(serialization.load_pem_private_key(pem, None).public_key())
        elif label.endswith(b"PUBLIC KEY"):
            keys.append(serialization.load_pem_public_key(pem))
    if not keys:
        raise ValueError(f"{path}: data does not contain any valid RSA or ECDSA public keys")
    return keys


def key_id(public_key: Any) -> str:
    """The JWT `kid` upstream derives: base64url(SHA-256(the key's PKIX DER))."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def _algorithm(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RS256"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    raise ValueError(f"unsupported service account key type {type(key).__name__}: RSA or ECDSA only")


_HASHES = {"RS256": "SHA256", "ES256": "SHA256", "ES384": "SHA384", "ES512": "SHA512"}


class TokenSigner:
    """Signs claims with --service-account-signing-key-file (RS256 for RSA, ES256/384/512 for ECDSA)."""

    def __init__(self, private_key: Any) -> None:
        self.key = private_key
        self.alg = _algorithm(private_key)
        self.kid = key_id(private_key.public_key())
        self._header = _b64(orjson.dumps({"alg": self.alg, "kid": self.kid}))

    def sign(self, claims: Obj) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

        signing_input = (self._header + "." + _b64(orjson.dumps(claims))).encode()
        digest = getattr(hashes, _HASHES[self.alg])()
        if self.alg == "RS256":
            sig = self.key.sign(signing_input, padding.PKCS1v15(), digest)
        else:
            r, s = utils.decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(digest)))
            size = (self.key.curve.key_size + 7) // 8
            sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")  # JWS: fixed-size r || s
        return signing_input.decode() + "." + _b64(sig)


def _verify(key: Any, alg: str, signing_input: bytes, sig: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    try:
        if alg != _algorithm(key):
            return False
        digest = getattr(hashes, _HASHES[alg])()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signing_input, padding.PKCS1v15(), digest)
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            size = (key.curve.key_size + 7) // 8
            if len(sig) != 2 * size:
                return False
            der = utils.encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            key.verify(der, signing_input, ec.ECDSA(digest))
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


def service_account_user(namespace: str, name: str, uid: str, extra: Optional[Dict[str, Tuple[str, ...]]] = None
                         ) -> UserInfo:
    """system:serviceaccount:<ns>:<name> in system:serviceaccounts, system:serviceaccounts:<ns>, system:authenticated."""
    return UserInfo(f"{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}", uid,
                    (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}", ALL_AUTHENTICATED), extra or {})


# A bound object awaiting removal keeps its tokens this long past its deletionTimestamp (upstream's validator).
DELETED_OBJECT_GRACE = 60.0


def _deleted_long_ago(data: bytes, now: float) -> bool:
    """Whether an object being deleted has a deletionTimestamp more than DELETED_OBJECT_GRACE ago (decoded only
    for objects being deleted: the rare case)."""
    import datetime

    stamp = (orjson.loads(data).get("metadata") or {}).get("deletionTimestamp")
    if not isinstance(stamp, str):
        return False
    try:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return when < now - DELETED_OBJECT_GRACE


def _resource(plural: str) -> Resource:
    r = lookup("", plural)
    assert r is not None
    return r


class _Verified:
    """A token whose signature and claims checked out: what each later use still has to check."""

    __slots__ = ("user", "audiences", "for_api", "expires", "not_before", "bound")

    def __init__(self, user: UserInfo, audiences: Tuple[str, ...], for_api: bool, expires: float, not_before: float,
                 bound: Tuple[Tuple[Any, bytes, str], ...]) -> None:
        self.user = user
        self.audiences = audiences
        self.for_api = for_api
        self.expires = expires
        self.not_before = not_before
        self.bound = bound


class ServiceAccountTokens:
    """The bearer-token authenticator for ServiceAccount JWTs."""

    def __init__(self, registry: Registry, keys: Sequence[Any], issuers: Sequence[str], api_audiences: Sequence[str],
                 lookup_objects: bool = True) -> None:
        self.keys = [(key_id(k), k) for k in keys]
        self.issuers = frozenset(issuers)
        self.api_audiences = frozenset(api_audiences)
        self.lookup_objects = lookup_objects
        self._caches = {plural: registry.cache_for(_resource(plural))
                        for plural in ("serviceaccounts", "pods", "secrets", "nodes")}
        self._verified: Dict[str, _Verified] = {}

    def authenticate_token(self, token: str, audiences: Optional[Sequence[str]] = None
                           ) -> Optional[Tuple[UserInfo, Tuple[str, ...]]]:
        """(user, the token's audiences) for a valid token of ours; None for a token that is not (another
        authenticator's); a 401 StatusError for one of ours that is invalid, expired, or whose objects are gone.

        `audiences`: those the caller accepts (TokenReview's spec.audiences); None: the API audiences.
        """
        entry = self._verified.get(token)
        if entry is None:
            entry = self._verify(token)
            if entry is None:
                return None
            if len(self._verified) >= MAX_CACHED:
                self._verified.clear()
            self._verified[token] = entry
        now = time.time()
        if now >= entry.expires or now < entry.not_before:
            if now >= entry.expires:
                self._verified.pop(token, None)
            raise _unauthorized()
        for cache, key, uid in entry.bound:
            obj = cache.get(key)
            if obj is None or obj.facts.uid != uid or (obj.facts.deleting and _deleted_long_ago(obj.data, now)):
                self._verified.pop(token, None)
                raise _unauthorized()
        if audiences is None:
            if not entry.for_api:
                raise _unauthorized()
        elif not set(audiences) & set(entry.audiences):
            raise _unauthorized()
        return entry.user, entry.audiences

    def _verify(self, token: str) -> Optional[_Verified]:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = orjson.loads(_unb64(parts[0]))
            claims = orjson.loads(_unb64(parts[1]))
            sig = _unb64(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None
        if claims.get("iss") not in self.issuers:
            return None  # not ours: another token authenticator may know it
        alg, kid = header.get("alg"), header.get("kid")
        signing_input = (parts[0] + "." + parts[1]).encode()
        candidates = [k for i, k in self.keys if i == kid] or [k for _, k in self.keys]
        if not isinstance(alg, str) or not any(_verify(k, alg, signing_input, sig) for k in candidates):
            log.debug("service account token: bad signature (kid %r)", kid)
            raise _unauthorized()
        return self._claims(claims)

    def _claims(self, claims: Obj) -> _Verified:
        aud = claims.get("aud")
        audiences = tuple(a for a in ([aud] if isinstance(aud, str) else aud or ()) if isinstance(a, str))
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, (int, float)) or not isinstance(nbf, (int, float)):
            raise _unauthorized()  # bound tokens always expire
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            raise _unauthorized()
        namespace = private.get("namespace")
        sa = private.get("serviceaccount")
        if not isinstance(namespace, str) or not isinstance(sa, dict) or not isinstance(sa.get("name"), str):
            raise _unauthorized()
        sa_name, sa_uid = sa["name"], str(sa.get("uid") or "")
        if claims.get("sub") != f"{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{sa_name}":
            raise _unauthorized()
        extra: Dict[str, Tuple[str, ...]] = {}
        bound: List[Tuple[Any, bytes, str]] = []
        if self.lookup_objects:
            bound.append(self._bound("serviceaccounts", namespace, sa_name, sa_uid))
        for what, key_name, key_uid in (("pod", POD_NAME_KEY, POD_UID_KEY), ("secret", "", ""),
                                        ("node", NODE_NAME_KEY, NODE_UID_KEY)):
            ref = private.get(what)
            if ref is None:
                continue
            if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
                raise _unauthorized()
            if key_name:
                extra[key_name], extra[key_uid] = (ref["name"],), (str(ref.get("uid") or ""),)
            if what != "node" or "pod" not in private:  # a pod's node is information; a node-bound token's, a binding
                bound.append(self._bound(what + "s", namespace, ref["name"], str(ref.get("uid") or "")))
        jti = claims.get("jti")
        if isinstance(jti, str) and jti:
            extra[CREDENTIAL_ID_KEY] = (f"JTI={jti}",)
        user = service_account_user(namespace, sa_name, sa_uid, extra)
        now = time.time()
        for cache, key, uid in bound:
            obj = cache.get(key)
            if obj is None or obj.facts.uid != uid or (obj.facts.deleting and _deleted_long_ago(obj.data, now)):
                raise _unauthorized()
        return _Verified(user, audiences, bool(self.api_audiences & set(audiences)), float(exp), float(nbf) - 60,
                         tuple(bound))

    def _bound(self, plural: str, namespace: str, name: str, uid: str) -> Tuple[Any, bytes, str]:
        cache = self._caches[plural]
        return cache, cache.resource.key(namespace, name), uid
