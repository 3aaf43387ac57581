"""Secrets at rest: --encryption-provider-config on the embedded store (kubectl, etcdctl, the data dir's bytes)
and on real etcd, the providers' formats, and the data dir's modes (0700 directories, 0600 files, as etcd's).

One `megaplane up` data dir goes through the runs an operator would: a Secret written before encryption was
configured, a restart with aescbc + identity (the old Secret still reads: the migration), a new Secret that is
nowhere in the data dir in plain text or base64 while kubectl reads it back, a restart that reads it again,
and a restart with the wrong key that fails with a message naming the key it cannot transform.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import stat
import subprocess
import tempfile
from typing import Iterator, List

import pytest

from megaplane.etcd.client import ClientConfig
from megaplane.storage import ADDED, WatchEvent
from megaplane.storage.etcd3 import Etcd3Storage
from megaplane.storage.value import TransformError, parse_encryption_config
from tests.api.conftest import KUBECTL, Cluster, free_port, start_cluster

from .etcd_servers import ETCDCTL, EtcdProcess, etcdctl

KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(32, 64))).decode()
OLD_VALUE = "written-before-encryption-7f3a"
NEW_VALUE = "encrypted-at-rest-c0ffee-42"


def _config(providers: List[dict], resources: List[str] = ["secrets"]) -> dict:  # noqa: B006
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": resources, "providers": providers}]}


def _aescbc(secret: str = KEY1, name: str = "key1") -> dict:
    return {"aescbc": {"keys": [{"name": name, "secret": secret}]}}


def _write_config(path: str, doc: dict) -> str:
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


def _stored(endpoint: str, key: str) -> bytes:
    """The value etcdctl shows for `key`, as bytes (ciphertext is not text)."""
    out = subprocess.run([ETCDCTL, "--endpoints", endpoint, "get", key, "--print-value-only"],
                         env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, timeout=20, check=True)
    return out.stdout


def _files(root: str) -> Iterator[str]:
    for d, _, names in os.walk(root):
        for n in names:
            yield os.path.join(d, n)


# -- the providers -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider,size", [("aescbc", 32), ("aesgcm", 16), ("secretbox", 32)])
def test_provider_round_trip_and_prefix(provider: str, size: int) -> None:
    secret = base64.b64encode(os.urandom(size)).decode()
    tf = parse_encryption_config(_config([{provider: {"keys": [{"name": "k", "secret": secret}]}}]))
    key = b"/registry/secrets/default/s"
    stored = tf.to_storage(key, b'{"data":{"a":"b"}}')
    assert stored.startswith(f"k8s:enc:{provider}:v1:k:".encode())
    assert b'"data"' not in stored
    assert stored != tf.to_storage(key, b'{"data":{"a":"b"}}')  # a fresh IV / nonce every write
    assert tf.from_storage(key, stored) == b'{"data":{"a":"b"}}'
    # Other resources are stored as written.
    assert tf.to_storage(b"/registry/configmaps/default/c", b"{}") == b"{}"
    if provider == "aesgcm":  # the etcd key is authenticated: a value moved to another key does not read
        with pytest.raises(TransformError, match="message authentication failed"):
            tf.from_storage(b"/registry/secrets/default/other", stored)


def test_aescbc_is_upstreams_format() -> None:
    """prefix, a 16-byte IV, then AES-CBC of the PKCS#7-padded value (what kube-apiserver reads)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    tf = parse_encryption_config(_config([_aescbc()]))
    stored = tf.to_storage(b"/registry/secrets/ns/x", b"0123456789abcdef")
    body = stored[len(b"k8s:enc:aescbc:v1:key1:"):]
    assert len(body) == 16 + 32  # IV + a full padding block after 16 bytes
    dec = Cipher(algorithms.AES(base64.b64decode(KEY1)), modes.CBC(body[:16])).decryptor()
    plain = dec.update(body[16:]) + dec.finalize()
    assert plain == b"0123456789abcdef" + bytes([16]) * 16


def test_rotation_migration_and_errors() -> None:
    key = b"/registry/secrets/default/s"
    old = parse_encryption_config(_config([_aescbc(KEY1, "key1")]))
    by_key1 = old.to_storage(key, b"{}")
    # key2 first: writes use it, key1 still reads; identity listed reads plain values.
    rotated = parse_encryption_config(_config([_aescbc(KEY2, "key2"), _aescbc(KEY1, "key1"), {"identity": {}}]))
    assert rotated.to_storage(key, b"{}").startswith(b"k8s:enc:aescbc:v1:key2:")
    assert rotated.from_storage(key, by_key1) == b"{}"
    assert rotated.from_storage(key, b'{"plain":1}') == b'{"plain":1}'
    # Without identity a plain value has no provider; the wrong secret under the same name fails to decrypt.
    with pytest.raises(TransformError, match="no matching prefix found"):
        old.from_storage(key, b'{"plain":1}')
    wrong = parse_encryption_config(_config([_aescbc(KEY2, "key1")]))
    with pytest.raises(TransformError):
        wrong.from_storage(key, by_key1)
    # identity first (decrypting back to plain text): still reads what aescbc wrote.
    back = parse_encryption_config(_config([{"identity": {}}, _aescbc(KEY1, "key1")]))
    assert back.to_storage(key, b"{}") == b"{}"
    assert back.from_storage(key, by_key1) == b"{}"
    with pytest.raises(TransformError, match="identity transformer tried to read encrypted data"):
        parse_encryption_config(_config([{"identity": {}}])).from_storage(key, by_key1)


def test_resource_selection() -> None:
    tf = parse_encryption_config(_config([_aescbc()], ["configmaps", "deployments.apps", "*.coordination.k8s.io"]))
    for k in (b"/registry/configmaps/a/b", b"/registry/deployments/a/b", b"/registry/leases/a/b"):
        assert tf.to_storage(k, b"{}").startswith(b"k8s:enc:"), k
    assert tf.to_storage(b"/registry/secrets/a/b", b"{}") == b"{}"
    every = parse_encryption_config(_config([_aescbc()], ["*.*"]))
    assert every.to_storage(b"/registry/pods/a/b", b"{}").startswith(b"k8s:enc:")


@pytest.mark.parametrize("providers,message", [
    ([{"aescbc": {"keys": [{"name": "k", "secret": base64.b64encode(b"short").decode()}]}}],
     "secret is not of the expected length, got 5"),
    ([{"aescbc": {"keys": [{"name": "k", "secret": "not base64!"}]}}], "secrets must be base64 encoded"),
    ([{"aescbc": {"keys": []}}], "at least one key must be specified"),
    ([{"kms2": {}}], "Unsupported value: 'kms2'"),
    ([], "at least one provider must be specified"),
])
def test_config_validation(providers: List[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_encryption_config(_config(providers))


# -- megaplane up on its embedded store ----------------------------------------------------------


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="megaplane-encryption-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _kubectl(c: Cluster, *args: str) -> str:
    """kubectl on the plain port (this module is about storage, not the credentials the kubeconfig carries)."""
    out = subprocess.run([KUBECTL, "--server", c.url, "--cache-dir", c.cache_dir, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl {' '.join(args)} failed:\n{out.stderr}"
    return out.stdout


def _secret_value(c: Cluster, name: str) -> str:
    out = _kubectl(c, "get", "secret", name, "-o", "jsonpath={.data.password}")
    return base64.b64decode(out).decode()


def test_embedded_store_encrypts_secrets_at_rest(root: str) -> None:
    data = os.path.join(root, "data")
    plain = start_cluster(root)
    try:
        _kubectl(plain, "create", "secret", "generic", "old", f"--from-literal=password={OLD_VALUE}")
    finally:
        plain.stop()
    # As an older megaplane left them (0755 / 0644): the next start tightens the store's part of the data dir.
    os.chmod(data, 0o755)
    for d, _, names in os.walk(os.path.join(data, "wal")):
        os.chmod(d, 0o755)
        for n in names:
            os.chmod(os.path.join(d, n), 0o644)
    config = _write_config(os.path.join(root, "encryption.yaml"), _config([_aescbc(), {"identity": {}}]))
    etcd_port = free_port()
    c = start_cluster(root, ["--encryption-provider-config", config,
                             "--listen-client-urls", f"http://127.0.0.1:{etcd_port}"])
    try:
        assert _secret_value(c, "old") == OLD_VALUE  # stored before encryption: read as identity
        _kubectl(c, "create", "secret", "generic", "new", f"--from-literal=password={NEW_VALUE}")
        assert _secret_value(c, "new") == NEW_VALUE
        # The same shape in the store as kube-apiserver's in etcd.
        raw = _stored(f"127.0.0.1:{etcd_port}", "/registry/secrets/default/new")
        assert raw.startswith(b"k8s:enc:aescbc:v1:key1:")
        # Updating the migrated Secret encrypts it too.
        _kubectl(c, "label", "secret", "old", "rewritten=yes")
        assert _stored(f"127.0.0.1:{etcd_port}", "/registry/secrets/default/old").startswith(
            b"k8s:enc:aescbc:v1:key1:")
        snapshot = os.path.join(root, "backup.db")
        etcdctl(f"127.0.0.1:{etcd_port}", "snapshot", "save", snapshot)
    finally:
        c.stop()
    # Nowhere in the data dir (WAL segments, checkpoints) nor the snapshot, as plain text or base64.
    needles = [NEW_VALUE.encode(), base64.b64encode(NEW_VALUE.encode())]
    for path in [*_files(data), snapshot]:
        with open(path, "rb") as f:
            blob = f.read()
        for n in needles:
            assert n not in blob, f"{n!r} is in {path}"
    # etcd's modes: directories 0700, files 0600 (the snapshot etcdctl saved included).
    for d, dirs, _ in os.walk(data):
        for sub in [d, *(os.path.join(d, x) for x in dirs)]:
            assert stat.S_IMODE(os.stat(sub).st_mode) == 0o700, sub
    for path in [*_files(data), snapshot]:
        if os.path.basename(os.path.dirname(path)) == "pki" and path.endswith((".crt", ".pub")):
            continue  # certificates and public keys are public
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path

    # A restart with the same configuration reads both back from disk.
    c = start_cluster(root, ["--encryption-provider-config", config])
    try:
        assert _secret_value(c, "new") == NEW_VALUE
        assert _secret_value(c, "old") == OLD_VALUE
    finally:
        c.stop()

    # The same key name with another secret: the server refuses to start, naming the key it cannot read.
    wrong = _write_config(os.path.join(root, "wrong.yaml"), _config([_aescbc(KEY2)]))
    with pytest.raises(RuntimeError, match="exited"):
        start_cluster(root, ["--encryption-provider-config", wrong])
    with open(os.path.join(root, "up.log")) as f:
        log = f.read()
    assert "unable to transform key '/registry/secrets/default/" in log


def test_bad_config_file_exits_with_its_message(root: str) -> None:
    bad = _write_config(os.path.join(root, "bad.yaml"), _config([{"aesgcm": {"keys": [{"name": "k"}]}}]))
    sub = os.path.join(root, "bad")
    os.makedirs(sub)
    with pytest.raises(RuntimeError, match="exited with 2"):
        start_cluster(sub, ["--encryption-provider-config", bad])
    with open(os.path.join(sub, "up.log")) as f:
        assert "secret: Required value: secret is required" in f.read()


# -- real etcd -------------------------------------------------------------------------------------


def test_etcd3_storage_encrypts_and_watches_plaintext() -> None:
    proc = EtcdProcess().start()
    tf = parse_encryption_config(_config([{"aesgcm": {"keys": [{"name": "g", "secret": KEY1}]}}, {"identity": {}}]))

    async def body() -> None:
        storage = Etcd3Storage(
            Etcd3Storage.connect(ClientConfig([proc.url], request_timeout=5.0)).client, transformers=tf)
        seen: List[WatchEvent] = []
        try:
            await storage.watch(b"/registry/secrets/", from_revision=0, on_events=seen.extend,
                                on_error=lambda e: None)
            obj = await storage.create(b"/registry/secrets/ns/x", b'{"metadata":{"name":"x"},"data":{"p":"c2VjcmV0"}}')
            assert b'"c2VjcmV0"' in obj.data
            got = await storage.get(b"/registry/secrets/ns/x")
            assert got.data == obj.data and b'"resourceVersion"' in got.data
            listed = await storage.list(b"/registry/secrets/")
            assert [o.data for o in listed.items] == [obj.data]
            updated = await storage.guaranteed_update(
                b"/registry/secrets/ns/x", lambda cur: cur.data.replace(b"c2VjcmV0", b"bmV3") if cur else None)
            assert b'"bmV3"' in updated.data
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(seen) < 2:
                assert loop.time() < deadline, seen
                await asyncio.sleep(0.05)
            assert seen[0].type == ADDED and b'"c2VjcmV0"' in seen[0].value
            assert seen[1].prev_value is not None and b'"c2VjcmV0"' in seen[1].prev_value
            # A plain value (written before encryption) reads through identity.
            etcdctl(proc.endpoint, "put", "/registry/secrets/ns/plain", '{"metadata":{"name":"plain"}}')
            assert b'"plain"' in (await storage.get(b"/registry/secrets/ns/plain")).data
        finally:
            await storage.close()

    try:
        asyncio.run(body())
        raw = _stored(proc.endpoint, "/registry/secrets/ns/x")
        assert raw.startswith(b"k8s:enc:aesgcm:v1:g:") and b"bmV3" not in raw
    finally:
        proc.stop()
