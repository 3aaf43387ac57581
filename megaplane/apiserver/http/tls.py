"""The cluster's PKI as `megaplane up` keeps it, the TLS server context, and kubeconfigs.

A self-signed CA and a server certificate for localhost / 127.0.0.1 (and
any --tls-san names) are generated into <data-dir>/pki once and reused, so
a kubeconfig written on one start keeps working after a restart. The same
CA signs the client certificates of the admin and of each component
(`issue_client_cert`: CN is the user, O the groups, as kube-apiserver's
x509 authenticator reads them) and the ServiceAccount token signing key
lives beside it (`ensure_service_account_key`).

The TLS port asks for a client certificate without requiring one
(`server_ssl_context(..., client_ca=...)`); OpenSSL verifies a presented
one against the CA during the handshake (Python's ssl module cannot ask
for a certificate without verifying it), so a client with a certificate
the CA did not sign fails the handshake instead of getting a 401.
`peer_certificate(transport)` is the verified certificate of a connection
(DER), for every HTTP connection class to put on its requests.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from typing import Any, List, Optional, Sequence, Tuple

from megaplane.apimachinery.user import INSECURE_USER

__all__ = ["ensure_certs", "server_ssl_context", "write_kubeconfig", "peer_certificate", "connection_credentials",
           "issue_client_cert",
           "ensure_service_account_key"]


def ensure_certs(pki_dir: str, sans: Optional[List[str]] = None) -> Tuple[str, str, str]:
    """(ca.crt, apiserver.crt, apiserver.key) in `pki_dir`, created on first use."""
    ca_crt = os.path.join(pki_dir, "ca.crt")
    crt = os.path.join(pki_dir, "apiserver.crt")
    key = os.path.join(pki_dir, "apiserver.key")
    if all(os.path.exists(p) for p in (ca_crt, crt, key)):
        return ca_crt, crt, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(pki_dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "megaplane-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: List[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    for san in sans or ():
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(ca_crt, "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(pki_dir, "ca.key"), "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_crt, crt, key


def server_ssl_context(crt: str, key: str, client_ca: Optional[str] = None) -> ssl.SSLContext:
    """The serving context; with `client_ca` (--client-ca-file) clients may present a certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL  # kube-apiserver's RequestClientCert: no certificate is anonymous/token
    ctx.set_alpn_protocols(["h2", "http/1.1"])  # h2 first, as kube-apiserver offers
    return ctx


def peer_certificate(transport: Any) -> Optional[bytes]:
    """The client certificate (DER) the TLS connection under `transport` presented and OpenSSL verified, or None.

    Read once per connection (after the handshake, i.e. in connection_made) and put on each of its requests.
    """
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: Optional[bytes] = ssl_object.getpeercert(binary_form=True)
    return der


def connection_credentials(transport: Any) -> Tuple[Optional[bytes], Any]:
    """(client certificate, user) of a new connection, for every request on it.

    TLS: the verified certificate (or None) and no user yet (the server's authenticator decides). Plain
    HTTP (--port): no certificate and `INSECURE_USER`, as upstream's removed insecure port skipped
    authentication and authorization (a request that arrives with its user set is not authenticated again).
    """
    if transport.get_extra_info("sslcontext") is None:
        return None, INSECURE_USER
    return peer_certificate(transport), None


def _load_ca(pki_dir: str) -> Tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(os.path.join(pki_dir, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(pki_dir, "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return ca, key


def issue_client_cert(pki_dir: str, name: str, common_name: str, organizations: Sequence[str] = (),
                      days: int = 365) -> Tuple[str, str]:
    """(<name>.crt, <name>.key) in `pki_dir`: a client certificate for user `common_name` in groups `organizations`.

    Signed by the CA `ensure_certs` made there; reused while it names the same user and groups and is valid
    for another day, else issued anew.
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    crt, key_path = os.path.join(pki_dir, name + ".crt"), os.path.join(pki_dir, name + ".key")
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca, ca_key = _load_ca(pki_dir)
    if os.path.exists(crt) and os.path.exists(key_path):
        with open(crt, "rb") as f:
            old = x509.load_pem_x509_certificate(f.read())
        if old.subject == subject and old.not_valid_after_utc > now + datetime.timedelta(days=1):
            try:
                old.verify_directly_issued_by(ca)  # not one of a CA this dir held before
                return crt, key_path
            except (ValueError, TypeError, InvalidSignature):
                pass
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write_private(key_path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(pem))
    return crt, key_path


def ensure_service_account_key(pki_dir: str) -> Tuple[str, str]:
    """(sa.key, sa.pub) in `pki_dir`, as kubeadm names them: the ServiceAccount token signing key.

    ECDSA P-256 (tokens are ES256), where kubeadm makes RSA 2048: generating one costs microseconds rather
    than the tenths of a second an RSA key takes on a slow machine, at every start in a fresh data dir.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key_path, pub = os.path.join(pki_dir, "sa.key"), os.path.join(pki_dir, "sa.pub")
    if os.path.exists(key_path) and os.path.exists(pub):
        return key_path, pub
    os.makedirs(pki_dir, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    _write_private(key_path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(pub, "wb") as f:
        f.write(key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub


def _write_private(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)
    os.replace(tmp, path)


def write_kubeconfig(path: str, server: str, ca_crt: Optional[str], client_cert: Optional[str] = None,
                     client_key: Optional[str] = None, user: str = "kubernetes-admin") -> None:
    """A kubeconfig for `server` (embedding the CA when the server is https) as `user`.

    With `client_cert`/`client_key` the user's credentials are that certificate, embedded (-data), so the
    file alone is enough; without, the user has no credentials (anonymous, or the plain HTTP port).
    """
    import base64

    import yaml

    cluster: dict = {"server": server}
    if ca_crt and server.startswith("https://"):
        with open(ca_crt, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    credentials: dict = {}
    if client_cert and client_key and server.startswith("https://"):
        with open(client_cert, "rb") as f:
            credentials["client-certificate-data"] = base64.b64encode(f.read()).decode()
        with open(client_key, "rb") as f:
            credentials["client-key-data"] = base64.b64encode(f.read()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "megaplane", "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "megaplane", "context": {"cluster": "megaplane", "user": user}}],
        "current-context": "megaplane",
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)
