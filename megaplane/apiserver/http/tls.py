"""Serving certificates and the admin kubeconfig that `megaplane up` writes.

A self-signed CA and a server certificate for localhost / 127.0.0.1 (and
any --tls-san names) are generated into <data-dir>/pki once and reused, so
a kubeconfig written on one start keeps working after a restart.
Authentication is not enforced yet: the kubeconfig's user is a name only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from typing import List, Optional, Tuple

__all__ = ["ensure_certs", "server_ssl_context", "write_kubeconfig"]


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


def server_ssl_context(crt: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def write_kubeconfig(path: str, server: str, ca_crt: Optional[str]) -> None:
    """An admin kubeconfig for `server` (embedding the CA when the server is https)."""
    import base64

    import yaml

    cluster: dict = {"server": server}
    if ca_crt and server.startswith("https://"):
        with open(ca_crt, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "megaplane", "cluster": cluster}],
        "users": [{"name": "megaplane-admin", "user": {"token": "megaplane-admin"}}],
        "contexts": [{"name": "megaplane", "context": {"cluster": "megaplane", "user": "megaplane-admin"}}],
        "current-context": "megaplane",
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)
