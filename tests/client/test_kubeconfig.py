"""Kubeconfig loading: which file, which context, each credential form, and a typed error for each problem."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any, Dict

import pytest
import yaml

from megaplane.client import Client, KubeconfigError, KubeconfigNotFoundError, load_kubeconfig
from megaplane.client.kubeconfig import default_path
from tests.api.conftest import Cluster


def write(path: str, doc: Dict[str, Any]) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


def config(cluster: Dict[str, Any], user: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
        "current-context": "ctx",
    }
    doc.update(extra)
    return doc


def test_token_ca_data_and_namespace(tmp_path: Any) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    path = write(str(tmp_path / "kc"), config(
        {"server": "https://10.0.0.1:6443/", "certificate-authority-data": base64.b64encode(ca).decode(),
         "tls-server-name": "api.example"},
        {"token": "secret"},
    ))
    kc = load_kubeconfig(path)
    assert (kc.server, kc.context, kc.namespace, kc.token) == ("https://10.0.0.1:6443", "ctx", "team", "secret")
    assert kc.ca_data == ca and kc.tls_server_name == "api.example" and kc.is_https


def test_files_relative_to_the_kubeconfig(tmp_path: Any) -> None:
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "ca.crt").write_bytes(b"CA")
    (tmp_path / "client.crt").write_bytes(b"CERT")
    (tmp_path / "client.key").write_bytes(b"KEY")
    path = write(str(tmp_path / "kc"), config(
        {"server": "https://h:1", "certificate-authority": "ca.crt"},
        {"tokenFile": "token", "client-certificate": "client.crt", "client-key": "client.key"},
    ))
    kc = load_kubeconfig(path)
    assert kc.token == "from-file" and kc.ca_data == b"CA"
    assert (kc.client_cert_data, kc.client_key_data) == (b"CERT", b"KEY")


def test_basic_auth_and_explicit_context(tmp_path: Any) -> None:
    doc = config({"server": "http://h:8080"}, {"username": "admin", "password": "pw"})
    doc["clusters"].append({"name": "other", "cluster": {"server": "http://other:1"}})
    doc["contexts"].append({"name": "second", "context": {"cluster": "other", "user": "u"}})
    path = write(str(tmp_path / "kc"), doc)
    kc = load_kubeconfig(path, context="second")
    assert (kc.server, kc.username, kc.password, kc.namespace) == ("http://other:1", "admin", "pw", "default")
    assert kc.ssl_context() is None


def test_kubeconfig_env_first_entry(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(str(tmp_path / "a"), config({"server": "http://first:1"}, {}))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([first, str(tmp_path / "b")]))
    assert default_path() == first
    assert load_kubeconfig().server == "http://first:1"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == str(tmp_path / ".kube" / "config")


@pytest.mark.parametrize(
    "doc, context, words",
    [
        (config({"server": "http://h:1"}, {}), "nope", "no context named 'nope'"),
        (config({"server": "http://h:1"}, {}, **{"current-context": ""}), None, "no current-context"),
        (config({}, {}), None, "has no server"),
        (config({"server": "ftp://h"}, {}), None, "not an http(s) URL"),
        (config({"server": "https://h", "insecure-skip-tls-verify": True, "certificate-authority-data": "QQ=="}, {}),
         None, "insecure flag is not allowed"),
        (config({"server": "https://h", "certificate-authority-data": "!!"}, {}), None, "not valid base64"),
        (config({"server": "https://h"}, {"exec": {"command": "aws"}}), None, "uses exec"),
        (config({"server": "https://h"}, {"client-certificate-data": "QQ=="}), None, "must be given together"),
        (config({"server": "https://h"}, {"tokenFile": "/nonexistent/token"}), None, "cannot read tokenFile"),
    ],
)
def test_problems_are_named(tmp_path: Any, doc: Dict[str, Any], context: Any, words: str) -> None:
    path = write(str(tmp_path / "kc"), doc)
    with pytest.raises(KubeconfigError) as info:
        load_kubeconfig(path, context)
    assert words in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path: Any) -> None:
    with pytest.raises(KubeconfigNotFoundError, match="does not exist"):
        load_kubeconfig(str(tmp_path / "missing"))
    (tmp_path / "bad").write_text("clusters: [unclosed")
    with pytest.raises(KubeconfigError, match="not valid YAML"):
        load_kubeconfig(str(tmp_path / "bad"))


def test_https_with_the_ca_and_client_certificate_megaplane_writes(cluster: Cluster) -> None:
    kc = load_kubeconfig(cluster.kubeconfig)
    assert kc.is_https and kc.ca_data and kc.client_cert_data and kc.client_key_data and not kc.token

    async def main() -> str:
        async with Client.from_kubeconfig(cluster.kubeconfig) as client:
            ns = await client.resource("namespaces").get("default")
            return str(ns["metadata"]["name"])

    assert asyncio.run(main()) == "default"


def test_plain_http_kubeconfig(cluster: Cluster, tmp_path: Any) -> None:
    path = write(str(tmp_path / "kc"), config({"server": cluster.url}, {}))

    async def main() -> int:
        async with Client.from_kubeconfig(path) as client:
            nodes = await client.resource("nodes").list()
            return len(nodes["items"])

    assert asyncio.run(main()) >= 0


def test_https_without_the_ca_fails_verification(cluster: Cluster, tmp_path: Any) -> None:
    from megaplane.client import ConnectionFailedError

    kc = load_kubeconfig(cluster.kubeconfig)
    path = write(str(tmp_path / "kc"), config({"server": kc.server}, {"token": kc.token}))

    async def main() -> None:
        async with Client.from_kubeconfig(path) as client:
            await client.resource("namespaces").get("default")

    with pytest.raises(ConnectionFailedError, match="TLS"):
        asyncio.run(main())
