"""Real etcd 3.4 processes (and `megaplane store`) for the etcd3 storage tests: own data dir, free ports.

`EtcdProcess` can be killed (-9) and started again on the same ports and
data dir (a member failure and recovery), or wiped (a fresh cluster). Every
process is killed when its fixture ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import pytest

from tests.etcd.conftest import ETCD, ETCDCTL, free_port

__all__ = ["EtcdProcess", "EtcdCluster", "StoreProcess", "TLSEtcdProcess", "TCPProxy", "make_pki", "etcdctl", "ETCDCTL"]


def etcdctl(endpoint: str, *args: str, timeout: float = 20.0) -> str:
    out = subprocess.run(
        [ETCDCTL, "--endpoints", endpoint, *args],
        env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"etcdctl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def _wait_healthy(endpoint: str, proc: subprocess.Popen, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on {endpoint} exited with {proc.returncode}")
        try:
            etcdctl(endpoint, "endpoint", "health", "--command-timeout=1s", timeout=5)
            return
        except (RuntimeError, subprocess.TimeoutExpired):
            time.sleep(0.05)
    raise RuntimeError(f"the server on {endpoint} did not become healthy")


class EtcdProcess:
    """One single-member etcd on loopback."""

    kind = "etcd"

    def __init__(self, root: Optional[str] = None) -> None:
        if not os.path.exists(ETCD):
            pytest.fail("etcd is not installed: apt-get install etcd-server etcd-client")
        self.root = root or tempfile.mkdtemp(prefix="megaplane-etcd3-")
        self.data_dir = os.path.join(self.root, "data")
        self.port = free_port()
        self.peer_port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def command(self) -> List[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            ETCD, "--data-dir", self.data_dir, "--name", "default",
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
            # A single member elects itself at once; short ticks keep start-up and lease expiry quick.
            "--heartbeat-interval", "10", "--election-timeout", "100",
        ]

    def start(self) -> "EtcdProcess":
        log = open(os.path.join(self.root, f"{self.kind}.log"), "a")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=log)
        log.close()  # the child holds its own descriptor
        _wait_healthy(self.endpoint, self.proc)
        return self

    def kill(self) -> None:
        """kill -9: no goodbye to its clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def wipe(self) -> None:
        """A fresh cluster on the same ports: kill, delete the data dir, start."""
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def compacted(self) -> bool:
        """Whether anything was compacted (a read at revision 1 is refused then)."""
        try:
            etcdctl(self.endpoint, "get", "compact_rev_key", "--rev=1")
        except RuntimeError as e:
            return "compacted" in str(e)
        return False


class StoreProcess(EtcdProcess):
    """`megaplane store`: megaplane's own etcd v3 API over its embedded store."""

    kind = "megaplane-store"

    def command(self) -> List[str]:
        return [sys.executable, "-m", "megaplane.cli", "store", "--data-dir", self.data_dir,
                "--listen-client-urls", self.url]


def make_pki(root: str) -> Dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate signed by it (PEM files in `root`)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    paths: Dict[str, str] = {}

    def write(name: str, data: bytes) -> str:
        path = os.path.join(root, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    paths["ca"] = write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"etcd-test-{who}")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        paths[f"{who}_cert"] = write(f"{who}.crt", cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{who}_key"] = write(f"{who}.key", key_pem(key))
    return paths


class TLSEtcdProcess(EtcdProcess):
    """etcd serving https:// only, requiring client certificates signed by its CA (--client-cert-auth)."""

    kind = "etcd-tls"

    def __init__(self, root: Optional[str] = None) -> None:
        super().__init__(root)
        self.pki = make_pki(self.root)

    @property
    def url(self) -> str:
        return f"https://{self.endpoint}"

    def command(self) -> List[str]:
        cmd = super().command()
        return cmd + ["--cert-file", self.pki["server_cert"], "--key-file", self.pki["server_key"],
                      "--trusted-ca-file", self.pki["ca"], "--client-cert-auth"]

    def start(self) -> "TLSEtcdProcess":
        log = open(os.path.join(self.root, f"{self.kind}.log"), "a")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                etcdctl(self.endpoint, "--cacert", self.pki["ca"], "--cert", self.pki["client_cert"],
                        "--key", self.pki["client_key"], "endpoint", "health", timeout=5)
                return self
            except (RuntimeError, subprocess.TimeoutExpired):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"etcd with TLS did not start; see {log.name}") from None
                time.sleep(0.05)


class TCPProxy:
    """A TCP forwarder on loopback (in its own thread) that can cut every connection and refuse new ones:
    a network partition between a client and etcd, with etcd itself still up for other clients."""

    def __init__(self, target_port: int) -> None:
        import asyncio
        import threading

        self.target_port = target_port
        self.port = free_port()
        self.open = True
        self._writers: List[object] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool = False) -> None:
            try:
                while data := await reader.read(65536):
                    if answers:
                        await self._answers_flow.wait()
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not self.open:
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.transport.abort()
                return
            self._writers += [writer, up_writer]
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer, answers=True))

        async def main() -> None:
            self._answers_flow = asyncio.Event()
            self._answers_flow.set()
            self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(main())
        self._loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every connection (RST) and refuse new ones until `restore`."""
        def drop() -> None:
            self.open = False
            for w in self._writers:
                w.transport.abort()  # type: ignore[attr-defined]
            self._writers.clear()
        self._loop.call_soon_threadsafe(drop)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "open", True)

    def hold(self) -> None:
        """Keep the server's answers (and watch events) from the client until `release`; requests still go out."""
        self._loop.call_soon_threadsafe(self._answers_flow.clear)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._answers_flow.set)

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


class EtcdCluster:
    """A 3-member etcd cluster on loopback (each member its own data dir and ports)."""

    def __init__(self, size: int = 3) -> None:
        self.root = tempfile.mkdtemp(prefix="megaplane-etcd-cluster-")
        self.members = [EtcdProcess(os.path.join(self.root, f"m{i}")) for i in range(size)]
        for i, m in enumerate(self.members):
            os.makedirs(m.root, exist_ok=True)
            m.name = f"m{i}"  # type: ignore[attr-defined]
        initial = ",".join(f"m{i}=http://127.0.0.1:{m.peer_port}" for i, m in enumerate(self.members))
        for i, m in enumerate(self.members):
            m.command = _member_command(m, f"m{i}", initial)  # type: ignore[method-assign]

    @property
    def urls(self) -> List[str]:
        return [m.url for m in self.members]

    def start(self) -> "EtcdCluster":
        for m in self.members:  # all at once: each waits for a quorum
            log = open(os.path.join(m.root, "etcd.log"), "a")
            m.proc = subprocess.Popen(m.command(), stdout=subprocess.DEVNULL, stderr=log)
            log.close()
        for m in self.members:
            assert m.proc is not None
            _wait_healthy(m.endpoint, m.proc)
        return self

    def stop(self) -> None:
        for m in self.members:
            m.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def leader(self) -> EtcdProcess:
        """The member that leads now, as `etcdctl endpoint status -w json` reports it (asked of running members)."""
        running = [m for m in self.members if m.proc is not None and m.proc.poll() is None]
        status = json.loads(etcdctl(",".join(m.endpoint for m in running), "endpoint", "status", "-w", "json"))
        by_endpoint = {s["Endpoint"]: s["Status"] for s in status}
        for m in running:
            st = by_endpoint.get(m.endpoint)
            if st is not None and st["leader"] == st["header"]["member_id"]:
                return m
        raise RuntimeError(f"no running member leads: {status}")


def _member_command(m: EtcdProcess, name: str, initial: str):  # type: ignore[no-untyped-def]
    def command() -> List[str]:
        peer = f"http://127.0.0.1:{m.peer_port}"
        return [ETCD, "--data-dir", m.data_dir, "--name", name,
                "--listen-client-urls", m.url, "--advertise-client-urls", m.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--heartbeat-interval", "20", "--election-timeout", "200"]
    return command
