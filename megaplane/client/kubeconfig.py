"""Loading a kubeconfig the way client-go's clientcmd does, into what a transport needs.

Which file: the `path` argument, else the first entry of $KUBECONFIG, else
~/.kube/config (clientcmd merges every $KUBECONFIG entry; megaplane reads
the first, which is what its own tooling writes). Which context: the
argument, else `current-context`. Relative file paths inside the file are
relative to the file's directory, as clientcmd resolves them. From the
cluster: `server`, `certificate-authority(-data)`,
`insecure-skip-tls-verify`, `tls-server-name`; from the user: `token`,
`tokenFile`, `client-certificate(-data)` + `client-key(-data)`,
`username`/`password`. Exec and auth-provider plugins are refused by name.
Every problem is a `KubeconfigError` that says what and where.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

import yaml

__all__ = ["KubeConfig", "KubeconfigError", "KubeconfigNotFoundError", "load_kubeconfig", "default_path"]


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used: bad YAML, a missing context/cluster/user, a bad field."""


class KubeconfigNotFoundError(KubeconfigError, FileNotFoundError):
    """No kubeconfig file at the path given (or found through $KUBECONFIG / ~/.kube/config)."""


@dataclass(frozen=True)
class KubeConfig:
    """Where the server is and how to talk to it: one resolved context of a kubeconfig."""

    server: str
    context: str = ""
    namespace: str = "default"
    ca_data: Optional[bytes] = None
    """PEM of the CA bundle to trust (read from certificate-authority or -data)."""
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""
    token: str = ""
    username: str = ""
    password: str = ""
    client_cert_data: Optional[bytes] = None
    client_key_data: Optional[bytes] = None
    source: str = ""
    """The file this came from (empty when built by hand)."""

    @property
    def is_https(self) -> bool:
        return self.server.startswith("https://")

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """The TLS context for an https server (None for http): CA, verification, client certificate."""
        if not self.is_https:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data is not None:
            try:
                ctx.load_verify_locations(cadata=self.ca_data.decode("ascii", "replace"))
            except ssl.SSLError as exc:
                raise KubeconfigError(f"{self._where()}: certificate-authority is not a PEM CA bundle: {exc}") from None
        if self.client_cert_data is not None:
            if self.client_key_data is None:
                raise KubeconfigError(f"{self._where()}: client-certificate given without client-key")
            _load_cert_chain(ctx, self.client_cert_data, self.client_key_data, self._where())
        return ctx

    def _where(self) -> str:
        return f"kubeconfig {self.source or '(in memory)'} context {self.context!r}"


def _load_cert_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes, where: str) -> None:
    # ssl only loads a certificate chain from files: a private directory for the moment it takes.
    with tempfile.TemporaryDirectory(prefix="megaplane-client-") as d:
        cert_path, key_path = os.path.join(d, "client.crt"), os.path.join(d, "client.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise KubeconfigError(f"{where}: client-certificate / client-key do not load: {exc}") from None


def default_path() -> str:
    """$KUBECONFIG's first entry, else ~/.kube/config (clientcmd's recommended home file)."""
    env = os.environ.get("KUBECONFIG", "")
    for entry in env.split(os.pathsep):
        if entry:
            return entry
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def _named(doc: Mapping[str, Any], section: str, item: str, name: str, path: str) -> Mapping[str, Any]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"kubeconfig {path}: {section} must be a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(item) or {}
            if not isinstance(value, dict):
                raise KubeconfigError(f"kubeconfig {path}: {section} entry {name!r}: {item} must be a mapping")
            return value
    known = [e.get("name") for e in entries if isinstance(e, dict)]
    raise KubeconfigError(f"kubeconfig {path}: no {item} named {name!r} (has {known})")


def _read_file(base_dir: str, file_path: str, what: str, where: str) -> bytes:
    full = file_path if os.path.isabs(file_path) else os.path.join(base_dir, file_path)
    try:
        with open(full, "rb") as f:
            return f.read()
    except OSError as exc:
        raise KubeconfigError(f"{where}: cannot read {what} {full}: {exc.strerror}") from None


def _data_or_file(
    section: Mapping[str, Any], data_key: str, file_key: str, base_dir: str, where: str
) -> Optional[bytes]:
    data = section.get(data_key)
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise KubeconfigError(f"{where}: {data_key} is not valid base64") from None
    file_path = section.get(file_key)
    if file_path:
        return _read_file(base_dir, str(file_path), file_key, where)
    return None


def load_kubeconfig(path: Optional[str] = None, context: Optional[str] = None) -> KubeConfig:
    """Read one context of a kubeconfig (see the module docstring for which file and which context)."""
    path = path or default_path()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise KubeconfigNotFoundError(f"kubeconfig {path} does not exist") from None
    except OSError as exc:
        raise KubeconfigError(f"kubeconfig {path}: cannot read: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path}: top level must be a mapping")
    base_dir = os.path.dirname(os.path.abspath(path))

    name = context or doc.get("current-context") or ""
    if not name:
        raise KubeconfigError(f"kubeconfig {path}: no current-context set and no context given")
    ctx = _named(doc, "contexts", "context", str(name), path)
    where = f"kubeconfig {path} context {name!r}"
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name:
        raise KubeconfigError(f"{where}: the context names no cluster")
    cluster = _named(doc, "clusters", "cluster", str(cluster_name), path)
    user: Mapping[str, Any] = _named(doc, "users", "user", str(user_name), path) if user_name else {}

    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"{where}: cluster {cluster_name!r} has no server")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KubeconfigError(f"{where}: server {server!r} is not an http(s) URL with a host")

    for plugin in ("exec", "auth-provider"):
        if user.get(plugin):
            raise KubeconfigError(f"{where}: user {user_name!r} uses {plugin}, which megaplane.client does not run")

    token = str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        token = _read_file(base_dir, str(user["tokenFile"]), "tokenFile", where).decode().strip()
    cert = _data_or_file(user, "client-certificate-data", "client-certificate", base_dir, where)
    key = _data_or_file(user, "client-key-data", "client-key", base_dir, where)
    if (cert is None) != (key is None):
        raise KubeconfigError(f"{where}: client-certificate and client-key must be given together")

    insecure = cluster.get("insecure-skip-tls-verify") or False
    if not isinstance(insecure, bool):
        raise KubeconfigError(f"{where}: insecure-skip-tls-verify must be true or false")
    ca = _data_or_file(cluster, "certificate-authority-data", "certificate-authority", base_dir, where)
    if insecure and ca is not None:
        # clientcmd's validation: the two contradict each other.
        raise KubeconfigError(f"{where}: specifying a root certificates file with the insecure flag is not allowed")

    return KubeConfig(
        server=server.rstrip("/"),
        context=str(name),
        namespace=str(ctx.get("namespace") or "default"),
        ca_data=ca,
        insecure_skip_tls_verify=insecure,
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        token=token,
        username=str(user.get("username") or ""),
        password=str(user.get("password") or ""),
        client_cert_data=cert,
        client_key_data=key,
        source=path,
    )

