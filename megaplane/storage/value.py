"""Values at rest: kube-apiserver's storage value transformers and --encryption-provider-config.

The role of k8s.io/apiserver pkg/storage/value (the transformers) and
pkg/server/options/encryptionconfig (the file), applied by every backend
at the point where bytes go to or come from the store, so the embedded
store's WAL and snapshots and a real etcd hold the same shape as
kube-apiserver's: ``k8s:enc:<provider>:v1:<key name>:`` then the
provider's ciphertext. Above the backends (the watch cache, the registry)
everything is plaintext.

- ``aescbc``: a random 16-byte IV, then AES-CBC of the PKCS#7-padded value.
- ``aesgcm``: a random 12-byte nonce, then AES-GCM with the etcd key as
  additional data.
- ``secretbox``: a random 24-byte nonce, then NaCl's XSalsa20-Poly1305
  (PyNaCl; Go's golang.org/x/crypto/nacl/secretbox output).
- ``identity``: the value as is.

Per resource the first provider (its first key) encrypts; every listed
provider and key decrypts, picked by the stored prefix, so keys rotate and
`identity` listed after an encrypting provider reads values written
before encryption was turned on (the migration). Without `identity` a
value without a known prefix fails to read, as upstream's "no matching
prefix found".
"""

from __future__ import annotations

import base64
import os
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Set, Tuple

from ..apimachinery.resources import RESOURCES

__all__ = [
    "TransformError",
    "Transformer",
    "PrefixTransformers",
    "ResourceTransformers",
    "load_encryption_config",
    "parse_encryption_config",
]

_ENCRYPTED = b"k8s:enc:"


class TransformError(Exception):
    """A value could not be transformed from or to storage (a wrong key, corrupt bytes, no provider)."""


class Transformer(Protocol):
    """One provider key: bytes to and from storage (without the prefix)."""

    def to_storage(self, data: bytes, key: bytes) -> bytes: ...

    def from_storage(self, data: bytes, key: bytes) -> bytes: ...


class _Identity(Transformer):
    def to_storage(self, data: bytes, key: bytes) -> bytes:
        return data

    def from_storage(self, data: bytes, key: bytes) -> bytes:
        if data.startswith(_ENCRYPTED):
            raise TransformError("identity transformer tried to read encrypted data")
        return data


class _AESCBC(Transformer):
    """value/encrypt/aes: cbc (IV, then CBC of the PKCS#7-padded data)."""

    def __init__(self, secret: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import algorithms

        self._algorithm = algorithms.AES(secret)

    def _cipher(self, iv: bytes) -> Any:
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        return Cipher(self._algorithm, modes.CBC(iv))

    def to_storage(self, data: bytes, key: bytes) -> bytes:
        iv = os.urandom(16)
        pad = 16 - len(data) % 16
        enc = self._cipher(iv).encryptor()
        body: bytes = enc.update(data + bytes([pad]) * pad) + enc.finalize()
        return iv + body

    def from_storage(self, data: bytes, key: bytes) -> bytes:
        if len(data) < 16:
            raise TransformError("the stored data was shorter than the required size")
        iv, body = data[:16], data[16:]
        if len(body) % 16:
            raise TransformError("the stored data is not a multiple of the block size")
        dec = self._cipher(iv).decryptor()
        out: bytes = dec.update(body) + dec.finalize()
        pad = out[-1] if out else 0
        if pad == 0 or pad > len(out):
            raise TransformError("invalid PKCS7 data (empty or not padded)")
        if out[-pad:] != bytes([pad]) * pad:
            raise TransformError("invalid padding on input")
        return out[:-pad]


class _AESGCM(Transformer):
    """value/encrypt/aes: gcm (12-byte nonce, then the sealed data; the etcd key is the additional data)."""

    def __init__(self, secret: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(secret)

    def to_storage(self, data: bytes, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, key)

    def from_storage(self, data: bytes, key: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(data) < 12 + 16:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return self._aead.decrypt(data[:12], data[12:], key)
        except InvalidTag:
            raise TransformError("cipher: message authentication failed") from None


class _Secretbox(Transformer):
    """value/encrypt/secretbox (24-byte nonce, then NaCl secretbox: Poly1305 tag and XSalsa20 ciphertext)."""

    def __init__(self, secret: bytes) -> None:
        from nacl.secret import SecretBox

        self._box = SecretBox(secret)

    def to_storage(self, data: bytes, key: bytes) -> bytes:
        return bytes(self._box.encrypt(data, os.urandom(24)))

    def from_storage(self, data: bytes, key: bytes) -> bytes:
        from nacl.exceptions import CryptoError

        if len(data) < 24 + 16:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return bytes(self._box.decrypt(data))
        except CryptoError:
            raise TransformError("output array was not large enough for encryption") from None


class PrefixTransformers:
    """One resource's providers: the first writes, the one whose prefix the stored value has reads."""

    def __init__(self, transformers: Sequence[Tuple[bytes, Transformer]]) -> None:
        if not transformers:
            raise ValueError("no providers")
        self._write_prefix, self._writer = transformers[0]
        self._all = list(transformers)
        #: True when values are stored as they are (identity first): reads still try every prefix.
        self.identity_writes = not self._write_prefix

    def to_storage(self, data: bytes, key: bytes) -> bytes:
        if self.identity_writes:
            return data
        return self._write_prefix + self._writer.to_storage(data, key)

    def from_storage(self, data: bytes, key: bytes) -> bytes:
        identity_error: Optional[TransformError] = None
        for prefix, t in self._all:
            if data.startswith(prefix):
                try:
                    return t.from_storage(data[len(prefix):], key)
                except TransformError as e:
                    # An identity listed before the encrypting provider (migrating away) must not stop the search.
                    if not prefix:
                        identity_error = e
                        continue
                    raise
        raise identity_error or TransformError("no matching prefix found")


class ResourceTransformers:
    """Which `PrefixTransformers` each key's resource uses (none: stored as is)."""

    def __init__(self, routes: Sequence[Tuple[bytes, PrefixTransformers]],
                 default: Optional[PrefixTransformers] = None) -> None:
        # Longest prefix first; `default` is `*.*`'s (every other resource).
        self._routes = sorted(routes, key=lambda r: -len(r[0]))
        self._default = default

    def for_key(self, key: bytes) -> Optional[PrefixTransformers]:
        for prefix, t in self._routes:
            if key.startswith(prefix):
                return t
        return self._default

    def to_storage(self, key: bytes, data: bytes, aad: bytes = b"") -> bytes:
        t = self.for_key(key)
        return data if t is None or t.identity_writes else t.to_storage(data, aad or key)

    def from_storage(self, key: bytes, data: bytes, aad: bytes = b"") -> bytes:
        t = self.for_key(key)
        return data if t is None else t.from_storage(data, aad or key)


# -- the file: apiserver.config.k8s.io/v1 EncryptionConfiguration ---------------------------------

_KEY_SIZES = {"aescbc": (16, 24, 32), "aesgcm": (16, 24, 32), "secretbox": (32,)}
_CLASSES: Dict[str, Callable[[bytes], Transformer]] = {"aescbc": _AESCBC, "aesgcm": _AESGCM, "secretbox": _Secretbox}


def _providers(providers: Any, where: str) -> PrefixTransformers:
    if not isinstance(providers, list) or not providers:
        raise ValueError(f"{where}.providers: Required value: at least one provider must be specified")
    out: List[Tuple[bytes, Transformer]] = []
    for i, p in enumerate(providers):
        at = f"{where}.providers[{i}]"
        if not isinstance(p, dict) or len(p) != 1:
            raise ValueError(f"{at}: Invalid value: exactly one provider type must be specified")
        (kind, spec), = p.items()
        if kind == "identity":
            out.append((b"", _Identity()))
            continue
        if kind not in _CLASSES:
            raise ValueError(f"{at}: Unsupported value: {kind!r}: supported values: \"aescbc\", \"aesgcm\", "
                             "\"secretbox\", \"identity\"")
        keys = (spec or {}).get("keys") if isinstance(spec, dict) else None
        if not isinstance(keys, list) or not keys:
            raise ValueError(f"{at}.{kind}.keys: Required value: at least one key must be specified")
        for j, k in enumerate(keys):
            kat = f"{at}.{kind}.keys[{j}]"
            name = k.get("name") if isinstance(k, dict) else None
            secret = k.get("secret") if isinstance(k, dict) else None
            if not name or not isinstance(name, str):
                raise ValueError(f"{kat}.name: Required value: key name is required")
            if ":" in name:
                raise ValueError(f"{kat}.name: Invalid value: {name!r}: should not contain ':'")
            if not secret or not isinstance(secret, str):
                raise ValueError(f"{kat}.secret: Required value: secret is required")
            try:
                raw = base64.b64decode(secret, validate=True)
            except ValueError:
                raise ValueError(f"{kat}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded") \
                    from None
            if len(raw) not in _KEY_SIZES[kind]:
                sizes = ", ".join(str(s) for s in _KEY_SIZES[kind])
                raise ValueError(f"{kat}.secret: Invalid value: \"REDACTED\": secret is not of the expected "
                                 f"length, got {len(raw)}, expected one of [{sizes}]")
            try:
                t = _CLASSES[kind](raw)
            except ImportError as e:  # secretbox needs PyNaCl
                raise ValueError(f"{at}: {kind} is not available here: {e}") from None
            out.append((f"k8s:enc:{kind}:v1:{name}:".encode(), t))
    return PrefixTransformers(out)


def _prefixes_of(name: str) -> Optional[List[bytes]]:
    """A `resources` entry's key prefixes (``secrets``, ``deployments.apps``, ``*.apps``); None for ``*.*``."""
    if name == "*.*":
        return None
    plural, _, group = name.partition(".")
    if plural == "*":
        found = [r.prefix for r in RESOURCES if r.group == group and r.stored and r.storage_of is None]
    else:
        found = [r.prefix for r in RESOURCES if r.group == group and r.plural == plural and r.stored]
    if not found:
        # A resource this server does not serve (yet) cannot have values here; upstream accepts it too.
        return []
    return found


def parse_encryption_config(doc: Any) -> ResourceTransformers:
    """An EncryptionConfiguration (decoded YAML/JSON) as the transformers of every resource it names."""
    if not isinstance(doc, dict):
        raise ValueError("the encryption provider configuration is not an object")
    if doc.get("kind") != "EncryptionConfiguration" or doc.get("apiVersion") not in (
            "apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1alpha1"):
        raise ValueError("expected kind EncryptionConfiguration of apiVersion apiserver.config.k8s.io/v1, got "
                         f"{doc.get('kind')!r} of {doc.get('apiVersion')!r}")
    entries = doc.get("resources")
    if not isinstance(entries, list) or not entries:
        raise ValueError("resources: Required value: resources is a required field")
    routes: Dict[bytes, PrefixTransformers] = {}
    default: Optional[PrefixTransformers] = None
    seen: Set[str] = set()
    for i, entry in enumerate(entries):
        where = f"resources[{i}]"
        names = entry.get("resources") if isinstance(entry, dict) else None
        if not isinstance(names, list) or not names:
            raise ValueError(f"{where}.resources: Required value: at least one resource must be specified")
        providers = _providers(entry.get("providers"), where)
        for name in names:
            if name in seen:
                raise ValueError(f"{where}.resources: Duplicate value: {name!r}")
            seen.add(name)
            prefixes = _prefixes_of(name)
            if prefixes is None:
                if default is None:
                    default = providers
                continue
            for p in prefixes:
                routes.setdefault(p, providers)  # the first entry naming a resource wins
    return ResourceTransformers(list(routes.items()), default)


def load_encryption_config(path: str) -> ResourceTransformers:
    """--encryption-provider-config: read and check the file (errors name it)."""
    import yaml

    try:
        with open(path, "rb") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"error while parsing file {path}: {e}") from None
    try:
        return parse_encryption_config(doc)
    except ValueError as e:
        raise ValueError(f"error while parsing file {path}: {e}") from None
