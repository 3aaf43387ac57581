"""A real `megaplane up` process for API tests, and the real clients to drive it.

The server runs as a separate process on loopback (plain HTTP for the
Python client and raw requests, HTTPS through the kubeconfig it writes for
kubectl). Each kubectl call gets a fresh --cache-dir unless the test says
otherwise, so discovery is never served from a stale cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Iterator, List, Optional

import pytest

from tests.etcd.conftest import free_port

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


class Cluster:
    def __init__(self, proc: subprocess.Popen, port: int, kubeconfig: str, root: str) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.kubeconfig = kubeconfig
        self.root = root
        self.cache_dir = os.path.join(root, "kubectl-cache")

    def kubectl(self, *args: str, input: Optional[str] = None, timeout: float = 60, fresh_cache: bool = False) -> subprocess.CompletedProcess:
        cache = tempfile.mkdtemp(dir=self.root) if fresh_cache else self.cache_dir
        return subprocess.run(
            [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", cache, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, input: Optional[str] = None) -> str:
        out = self.kubectl(*args, input=input)
        assert out.returncode == 0, f"kubectl {' '.join(args)} failed:\n{out.stderr}"
        return out.stdout

    def api_client(self):  # type: ignore[no-untyped-def]
        import kubernetes

        cfg = kubernetes.client.Configuration()
        cfg.host = self.url
        return kubernetes.client.ApiClient(cfg)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_megaplane(root: str, command: str, args: List[str], *, port: int = 0, secure_port: int = 0,
                    timeout: float = 30) -> Cluster:
    """`megaplane <command>` (up or apiserver) in `root`, on free ports unless given (a restart passes them).

    Ready once /readyz answers 200 and the kubeconfig is written; the log is `root/<command>.log`.
    """
    port, secure = port or free_port(), secure_port or free_port()
    kubeconfig = os.path.join(root, "kubeconfig")
    log_path = os.path.join(root, f"{command}.log")
    with open(log_path, "a") as log:  # the child holds its own descriptor; the test's is closed at once
        proc = subprocess.Popen(
            [sys.executable, "-m", "megaplane.cli", command, "--port", str(port), "--secure-port", str(secure),
             "--kubeconfig", kubeconfig, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"megaplane {command} exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200 and os.path.exists(kubeconfig):
                    return Cluster(proc, port, kubeconfig, root)
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"megaplane {command} did not become ready")


def start_cluster(root: str, extra: Optional[List[str]] = None, *, port: int = 0, secure_port: int = 0) -> Cluster:
    """`megaplane up` with its data dir in `root`, as the API tests want it (see the flags below)."""
    return start_megaplane(
        root, "up",
        ["--data-dir", os.path.join(root, "data"),
         # No simulated nodes, scheduler or workload controllers: these tests are about the API server and
         # create, count and bind their own objects (tests/fleet, tests/scheduler, tests/controllers run the rest).
         "--nodes", "0", "--scheduler=false", "--controllers", "namespace,serviceaccount", *(extra or [])],
        port=port, secure_port=secure_port)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-api-")
    c = start_cluster(root)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
