"""Real servers for compatibility tests: megaplane's store and Debian's etcd 3.4, side by side.

Both are started as separate processes on loopback with fresh data dirs;
tests drive them with the real clients (etcdctl, a PyPI etcd client, raw
gRPC) and compare what comes back.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional

import grpc
import pytest

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(endpoint: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {endpoint} exited with {proc.returncode}")
        try:
            with grpc.insecure_channel(endpoint) as ch:
                grpc.channel_ready_future(ch).result(timeout=0.5)
            out = subprocess.run(
                [ETCDCTL, "--endpoints", endpoint, "endpoint", "health"],
                env={**os.environ, "ETCDCTL_API": "3"},
                capture_output=True,
                text=True,
                timeout=10,
            )
            if out.returncode == 0:
                return
        except grpc.FutureTimeoutError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server for {endpoint} did not become ready")


class Server:
    """One running server process and how to reach it."""

    def __init__(self, kind: str, proc: subprocess.Popen, endpoint: str, data_dir: str) -> None:
        self.kind = kind
        self.proc = proc
        self.endpoint = endpoint
        self.data_dir = data_dir

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __repr__(self) -> str:
        return f"<{self.kind} {self.endpoint}>"


def start_megaplane(data_dir: str, extra: Optional[List[str]] = None) -> Server:
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "megaplane.cli", "store", "--data-dir", data_dir,
         "--listen-client-urls", f"http://{endpoint}", *(extra or [])],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(os.path.dirname(data_dir), "megaplane.log"), "w"),
    )
    wait_ready(endpoint, proc)
    return Server("megaplane", proc, endpoint, data_dir)


def start_etcd(data_dir: str) -> Server:
    if not os.path.exists(ETCD):
        pytest.fail("etcd is not installed: run scripts/test (apt-get install etcd-server etcd-client)")
    port, peer = free_port(), free_port()
    endpoint = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [ETCD, "--data-dir", data_dir, "--name", "default",
         "--listen-client-urls", f"http://{endpoint}", "--advertise-client-urls", f"http://{endpoint}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(os.path.dirname(data_dir), "etcd.log"), "w"),
    )
    wait_ready(endpoint, proc)
    return Server("etcd", proc, endpoint, data_dir)


@pytest.fixture(scope="module")
def servers() -> Iterator[Dict[str, Server]]:
    """A fresh megaplane store and a fresh etcd 3.4, for one test module."""
    root = tempfile.mkdtemp(prefix="megaplane-etcd-compat-")
    started: Dict[str, Server] = {}
    try:
        for name in ("megaplane", "etcd"):
            d = os.path.join(root, name)
            os.makedirs(d)
            started[name] = (start_megaplane if name == "megaplane" else start_etcd)(os.path.join(d, "data"))
        yield started
    finally:
        for s in started.values():
            s.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def megaplane(servers) -> Server:
    return servers["megaplane"]


def etcdctl(endpoint: str, *args: str, input: Optional[str] = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ETCDCTL, "--endpoints", endpoint, *args],
        env={**os.environ, "ETCDCTL_API": "3"},
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_RETRY_LOG = re.compile(r'^\{"level":"warn".*$\n?', re.M)
_IDS = re.compile(r'"(cluster_id|member_id|raft_term|ClusterID|MemberID|RaftTerm)"( ?: ?)\d+')


def normalize(text: str) -> str:
    """Drop what legitimately differs between two clusters: ids, terms, client retry logs."""
    text = _RETRY_LOG.sub("", text)
    return _IDS.sub(r'"\1"\g<2>0', text)
